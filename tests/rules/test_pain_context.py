"""Phenotype-aware rules: opioid for neuropathic pain, TCA for neuropathic pain in CYP2D6 PM/IM, non-response,
referrals."""
from __future__ import annotations

from datetime import datetime, timezone

from fhir_pain.evaluate import build_context
from fhir_pain.facts import PatientData
from fhir_pain.rules.drug_gene import drug_gene_finding
from fhir_pain.rules.pain_context import non_response, opioid_for_neuropathic, referral_findings, tca_for_neuropathic
from golden.fhir_builders import condition, day, draft, genotype, medication_request, nrs, phq9, project_score

NOW = datetime(2026, 5, 1, 12, tzinfo=timezone.utc)
DPN = condition("dpn", "p1", "230572002", "Diabetic neuropathy", day(-600))
DN4 = project_score("dn4", "p1", "dn4-total", 6, day(-30))


def ctx(obs=(), conditions=(), meds=(), drafts=(), hook="order-sign"):
    return build_context(PatientData(patient_id="p1", now=NOW, observations=list(obs), conditions=list(conditions),
                                     medication_requests=list(meds), draft_orders=list(drafts)), hook)


def first(c):
    med = c.drafts[0]
    return med, med.ingredients[0]


def test_opioid_for_neuropathic_pain_names_first_line_classes_filtered_by_pgx():
    c = ctx(obs=[DN4, genotype("g1", "p1", "CYP2D6", "*4/*4")], conditions=[DPN],
            drafts=[draft("rx1", "p1", "7804", "oxycodone 5 MG Oral Tablet")])
    f = opioid_for_neuropathic(c, *first(c))
    assert f.phenotypes == ("neuropathic-likely",) and f.indicator == "warning"
    assert [d.name for d in f.alternatives] == ["gabapentin", "duloxetine"]        # no TCA, no venlafaxine for a PM
    assert "amitriptyline (CYP2D6 poor metabolizer: CPIC avoid)" in f.detail
    assert "CYP2D6" in f.genes and "Observation/dn4" in f.evidence and "Condition/dpn" in f.evidence


def test_opioid_rule_needs_an_opioid_and_neuropathic_pain():
    c = ctx(obs=[DN4], conditions=[DPN], drafts=[draft("rx1", "p1", "140587", "celecoxib 200 MG Oral Capsule")])
    assert opioid_for_neuropathic(c, *first(c)) is None
    c = ctx(obs=[nrs("n", "p1", 7, day(-3))], drafts=[draft("rx1", "p1", "7804", "oxycodone 5 MG Oral Tablet")])
    assert opioid_for_neuropathic(c, *first(c)) is None


def test_tca_low_dose_for_neuropathic_pain_is_a_caution_not_a_stop():
    pgx_pm = [genotype("g1", "p1", "CYP2D6", "*4/*4"), genotype("g2", "p1", "CYP2C19", "*1/*1")]
    c = ctx(obs=[DN4, *pgx_pm], conditions=[DPN],
            drafts=[draft("rx1", "p1", "704", "amitriptyline 10 MG Oral Tablet", dose_mg=10)])
    med, drug = first(c)
    cpic = drug_gene_finding(c, med, drug)
    assert cpic.indicator == "critical"
    f = tca_for_neuropathic(c, med, drug, cpic)
    assert (f.indicator, f.action, cpic.indicator) == ("warning", "monitor", "warning")
    assert "10 mg/day" in f.detail and f.extra["primary"]
    # CPIC's avoid is for depression doses: the card must not offer to remove a low-dose neuropathic-pain order
    assert "offerRemoval" not in cpic.extra


def test_tca_above_the_low_dose_keeps_cpic_strong_avoid():
    pgx_pm = [genotype("g1", "p1", "CYP2D6", "*4/*4"), genotype("g2", "p1", "CYP2C19", "*1/*1")]
    c = ctx(obs=[DN4, *pgx_pm], conditions=[DPN],
            drafts=[draft("rx1", "p1", "704", "amitriptyline 25 MG Oral Tablet", dose_mg=25, per_day=3)])
    med, drug = first(c)
    cpic = drug_gene_finding(c, med, drug)
    assert tca_for_neuropathic(c, med, drug, cpic) is None and cpic.indicator == "critical"
    assert cpic.extra["offerRemoval"]


def test_tca_rule_ignores_normal_metabolizers():
    c = ctx(obs=[DN4, genotype("g1", "p1", "CYP2D6", "*1/*1")], conditions=[DPN],
            drafts=[draft("rx1", "p1", "7531", "nortriptyline 25 MG Oral Capsule")])
    med, drug = first(c)
    assert tca_for_neuropathic(c, med, drug, drug_gene_finding(c, med, drug)) is None


def _gabapentin_non_responder(**kw):
    return ctx(obs=[nrs("n0", "p1", 7, day(-130)), nrs("n1", "p1", 7, day(-7))],
               meds=[medication_request("a1", "p1", "25480", "gabapentin 300 MG Oral Capsule", authored=day(-120))],
               **kw)


def test_non_response_on_chart_and_only_for_the_same_drug_on_orders():
    c = _gabapentin_non_responder(hook="patient-view")
    [f] = non_response(c)
    assert f.kind == "treatment-response" and f.medication.ref == "MedicationRequest/a1"
    assert f.phenotypes == ("treatment-non-response",)
    c = _gabapentin_non_responder(drafts=[draft("rx1", "p1", "7804", "oxycodone 5 MG Oral Tablet")])
    assert non_response(c, c.drafts[0]) == []
    c = _gabapentin_non_responder(drafts=[draft("rx1", "p1", "25480", "gabapentin 300 MG Oral Capsule")])
    assert [f.drug.name for f in non_response(c, c.drafts[0])] == ["gabapentin"]


def test_referrals_follow_the_modulators():
    c = ctx(obs=[project_score("pcs", "p1", "pcs-total", 36, day(-5)), phq9("phq", "p1", 4, day(-5))])
    [f] = referral_findings(c)
    assert f.rule == "fhir-pain/referral/pain-psychology" and f.phenotypes == ("high-catastrophizing",)
    assert "PCS 36" in f.summary and f.evidence == ("Observation/pcs",)
    assert referral_findings(ctx(obs=[project_score("pcs", "p1", "pcs-total", 12, day(-5))])) == []


# ---- possible neuropathic pain (a screening score alone): advice, no replacement drafts ---------------------------

def test_dn4_alone_gives_advice_without_replacement_drafts_on_an_opioid():
    c = ctx(obs=[DN4, genotype("g1", "p1", "CYP2D6", "*1/*1")],
            drafts=[draft("rx1", "p1", "7804", "oxycodone 5 MG Oral Tablet")])
    assert c.pain_phenotypes.count("neuropathic-possible") == 1 and "neuropathic-likely" not in c.pain_phenotypes
    f = opioid_for_neuropathic(c, *first(c))
    assert (f.indicator, f.action, f.alternatives, f.phenotypes) == ("info", "monitor", (), ("neuropathic-possible",))
    assert f.summary.startswith("Possible neuropathic pain (screening score): confirm by examination")
    assert "No replacement draft is offered on a screening score alone" in f.detail
    assert "replace" not in f.extra and "Observation/dn4" in f.evidence


def test_dn4_alone_offers_no_drafts_with_a_low_dose_tricyclic_either():
    pgx_pm = [genotype("g1", "p1", "CYP2D6", "*4/*4"), genotype("g2", "p1", "CYP2C19", "*1/*1")]
    c = ctx(obs=[DN4, *pgx_pm], drafts=[draft("rx1", "p1", "704", "amitriptyline 10 MG Oral Tablet", dose_mg=10)])
    med, drug = first(c)
    f = tca_for_neuropathic(c, med, drug, drug_gene_finding(c, med, drug))
    assert f.phenotypes == ("neuropathic-possible",) and f.alternatives == ()
    assert "No replacement draft is offered: neuropathic pain is only possible" in f.detail
    # with the diagnosis it is likely, and the other first-line options come as drafts
    c = ctx(obs=[DN4, *pgx_pm], conditions=[DPN],
            drafts=[draft("rx1", "p1", "704", "amitriptyline 10 MG Oral Tablet", dose_mg=10)])
    med, drug = first(c)
    assert tca_for_neuropathic(c, med, drug, drug_gene_finding(c, med, drug)).alternatives
