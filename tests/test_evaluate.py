"""evaluate(data, hook): the single entry point of the rules (services and poller)."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from fhir_pain.evaluate import evaluate
from fhir_pain.facts import PHENOTYPES, PatientData
from fhir_pain.gather import MEDICATIONS, PGX
from golden.fhir_builders import (condition, day, draft, genotype, medication_request, nrs, patient, phq9,
                                  project_score)

NOW = datetime(2026, 5, 1, 12, tzinfo=timezone.utc)
KINDS = {"drug-gene", "pre-test", "pain-phenotype", "treatment-response", "informational"}
ACTIONS = {"avoid", "use-alternative", "reduce-dose", "standard-dose", "monitor", "order-test", "refer",
           "no-recommendation", "informational"}
PAIN_PHENOTYPES = {"chronic-pain", "neuropathic-likely", "neuropathic-possible", "nociplastic-features",
                   "inflammatory-contribution", "high-catastrophizing", "depression", "anxiety",
                   "treatment-non-response", "treatment-response"}


def data(*, obs=(), conditions=(), meds=(), drafts=(), selections=(), missing=(), patient=None):
    return PatientData(patient_id="p1", now=NOW, observations=list(obs), conditions=list(conditions),
                       medication_requests=list(meds), draft_orders=list(drafts), selections=tuple(selections),
                       missing=tuple(missing), patient=patient)


def rules(findings):
    return [f.rule for f in findings]


CODEINE = draft("rx1", "p1", "2670", "codeine phosphate 30 MG Oral Tablet")
CELECOXIB = draft("rx2", "p1", "140587", "celecoxib 200 MG Oral Capsule")
PM = genotype("g1", "p1", "CYP2D6", "*4/*4")
NM = genotype("g1", "p1", "CYP2D6", "*1/*1")


def test_unknown_hook_gives_nothing():
    assert evaluate(data(obs=[PM], drafts=[CODEINE]), "encounter-start") == []


def test_order_sign_advises_on_every_draft_and_order_select_on_selections_only():
    d = data(obs=[PM, genotype("g2", "p1", "CYP2C9", "*3/*3")], drafts=[CODEINE, CELECOXIB],
             selections=["MedicationRequest/rx1"])
    assert rules(evaluate(d, "order-sign")) == ["cpic/codeine/CYP2D6", "cpic/celecoxib/CYP2C9"]
    assert rules(evaluate(d, "order-select")) == ["cpic/codeine/CYP2D6"]


def test_standard_dosing_is_silent_on_orders():
    assert evaluate(data(obs=[NM], drafts=[CODEINE]), "order-sign") == []


def test_a_draft_without_medication_gives_nothing():
    empty = {"resourceType": "MedicationRequest", "id": "r", "status": "draft", "subject": {"reference": "Patient/p1"}}
    assert evaluate(data(obs=[PM], drafts=[empty], selections=["MedicationRequest/r"]), "order-select") == []


def test_critical_only_for_strong_avoid():
    f = evaluate(data(obs=[PM], drafts=[CODEINE]), "order-sign")[0]
    assert (f.indicator, f.classification, f.action) == ("critical", "Strong", "avoid")
    im = evaluate(data(obs=[genotype("g1", "p1", "CYP2D6", "*1/*4")], drafts=[CODEINE]), "order-sign")[0]
    assert (im.indicator, im.action) == ("warning", "monitor")


def test_pretest_alert_only_when_results_were_readable():
    f = evaluate(data(drafts=[CODEINE]), "order-sign")
    assert [(x.kind, x.action) for x in f] == [("pre-test", "order-test")]
    f = evaluate(data(drafts=[CODEINE], missing=[PGX]), "order-sign")
    assert [(x.kind, x.rule) for x in f] == [("informational", "fhir-pain/pgx-unavailable/codeine")]
    assert "on file" not in f[0].summary and "could not be retrieved" in f[0].summary


def test_active_inhibitor_and_other_drafts_phenoconvert_but_not_the_drug_itself():
    paroxetine_active = medication_request("a1", "p1", "32937", "paroxetine 20 MG Oral Tablet")
    f = evaluate(data(obs=[NM], meds=[paroxetine_active], drafts=[CODEINE]), "order-sign")[0]
    assert f.genes["CYP2D6"].phenoconverted_by == ("paroxetine",) and f.action == "avoid"
    paroxetine_draft = draft("rx3", "p1", "32937", "paroxetine 20 MG Oral Tablet")
    f = evaluate(data(obs=[NM], drafts=[CODEINE, paroxetine_draft], selections=["MedicationRequest/rx1"]),
                 "order-select")
    assert rules(f) == ["cpic/codeine/CYP2D6"]
    # paroxetine's own lookup for a normal metabolizer: no self-conversion, so standard dosing and no finding
    assert evaluate(data(obs=[NM], drafts=[paroxetine_draft]), "order-sign") == []


def test_stopped_medications_do_not_phenoconvert():
    stopped = medication_request("a1", "p1", "32937", "paroxetine 20 MG Oral Tablet", status="stopped")
    assert evaluate(data(obs=[NM], meds=[stopped], drafts=[CODEINE]), "order-sign") == []


def test_missing_medication_list_is_said_on_cyp2d6_cards():
    f = evaluate(data(obs=[PM], drafts=[CODEINE], missing=[MEDICATIONS]), "order-sign")[0]
    assert "phenoconversion" in f.detail and "could not be read" in f.detail


def test_patient_view_semantics_for_the_poller():
    tramadol = medication_request("a1", "p1", "10689", "tramadol 50 MG Oral Tablet")
    f = evaluate(data(obs=[PM], meds=[tramadol]), "patient-view")
    # tramadol (no dose on file) since 200 days, no urine drug test: the opioid card joins (total not computed)
    assert rules(f) == ["cpic/tramadol/CYP2D6", "fhir-pain/pgx-summary", "cdc2022/mme-total",
                        "cdc2022/urine-drug-test"]
    assert f[0].medication.ref == "MedicationRequest/a1" and not f[0].medication.is_draft


def test_findings_speak_the_contract_vocabulary():
    d = data(obs=[PM, project_score("dn4", "p1", "dn4-total", 6, day(-10)), phq9("phq", "p1", 15, day(-10)),
                  project_score("pcs", "p1", "pcs-total", 36, day(-10)), nrs("n", "p1", 7, day(-10))],
             conditions=[condition("c", "p1", "230572002", "Diabetic neuropathy", day(-500))],
             drafts=[draft("rx1", "p1", "7804", "oxycodone 5 MG Oral Tablet"), CODEINE])
    for hook in ("order-sign", "patient-view"):
        for f in evaluate(d, hook):
            c = f.to_contract()
            assert c["kind"] in KINDS and c.get("action", "informational") in ACTIONS
            assert set(c.get("phenotypes", ())) <= PAIN_PHENOTYPES
            for gene in c.get("genes", {}).values():
                assert gene["phenotype"] in PHENOTYPES and gene["source"] in ("computed", "reported")
            assert len(f.summary) <= 140


CHILD = patient("p1", birth="2018-09-14")     # 7 years old on NOW
ADULT = patient("p1", birth="1968-04-12")


def test_a_child_under_12_gets_the_age_contraindication_whatever_the_genotype():
    for hook in ("order-sign", "order-select"):
        d = data(patient=CHILD, drafts=[CODEINE], selections=["MedicationRequest/rx1"])
        assert rules(evaluate(d, hook)) == ["fhir-pain/age-limit/codeine"]   # no pre-test for a ruled-out drug
    assert rules(evaluate(data(patient=CHILD, obs=[NM], drafts=[CODEINE]), "order-sign")) == [
        "fhir-pain/age-limit/codeine"]                                      # NM: CPIC is silent, the age is not
    both = evaluate(data(patient=CHILD, obs=[PM], drafts=[CODEINE]), "order-sign")
    assert sorted(rules(both)) == ["cpic/codeine/CYP2D6", "fhir-pain/age-limit/codeine"]
    assert all(f.indicator == "critical" for f in both)
    on_chart = evaluate(data(patient=CHILD, meds=[medication_request("a1", "p1", "10689", "tramadol 50 MG")]),
                        "patient-view")
    assert "fhir-pain/age-limit/tramadol" in rules(on_chart)


def test_adults_and_unknown_ages_get_no_age_finding():
    for who in (ADULT, None, {"resourceType": "Patient", "id": "p1", "birthDate": "not a date"}):
        assert evaluate(data(patient=who, obs=[NM], drafts=[CODEINE]), "order-sign") == []
        assert rules(evaluate(data(patient=who, drafts=[CODEINE]), "order-sign")) == ["cpic-pretest/codeine/CYP2D6"]


@pytest.mark.parametrize("junk", [
    {"resourceType": "Observation"}, {"resourceType": "Observation", "code": "x", "valueQuantity": "y"},
    {"resourceType": "MedicationRequest", "medicationCodeableConcept": [1, 2]}, {},
])
def test_bad_input_never_crashes(junk):
    d = data(obs=[junk, PM], conditions=[junk], meds=[junk], drafts=[junk, CODEINE])
    # a draft MedicationRequest that names no drug is said to be unchecked beside the codeine advice
    unchecked = ["fhir-pain/unidentified-orders"] if junk.get("resourceType") == "MedicationRequest" else []
    assert rules(evaluate(d, "order-sign")) == ["cpic/codeine/CYP2D6", *unchecked]
    evaluate(d, "patient-view")


def test_a_failing_pain_engine_does_not_silence_pgx_advice(monkeypatch):
    import fhir_pain.pain

    def broken(*a, **k):
        raise RuntimeError("boom")
    monkeypatch.setattr(fhir_pain.pain, "build_profile", broken)
    assert rules(evaluate(data(obs=[PM], drafts=[CODEINE]), "order-sign")) == ["cpic/codeine/CYP2D6"]


def test_referrals_stay_on_patient_view_not_on_an_opioid_order():
    psych = [project_score("pcs", "p1", "pcs-total", 36, day(-14)), phq9("phq", "p1", 15, day(-14)), NM]
    oxycodone = draft("rx1", "p1", "7804", "oxycodone 5 MG Oral Tablet")
    for hook in ("order-sign", "order-select"):
        assert not [r for r in rules(evaluate(data(obs=psych, drafts=[oxycodone]), hook)) if "referral" in r]
    assert "fhir-pain/referral/pain-psychology" in rules(evaluate(data(obs=psych), "patient-view"))


GABAPENTIN = ("25480", "gabapentin 300 MG Oral Capsule")
NO_CHANGE = [nrs("n0", "p1", 7, day(-130)), nrs("n1", "p1", 7, day(-60)), nrs("n2", "p1", 7, day(-7))]


def test_earlier_requests_link_a_renewal_to_its_trial_for_the_pain_engine_only():
    renewal = medication_request("a2", "p1", *GABAPENTIN, authored=day(-30), prior="a1")
    first = medication_request("a1", "p1", *GABAPENTIN, status="completed", authored=day(-120))
    linked = evaluate(data(obs=NO_CHANGE, meds=[renewal, first]), "patient-view")
    [nr] = [f for f in linked if f.rule == "fhir-pain/analgesic-non-response"]
    assert "after 17 weeks" in nr.summary and nr.medication.ref == "MedicationRequest/a2"
    # without the earlier request the trial start is unknown: no guessed verdict
    alone = evaluate(data(obs=NO_CHANGE, meds=[renewal]), "patient-view")
    assert "fhir-pain/analgesic-non-response" not in rules(alone)


def test_earlier_requests_never_count_as_current_medication():
    completed_codeine = medication_request("a1", "p1", "2670", "codeine 30 MG Oral Tablet", status="completed")
    assert rules(evaluate(data(obs=[PM], meds=[completed_codeine]), "patient-view")) == ["fhir-pain/pgx-summary"]


# ---- CPIC's alert design: "No CDS" in its post-test workbooks -----------------------------------------------------

def test_cpic_no_cds_silences_a_monitor_card_for_a_certain_result():
    from fhir_pain.evaluate import _cpic_says_no_cds
    from fhir_pain.facts import Drug, Finding, GenePhenotype
    nm = {"CYP2D6": GenePhenotype("CYP2D6", "Normal Metabolizer", "*1/*1", "2.0")}
    f = Finding(rule="cpic/codeine/CYP2D6", kind="drug-gene", indicator="warning", summary="", genes=nm,
                drug=Drug("2670", "codeine"), action="monitor")
    assert _cpic_says_no_cds(f)                                  # CPIC's codeine workbook: NM -> No CDS
    f.uncertainty = {"why": "conflicting", "possibilities": []}
    assert not _cpic_says_no_cds(f)                              # an uncertain result always speaks
    im = {"CYP2D6": GenePhenotype("CYP2D6", "Intermediate Metabolizer", "*1/*4", "1.0")}
    assert not _cpic_says_no_cds(Finding(rule="cpic/codeine/CYP2D6", kind="drug-gene", indicator="warning",
                                         summary="", genes=im, drug=Drug("2670", "codeine"), action="monitor"))


def test_outdated_workbook_no_cds_never_silences_newer_dose_advice():
    # regression: the paroxetine workbook (2015 SSRI guideline) says No CDS for CYP2D6 IM, but CPIC's 2023 table
    # advises an Optional lower starting dose: the card stays
    paroxetine = draft("rx3", "p1", "32937", "paroxetine 20 MG Oral Tablet")
    found = evaluate(data(obs=[genotype("g1", "p1", "CYP2D6", "*1/*4")], drafts=[paroxetine]), "order-sign")
    assert [(f.rule, f.action) for f in found if f.kind == "drug-gene"] == [("cpic/paroxetine/CYP2D6", "reduce-dose")]
