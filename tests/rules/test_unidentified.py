"""Orders fhir-pain cannot identify are never presented as checked: named beside other advice, no card alone."""
from __future__ import annotations

from datetime import datetime, timezone

from fhir_pain.cards import render
from fhir_pain.evaluate import evaluate
from fhir_pain.facts import PatientData
from fhir_pain.gather import gather
from golden.fhir_builders import draft, genotype

NOW = datetime(2026, 11, 20, 12, tzinfo=timezone.utc)
RULE = "fhir-pain/unidentified-orders"
CODEINE = draft("rx1", "p1", "2670", "codeine phosphate 30 MG Oral Tablet")
PM = genotype("g1", "p1", "CYP2D6", "*4/*4")
NM = genotype("g1", "p1", "CYP2D6", "*1/*1")
NDC_ONLY = {"resourceType": "MedicationRequest", "id": "rx9", "status": "draft", "intent": "order",
            "subject": {"reference": "Patient/p1"},
            "medicationCodeableConcept": {"coding": [{"system": "http://hl7.org/fhir/sid/ndc",
                                                      "code": "0045-0526-60"}]}}
LOCAL_TEXT = {"resourceType": "MedicationRequest", "id": "rx8", "status": "draft", "intent": "order",
              "subject": {"reference": "Patient/p1"}, "medicationCodeableConcept": {"text": "Magic mouthwash 5 mL"}}


def data(drafts, obs=(), selections=()):
    return PatientData(patient_id="p1", now=NOW, observations=list(obs), draft_orders=list(drafts),
                       selections=tuple(selections))


def findings_of(cards):
    return [f for c in cards for f in c.extension["io.fhir-pain.findings"]]


def test_an_unidentified_order_beside_advice_is_named_on_the_first_card():
    d = data([CODEINE, NDC_ONLY, LOCAL_TEXT], obs=[PM])
    cards = render(evaluate(d, "order-sign"), d)
    assert len(cards) == 1 and cards[0].indicator == "critical"       # no card of its own, the card keeps its level
    note = [f for f in findings_of(cards) if f["rule"] == RULE]
    assert note == [{"rule": RULE, "kind": "informational", "action": "informational",
                     "evidence": ["MedicationRequest/rx9", "MedicationRequest/rx8"],
                     "knowledge": note[0]["knowledge"]}]
    assert "drugs.json" in note[0]["knowledge"]["version"] and "products.json" in note[0]["knowledge"]["version"]
    assert cards[0].summary.startswith("CYP2D6 poor metabolizer")     # the advice leads, the note follows
    assert "Not checked: 2 orders not identified" in cards[0].detail
    assert "Magic mouthwash 5 mL" in cards[0].detail and "0045-0526-60" in cards[0].detail


def test_an_order_referencing_a_medication_that_was_not_sent_is_named_by_its_reference():
    lost = {"resourceType": "MedicationRequest", "id": "rx7", "status": "draft", "intent": "order",
            "subject": {"reference": "Patient/p1"}, "medicationReference": {"reference": "Medication/gone"}}
    d = data([CODEINE, lost], obs=[PM])
    cards = render(evaluate(d, "order-sign"), d)
    assert "Medication/gone (a Medication not sent with the request)" in cards[0].detail


def test_an_unidentified_order_alone_gives_no_card():
    assert evaluate(data([NDC_ONLY]), "order-sign") == []
    d = data([CODEINE, NDC_ONLY], obs=[NM])          # codeine at standard dosing: no advice, so no note either
    assert render(evaluate(d, "order-sign"), d) == []


def test_order_select_names_only_the_selected_orders():
    d = data([CODEINE, NDC_ONLY, LOCAL_TEXT], obs=[PM], selections=["MedicationRequest/rx1", "MedicationRequest/rx8"])
    note = [f for f in evaluate(d, "order-select") if f.rule == RULE]
    assert [n.evidence for n in note] == [("MedicationRequest/rx8",)]


def test_patient_view_names_no_orders():
    assert RULE not in [f.rule for f in evaluate(data([], obs=[PM]), "patient-view")]


class _Request:
    def __init__(self, context, prefetch):
        self.context, self.prefetch, self.patient_id, self.missing = context, prefetch, "p1", ()


def _by_reference(ref: str, entry: dict) -> dict:
    order = {"resourceType": "MedicationRequest", "id": "rx5", "status": "draft", "intent": "order",
             "subject": {"reference": "Patient/p1"}, "medicationReference": {"reference": ref}}
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": order}, entry]}


MED = {"resourceType": "Medication", "id": "m1",
       "code": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "993781"}]}}


def test_a_medication_reference_to_a_medication_in_the_draft_orders_bundle_is_followed():
    for ref, entry in (
        ("Medication/m1", {"resource": MED}),
        ("urn:uuid:6f1c0c3e-31b4-4bd1-9d0a-1b2a3c4d5e6f",
         {"fullUrl": "urn:uuid:6f1c0c3e-31b4-4bd1-9d0a-1b2a3c4d5e6f", "resource": MED}),
        ("https://ehr.example.org/fhir/Medication/m1/_history/3", {"resource": MED}),
    ):
        d = gather(_Request({"patientId": "p1", "draftOrders": _by_reference(ref, entry)}, {"pgx": {
            "resourceType": "Bundle", "type": "searchset", "entry": [{"resource": PM}]}}), now=NOW)
        found = evaluate(d, "order-sign")
        assert [f.rule for f in found] == ["cpic/codeine/CYP2D6"], ref
        assert [i.name for i in found[0].medication.ingredients] == ["codeine", "acetaminophen"]
