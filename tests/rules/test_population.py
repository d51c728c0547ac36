"""CPIC's population for the HLA anticonvulsants, decided from the medication list and history (never the drafts)."""
from __future__ import annotations

from datetime import datetime, timezone

from fhir_pain import pgx
from fhir_pain.evaluate import build_context, evaluate
from fhir_pain.facts import PatientData
from fhir_pain.gather import MEDICATION_HISTORY
from fhir_pain.rules.population import population
from golden.fhir_builders import day, draft, hla_genotype, medication_request

NOW = datetime(2026, 5, 1, 12, tzinfo=timezone.utc)
CBZ = ("2002", "carbamazepine 200 MG Oral Tablet")
POSITIVE = hla_genotype("h1", "p1", "HLA-B", ["*15:02:01", "*40:01:02"])


def stopped(mid, start, end, drug=CBZ):
    mr = medication_request(mid, "p1", drug[0], drug[1], status="completed", authored=start)
    mr["dispenseRequest"] = {"validityPeriod": {"start": start, "end": end}}
    return mr


def ctx(meds=(), missing=()):
    return build_context(PatientData(patient_id="p1", now=NOW, observations=[POSITIVE], medication_requests=list(meds),
                                     draft_orders=[draft("rx1", "p1", *CBZ)], missing=tuple(missing)), "order-sign")


def drug():
    return pgx.drug_by_name("carbamazepine")


def test_no_earlier_use_is_naive():
    assert population(ctx(), drug()) == ("naive", "no earlier carbamazepine in the medication list or history")


def test_active_for_more_than_three_months_is_long_term():
    applied, why = population(ctx([medication_request("a1", "p1", *CBZ, authored=day(-120))]), drug())
    assert applied == "use-over-3-months" and "MedicationRequest/a1" in why


def test_earlier_courses_spanning_more_than_three_months_count():
    courses = [stopped("c1", day(-400), day(-340)), stopped("c2", day(-330), day(-280))]
    assert population(ctx(courses), drug())[0] == "use-over-3-months"


def test_a_short_course_is_naive():
    applied, why = population(ctx([stopped("c1", day(-100), day(-70))]), drug())
    assert applied == "naive" and "not longer than three months" in why


def test_a_phenytoin_course_counts_for_fosphenytoin():
    pht = ("8183", "phenytoin 100 MG Extended Release Oral Capsule")
    c = ctx([medication_request("a1", "p1", *pht, authored=day(-200))])
    assert population(c, pgx.drug_by_name("fosphenytoin"))[0] == "use-over-3-months"
    assert population(c, drug())[0] == "naive"          # another drug's use says nothing of carbamazepine


def test_an_unreadable_history_is_naive_and_says_so():
    applied, why = population(ctx(missing=[MEDICATION_HISTORY]), drug())
    assert applied == "naive" and "could not be read" in why


def test_the_card_names_the_population_and_asks_to_check_for_reactions():
    [card] = [f for f in evaluate(PatientData(patient_id="p1", now=NOW, observations=[POSITIVE],
                                              medication_requests=[medication_request("a1", "p1", *CBZ,
                                                                                      authored=day(-120))],
                                              draft_orders=[draft("rx1", "p1", *CBZ)]), "order-sign")
              if f.kind == "drug-gene"]
    assert (card.action, card.classification, card.indicator) == ("monitor", "Optional", "warning")
    assert card.to_contract()["population"] == "use-over-3-months"
    assert "**Population:**" in card.detail and "no cutaneous adverse reaction" in card.detail


def test_the_pre_test_alert_is_info_only_after_three_months_of_use():
    order = draft("rx1", "p1", *CBZ)
    naive = evaluate(PatientData(patient_id="p1", now=NOW, draft_orders=[order]), "order-sign")
    long_term = evaluate(PatientData(patient_id="p1", now=NOW, draft_orders=[order], medication_requests=[
        medication_request("a1", "p1", *CBZ, authored=day(-120))]), "order-sign")
    assert [(f.rule, f.indicator) for f in naive] == [("cpic-pretest/carbamazepine/HLA-B", "warning")]
    assert [(f.rule, f.indicator) for f in long_term] == [("cpic-pretest/carbamazepine/HLA-B", "info")]
