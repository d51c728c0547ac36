"""MedicationRequest -> ingredients: product codes, ingredient codes, names, salts, brands, Medication references."""
from __future__ import annotations

import pytest

from fhir_pain.facts import Drug
from fhir_pain.pgx import drug_by_name, identify
from .conftest import pgx_fixture

REQUESTS = {e["resource"]["id"]: e["resource"] for e in pgx_fixture("medication-requests-bundle.json")["entry"]}
CELECOXIB_MED = pgx_fixture("medication-celecoxib.json")


def names(use):
    return [d.name for d in use.ingredients]


@pytest.mark.parametrize("rid, expected", [
    ("codeine-60", ["codeine"]),                     # sandbox product code 993889
    ("fiorinal", ["aspirin", "codeine"]),            # sandbox product code 994276 (combination, brand)
    ("tylenol3", ["codeine"]),                       # unknown SCD code: the RxNorm name (salt) decides
    ("oxy-salt", ["oxycodone"]),                     # Tall-Man lettering and a salt
    ("ultram", ["tramadol"]),                        # brand name
    ("norco", ["hydrocodone"]),                      # combination brand
    ("tramadol-in", ["tramadol"]),                   # ingredient RxCUI under the RxNorm OID
    ("cymbalta", ["duloxetine"]),
    ("amlodipine", []),                              # not a drug we know: no ingredients, no error
    ("contained", ["paroxetine"]),                   # contained Medication
    ("compounded", ["ibuprofen", "codeine"]),        # Medication.ingredient
    ("mirabegron", []),                              # inhibitor without a verified RxCUI: not an ingredient...
])
def test_identify(rid, expected):
    assert names(identify(REQUESTS[rid])) == expected


def test_identify_carries_the_order_facts():
    use = identify(REQUESTS["fiorinal"], is_draft=True)
    assert use.ref == "MedicationRequest/fiorinal" and use.status == "draft" and use.intent == "order"
    assert use.is_draft and use.authored_on.year == 2026
    assert use.text.startswith("Aspirin 325 MG") and use.resource is REQUESTS["fiorinal"]
    assert use.ingredients[1] == Drug("2670", "codeine")


def test_medication_reference_through_resolve():
    seen = []

    def resolve(ref):
        seen.append(ref)
        return CELECOXIB_MED if ref == "Medication/celecoxib-200" else None

    assert names(identify(REQUESTS["referenced"], resolve=resolve)) == ["celecoxib"]
    assert seen == ["Medication/celecoxib-200"]
    # no resolver: the reference's display still names the drug
    assert names(identify(REQUESTS["referenced"])) == ["celecoxib"]

    def broken(ref):
        raise RuntimeError("FHIR server down")
    assert names(identify(REQUESTS["referenced"], resolve=broken)) == ["celecoxib"]


def test_sandbox_draft_without_medication_and_junk():
    use = identify({"resourceType": "MedicationRequest", "status": "draft", "intent": "order"}, is_draft=True)
    assert use.ingredients == () and use.ref.startswith("urn:uuid:") and use.text == ""
    for junk in (None, [], {"medicationCodeableConcept": "x"}, {"medicationCodeableConcept": {"coding": [None, 3]}},
                 {"medicationReference": {"reference": 5}}, {"contained": "x", "medicationReference": {"reference": "#a"}}):
        assert identify(junk).ingredients == ()


def test_drug_by_name():
    assert drug_by_name("oxycodone") == Drug("7804", "oxycodone")
    assert drug_by_name(" Celebrex ") == Drug("140587", "celecoxib")
    assert drug_by_name("vicoprofen") is None     # a combination is not one drug
    assert drug_by_name("mirabegron") is None     # no verified RxCUI
    assert drug_by_name("unknownium") is None and drug_by_name(None) is None


from hypothesis import given, settings, strategies as st  # noqa: E402

_LEAF = st.one_of(st.none(), st.integers(), st.sampled_from(
    ["993889", "2670", "#m", "Medication/x", "Codeine Phosphate 30 MG", "http://www.nlm.nih.gov/research/umls/rxnorm",
     "active", "Medication", "m", ""]))
_JSON = st.recursive(_LEAF, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(
    ["medicationCodeableConcept", "medicationReference", "coding", "code", "system", "display", "text", "reference",
     "contained", "resourceType", "id", "ingredient", "itemCodeableConcept", "status", "authoredOn"]), inner,
    max_size=5)), max_leaves=25)


@settings(max_examples=300, deadline=None)
@given(_JSON)
def test_arbitrary_json_never_breaks_identify(resource):
    use = identify(resource, resolve=lambda ref: resource if isinstance(resource, dict) else None)
    assert all(d.rxnorm.isdigit() for d in use.ingredients)
