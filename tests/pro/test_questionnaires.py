"""The shipped Questionnaires: valid FHIR R4, in the engine's codes, and only the text their licence allows."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from fhir_pain.fhir_models import validate
from fhir_pain.pain.knowledge import knowledge
from fhir_pain.pro.forms import EXTRACT, forms

FOLDER = Path(__file__).resolve().parents[2] / "profiles" / "questionnaires"
FILES = sorted(FOLDER.glob("*.json"))
KEYS = [p.stem for p in FILES]


def test_the_instruments_the_engine_scores_from_items_are_all_here_or_explained():
    readme = (FOLDER / "README.md").read_text()
    assert set(KEYS) == {"phq9", "phq2", "gad7", "peg", "nrs", "pcs", "dn4"}
    for key in KEYS:
        assert f"`{key}.json`" in readme          # each file's licence and text source is recorded
    for left_out in ("BPI short form", "painDETECT", "CSI", "SF-MPQ-2"):
        assert left_out in readme


@pytest.mark.parametrize("path", FILES, ids=KEYS)
def test_questionnaire_is_valid_r4(path):
    resource = json.loads(path.read_text())["resource"]
    validate(resource)
    assert resource["id"] == path.stem
    assert resource["url"] == f"https://fhir-pain.io/fhir/Questionnaire/{path.stem}"
    assert resource["copyright"]


@pytest.mark.parametrize("key", KEYS)
def test_every_extracted_code_is_one_the_engine_reads_for_that_instrument(key):
    form = forms()[key]
    inst = form.instrument
    item_codes = inst.items.codes if inst.items else inst.codes
    got = [f"{q.code['system']}|{q.code['code']}" for q in form.questions]
    assert got == list(item_codes) if inst.items else set(got) <= set(item_codes)
    if form.total is not None:
        total = form.total["code"][0]
        assert f"{total['system']}|{total['code']}" in inst.codes
    for q in form.questions:
        if q.type == "choice":      # each answer scores what the engine's answer list says it scores
            answers = inst.items.answers
            for (system, code), (score, _) in q.options.items():
                assert answers[system][code] == score
        elif q.type == "integer":
            lo, hi = (inst.items.lo, inst.items.hi) if inst.items else (inst.lo, inst.hi)
            assert (q.lo, q.hi) == (lo, hi)


@pytest.mark.parametrize("key", KEYS)
def test_licensed_instruments_carry_codes_and_no_item_text(key):
    data = json.loads((FOLDER / f"{key}.json").read_text())
    texts = [i.get("text") for i in data["resource"]["item"] if not i.get("readOnly")]
    answer_labels = [o["valueCoding"].get("display") for i in data["resource"]["item"]
                     for o in i.get("answerOption", ())]
    if data["licence"] == "codes-only":
        assert data["itemText"] is False and not any(texts) and not any(answer_labels)
        assert key in ("pcs", "dn4")
    else:
        assert data["itemText"] is True and all(texts)


def test_every_scored_item_is_extracted_except_the_phq2_items_which_the_engine_would_read_as_a_short_phq9():
    for form in forms().values():
        for item in form.questionnaire["item"]:
            if item["type"] != "display":
                extract = item["linkId"] not in ("phq2-1", "phq2-2")
                assert {"url": EXTRACT, "valueBoolean": extract} in item["extension"], (form.key, item["linkId"])


def test_phq9_item9_is_the_engines_flagged_item():
    form = forms()["phq9"]
    flags = knowledge().instruments["phq9"].items.flags
    assert flags == {f"http://loinc.org|{form.questions[8].code['code']}": "suicidality"}
