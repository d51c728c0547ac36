"""The clinical conventions of profiles/pgx/wording.json, checked text by text against CPIC's exports.

Our gist may be shorter than CPIC's text but never stronger or weaker: the action category follows one rule for
every text (written down in wording.json meta.notes and as ``expected_action`` below), every percentage and
'consider' survives, 'if no response' / 'if warranted' conditions stay, and a drug is named only where CPIC names
it. A CPIC update that brings a new kind of sentence fails here until someone decides its category.
"""
from __future__ import annotations

import re
from collections import defaultdict

import pytest

from fhir_pain.profiles import load
from .conftest import CPIC_DIR, cpic_json

WORDING = load("pgx/wording.json")["texts"]
DRUG_NAMES = sorted(i["name"] for i in load("pgx/drugs.json")["ingredients"])
PERCENT = re.compile(r"\d+(?:-\d+)?%")


def _exports() -> dict[str, dict]:
    names = sorted(p.name[len("recommendations_cpic_"):-5] for p in CPIC_DIR.glob("recommendations_cpic_*.json"))
    return {n: cpic_json(f"recommendations_cpic_{n}.json") for n in names}


@pytest.fixture(scope="module")
def exports() -> dict[str, dict]:
    return _exports()


@pytest.fixture(scope="module")
def by_text(exports) -> dict[str, list[tuple[str, dict]]]:
    """CPIC text -> every (drug, record) of the exports that carries it (every population: the HLA anticonvulsant
    tables are split by population and the build keeps each). CPIC's 'n/a' classification of some phenytoin
    'No recommendation' rows is its No Recommendation."""
    out: dict[str, list[tuple[str, dict]]] = defaultdict(list)
    for name, export in exports.items():
        for r in export["recommendations"]:
            if r["classification"] == "n/a":
                r = {**r, "classification": "No Recommendation"}
            out[r["drugrecommendation"]].append((name, r))
    return out


def expected_action(text: str, classifications: set[str]) -> str | None:
    """The convention (wording.json meta.notes), as code: what CPIC asks first decides the category."""
    if classifications == {"No Recommendation"}:
        return "no-recommendation"
    if re.search(r"\bAvoid\b|\bdo not use\b", text):
        return "avoid"                      # even with an 'if warranted, consider X%' fallback
    first = re.split(r"[.;] ", text)[0]
    if re.search(r"cautiously consider use|consider the use of \w+ with increased frequency of clinical monitoring",
                 text):
        return "monitor"                    # HLA: after > 3 months without reaction, or no alternative available
    if re.search(r"per standard dosing guidelines|^No adjustments needed from typical dosing", text):
        return "standard-dose"
    head = first.split(" or ")[0]           # "a lower starting dose ... or select an alternative": the dose first
    if "alternative" not in head.lower() and (PERCENT.search(head) or "lower starting dose" in head):
        return "reduce-dose"
    if "alternative" in first.lower() or re.search(r"antidepressant not (predominantly|primarily) metabolized", first):
        return "use-alternative"
    if re.search(r"\d+% less than typical maintenance dose|recommended starting dose\. Consider a slower titration "
                 r"schedule and lower maintenance dose", text):
        return "reduce-dose"                # the maintenance dose changes
    if PERCENT.search(first) or re.search(r"lowest recommended starting dose|lower starting dose", first):
        return "reduce-dose"                # even with an 'Alternatively, ...' that follows
    if "If no response" in text or "does not adequately respond" in text:
        return "monitor"                    # usual dose, with a condition to act on
    if re.search(r"label recommended|recommended starting dose", first):
        return "standard-dose"
    return None


def sentence_with(text: str, needle: str) -> str:
    return next(s for s in re.split(r"(?<=[.;])\s+", text) if needle in s)


def mentions(record: dict, drug: str) -> bool:
    said = " ".join([record["drugrecommendation"], record.get("comments") or "",
                     *(v for v in (record.get("implications") or {}).values() if isinstance(v, str))])
    return re.search(rf"\b{re.escape(drug)}\b", said, re.I) is not None


def test_every_cpic_text_has_wording_and_every_wording_is_a_cpic_text(by_text):
    assert set(by_text) == set(WORDING)


@pytest.mark.parametrize("text", sorted(WORDING))
def test_the_action_follows_the_convention(text, by_text):
    classifications = {r["classification"] for _, r in by_text[text]}
    want = expected_action(text, classifications)
    assert want is not None, f"a new kind of CPIC text: decide its category (wording.json meta.notes): {text!r}"
    assert WORDING[text]["action"] == want, (text, classifications)


@pytest.mark.parametrize("text", sorted(WORDING))
def test_the_gist_keeps_cpics_numbers_conditions_and_hedges(text):
    gist = WORDING[text]["gist"]
    for pct in PERCENT.findall(text):
        assert pct in gist, (pct, gist)
        if "consider" in sentence_with(text, pct).lower():
            assert "consider" in sentence_with(gist, pct).lower(), (pct, gist)   # no firmer than CPIC
    if text.startswith("Consider"):
        assert gist.lower().startswith("consider"), gist
    if "strongly recommended" in text:
        assert "strongly recommended" in gist, gist
    if "If no response" in text:
        assert "if there is no response" in gist.lower(), gist
    if re.search(r"\bis warranted\b", text):
        assert re.search(r"\b(is warranted|is used)\b", gist), gist
    for days in re.findall(r"at least \d+ days", text):
        assert days in gist, gist


@pytest.mark.parametrize("text", sorted(WORDING))
def test_named_alternatives_are_drugs_cpic_names_for_that_result(text, by_text, exports):
    """Named in the record itself (text, comments, implications); or in the comments CPIC gives the same text
    elsewhere in the same guideline (meloxicam's poor-metabolizer rows carry no comment, piroxicam's name the
    drugs); or in the same export's advice for one of the record's gene results alone (amitriptyline, CYP2D6
    normal + CYP2C19 poor: CPIC's CYP2C19-only advice names nortriptyline and desipramine)."""
    guideline = {n: e["guidelinename"] for n, e in exports.items()}
    for name, record in by_text[text]:
        same_text = [r for n, r in by_text[text] if guideline[n] == guideline[name]]
        single_gene = [r for r in exports[name]["recommendations"]
                       for gene, phenotype in record["phenotypes"].items()
                       if r["phenotypes"].get(gene) == phenotype and len(r["lookupkey"]) > 1
                       and all(v == "No Result" for g, v in r["lookupkey"].items() if g != gene)]
        for alt in WORDING[text].get("alternatives", ()):
            assert any(mentions(r, alt) for r in [record, *same_text, *single_gene]), (name, record["lookupkey"], alt)


@pytest.mark.parametrize("text", sorted(WORDING))
def test_the_gist_names_no_drug_cpic_does_not(text, by_text):
    records = by_text[text]
    allowed = {name for name, _ in records} | set(WORDING[text].get("alternatives", ()))
    allowed |= {d for d in DRUG_NAMES if any(mentions(r, d) for _, r in records)}
    named = {d for d in DRUG_NAMES if re.search(rf"\b{re.escape(d)}\b", WORDING[text]["gist"], re.I)}
    assert named <= allowed, (named - allowed, text)


def test_codeine_and_tramadol_label_dosing_carries_the_age_limits(by_text):
    checked = 0
    for text, records in by_text.items():
        if "label recommended age- or weight-specific dosing" in text and {n for n, _ in records} & {"codeine",
                                                                                                        "tramadol"}:
            gist = WORDING[text]["gist"]
            assert "under 12 years" in gist and "tonsillectomy" in gist and "breastfeeding" in gist, gist
            checked += 1
    assert checked == 4          # codeine and tramadol, normal and intermediate metabolizers


def test_tricyclic_dose_advice_says_it_is_for_the_higher_starting_doses(by_text):
    scoped = {t for t, records in by_text.items() for _, r in records
              if "only apply to higher initial doses" in (r.get("comments") or "")}
    assert len(scoped) >= 10
    for text in scoped:
        gist = WORDING[text]["gist"]
        assert "higher starting doses" in gist and "neuropathic pain" in gist, gist


def test_no_opioid_is_named_for_codeine_tramadol_or_hydrocodone(by_text):
    # CPIC names a class ("a non-tramadol opioid"), never a drug: no one-click opioid order on its authority
    for text, records in by_text.items():
        if {n for n, _ in records} & {"codeine", "tramadol", "hydrocodone"}:
            assert not WORDING[text].get("alternatives"), text


def _tables():
    return {**load("pgx/recommendations.json")["drugs"], **load("pgx/recommendations-hand.json")["drugs"]}


@pytest.mark.parametrize("drug", sorted(_tables()))
def test_no_recommendation_is_exactly_cpics_no_recommendation_in_every_table(drug):
    for entry in _tables()[drug]["entries"]:
        assert (entry["classification"] == "No Recommendation") == (entry["action"] == "no-recommendation"), entry
        if entry["action"] not in ("avoid", "use-alternative", "reduce-dose"):
            assert not entry.get("alternatives"), entry
