"""Orders coded the way EHRs code them: RxNorm product codes alone, pharmacy shorthand, brand names."""
from __future__ import annotations

import pytest

from fhir_pain import profiles
from fhir_pain.pgx import identify
from .conftest import order

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
PRODUCTS = profiles.load("pgx/products.json")
SHORTHAND = profiles.load("pgx/abbreviations.json")
OURS = {i["name"] for i in profiles.load("pgx/drugs.json")["ingredients"]}
# brand names of the ingredients the HLA tables bring (drugs.json lists them once those tables are merged)
PENDING = {"carbamazepine", "oxcarbazepine", "phenytoin", "fosphenytoin"}


def names(resource: dict) -> list[str]:
    return [d.name for d in identify(resource).ingredients]


@pytest.mark.parametrize("ingredient", sorted(PRODUCTS["coverage"]))
def test_every_product_of_an_ingredient_is_identified_by_its_code_alone(ingredient):
    codes = [c for c, p in PRODUCTS["products"].items() if ingredient in p["ingredients"]]
    assert len(codes) == PRODUCTS["coverage"][ingredient]["total"] > 0
    for code in codes:
        assert names(order({"system": RXNORM, "code": code})) == PRODUCTS["products"][code]["ingredients"], code


@pytest.mark.parametrize("code, expected", [
    ("993781", ["codeine", "acetaminophen"]),       # SCD acetaminophen 300 MG / codeine phosphate 30 MG Oral Tablet
    ("993837", ["codeine", "acetaminophen"]),       # SBD ... 300 MG / ... 30 MG Oral Tablet [Tylenol with Codeine]
    ("856999", ["hydrocodone", "acetaminophen"]),   # SCD acetaminophen 325 MG / hydrocodone bitartrate 10 MG
    ("1049621", ["oxycodone"]),                     # SCD oxycodone hydrochloride 5 MG Oral Tablet
    ("1740008", ["fentanyl"]),                      # BPCK {2 (fentanyl ... [Subsys]) } Pack [Subsys 1200 MCG]
    ("1010603", ["buprenorphine", "naloxone"]),     # SBD [Suboxone]
    ("2588478", ["celecoxib", "tramadol"]),         # SCD celecoxib 56 MG / tramadol 44 MG (CDC value set, not OMTK)
    ("2474267", ["fentanyl"]),                      # SCD 2 ML fentanyl 0.05 MG/ML Prefilled Syringe (value set)
])
def test_known_product_codes(code, expected):
    # under every RxNorm system URI EHRs use, and without a system
    for system in (RXNORM, "urn:oid:2.16.840.1.113883.6.88", None):
        coding = {"code": code, **({"system": system} if system else {})}
        assert names(order(coding)) == expected, (code, system)


def test_an_ndc_coding_is_identified_by_its_display_never_by_its_code():
    ndc = "http://hl7.org/fhir/sid/ndc"
    assert names(order({"system": ndc, "code": "993781"})) == []      # an RxNorm product code under another system
    assert names(order({"system": ndc, "code": "0045-0513-60"})) == []
    assert names(order({"system": ndc, "code": "0045-0513-60", "display": "Tylenol w/ Codeine #3 Tab"})) == [
        "acetaminophen", "codeine"]


@pytest.mark.parametrize("text, expected", [
    ("Tylenol #3", ["acetaminophen", "codeine"]),
    ("Tylenol No. 3 tablet", ["acetaminophen", "codeine"]),
    ("TYLENOL #4", ["acetaminophen", "codeine"]),
    ("Tylenol w/ Codeine #3", ["acetaminophen", "codeine"]),
    ("APAP/COD 300-30 MG TAB", ["acetaminophen", "codeine"]),
    ("ACETAMINOPHEN-COD #3 TABLET", ["acetaminophen", "codeine"]),
    ("HC/APAP 5-325 MG TAB", ["acetaminophen", "hydrocodone"]),
    ("HYDROCOD/APAP 10-325", ["acetaminophen", "hydrocodone"]),
    ("OXYCOD/APAP 5/325", ["acetaminophen", "oxycodone"]),
    ("oxy/apap 5-325", ["acetaminophen", "oxycodone"]),
    ("Norco 10-325 tab", ["hydrocodone", "acetaminophen"]),
    ("Vicodin ES", ["hydrocodone", "acetaminophen"]),
    ("Percocet 5/325", ["oxycodone", "acetaminophen"]),
    ("Ultracet 37.5-325", ["tramadol", "acetaminophen"]),
    ("Hycet oral solution", ["acetaminophen", "hydrocodone"]),      # RxNorm brand, from products.json
    ("Endodan", ["aspirin", "oxycodone"]),                          # "Endodan Reformulated May 2009"
    ("Embeda 20-0.8 mg", ["morphine", "naltrexone"]),
    ("ASA 325 mg / oxycodone 4.5 mg", ["aspirin", "oxycodone"]),
])
def test_shorthand_and_brands(text, expected):
    assert names(order(text=text)) == expected


@pytest.mark.parametrize("text", [
    "HC 2.5% cream",           # hydrocortisone: HC alone is not hydrocodone
    "Cod liver oil capsule",   # COD alone is not codeine
    "OXY 10 acne pads",
    "T3 25 mcg tablet",        # ISMP: T3 is read as liothyronine
    "Tylenol 325 MG tablet",
])
def test_ambiguous_shorthand_alone_names_no_opioid(text):
    assert not {"hydrocodone", "codeine", "oxycodone"} & set(names(order(text=text)))


@pytest.mark.parametrize("section", ["abbreviations", "brands"])
def test_every_curated_name_identifies_its_ingredients(section):
    for name, entry in SHORTHAND[section].items():
        assert entry["source"] in SHORTHAND["meta"]["sources"], name
        if set(entry["ingredients"]) <= OURS:
            assert set(names(order(text=f"{name.upper()} 10 MG"))) >= set(entry["ingredients"]), name
        else:
            assert set(entry["ingredients"]) <= PENDING, name


def test_partner_shorthand_names_its_ingredient_beside_another():
    for name, entry in SHORTHAND["withPartner"].items():
        assert entry["source"] in SHORTHAND["meta"]["sources"], name
        assert names(order(text=f"{name.upper()} 5 MG")) == [], name
        assert names(order(text=f"APAP/{name.upper()} 325-5 MG")) == ["acetaminophen", *entry["ingredients"]], name


def test_a_product_code_wins_over_a_misleading_text():
    # the code is the EHR's coded truth; the text adds what it names (never removes)
    assert names(order({"system": RXNORM, "code": "993781"}, "Tylenol 325 MG")) == ["codeine", "acetaminophen"]
