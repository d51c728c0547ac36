"""Diplotype parsing and CPIC scoring, checked against every diplotype of CPIC's four phenotype tables."""
from __future__ import annotations

import pytest

from fhir_pain.pgx import diplotype as dip
from fhir_pain.pgx.knowledge import gene_model
from fhir_pain.pgx.phenotype import call_diplotype
from .conftest import cpic_json

TABLES = {"CYP2D6": "phenotype_cpic_CYP2D6.json", "CYP2C9": "phenotype_CYP2C9.json",
          "CYP2C19": "phenotype_CYP2C19.json", "CYP2B6": "phenotype_CYP2B6.json"}


@pytest.mark.parametrize("gene", list(TABLES))
def test_every_cpic_diplotype_gets_cpics_activity_score_and_phenotype(gene):
    table = cpic_json(TABLES[gene])
    assert len(table["diplotypes"]) > (15000 if gene == "CYP2D6" else 600)
    wrong = []
    for row in table["diplotypes"]:
        call = call_diplotype(gene, row["diplotype"])
        assert call is not None, row["diplotype"]
        assert len(call.options) == 1, (row["diplotype"], call.options)
        score, phenotype = call.options[0]
        expected_score = row["activityScore"] if gene not in ("CYP2C19", "CYP2B6") else None
        if (score, phenotype) != (expected_score, row["phenotype"]):
            wrong.append((row["diplotype"], score, phenotype, expected_score, row["phenotype"]))
    assert not wrong, f"{len(wrong)} disagree, e.g. {wrong[:5]}"


@pytest.mark.parametrize("text, expected", [
    ("CYP2D6 *1/*4", "*1/*4"), ("*4/*1", "*1/*4"), ("cyp2d6*1 / *4", "*1/*4"), ("*1x2/*4", "*1x2/*4"),
    ("*2X2/*10", "*2x2/*10"), ("*1/*1x≥3", "*1/*1x≥3"), ("*1/*1x>=3", "*1/*1x≥3"), ("*1/*2xN", "*1/*2xN"),
    ("*1/*2XN", "*1/*2xN"), ("(*1/*4)xN", "(*1/*4)xN"), ("(*1/*4)3N", "(*1/*4)3N"), ("*1/*4 dup", "(*1/*4)xN"),
    ("*1/*4 with duplication", "(*1/*4)xN"), ("*36+*10/*4", "*4/*36+*10"), ("*2a/*4K", "*2A/*4K"),
    ("CYP2C19 *1/*17", "*1/*17"),
])
def test_lab_spellings_normalise(text, expected):
    d = dip.parse(text)
    assert d is not None and d.text == expected


@pytest.mark.parametrize("text", ["", "*1", "*1/*4/*5", "Normal Metabolizer", "*1/*4x0", "(*1/*4)2N", "*A/*B",
                                  None, 42, "*1x2+*2/*4", "/"])
def test_non_diplotypes_are_rejected_without_error(text):
    assert dip.parse(text) is None


@pytest.mark.parametrize("text, score, phenotype", [
    # the project research notes A1 checks (CPIC DB 2024-08-27): *9, *41 = 0.25; *10 = 0.25
    ("*1/*1", "2.0", "Normal Metabolizer"), ("*1/*4", "1.0", "Intermediate Metabolizer"),
    ("*1/*41", "1.25", "Normal Metabolizer"), ("*41/*41", "0.5", "Intermediate Metabolizer"),
    ("*4/*41", "0.25", "Intermediate Metabolizer"), ("*1/*9", "1.25", "Normal Metabolizer"),
    ("*4/*4", "0.0", "Poor Metabolizer"), ("*1x2/*4", "2.0", "Normal Metabolizer"),
    ("*1/*4x2", "1.0", "Intermediate Metabolizer"), ("*2x2/*10", "2.25", "Normal Metabolizer"),
    ("*1/*2x2", "3.0", "Ultrarapid Metabolizer"), ("*1/*1x≥3", "≥4.0", "Ultrarapid Metabolizer"),
    ("*1/*22", "n/a", "Indeterminate"), ("*36+*10/*1", "1.25", "Normal Metabolizer"),
    ("*1/*41x3", "1.75", "Normal Metabolizer"), ("*1x3/*10", "3.25", "Ultrarapid Metabolizer"),
    ("*2A/*4", "1.0", "Intermediate Metabolizer"),
])
def test_cyp2d6_scores(text, score, phenotype):
    call = call_diplotype("CYP2D6", text)
    assert call.options == ((score, phenotype),)


def test_unknown_allele_is_indeterminate_with_a_note():
    call = call_diplotype("CYP2D6", "*1/*999")
    assert call.options == (("n/a", "Indeterminate"),)
    assert "*999" in call.notes[0]
    assert call_diplotype("CYP2C19", "*1/*99").options == ((None, "Indeterminate"),)


def test_cyp2c9_duplication_has_no_cpic_scoring():
    call = call_diplotype("CYP2C9", "*1/*2x2")
    assert call.options == (("n/a", "Indeterminate"),)


@pytest.mark.parametrize("text, options", [
    # duplicated allele and copy number unknown: every possibility (CPIC opioid supplement)
    ("*1/*4xN", {("1.0", "Intermediate Metabolizer"), ("2.0", "Normal Metabolizer"), ("≥3.0", "Ultrarapid Metabolizer")}),
    ("(*1/*4)3N", {("1.0", "Intermediate Metabolizer"), ("2.0", "Normal Metabolizer")}),
    ("*1/*10xN", {("1.5", "Normal Metabolizer"), ("≥1.75", "Normal Metabolizer"), ("2.25", "Normal Metabolizer"),
                  ("≥3.25", "Ultrarapid Metabolizer")}),
    ("*1/*2xN", {("3.0", "Ultrarapid Metabolizer"), ("≥4.0", "Ultrarapid Metabolizer")}),
    ("*4/*4xN", {("0.0", "Poor Metabolizer")}),
])
def test_duplication_of_unstated_allele_gives_every_score(text, options):
    assert set(call_diplotype("CYP2D6", text).options) == options


def test_cyp2c19_function_pairs():
    m = gene_model("CYP2C19")
    cases = {"*1/*1": "Normal Metabolizer", "*1/*17": "Rapid Metabolizer", "*17/*17": "Ultrarapid Metabolizer",
             "*1/*2": "Intermediate Metabolizer", "*2/*17": "Intermediate Metabolizer", "*2/*3": "Poor Metabolizer",
             "*1/*9": "Likely Intermediate Metabolizer", "*2/*9": "Likely Poor Metabolizer",
             "*1/*12": "Indeterminate"}
    for text, phenotype in cases.items():
        assert dip.function_pair_phenotype(m, dip.parse(text)) == phenotype, text


from hypothesis import given, settings, strategies as st  # noqa: E402

_LAB_ALPHABET = st.sampled_from(list("*/x×N≥>=()+ 0123456789ABcdyp2CYPdupn.,;-"))


@settings(max_examples=300, deadline=None)
@given(st.text(_LAB_ALPHABET, max_size=30))
def test_any_lab_text_parses_or_is_rejected_and_scores_without_error(text):
    d = dip.parse(text)
    if d is not None:
        assert dip.parse(d.text) == d or dip.parse(d.text).text == d.text     # normal form is stable
        call = call_diplotype("CYP2D6", text)
        assert call.options and all(p for _, p in call.options)
