"""HLA results in the shapes labs send -> CPIC's allele status; anything that does not settle it is uncertain."""
from __future__ import annotations

import pytest

from fhir_pain import pgx
from fhir_pain.pgx import hla, read_gene_results, resolve_profile
from golden.fhir_builders import genotype, hla_genotype, hla_presence

LOINC = "http://loinc.org"


def lab(oid: str, code_text: str, value: str, status: str = "final") -> dict:
    """A lab feed's result: the code names the test in text, the value is free text."""
    return {"resourceType": "Observation", "id": oid, "status": status,
            "code": {"coding": [{"system": "urn:oid:1.2.3.4", "code": "LAB-7731", "display": code_text}],
                     "text": code_text},
            "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2025-01-10", "valueString": value}


def status_of(obs: dict) -> tuple[str, str] | None:
    results = read_gene_results([obs])
    return (results[0].gene, results[0].phenotype) if results else None


@pytest.mark.parametrize("obs, expected", [
    # Genomics Reporting genotype, GL String typing
    (hla_genotype("h", "p1", "HLA-B", ["*15:02:01", "*40:01:02"]), ("HLA-B", "*15:02 positive")),
    (hla_genotype("h", "p1", "HLA-B", ["*40:01:02", "*44:02:01"]), ("HLA-B", "*15:02 negative")),
    (hla_genotype("h", "p1", "HLA-A", ["*31:01:02", "*02:01:01"]), ("HLA-A", "*31:01 positive")),
    (hla_genotype("h", "p1", "HLA-A", ["*02:01:01", "*24:02:01"]), ("HLA-A", "*31:01 negative")),
    # one allele named (homozygous or the other not reported), or one-field typing of the *15 group: not settled
    (hla_genotype("h", "p1", "HLA-B", ["*40:01:02"]), ("HLA-B", "Indeterminate")),
    (hla_genotype("h", "p1", "HLA-B", ["*15", "*40:01"]), ("HLA-B", "Indeterminate")),
    # presence results (69548-6 with Present / Absent, or text)
    (hla_presence("h", "p1", "HLA-B", "*15:02", "present"), ("HLA-B", "*15:02 positive")),
    (hla_presence("h", "p1", "HLA-B", "*15:02", "absent"), ("HLA-B", "*15:02 negative")),
    (hla_presence("h", "p1", "HLA-B", "*15:02", "Not detected"), ("HLA-B", "*15:02 negative")),
    (hla_presence("h", "p1", "HLA-B", "*15:02", "DETECTED"), ("HLA-B", "*15:02 positive")),
    (hla_presence("h", "p1", "HLA-B", "*15:02", "see scanned report"), ("HLA-B", "Indeterminate")),
    (hla_presence("h", "p1", "HLA-A", "*31:01", "negative"), ("HLA-A", "*31:01 negative")),
    # lab text, old notation included
    (lab("l", "HLA-B*15:02 genotyping", "Positive"), ("HLA-B", "*15:02 positive")),
    (lab("l", "HLA-B pharmacogenomic panel", "HLA-B*15:02 not detected"), ("HLA-B", "*15:02 negative")),
    (lab("l", "HLA-B typing", "Positive for HLA-B*1502"), ("HLA-B", "*15:02 positive")),
    (lab("l", "HLA B 1502 screen", "non-carrier of HLA-B*15:02"), ("HLA-B", "*15:02 negative")),
    (lab("l", "HLA-B*15:02", "pending review"), ("HLA-B", "Indeterminate")),
    (lab("l", "HLA-B typing", "positive"), ("HLA-B", "Indeterminate")),     # positive for which allele?
])
def test_hla_results_are_read_as_cpic_allele_status(obs, expected):
    assert status_of(obs) == expected


def test_a_presence_result_for_another_allele_says_nothing_of_the_risk_allele():
    # HLA-B*57:01 (abacavir) negative does not rule out *15:02: not an HLA-B*15:02 result at all
    assert status_of(hla_presence("h", "p1", "HLA-B", "*57:01", "absent")) is None
    assert status_of(lab("l", "HLA-B*57:01 screen", "Negative")) is None
    # HLA-B27, the spondyloarthritis test a pain clinic sees, written the serological way
    assert status_of(lab("l", "HLA-B27 antigen", "Positive")) is None
    assert status_of(lab("l", "HLA-B 27", "detected")) is None


def test_a_preliminary_hla_result_is_not_used():
    assert status_of(lab("l", "HLA-B*15:02 genotyping", "Positive", status="preliminary")) is None


def test_an_unknown_hla_result_leaves_both_possibilities_open_and_the_cautious_advice():
    profile = resolve_profile(read_gene_results([hla_presence("h", "p1", "HLA-B", "*15:02", "unreadable")]), [])
    assert set(profile.options["HLA-B"]) == {(None, "*15:02 positive"), (None, "*15:02 negative")}
    rec = pgx.recommend(pgx.drug_by_name("carbamazepine"), profile)
    assert (rec.action, rec.classification, rec.population) == ("avoid", "Strong", "naive")
    assert rec.uncertainty["why"] == "ambiguous"
    assert {p["genes"]["HLA-B"]["phenotype"] for p in rec.uncertainty["possibilities"]} == \
        {"*15:02 positive", "*15:02 negative"}


def test_positive_and_negative_results_on_file_conflict_and_the_positive_one_decides():
    results = read_gene_results([hla_presence("h1", "p1", "HLA-B", "*15:02", "absent"),
                                 hla_genotype("h2", "p1", "HLA-B", ["*15:02:01", "*40:01:02"])])
    profile = resolve_profile(results, [])
    assert profile.genes["HLA-B"].conflicting
    rec = pgx.recommend(pgx.drug_by_name("oxcarbazepine"), profile)
    assert (rec.action, rec.uncertainty["why"]) == ("avoid", "conflicting")


def test_cyp_genotypes_and_hla_results_are_read_together():
    results = read_gene_results([genotype("g", "p1", "CYP2C9", "*3/*3"),
                                 hla_presence("h", "p1", "HLA-B", "*15:02", "absent"),
                                 genotype("g2", "p1", "CYP2B6", "*6/*6")])
    assert {(r.gene, r.diplotype, r.phenotype) for r in results} == {
        ("CYP2C9", "*3/*3", None), ("HLA-B", None, "*15:02 negative"), ("CYP2B6", "*6/*6", None)}


@pytest.mark.parametrize("text, expected", [
    ("HLA-B *15:02 positive; *57:01 positive; *58:01 negative", "*15:02 positive"),   # PharmCAT's statuses
    ("HLA-B*57:01 negative; HLA-B*15:02 positive", "*15:02 positive"),
    ("HLA-B *15:02 negative; *57:01 positive", "*15:02 negative"),
    ("HLA-B *57:01 positive; *58:01 negative", None),                                # says nothing of *15:02
])
def test_a_text_with_several_alleles_statuses_reads_the_risk_alleles_own(text, expected):
    assert hla.allele_status("HLA-B", ["HLA-B alleles"], [text], set(), []) == expected
