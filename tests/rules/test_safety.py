"""PHQ-9 item 9 safety alert (patient-view)."""
from __future__ import annotations

from datetime import datetime, timezone

from fhir_pain.evaluate import build_context, evaluate
from fhir_pain.facts import PatientData
from fhir_pain.rules.safety import suicidality_finding
from golden.fhir_builders import day, draft, nrs, phq9, phq9_panel

NOW = datetime(2026, 5, 1, 12, tzinfo=timezone.utc)
LOW_WITH_ITEM9 = [1, 0, 1, 0, 0, 1, 0, 0, 1]          # total 4: below every depression cut-off
HIGH_WITHOUT_ITEM9 = [3, 3, 2, 2, 2, 2, 2, 2, 0]      # total 18, item 9 "not at all"


def patient(*obs, drafts=()):
    return PatientData(patient_id="p1", now=NOW, observations=list(obs), draft_orders=list(drafts))


def finding(*obs):
    return suicidality_finding(build_context(patient(*obs), "patient-view"))


def test_item9_endorsed_with_a_low_total_warns_with_its_date_and_evidence():
    f = finding(phq9_panel("phq", "p1", LOW_WITH_ITEM9, "2026-04-28T09:15:00-05:00"))
    assert f.indicator == "warning" and f.rule == "fhir-pain/safety/phq9-item9"
    assert f.summary == ("PHQ-9 item 9 (thoughts of death or self-harm) endorsed on 2026-04-28: "
                         "same-day suicide risk assessment advised")
    assert "The PHQ-9 total that day was 4." in f.detail and "not a diagnosis" in f.detail
    assert f.evidence == ("Observation/phq",) and "**Evidence:** Observation/phq" in f.detail
    assert f.knowledge["url"].startswith("https://doi.org/") and "Kroenke 2001" in f.knowledge["source"]
    assert "[PHQ instruction manual](https://www.phqscreeners.com/)" in f.detail
    assert not f.phenotypes       # no diagnosis is claimed


def test_the_date_is_the_day_the_patient_answered_in_the_senders_time_zone():
    # 23:30 in New York is already the next day in UTC: the card keeps the patient's day
    f = finding(phq9_panel("phq", "p1", LOW_WITH_ITEM9, "2026-04-28T23:30:00-04:00"))
    assert "endorsed on 2026-04-28:" in f.summary


def test_no_alert_without_item9_whatever_the_total():
    assert finding(phq9_panel("phq", "p1", HIGH_WITHOUT_ITEM9, day(-2))) is None
    assert finding(phq9("phq", "p1", 22, day(-2))) is None       # a total alone says nothing about item 9
    assert finding() is None


def test_the_latest_endorsement_is_dated():
    older = phq9_panel("phq1", "p1", LOW_WITH_ITEM9, "2026-03-01")
    newer = phq9_panel("phq2", "p1", LOW_WITH_ITEM9, "2026-04-20")
    f = finding(older, newer)
    assert "on 2026-04-20" in f.summary and f.evidence == ("Observation/phq2",)


def test_patient_view_shows_it_first_and_order_hooks_not_at_all():
    obs = [phq9_panel("phq", "p1", LOW_WITH_ITEM9, day(-1)), nrs("n", "p1", 6, day(-1))]
    view = evaluate(patient(*obs), "patient-view")
    assert [f.rule for f in view] == ["fhir-pain/safety/phq9-item9", "fhir-pain/pain-profile"]
    order = patient(*obs, drafts=[draft("rx1", "p1", "7804", "oxycodone 5 MG Oral Tablet")])
    assert "fhir-pain/safety/phq9-item9" not in [f.rule for f in evaluate(order, "order-sign")]


def test_it_comes_before_other_warnings_on_the_chart():
    from golden.fhir_builders import genotype, medication_request
    ibuprofen = medication_request("a1", "p1", "5640", "ibuprofen 400 MG Oral Tablet")   # CYP2C9 PM: warning
    d = PatientData(patient_id="p1", now=NOW, medication_requests=[ibuprofen],
                    observations=[genotype("g1", "p1", "CYP2C9", "*3/*3"),
                                  phq9_panel("phq", "p1", LOW_WITH_ITEM9, day(-1))])
    view = evaluate(d, "patient-view")
    assert [f.rule for f in view][:2] == ["fhir-pain/safety/phq9-item9", "cpic/ibuprofen/CYP2C9"]
    assert view[1].indicator == "warning"


def _item9(oid, value, when):
    """A standalone PHQ-9 item 9 Observation (LOINC 44260-8), as some EHRs send items."""
    return {"resourceType": "Observation", "id": oid, "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "44260-8"}]},
            "subject": {"reference": "Patient/p1"}, "effectiveDateTime": when, "valueInteger": value}


def test_standalone_item9_answer_dates_the_card():
    """Regression: a standalone item-9 Observation raised the flag but the card said "(date not recorded)"."""
    f = finding(_item9("i9", 2, "2026-04-27T10:00:00Z"))
    assert "endorsed on 2026-04-27:" in f.summary
    assert "Observation/i9" in f.evidence


def test_newer_standalone_item9_wins_over_an_older_flagged_panel():
    """Regression: the card showed the older PHQ-9 panel's date and evidence instead of the newer answer."""
    f = finding(phq9_panel("phq", "p1", LOW_WITH_ITEM9, "2026-03-01T09:00:00Z"), _item9("i9", 1, "2026-04-27T10:00:00Z"))
    assert "endorsed on 2026-04-27:" in f.summary
    assert "Observation/i9" in f.evidence and "Observation/phq" not in f.evidence
