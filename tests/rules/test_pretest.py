"""CPIC pre-test alert."""
from __future__ import annotations

from datetime import datetime, timezone

from fhir_pain.evaluate import build_context
from fhir_pain.facts import PatientData
from fhir_pain.gather import PGX, PGX_CODES
from fhir_pain.rules.knowledge import pretest_alerts
from fhir_pain.rules.pretest import pretest_finding
from golden.fhir_builders import draft, genotype, medication_request

NOW = datetime(2026, 5, 1, tzinfo=timezone.utc)


def ctx(obs=(), meds=(), drafts=(), missing=()):
    return build_context(PatientData(patient_id="p1", now=NOW, observations=list(obs), medication_requests=list(meds),
                                     draft_orders=list(drafts), missing=tuple(missing)), "order-sign")


def test_only_the_genes_without_a_result_are_asked_for():
    c = ctx(obs=[genotype("g1", "p1", "CYP2D6", "*1/*1")],
            drafts=[draft("rx1", "p1", "704", "amitriptyline 10 MG Oral Tablet")])
    f = pretest_finding(c, c.drafts[0], c.drafts[0].ingredients[0])
    assert f.rule == "cpic-pretest/amitriptyline/CYP2C19" and f.extra["testGenes"] == ["CYP2C19"]


def test_cpic_wording_sets_the_indicator_and_the_chart_never_interrupts():
    c = ctx(drafts=[draft("rx1", "p1", "10689", "tramadol 50 MG Oral Tablet")],
            meds=[medication_request("a1", "p1", "10689", "tramadol 50 MG Oral Tablet")])
    assert pretest_finding(c, c.drafts[0], c.drafts[0].ingredients[0]).indicator == "warning"   # "is important"
    assert pretest_finding(c, c.active[0], c.active[0].ingredients[0]).indicator == "info"


def test_drugs_without_a_cpic_pretest_alert_get_none():
    assert "oxycodone" not in pretest_alerts()["drugs"]
    c = ctx(drafts=[draft("rx1", "p1", "7804", "oxycodone 5 MG Oral Tablet")])
    assert pretest_finding(c, c.drafts[0], c.drafts[0].ingredients[0]) is None


def test_unreadable_results_are_not_no_results():
    c = ctx(drafts=[draft("rx1", "p1", "2670", "codeine 30 MG Oral Tablet")], missing=[PGX])
    f = pretest_finding(c, c.drafts[0], c.drafts[0].ingredients[0])
    assert f.kind == "informational" and "testGenes" not in f.extra


def test_every_pretest_drug_is_a_cpic_drug_with_those_genes():
    from fhir_pain import pgx
    for name, alert in pretest_alerts()["drugs"].items():
        guideline = pgx.guideline_for(pgx.drug_by_name(name))
        assert guideline is not None, name
        assert set(alert["genes"]) <= set(guideline.genes), name


def test_says_what_was_searched_not_that_nothing_is_on_file():
    from fhir_pain import pgx
    for name, alert in pretest_alerts()["drugs"].items():
        drug = pgx.drug_by_name(name)
        c = ctx(drafts=[draft("rx1", "p1", drug.rxnorm, name)])
        f = pretest_finding(c, c.drafts[0], drug)
        genes = " and ".join(alert["genes"])
        assert f.summary.startswith(f"No {genes} result found (searched genotype/phenotype Observations)"), name
        assert len(f.summary) <= 140 and "on file" not in f.summary, name
        for code in PGX_CODES:       # the codes the prefetch template searches, from the same constant
            assert code in f.detail, (name, code)
        assert "local laboratory code" in f.detail


def test_the_searched_codes_are_the_prefetch_templates_codes():
    from fhir_pain.services import prefetch_templates
    assert prefetch_templates()[PGX].endswith("&code=" + ",".join(PGX_CODES))
