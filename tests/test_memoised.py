"""The memoised pure functions (FHIR dates, markdown escaping, drug identification, opioid classification, the
cards' override-reason codings) hand the same objects to every call that asks with the same text: a rule or
renderer that changed one would change the answers of the calls after it. Every golden scenario, asked again
after all of them were answered once (in the reverse order), must get the very same response."""
from __future__ import annotations

import json

import pytest

from fhir_pain.services import SERVICE_IDS
from golden.test_golden import HERE, NOW, SCENARIOS, normalise


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from fhir_pain.app import create_app
    db = tmp_path_factory.mktemp("memoised") / "memoised.sqlite3"
    app = create_app({"AUTH": "off", "DATABASE_URL": f"sqlite:///{db}", "NOW": NOW, "FHIR_SERVER_ALLOWLIST": []})
    yield app.test_client()
    app.extensions["fhir_pain.store"].dispose()


def _answer(client, scenario: str) -> dict:
    body = json.loads((HERE / scenario / "request.json").read_text())
    response = client.post(f"/cds-services/{SERVICE_IDS[body['hook']]}", json=body)
    assert response.status_code == 200, scenario
    return normalise(response.get_json())


def test_shared_memoised_values_leave_every_later_answer_unchanged(client):
    first = {scenario: _answer(client, scenario) for scenario in SCENARIOS}
    assert sum(1 for r in first.values() if r["cards"]) > len(SCENARIOS) // 2   # most scenarios give cards
    for scenario in reversed(SCENARIOS):
        assert _answer(client, scenario) == first[scenario], scenario


def test_texts_too_long_to_be_real_are_answered_but_never_kept():
    """The memos are bounded in entries; a sender's megabyte-long strings must not fill them (memory)."""
    from fhir_pain import fhirdates
    from fhir_pain.facts import MedicationUse
    from fhir_pain.opioid import classify
    from fhir_pain.opioid.classify import _classes
    from fhir_pain.rules.text import _md, md

    long = "oxycodone 5 MG <b>*" + "x" * 100_000
    sizes = (_md.cache_info().currsize, fhirdates._parse.cache_info().currsize, _classes.cache_info().currsize)
    assert md(long).startswith("oxycodone 5 MG &lt;b&gt;\\*")
    assert fhirdates.parse("2024-03-05T10:00:00Z" + " " * 100_000) is not None   # still read (stripped)
    draft = MedicationUse(ref="MedicationRequest/1", status="draft", intent="order", ingredients=(), text=long,
                          is_draft=True, resource={"medicationCodeableConcept": {"text": long}})
    assert "opioid" in classify(draft).classes
    assert (_md.cache_info().currsize, fhirdates._parse.cache_info().currsize,
            _classes.cache_info().currsize) == sizes
    # the PGx readers and the drug names (fhir_pain.memo.short_text_memo)
    from fhir_pain.pgx.drugs import _drug_by_name, drug_by_name
    from fhir_pain.pgx.readers import _diplotype_in, _names_gene
    memos = (_drug_by_name, _names_gene)
    before = tuple(m.cache_info().currsize for m in memos)
    assert drug_by_name("x" * 100_000) is None
    assert _names_gene("CYP2D6 " + "x" * 100_000) is True
    assert _diplotype_in(["CYP2D6 *1/*4 " + "x" * 100_000], "CYP2D6")[1] == "*1/*4"
    assert tuple(m.cache_info().currsize for m in memos) == before


def test_opioid_classes_of_a_one_coding_order_are_the_same_from_the_memo_and_long_or_odd_fields_are_never_kept():
    """classify() looks the usual order (one coding, nothing contained) up by what it reads of it: the answer must
    be the general path's, and a sender's long or wrongly typed fields must be classified, never kept."""
    from fhir_pain import pgx
    from fhir_pain.opioid.classify import _codes_and_texts, _classes, _one_coding_classes, classify

    def order(code, display, text=None, system="http://www.nlm.nih.gov/research/umls/rxnorm"):
        concept = {"coding": [{"system": system, "code": code, "display": display}]}
        if text is not None:
            concept["text"] = text
        return {"resourceType": "MedicationRequest", "id": "m1", "status": "active", "intent": "order",
                "medicationCodeableConcept": concept}

    orders = [order("1049621", "oxycodone hydrochloride 5 MG Oral Tablet"),
              order("1049621", "oxycodone hydrochloride 5 MG Oral Tablet", text="OxyContin 10 MG 12HR ER tablet"),
              order("197591", "diazepam 5 MG Oral Tablet"),
              order("310431", "gabapentin 100 MG Oral Capsule"),
              order("999999", "hydromorphone 2 MG Oral Tablet", system=None),
              order("1726", "buprenorphine / naloxone sublingual film")]
    _one_coding_classes.clear()
    for resource in orders:
        med = pgx.identify(resource)
        general = _classes(*_codes_and_texts(med), frozenset(d.name for d in med.ingredients))
        first, again = classify(med), classify(med)      # the second is a memo hit
        assert (first.opioids, first.strengths, first.dose_form, first.classes, first.names) == general
        assert again == first and again.med is med
    assert len(_one_coding_classes) == len(orders)

    kept = len(_one_coding_classes)
    long = order("1049621", "oxycodone hydrochloride 5 MG Oral Tablet " + "x" * 10_000)
    odd = order("1049621", "oxycodone hydrochloride 5 MG Oral Tablet", system=["not", "a", "system"])
    for resource in (long, odd):
        assert "opioid" in classify(pgx.identify(resource)).classes
    assert len(_one_coding_classes) == kept
