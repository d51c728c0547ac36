"""patient-view summaries."""
from __future__ import annotations

from datetime import datetime, timezone

from fhir_pain.evaluate import build_context
from fhir_pain.facts import PatientData
from fhir_pain.gather import PGX
from fhir_pain.rules.summary import pain_summary, pgx_summary
from golden.fhir_builders import day, genotype, nrs, phq9

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
