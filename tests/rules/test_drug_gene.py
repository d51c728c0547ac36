"""Drug-gene rule: loudness, alternatives checked against the patient, uncertainty."""
from __future__ import annotations

from datetime import datetime, timezone

from fhir_pain import pgx
from fhir_pain.evaluate import build_context
from fhir_pain.facts import Drug, PatientData, Recommendation
from fhir_pain.rules.drug_gene import drug_gene_finding, indicator_for, safe_alternatives
from golden.fhir_builders import draft, genotype, medication_request

NOW = datetime(2026, 5, 1, tzinfo=timezone.utc)


def ctx(obs=(), meds=(), drafts=()):
    return build_context(PatientData(patient_id="p1", now=NOW, observations=list(obs), medication_requests=list(meds),
                                     draft_orders=list(drafts)), "order-sign")


def rec(action, classification):
    return Recommendation(drug=Drug("1", "x"), genes={}, rule="r", implication="", recommendation="",
                          classification=classification, action=action)


def test_indicator_policy():
    assert indicator_for(rec("avoid", "Strong")) == "critical"
    assert indicator_for(rec("avoid", "Optional")) == "warning"
    for action in ("use-alternative", "reduce-dose", "monitor"):
        assert indicator_for(rec(action, "Strong")) == "warning"
    for action in ("standard-dose", "no-recommendation"):
        assert indicator_for(rec(action, "Strong")) == "info"


def test_alternatives_drop_what_the_patient_takes_and_what_their_genotype_argues_against():
    morphine = medication_request("a1", "p1", "7052", "morphine sulfate 15 MG Oral Tablet")
    c = ctx(obs=[genotype("g1", "p1", "CYP2D6", "*4/*4")], meds=[morphine],
            drafts=[draft("rx1", "p1", "2670", "codeine 30 MG Oral Tablet")])
    codeine_order = c.drafts[0]
    names = lambda drugs: [d.name for d in drugs]  # noqa: E731
    tramadol, hydromorphone, morphine_drug = (pgx.drug_by_name(n) for n in ("tramadol", "hydromorphone", "morphine"))
    kept, dropped = safe_alternatives(c, codeine_order, [morphine_drug, tramadol, hydromorphone],
                                      c.profile_for(codeine_order))
    assert names(kept) == ["hydromorphone"]
    assert any(d.startswith("morphine (already prescribed)") for d in dropped)
    assert any(d.startswith("tramadol (CPIC advice for CYP2D6 poor metabolizer: avoid)") for d in dropped)


def test_replacement_alternatives_only_for_replace_actions():
    c = ctx(obs=[genotype("g1", "p1", "CYP2C9", "*3/*3")], drafts=[draft("rx1", "p1", "140587", "celecoxib 200 MG")])
    f = drug_gene_finding(c, c.drafts[0], c.drafts[0].ingredients[0])
    assert f.action == "reduce-dose" and f.alternatives == ()
    assert "Recommendation:" in f.detail and "lowest" in f.detail.lower()   # the dose advice lives in the detail


def test_uncovered_drug_gives_no_finding():
    c = ctx(obs=[genotype("g1", "p1", "CYP2D6", "*4/*4")], drafts=[draft("rx1", "p1", "7052", "morphine 15 MG")])
    assert drug_gene_finding(c, c.drafts[0], c.drafts[0].ingredients[0]) is None


def test_uncertain_results_never_give_confident_advice():
    for dip, why, indicator in (("*1/*4xN", "ambiguous", "warning"), ("*1/*22", "indeterminate", "info")):
        c = ctx(obs=[genotype("g1", "p1", "CYP2D6", dip)], drafts=[draft("rx1", "p1", "2670", "codeine 30 MG")])
        f = drug_gene_finding(c, c.drafts[0], c.drafts[0].ingredients[0])
        assert f.extra["uncertainty"] == {"CYP2D6": why}
        assert (f.action, f.indicator, f.alternatives) == ("order-test", indicator, ())
        assert f.extra["confirmGenes"] == ["CYP2D6"]
