"""Wording helpers: markdown safety and summary length."""
from __future__ import annotations

from fhir_pain.facts import GenePhenotype
from fhir_pain.rules.text import code, evidence_md, fit, gene_line, gene_phrase, md, phenotype_phrase


def test_md_escapes_markdown_and_html():
    assert md("*1/*4 <script>") == "\\*1/\\*4 &lt;script&gt;"
    assert md("a\n\nb") == "a b"
    assert code("*1/*4") == "`*1/*4`"


def test_fit_takes_the_first_that_fits_and_cuts_at_a_word_otherwise():
    assert fit("x" * 141, "short") == "short"
    cut = fit("word " * 40)
    assert len(cut) <= 140 and cut.endswith("…")


def test_phrases():
    assert phenotype_phrase("Likely Poor Metabolizer") == "likely poor metabolizer"
    assert phenotype_phrase("Indeterminate") == "indeterminate result"
    gp = GenePhenotype(gene="CYP2D6", phenotype="Poor Metabolizer", phenoconverted_by=("paroxetine",))
    assert gene_phrase("CYP2D6", gp) == "CYP2D6 poor metabolizer via paroxetine"


def test_gene_line_reports_genetic_and_converted_phenotype():
    gp = GenePhenotype(gene="CYP2D6", phenotype="Poor Metabolizer", diplotype="*1/*1", activity_score="0.0",
                       genetic_phenotype="Normal Metabolizer", genetic_activity_score="2.0",
                       phenoconverted_by=("paroxetine",))
    line = gene_line("CYP2D6", gp)
    assert "`*1/*1`" in line and "activity score `2.0`" in line and "genetic Normal Metabolizer" in line
    assert "converted to Poor Metabolizer** by paroxetine" in line and "`0.0`" in line


def test_evidence_md_escapes_each_reference_as_md_would_even_on_its_fast_path():
    awkward = [("Observation/g1", "MedicationRequest/rx1"), ("Observation/a b", "x"), ("Observation/a ", "b"),
               ("Observation/*1_", "[x]"), ("", "q"), (" ", ""), ("a\x1cb",), ("a&b<c>",), ("a\u2003b", "c"), (),
               (7, "Observation/1")]
    for refs in awkward:
        assert evidence_md(refs) == "**Evidence:** " + ", ".join(md(e) for e in refs)
    assert evidence_md(iter(["Observation/1", "Observation/2"])) == "**Evidence:** Observation/1, Observation/2"


def test_fit_collapses_any_whitespace_as_before_its_single_spaced_fast_path():
    for text in ["a  b", " a", "a ", "a\tb", "a\nb", "a\u2003b", "a\xa0b", "a\x1cb", "a b", "", "  ", "a\x00b"]:
        assert fit(text, "fallback") == (" ".join(text.split()) or "fallback")


def test_gene_line_of_a_phenotype_with_unhashable_fields_is_said_without_the_memo():
    kept = GenePhenotype(gene="CYP2D6", phenotype="Poor Metabolizer", diplotype="*1/*4", activity_score="0.0",
                         genetic_phenotype="Intermediate Metabolizer", genetic_activity_score="1.0",
                         phenoconverted_by=("paroxetine",))
    listed = GenePhenotype(gene="CYP2D6", phenotype="Poor Metabolizer", diplotype="*1/*4", activity_score="0.0",
                           genetic_phenotype="Intermediate Metabolizer", genetic_activity_score="1.0",
                           phenoconverted_by=["paroxetine"])   # type: ignore[arg-type]
    assert gene_line("CYP2D6", listed) == gene_line("CYP2D6", kept)
    assert "converted to Poor Metabolizer" in gene_line("CYP2D6", kept)


def test_gene_phrase_of_a_phenotype_with_unhashable_fields_is_said_without_the_memo():
    gp = GenePhenotype(gene="CYP2D6", phenotype="Poor Metabolizer", phenoconverted_by=["paroxetine", "bupropion"])  # type: ignore[arg-type]
    assert gene_phrase("CYP2D6", gp) == "CYP2D6 poor metabolizer via paroxetine and bupropion"
    assert gene_phrase("CYP2D6", gp, with_inhibitor=False) == "CYP2D6 poor metabolizer"
