"""Age limits: codeine/tramadol contraindicated under 12 years (FDA 2017, cited by CPIC), whatever the genotype."""
from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from fhir_pain.evaluate import build_context
from fhir_pain.facts import PatientData
from fhir_pain.rules.age_limits import age_bounds, age_in_years, age_limit_finding
from fhir_pain.rules.knowledge import age_limits
from fhir_pain.rules.text import SUMMARY_MAX
from golden.fhir_builders import draft, medication_request, patient

NOW = datetime(2026, 5, 1, 12, tzinfo=timezone.utc)
TODAY = NOW.date()
CODEINE = ("2670", "codeine phosphate 30 MG Oral Tablet")
TRAMADOL = ("10689", "tramadol hydrochloride 50 MG Oral Tablet")
COMBO = ("993781", "Acetaminophen 300 MG / Codeine Phosphate 30 MG Oral Tablet")


def ctx(birth: str | None, order=CODEINE, *, hook="order-sign", active=False, pat: dict | None = None):
    resource = (medication_request if active else draft)("rx1", "p1", *order)
    person = pat if pat is not None else (patient("p1", birth=birth) if birth is not None else None)
    data = PatientData(patient_id="p1", now=NOW, patient=person,
                       medication_requests=[resource] if active else [], draft_orders=[] if active else [resource])
    return build_context(data, hook)


def finding(c):
    med = (c.active or c.drafts)[0]
    drug = next((i for i in med.ingredients if i.name in age_limits()["drugs"]), med.ingredients[0])
    return age_limit_finding(c, med, drug)


def test_age_in_completed_years():
    assert age_in_years(date(2014, 5, 2), TODAY) == 11        # 12th birthday tomorrow
    assert age_in_years(date(2014, 5, 1), TODAY) == 12        # 12 today
    assert age_in_years(date(2016, 2, 29), date(2027, 2, 28)) == 10
    assert age_in_years(date(2016, 2, 29), date(2027, 3, 1)) == 11


@pytest.mark.parametrize("value, expected", [
    ("2014-05-02", (11, 11, "2014-05-02")),
    ("2014", (11, 12, "2014")),                      # born some time in 2014: 11 or 12 today
    ("2014-04", (12, 12, "2014-04")),
    ("2014-05", (11, 12, "2014-05")),
    ("2026-04", (0, 0, "2026-04")),
])
def test_partial_birth_dates_are_intervals(value, expected):
    assert age_bounds({"birthDate": value}, TODAY) == expected


@pytest.mark.parametrize("value", [None, "", "unknown", "2014-13-01", 20140502, "2027-01-01"])
def test_missing_unreadable_or_future_birth_dates_give_no_age(value):
    assert age_bounds({"birthDate": value} if value is not None else {}, TODAY) is None
    assert age_bounds(None, TODAY) is None


def test_child_under_12_gets_a_critical_avoid_whatever_the_genotype():
    f = finding(ctx("2018-09-14"))
    assert (f.rule, f.kind, f.indicator, f.action) == ("fhir-pain/age-limit/codeine", "safety", "critical", "avoid")
    assert f.summary.startswith("Age 7: codeine is contraindicated under 12 years (FDA)")
    assert len(f.summary) <= SUMMARY_MAX and f.genes == {}
    assert f.evidence == ("Patient/p1", "MedicationRequest/rx1")
    assert f.knowledge == {"source": "FDA", "version": "2017-04-20", "url": age_limits()["rule"]["sources"][0]["url"]}
    assert f.extra["offerRemoval"] and f.extra["primary"] and f.extra["joins"] == "drug"
    # the other FDA limits are checked by fhir_pain.rules.fda_limits: the card no longer claims they are not
    assert "Not checked here" not in f.detail
    assert "FDA Drug Safety Communication 2017-04-20" in f.detail and "CPIC opioids 2021" in f.detail


def test_tramadol_has_the_same_limit_and_other_drugs_none():
    assert finding(ctx("2019-01-01", TRAMADOL)).rule == "fhir-pain/age-limit/tramadol"
    assert finding(ctx("2019-01-01", ("7804", "oxycodone hydrochloride 5 MG Oral Tablet"))) is None


def test_from_the_12th_birthday_and_without_a_birth_date_nothing_is_said():
    assert finding(ctx("2014-05-01")) is None
    assert finding(ctx("2014-05-02")).indicator == "critical"
    assert finding(ctx(None)) is None
    assert finding(ctx(None, pat={"resourceType": "Patient", "id": "p1"})) is None


def test_a_partial_birth_date_across_the_limit_says_the_patient_may_be_under_it():
    f = finding(ctx("2014"))
    assert (f.indicator, f.action) == ("warning", "avoid")
    assert "may be under 12" in f.summary and "2014" in f.summary and len(f.summary) <= SUMMARY_MAX
    assert "11 or 12 years old" in f.detail and "Check the birth date" in f.detail


def test_active_medication_and_combination_detail_say_how_to_act():
    on_chart = finding(ctx("2018-09-14", hook="patient-view", active=True))
    assert on_chart.indicator == "critical" and "This is an active prescription" in on_chart.detail
    combo = finding(ctx("2018-09-14", COMBO))
    assert combo.drug.name == "codeine" and "This is a combination product" in combo.detail


def test_knowledge_cites_the_fda_communication_and_cpic():
    k = age_limits()
    assert {d: v["underYears"] for d, v in k["drugs"].items()} == {"codeine": 12, "tramadol": 12}
    labels = [s["label"] for s in k["rule"]["sources"]]
    assert labels[0].startswith("FDA Drug Safety Communication 2017-04-20")
    assert any("PMID 33387367" in s["version"] for s in k["rule"]["sources"])
