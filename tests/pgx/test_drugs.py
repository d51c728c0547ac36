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
    ("tylenol3", ["acetaminophen", "codeine"]),      # unknown SCD code: the RxNorm names (salt) decide
    ("oxy-salt", ["oxycodone"]),                     # Tall-Man lettering and a salt
    ("ultram", ["tramadol"]),                        # brand name
    ("norco", ["hydrocodone", "acetaminophen"]),     # combination brand
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


# ---- analgesics CPIC has no guideline for: identification alone must find them (the pain rules rely on it) ----

from fhir_pain.pain import ANALGESIC_CLASSES  # noqa: E402
from fhir_pain.profiles import load  # noqa: E402
from .conftest import order  # noqa: E402

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


@pytest.mark.parametrize("coding, text, expected", [
    ({"system": RXNORM, "code": "25480", "display": "gabapentin"}, None, [Drug("25480", "gabapentin")]),
    ({"system": RXNORM, "code": "310431", "display": "gabapentin 600 MG Oral Tablet"}, None,
     [Drug("25480", "gabapentin")]),                               # an SCD code we do not list: the name decides
    ({"system": RXNORM, "code": "187832"}, None, [Drug("187832", "pregabalin")]),   # code only, no display
    (None, "Lyrica 75 mg capsule", [Drug("187832", "pregabalin")]),
    (None, "Neurontin 300mg", [Drug("25480", "gabapentin")]),
    ({"system": RXNORM, "code": "161", "display": "acetaminophen"}, None, [Drug("161", "acetaminophen")]),
    (None, "Paracetamol 500 mg tablet", [Drug("161", "acetaminophen")]),
    (None, "Hydrocodone/APAP 5-325", [Drug("5489", "hydrocodone"), Drug("161", "acetaminophen")]),
    (None, "Percocet 5/325", [Drug("7804", "oxycodone"), Drug("161", "acetaminophen")]),
    (None, "Nucynta ER 50 MG", [Drug("787390", "tapentadol")]),
    ({"system": RXNORM, "code": "26237", "display": "granisetron"}, None, [Drug("26237", "granisetron")]),
    (None, "Suboxone 8 mg-2 mg sublingual film", [Drug("1819", "buprenorphine"), Drug("7242", "naloxone")]),
    ({"system": "http://snomed.info/sct", "code": "25480"}, None, []),  # a SNOMED code is not an RxCUI
])
def test_identify_pain_drugs_outside_cpic(coding, text, expected):
    assert list(identify(order(coding, text)).ingredients) == expected


def test_every_ingredient_of_the_pain_class_map_is_identified_by_code_and_by_name():
    """The rules used to patch identify's gaps from the class map; now identify must know every one of them,
    with the same RxCUI, whether the order carries the code alone or only a name."""
    for cls in ANALGESIC_CLASSES.values():
        for drug in cls.ingredients:
            by_code = identify(order({"system": RXNORM, "code": drug.rxnorm}))
            by_name = identify(order(text=f"{drug.name.title()} 10 MG Oral Tablet"))
            assert by_code.ingredients == by_name.ingredients == (drug,), drug
            assert drug_by_name(drug.name) == drug


def test_codes_outside_cpic_data_say_where_they_come_from():
    data = load("pgx/drugs.json")
    codes = {i["rxnorm"]: i["name"] for i in data["ingredients"]}
    assert len(codes) == len(data["ingredients"]) == len({i["name"] for i in data["ingredients"]})
    sources = data["meta"]["codeSources"]
    for code, source in sources.items():
        assert code in codes and source.startswith(codes[code] + ": "), code
    for name in ("acetaminophen", "gabapentin", "pregabalin", "granisetron", "tapentadol", "lidocaine"):
        assert drug_by_name(name).rxnorm in sources, name
    assert "NOT verified" in sources["26237"]       # granisetron's RxCUI is the lead's knowledge only


def test_unverified_codes_are_listed_and_known():
    """Every RxCUI whose source says it is not verified is in meta.unverifiedCodes (cards never order those)."""
    from fhir_pain import profiles
    from fhir_pain.pgx import code_verified
    meta = profiles.load("pgx/drugs.json")["meta"]
    said_unverified = {c for c, text in meta["codeSources"].items() if "not verified" in text.lower()}
    assert set(meta["unverifiedCodes"]) == said_unverified
    known = {i["rxnorm"] for i in profiles.load("pgx/drugs.json")["ingredients"]}
    assert set(meta["unverifiedCodes"]) <= known
    assert not code_verified("26237") and code_verified("7052") and code_verified("25480")


@pytest.mark.parametrize("system", [["http://www.nlm.nih.gov/research/umls/rxnorm"], {"x": 1}, 5])
def test_concept_names_with_a_list_or_object_system_is_ignored(system):
    # was TypeError ("unhashable type: 'list'") in _concept_names: a 500 for the whole call
    use = identify({"resourceType": "MedicationRequest", "id": "m", "medicationCodeableConcept": {
        "coding": [{"system": system, "code": "2670"}, {"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                          "code": "7804", "display": "oxycodone"}]}})
    assert [d.name for d in use.ingredients] == ["oxycodone"]


@pytest.mark.parametrize("coding, text", [
    ({"system": RXNORM, "code": " 2670 ", "display": "codeine phosphate 30 MG Oral Tablet"}, "  Codeine 30mg  "),
    ({"system": RXNORM, "code": "2670"}, "   "),
    ({"code": "1049621", "display": 5}, None),                       # no system: the code counts; a number does not
    ({"system": "http://snomed.info/sct", "code": "25480", "display": "gabapentin"}, None),
    ({"system": ["x"], "code": "7804", "display": ["oxycodone"]}, ["Percocet"]),
    ({"system": RXNORM, "code": 2670, "display": "Hydrocodone/APAP 5-325"}, "Hydrocodone/APAP 5-325"),
    ({"system": RXNORM, "code": "993889", "display": "x" * 400}, "Tylenol #3 " + "y" * 400),   # too long to keep
])
def test_one_coding_orders_read_through_the_memo_as_the_general_path_reads_them(coding, text):
    # identify reads a concept of exactly one coding through a memo; an empty second coding (which adds nothing)
    # sends the same order down the general path: both must agree on ingredients and display text, twice over
    one = {"resourceType": "MedicationRequest", "id": "m", "medicationCodeableConcept": {"coding": [coding]}}
    two = {"resourceType": "MedicationRequest", "id": "m", "medicationCodeableConcept": {"coding": [coding, {}]}}
    if text is not None:
        one["medicationCodeableConcept"]["text"] = two["medicationCodeableConcept"]["text"] = text
    for _ in range(2):
        assert identify(one) == identify(two)
        assert identify(one).text == identify(two).text


def test_one_coding_orders_with_long_or_odd_typed_fields_are_read_but_never_kept():
    from fhir_pain.pgx import drugs
    before = len(drugs._one_codings)
    for coding, text in [({"system": RXNORM, "code": "993889", "display": "x" * 400}, "Tylenol #3"),
                         ({"system": RXNORM, "code": 2670, "display": "codeine"}, None),
                         ({"system": ["x"], "code": "7804", "display": "oxycodone"}, None)]:
        concept = {"coding": [coding]} if text is None else {"coding": [coding], "text": text}
        assert identify({"resourceType": "MedicationRequest", "medicationCodeableConcept": concept}).ingredients
    assert len(drugs._one_codings) == before
