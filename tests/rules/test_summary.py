"""patient-view summaries."""
from __future__ import annotations

from datetime import datetime, timezone

import re

import pytest

from fhir_pain import pgx
from fhir_pain.evaluate import build_context, evaluate
from fhir_pain.facts import PatientData
from fhir_pain.gather import PGX
from fhir_pain.rules.knowledge import pain_rules
from fhir_pain.rules.summary import pain_summary, pgx_summary
from golden.fhir_builders import (
    condition, day, draft, genotype, medication_request, nrs, phq9, project_score, reported_phenotype,
)

NOW = datetime(2026, 5, 1, 12, tzinfo=timezone.utc)


def ctx(obs=(), missing=()):
    return build_context(PatientData(patient_id="p1", now=NOW, observations=list(obs), missing=tuple(missing)),
                         "patient-view")


def test_pgx_summary_lists_genes_and_what_they_mean_for_pain_drugs():
    f = pgx_summary(ctx([genotype("g1", "p1", "CYP2D6", "*4/*4")]))
    assert f.summary.startswith("PGx: CYP2D6 poor metabolizer; check codeine, tramadol")
    assert "- Avoid: codeine, tramadol" in f.detail and f.evidence == ("Observation/g1",)
    assert set(f.genes) == {"CYP2D6"} and f.kind == "informational"


def test_no_results_no_card_unless_they_could_not_be_read():
    assert pgx_summary(ctx()) is None
    assert pgx_summary(ctx(missing=[PGX])).summary == "Pharmacogenomic results could not be retrieved"


def test_pain_summary():
    f = pain_summary(ctx([phq9("p", "p1", 14, day(-3)), nrs("n", "p1", 8, day(-2))]))
    assert f.summary == "Pain profile: depression; pain 8/10" and "PHQ-9 14" in f.detail
    assert pain_summary(ctx()) is None


# ---- the PGx summary's "check" list -----------------------------------------------------------------------------

def _check_list(summary: str) -> list[str]:
    """The drugs the summary names (without an "and N more" tail)."""
    return _checks(summary)[0]


def _checks(summary: str) -> tuple[list[str], int]:
    """(names, how many in all) of the summary's check list: "check codeine, tramadol and 7 more (see details)"."""
    if "; check " not in summary:
        return [], 0
    listed = summary.split("; check ", 1)[1]
    m = re.search(r" and (\d+) more \(see details\)$", listed)
    names = (listed[:m.start()] if m else listed).split(", ")
    return names, len(names) + (int(m.group(1)) if m else 0)


@pytest.mark.parametrize("gene,phenotype", [
    ("CYP2D6", "Intermediate Metabolizer"), ("CYP2D6", "Poor Metabolizer"), ("CYP2D6", "Ultrarapid Metabolizer"),
    ("CYP2D6", "Normal Metabolizer"), ("CYP2C9", "Poor Metabolizer"), ("CYP2C9", "Intermediate Metabolizer"),
    ("CYP2C19", "Poor Metabolizer"), ("CYP2C19", "Ultrarapid Metabolizer"), ("CYP2B6", "Poor Metabolizer"),
])
def test_check_lists_exactly_the_drugs_that_would_get_a_card_when_ordered(gene, phenotype):
    """The summary and the order hook must agree: a drug that warns when ordered is in "check", and only those."""
    result = reported_phenotype("g1", "p1", gene, phenotype)
    warned = []
    for name in pain_rules()["pgxSummaryDrugs"]:
        drug = pgx.drug_by_name(name)
        order = draft("rx1", "p1", drug.rxnorm, name)
        data = PatientData(patient_id="p1", now=NOW, observations=[result], draft_orders=[order])
        if any(f.kind == "drug-gene" for f in evaluate(data, "order-sign")):
            warned.append(name)
    names, total = _checks(pgx_summary(ctx([result])).summary)
    assert set(names) <= set(warned) and total == len(warned)


def test_intermediate_metabolizer_check_list_names_codeine():
    f = pgx_summary(ctx([reported_phenotype("g1", "p1", "CYP2D6", "Intermediate Metabolizer")]))
    assert {"codeine", "tramadol", "hydrocodone", "amitriptyline"} <= set(_check_list(f.summary))
    assert "ondansetron" not in _check_list(f.summary)          # standard dosing: nothing to check
    assert "- Usual dose, monitor: codeine, tramadol, hydrocodone" in f.detail


def test_a_check_list_too_long_for_the_summary_gives_its_count_never_nothing():
    f = pgx_summary(ctx([genotype("g1", "p1", "CYP2D6", "*4/*4"), genotype("g2", "p1", "CYP2C9", "*1/*3"),
                         genotype("g3", "p1", "CYP2C19", "*1/*17")]))
    names, total = _checks(f.summary)
    assert len(f.summary) <= 140 and f.summary.endswith(" more (see details)") and names[:2] == ["codeine", "tramadol"]
    assert total == 18          # every drug of the detail's avoid / alternative / lower dose / monitor lines


def test_a_normal_metabolizer_has_nothing_to_check():
    assert pgx_summary(ctx([genotype("g1", "p1", "CYP2D6", "*1/*1")])).summary == "PGx: CYP2D6 normal metabolizer"


# ---- the pain profile: only what the data says ------------------------------------------------------------------

def test_unknown_axes_are_not_reported_as_findings_only_as_not_assessed():
    old_dn4 = project_score("dn4", "p1", "dn4-total", 6, day(-900))      # older than the 730-day look-back
    f = pain_summary(ctx([old_dn4, nrs("n", "p1", 6, day(-2))]))
    assert "**Neuropathic:**" not in f.detail and "unknown" not in f.detail
    assert "**Not assessed, data not usable:** neuropathic (" in f.detail and "older than 730 days" in f.detail
    assert "**Not assessed, no recent score or diagnosis:** nociplastic, inflammatory, catastrophizing, " \
           "depression and anxiety." in f.detail


def test_a_modulator_known_from_a_diagnosis_alone_is_reported():
    dep = condition("dep", "p1", "35489007", "Depressive disorder", day(-300))
    p = build_context(PatientData(patient_id="p1", now=NOW, observations=[nrs("n", "p1", 6, day(-2))],
                                  conditions=[dep]), "patient-view")
    f = pain_summary(p)
    assert "**Depression:** present: diagnosis: " in f.detail and "depression" not in f.detail.split("Not assessed")[-1]


def test_a_response_that_cannot_be_judged_says_why_in_words():
    gaba = medication_request("a1", "p1", "25480", "gabapentin 300 MG Oral Capsule", authored=day(-10))
    p = build_context(PatientData(patient_id="p1", now=NOW, observations=[nrs("n", "p1", 7, day(-20))],
                                  medication_requests=[gaba]), "patient-view")
    f = pain_summary(p)
    assert "**Response to gabapentin:** too early to judge (" in f.detail and "too-early" not in f.detail


def _chart(obs=(), meds=()):
    return build_context(PatientData(patient_id="p1", now=NOW, observations=list(obs), medication_requests=list(meds)),
                         "patient-view")


def test_paroxetine_on_the_list_is_not_its_own_phenoconverter_in_the_chart_summary():
    # regression: the chart judged paroxetine with the CYP2D6 activity paroxetine itself removes
    c = _chart([genotype("g1", "p1", "CYP2D6", "*1/*1")],
               [medication_request("a1", "p1", "32937", "paroxetine 20 MG Oral Tablet")])
    f = pgx_summary(c)
    assert "paroxetine" not in _check_list(f.summary)              # NM: CPIC Strong, usual starting dose
    assert any(line.startswith("- Standard dosing:") and "paroxetine" in line for line in f.detail.splitlines())
    assert "codeine" in _check_list(f.summary)                     # codeine is judged with paroxetine: avoid


def test_strong_inhibitor_without_a_genotype_reaches_the_chart_summary():
    f = pgx_summary(_chart(meds=[medication_request("a1", "p1", "4493", "fluoxetine 20 MG Oral Capsule")]))
    assert f is not None and "CYP2D6 poor metabolizer via fluoxetine" in f.summary
    assert "no result on file" in f.detail and {"codeine", "tramadol"} <= set(_check_list(f.summary))


def test_uncertain_results_are_in_the_check_list_and_marked():
    f = pgx_summary(_chart([genotype("g1", "p1", "CYP2D6", "*1/*4xN")]))
    assert _checks(f.summary)[1] == 13          # every drug whose advice differs by possibility counts
    avoid = next(line for line in f.detail.splitlines() if line.startswith("- Avoid:"))
    assert "codeine (uncertain result" in avoid             # the ultrarapid possibility says avoid: so does the chart
