"""Opioid safety beyond the golden scenarios: the generated vocabulary is what the script makes, the naloxone draft
code is verified, prefetch and missing data (the tests fetched from the FHIR server, or not), the exclusion by the
words of a palliative-care Condition, and the poller's DetectedIssue categories."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
import responses

from fhir_pain.evaluate import evaluate
from fhir_pain.facts import PatientData
from fhir_pain.opioid.knowledge import rules
from fhir_pain.opioid.suggest import naloxone_code_verified
from fhir_pain.poller.detected_issue import render as render_issue
from fhir_pain.services import prefetch_templates
from golden.build_requests import ALPRAZOLAM, OXY_5, dosed, drug_test
from golden.fhir_builders import condition, day, genotype, hook_request, prefetch, searchset

ROOT = Path(__file__).resolve().parents[2]
FHIR = "https://ehr.example.org/fhir"
NOW = "2026-05-01T12:00:00Z"


def test_the_committed_vocabulary_is_what_the_script_generates():
    import runpy
    build = runpy.run_path(str(ROOT / "scripts" / "build_opioid_profiles.py"))
    assert (ROOT / "profiles" / "opioid" / "vocabulary.json").read_text() == build["render"]()


def test_the_naloxone_draft_code_is_in_the_cdc_naloxone_value_set_with_its_display():
    n = rules()["naloxoneDraft"]
    vs = json.loads((ROOT / "reference/opioid/opioid-cds-valuesets/naloxone-medications.json").read_text())
    assert {"code": n["rxnorm"], "display": n["display"]} in [
        {"code": c["code"], "display": c["display"]} for c in vs["expansion"]["contains"]]
    assert naloxone_code_verified(n["rxnorm"]) and not naloxone_code_verified("7242")


def test_the_laboratory_template_feeds_the_drug_test_rule():
    assert prefetch_templates()["opioidTests"] == "Observation?patient={{context.patientId}}&category=laboratory"


@pytest.fixture
def client(app_factory):
    return app_factory(REGISTER_CLINICAL_SERVICES=True, NOW=NOW, FHIR_SERVER_ALLOWLIST=[FHIR]).test_client()


def _view(client, tests_key):
    p = "p1"
    pre = prefetch(p, meds=[dosed("a1", p, *OXY_5, 1, "{tbl}", every_h=6, authored="2025-09-01")],
                   procedures=[], safety_obs=[])
    if tests_key is not None:
        pre["opioidTests"] = tests_key
    body = hook_request("patient-view", p, name="opioid-view", prefetch=pre)
    r = client.post("/cds-services/pain-pgx-patient-view", json=body)
    assert r.status_code == 200, r.get_data(as_text=True)
    return [c for c in r.get_json()["cards"]
            if any(f["kind"] == "opioid-safety" for f in c["extension"]["io.fhir-pain.findings"])]


@responses.activate
def test_drug_tests_missing_from_prefetch_are_fetched_from_the_fhir_server(client):
    responses.get(f"{FHIR}/Observation", json=searchset(drug_test("udt", "p1", "2026-03-01")))
    [card] = _view(client, None)
    assert [f["rule"] for f in card["extension"]["io.fhir-pain.findings"]] == ["cdc2022/mme-total"]
    assert card["extension"]["io.fhir-pain.findings"][0]["mme"] == {
        "total": 30.0, "byIngredient": {"oxycodone": 30.0}, "unit": "MME/d"}   # 4 x 5 mg = 20 mg x 1.5


@responses.activate
def test_drug_tests_that_cannot_be_had_are_said_not_checked_and_no_test_is_claimed_missing(client):
    responses.get(f"{FHIR}/Observation", status=503)
    [card] = _view(client, None)
    assert [f["rule"] for f in card["extension"]["io.fhir-pain.findings"]] == ["cdc2022/mme-total"]
    assert "urine drug tests not checked" in card["detail"]


def test_no_test_in_12_months_on_long_term_therapy(client):
    [card] = _view(client, searchset(drug_test("old", "p1", "2025-01-01")))
    assert sorted(f["rule"] for f in card["extension"]["io.fhir-pain.findings"]) == [
        "cdc2022/mme-total", "cdc2022/urine-drug-test"]


@pytest.mark.parametrize("status", [["final"], {"code": "final"}, 5])
def test_a_recent_drug_test_whose_status_cannot_be_read_does_not_count_as_done(client, status):
    # regression: such a status was a 500 (unhashable in the void-status look-up); counting the test as done would
    # silence the reminder, so it is not counted (a missing status stays counted, as before)
    recent = drug_test("new", "p1", "2026-03-01") | {"status": status}
    [card] = _view(client, searchset(recent))
    assert "cdc2022/urine-drug-test" in [f["rule"] for f in card["extension"]["io.fhir-pain.findings"]]
    done = drug_test("new", "p1", "2026-03-01")
    [card] = _view(client, searchset(done))
    assert "cdc2022/urine-drug-test" not in [f["rule"] for f in card["extension"]["io.fhir-pain.findings"]]


def _data(conditions, meds, drafts=()):
    return PatientData(patient_id="p1", now=datetime(2026, 5, 1, 12, tzinfo=timezone.utc), conditions=conditions,
                       medication_requests=meds, draft_orders=list(drafts))


def test_palliative_care_by_its_words_excludes_the_rules_but_not_the_total():
    p = "p1"
    palliative = condition("pal", p, "local-77", "Palliative care", day(-5), system="urn:example:local")
    meds = [dosed("a1", p, "897696", "hydromorphone hydrochloride 2 MG Oral Tablet", 2, "{tbl}", every_h=4),
            dosed("a2", p, *ALPRAZOLAM, 1, "{tbl}", timing_code="BID")]
    found = [f for f in evaluate(_data([palliative], meds), "patient-view") if f.kind == "opioid-safety"]
    assert [f.rule for f in found] == ["cdc2022/mme-total"]
    assert found[0].mme["total"] == 120.0 and "Guideline exclusions on record" in found[0].detail
    without = [f.rule for f in evaluate(_data([], meds), "patient-view") if f.kind == "opioid-safety"]
    assert {"cdc2022/mme-90", "cdc2022/opioid-benzodiazepine", "cdc2022/offer-naloxone"} <= set(without)


@pytest.mark.parametrize("rule,code", [("cdc2022/mme-90", "DOSE"), ("cdc2022/opioid-benzodiazepine", "DRG"),
                                       ("cdc2022/offer-moud", "COND")])
def test_poller_writes_opioid_findings_with_their_detected_issue_category(rule, code):
    p = "p1"
    meds = [dosed("a1", p, "897696", "hydromorphone hydrochloride 2 MG Oral Tablet", 2, "{tbl}", every_h=4),
            dosed("a2", p, *ALPRAZOLAM, 1, "{tbl}", timing_code="BID")]
    oud = condition("oud", p, "F11.20", "Opioid dependence", day(-50), system="http://hl7.org/fhir/sid/icd-10-cm")
    findings = {f.rule: f for f in evaluate(_data([oud], meds), "patient-view")}
    issue = render_issue(findings[rule], p, datetime(2026, 5, 1, tzinfo=timezone.utc))
    codes = [c["code"] for c in issue["code"]["coding"]]
    assert codes[0] == code and "opioid-safety" in codes and rule in codes
    # patient-level: the same key whichever order raised it, so a re-run updates instead of duplicating
    assert findings[rule].medication is None


def _sign(drafts, meds=(), conditions=(), history=()):
    d = _data(list(conditions), list(meds) + list(history), drafts)
    return [f for f in evaluate(d, "order-sign") if f.kind == "opioid-safety"]


OXYCONTIN = ("1049504", "Abuse-Deterrent 12 HR oxycodone hydrochloride 10 MG Extended Release Oral Tablet [Oxycontin]")


def test_er_opioid_for_acute_pain_is_flagged_even_when_not_opioid_naive():
    p = "p1"
    er = dosed("rx1", p, *OXYCONTIN, 1, "{tbl}", every_h=12, status="draft", course="acute")
    on_oxy = dosed("a1", p, *OXY_5, 1, "{tbl}", every_h=6, authored=day(-20))
    [f] = [f for f in _sign([er], [on_oxy]) if f.rule == "cdc2022/er-la-opioid-naive"]
    assert "acute pain" in f.summary and "opioid-naive" not in f.summary
    # the same ER order, not acute, for a patient on opioids: nothing about ER/LA
    er_chronic = dosed("rx1", p, *OXYCONTIN, 1, "{tbl}", every_h=12, status="draft")
    assert "cdc2022/er-la-opioid-naive" not in [f.rule for f in _sign([er_chronic], [on_oxy])]


def test_overdose_history_raises_the_naloxone_offer_and_naloxone_on_file_silences_it():
    p = "p1"
    oxy = dosed("rx1", p, *OXY_5, 1, "{tbl}", every_h=6, status="draft")      # 30 MME/d: under 50
    overdose = condition("od", p, "T40.2X1A", "Poisoning by other opioids, accidental, initial encounter", day(-90),
                         system="http://hl7.org/fhir/sid/icd-10-cm")
    assert "cdc2022/offer-naloxone" not in [f.rule for f in _sign([oxy])]
    [f] = [f for f in _sign([oxy], conditions=[overdose]) if f.rule == "cdc2022/offer-naloxone"]
    assert "history of overdose" in f.summary and f.extra["naloxoneDraft"]
    naloxone = dosed("a9", p, "1725059", "naloxone hydrochloride 40 MG/ML Nasal Spray", 1, "{spray}",
                     timing_code="QD")
    assert "cdc2022/offer-naloxone" not in [f.rule for f in _sign([oxy], [naloxone], [overdose])]


def test_buprenorphine_on_the_list_is_the_treatment_for_opioid_use_disorder():
    p = "p1"
    oud = condition("oud", p, "F11.20", "Opioid dependence", day(-50), system="http://hl7.org/fhir/sid/icd-10-cm")
    oxy = dosed("rx1", p, *OXY_5, 1, "{tbl}", every_h=6, status="draft")
    assert "cdc2022/offer-moud" in [f.rule for f in _sign([oxy], conditions=[oud])]
    bup = dosed("a1", p, "351266", "buprenorphine 2 MG / naloxone 0.5 MG Sublingual Tablet", 1, "{tbl}",
                timing_code="QD")
    rules_ = [f.rule for f in _sign([oxy], [bup], [oud])]
    # the naloxone in buprenorphine/naloxone deters misuse, it is no rescue kit: naloxone is still offered
    assert "cdc2022/offer-moud" not in rules_ and "cdc2022/offer-naloxone" in rules_


def test_a_benzodiazepine_ordered_without_any_opioid_gives_no_opioid_finding():
    p = "p1"
    assert _sign([dosed("rx1", p, *ALPRAZOLAM, 1, "{tbl}", timing_code="BID", status="draft")]) == []


def test_the_naloxone_draft_in_the_card_is_a_valid_order_of_the_verified_code():
    from fhir_pain.cards import render
    p = "p1"
    d = _data([], [dosed("a1", p, *ALPRAZOLAM, 1, "{tbl}", timing_code="BID")],
              [dosed("rx1", p, *OXY_5, 1, "{tbl}", every_h=6, status="draft")])
    [card] = render(evaluate(d, "order-sign"), d)
    [naloxone] = [s for s in card.suggestions if "naloxone" in s.label]
    resource = naloxone.actions[0].resource
    assert resource["medicationCodeableConcept"]["coding"][0]["code"] == "1725059"
    assert resource["status"] == "draft" and resource["subject"] == {"reference": "Patient/p1"}
    codes = {r.code for r in card.override_reasons}
    assert {"snooze-1-month", "snooze-3-months", "snooze-6-months", "snooze-1-year"} <= codes
