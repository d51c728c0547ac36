"""FDA limits of codeine and tramadol checked against the record (FDA 2017-04-20; codeine after tonsillectomy since
2013): tonsillectomy/adenoidectomy under 18 (contraindication), obesity / sleep apnoea / severe lung disease at 12
to 17 (not recommended), breastfeeding (not recommended)."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from fhir_pain.evaluate import build_context, evaluate
from fhir_pain.facts import PatientData
from fhir_pain.gather import PROCEDURES
from fhir_pain.rules.fda_limits import fda_limit_findings, observation_codes
from fhir_pain.rules.knowledge import age_limits
from fhir_pain.rules.records import conditions_in, procedures_in
from fhir_pain.rules.text import SUMMARY_MAX
from golden.fhir_builders import (
    bmi, bmi_percentile, breastfeeding_status, condition, day, draft, medication_request, patient, procedure,
)

NOW = datetime(2026, 5, 1, 12, tzinfo=timezone.utc)
CODEINE = ("2670", "codeine phosphate 30 MG Oral Tablet")
TRAMADOL = ("10689", "tramadol hydrochloride 50 MG Oral Tablet")
OXYCODONE = ("7804", "oxycodone hydrochloride 5 MG Oral Tablet")
COMBO = ("993781", "Acetaminophen 300 MG / Codeine Phosphate 30 MG Oral Tablet")
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
CPT = "http://www.ama-assn.org/go/cpt"
PCS = "http://www.cms.gov/Medicare/Coding/ICD10"
AGE_15 = "2010-11-02"
AGE_14 = "2011-09-20"


def ctx(birth="1992-03-04", order=CODEINE, *, procedures=(), conditions=(), obs=(), active=False, hook="order-sign"):
    resource = (medication_request if active else draft)("rx1", "p1", *order)
    data = PatientData(patient_id="p1", now=NOW, patient=patient("p1", birth=birth) if birth else None,
                       procedures=list(procedures), conditions=list(conditions), observations=list(obs),
                       medication_requests=[resource] if active else [], draft_orders=[] if active else [resource])
    return build_context(data, hook)


def findings(c):
    med = (c.active or c.drafts)[0]
    drug = next(i for i in med.ingredients if i.name in ("codeine", "tramadol", "oxycodone"))
    return fda_limit_findings(c, med, drug)


def one(c):
    [f] = findings(c)
    assert f.kind == "safety" and f.knowledge["source"] == "FDA" and f.knowledge["version"] == "2017-04-20"
    assert len(f.summary) <= SUMMARY_MAX and f.extra["joins"] == "drug" and f.extra["offerRemoval"]
    return f


TONSILLECTOMY = procedure("pr1", "p1", "173422009", "Tonsillectomy", day(-2))


# ---- tonsillectomy / adenoidectomy ---------------------------------------------------------------------------------

@pytest.mark.parametrize("proc", [
    TONSILLECTOMY,
    procedure("pr1", "p1", "42821", "Tonsillectomy and adenoidectomy; age 12 or over", day(-1), system=CPT),
    procedure("pr1", "p1", "0CTPXZZ", "Resection of Tonsils, External Approach", day(-3), system=PCS),
    procedure("pr1", "p1", "0CTQXZZ", "Resection of Adenoids, External Approach", day(-3), system=PCS),
    procedure("pr1", "p1", None, "Adenotonsillectomy (ENT day surgery)", day(-1)),       # local code, text only
    procedure("pr1", "p1", "42826", "Tonsillectomy", day(7), system=CPT, status="preparation"),   # planned
])
def test_a_15_year_old_after_tonsillectomy_or_adenoidectomy_gets_a_critical_contraindication(proc):
    f = one(ctx(AGE_15, procedures=[proc]))
    assert (f.rule, f.indicator, f.action) == ("fhir-pain/fda-limit/tonsillectomy/codeine", "critical", "avoid")
    assert f.summary.startswith("Age 15, tonsillectomy/adenoidectomy on record: codeine is contraindicated")
    assert f.extra["primary"] and f.evidence == ("Procedure/pr1", "MedicationRequest/rx1")
    assert "since 2013" in f.detail and "since 2017" in f.detail and "FDA Drug Safety Communication 2013-02-20" in f.detail


def test_tramadol_has_the_same_contraindication_and_oxycodone_none():
    assert one(ctx(AGE_15, TRAMADOL, procedures=[TONSILLECTOMY])).rule == "fhir-pain/fda-limit/tonsillectomy/tramadol"
    assert findings(ctx(AGE_15, OXYCODONE, procedures=[TONSILLECTOMY])) == []


def test_status_post_tonsillectomy_condition_counts_when_recent():
    sp = condition("c1", "p1", "Z90.89", "Status post tonsillectomy", day(-5), system=ICD10CM)
    f = one(ctx(AGE_15, conditions=[sp]))
    assert f.indicator == "critical" and "Condition/c1" in f.evidence and "matched on its text" in f.detail


def test_an_old_tonsillectomy_is_not_post_operative_and_an_undated_one_is_a_warning():
    old = procedure("pr1", "p1", "173422009", "Tonsillectomy", day(-400))
    assert findings(ctx(AGE_15, procedures=[old])) == []
    undated = procedure("pr1", "p1", "173422009", "Tonsillectomy", None)
    f = one(ctx(AGE_15, procedures=[undated]))
    assert f.indicator == "warning" and "date not recorded" in f.summary and not f.extra["primary"]


def test_a_procedure_not_done_or_entered_in_error_is_ignored():
    for status in ("not-done", "entered-in-error"):
        assert findings(ctx(AGE_15, procedures=[dict(TONSILLECTOMY, status=status)])) == []


def test_ages_outside_12_to_17_are_left_to_the_age_limit_or_to_nothing():
    assert findings(ctx("2016-01-01", procedures=[TONSILLECTOMY])) == []     # 10: the under-12 card speaks
    assert findings(ctx("2008-04-30", procedures=[TONSILLECTOMY])) == []     # 18 yesterday
    assert findings(ctx(None, procedures=[TONSILLECTOMY])) == []             # no birth date: nothing about age
    maybe = one(ctx("2008", procedures=[TONSILLECTOMY]))                     # 17 or 18
    assert maybe.indicator == "warning" and "may be 18 already" in maybe.detail


def test_other_procedures_do_not_match():
    appendix = procedure("pr1", "p1", "80146002", "Appendectomy", day(-2))
    assert findings(ctx(AGE_15, procedures=[appendix])) == []
    assert procedures_in([appendix, TONSILLECTOMY], "tonsillectomy")[0].ref == "Procedure/pr1"


# ---- obesity, obstructive sleep apnoea, severe lung disease at 12 to 17 -------------------------------------------

@pytest.mark.parametrize("cond, words", [
    (condition("osa", "p1", "G47.33", "Obstructive sleep apnea (adult) (pediatric)", day(-200), system=ICD10CM),
     "obstructive sleep apnoea"),
    (condition("osa", "p1", "78275009", "Obstructive sleep apnea syndrome", day(-200)), "obstructive sleep apnoea"),
    (condition("ob", "p1", "E66.9", "Obesity, unspecified", day(-90), system=ICD10CM), "obesity"),
    (condition("ob", "p1", "Z68.54", "BMI pediatric, 95th percentile to less than 120% of the 95th percentile",
               day(-90), system=ICD10CM), "obesity"),
    (condition("cf", "p1", "E84.0", "Cystic fibrosis with pulmonary manifestations", day(-3000), system=ICD10CM),
     "severe lung disease"),
    (condition("as", "p1", "J45.50", "Severe persistent asthma, uncomplicated", day(-300), system=ICD10CM),
     "severe lung disease"),
])
def test_a_14_year_old_with_a_breathing_risk_condition_gets_a_warning(cond, words):
    f = one(ctx(AGE_14, TRAMADOL, conditions=[cond]))
    assert (f.rule, f.indicator, f.action) == ("fhir-pain/fda-limit/breathing-risk/tramadol", "warning", "avoid")
    assert f.summary == f"Age 14 with {words}: tramadol not recommended at 12 to 18 years (FDA)"
    assert f"Condition/{cond['id']}" in f.evidence and not f.extra["primary"]


@pytest.mark.parametrize("cond", [
    condition("ow", "p1", "E66.3", "Overweight", day(-90), system=ICD10CM),
    condition("as", "p1", "J45.20", "Mild intermittent asthma, uncomplicated", day(-90), system=ICD10CM),
    dict(condition("osa", "p1", "G47.33", "Obstructive sleep apnea", day(-900), system=ICD10CM),
         clinicalStatus={"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                     "code": "resolved"}]}),
    dict(condition("osa", "p1", "G47.33", "Obstructive sleep apnea", day(-900), system=ICD10CM),
         verificationStatus={"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                                         "code": "refuted"}]}),
])
def test_overweight_mild_asthma_and_resolved_or_refuted_conditions_do_not_count(cond):
    assert findings(ctx(AGE_14, TRAMADOL, conditions=[cond])) == []


def test_obesity_from_the_bmi_for_age_percentile_first():
    f = one(ctx(AGE_14, obs=[bmi_percentile("pct", "p1", 97, day(-20)), bmi("b", "p1", 27.5, day(-20))]))
    assert "BMI-for-age percentile 97% on 2026-04-11" in f.detail and f.evidence[0] == "Observation/pct"
    # a percentile under 95 settles it, whatever the BMI
    assert findings(ctx(AGE_14, obs=[bmi_percentile("pct", "p1", 80, day(-20)), bmi("b", "p1", 31, day(-20))])) == []


def test_obesity_from_bmi_without_a_percentile():
    severe = one(ctx(AGE_14, obs=[bmi("b", "p1", 36.4, day(-10))]))
    assert severe.summary.startswith("Age 14 with obesity") and "severe obesity at any age" in severe.detail
    likely = one(ctx(AGE_14, obs=[bmi("b", "p1", 31, day(-10))]))
    assert likely.summary.startswith("Age 14 with likely obesity") and "check it" in likely.detail
    assert findings(ctx(AGE_14, obs=[bmi("b", "p1", 29.9, day(-10))])) == []
    assert findings(ctx(AGE_14, obs=[bmi("b", "p1", 36.4, day(-400))])) == []         # older than a year
    # the latest one decides
    assert findings(ctx(AGE_14, obs=[bmi("b1", "p1", 36.4, day(-100)), bmi("b2", "p1", 28, day(-5))])) == []


def test_breathing_risk_is_for_adolescents_only():
    osa = condition("osa", "p1", "G47.33", "Obstructive sleep apnea", day(-200), system=ICD10CM)
    assert findings(ctx("1992-03-04", conditions=[osa])) == []       # adult
    assert findings(ctx("2016-01-01", conditions=[osa])) == []       # 10: the under-12 contraindication speaks


def test_several_limits_for_one_order_are_all_reported():
    osa = condition("osa", "p1", "G47.33", "Obstructive sleep apnea", day(-200), system=ICD10CM)
    got = findings(ctx(AGE_15, procedures=[TONSILLECTOMY], conditions=[osa]))
    assert [f.rule.split("/")[2] for f in got] == ["tonsillectomy", "breathing-risk"]


# ---- breastfeeding --------------------------------------------------------------------------------------------------

def test_breastfeeding_status_observation_gives_a_warning():
    f = one(ctx(obs=[breastfeeding_status("bf", "p1", True, day(-14))]))
    assert (f.rule, f.indicator, f.action) == ("fhir-pain/fda-limit/breastfeeding/codeine", "warning", "avoid")
    assert f.summary == "Breastfeeding on record: codeine is not recommended while breastfeeding (FDA)"
    assert f.evidence == ("Observation/bf", "MedicationRequest/rx1") and "currently breastfeeding" in f.detail


@pytest.mark.parametrize("cond", [
    condition("lact", "p1", "169750002", "Mother currently breast-feeding", day(-40)),
    condition("lact", "p1", "Z39.1", "Encounter for care and examination of lactating mother", day(-40),
              system=ICD10CM),
])
def test_a_lactation_condition_gives_a_warning(cond):
    assert one(ctx("1992-03-04", TRAMADOL, conditions=[cond])).evidence[0] == "Condition/lact"


def test_snomed_observable_with_a_boolean_value_counts():
    obs = {"resourceType": "Observation", "id": "bf", "status": "final",
           "code": {"coding": [{"system": "http://snomed.info/sct", "code": "413712001",
                                "display": "Breastfeeding (mother)"}]},
           "subject": {"reference": "Patient/p1"}, "effectiveDateTime": day(-3), "valueBoolean": True}
    assert one(ctx(obs=[obs])).rule.endswith("breastfeeding/codeine")
    assert findings(ctx(obs=[dict(obs, valueBoolean=False)])) == []


def test_a_later_not_breastfeeding_answer_outweighs_an_earlier_lactation_condition():
    lact = condition("lact", "p1", "169750002", "Mother currently breast-feeding", day(-200))
    stopped = breastfeeding_status("bf", "p1", False, day(-10))
    assert findings(ctx(conditions=[lact], obs=[stopped])) == []
    # ... but not a lactation condition recorded after it
    newer = condition("lact", "p1", "169750002", "Mother currently breast-feeding", day(-2))
    assert one(ctx(conditions=[newer], obs=[stopped])).evidence[0] == "Condition/lact"


def test_old_breastfeeding_records_and_other_opioids_are_silent():
    assert findings(ctx(obs=[breastfeeding_status("bf", "p1", True, day(-500))])) == []
    lact = condition("lact", "p1", "169750002", "Mother currently breast-feeding", day(-500))
    assert findings(ctx(conditions=[lact])) == []
    assert findings(ctx(order=OXYCODONE, obs=[breastfeeding_status("bf", "p1", True, day(-14))])) == []


# ---- through evaluate: cards, pre-test, active medications -------------------------------------------------------

def test_evaluate_puts_the_contraindication_first_and_drops_the_pretest_alert():
    data = PatientData(patient_id="p1", now=NOW, patient=patient("p1", birth=AGE_15), procedures=[TONSILLECTOMY],
                       draft_orders=[draft("rx1", "p1", *CODEINE)])
    got = evaluate(data, "order-sign")
    assert [f.rule for f in got] == ["fhir-pain/fda-limit/tonsillectomy/codeine"]   # no CPIC pre-test alert
    active = PatientData(patient_id="p1", now=NOW, patient=patient("p1", birth="1992-03-04"),
                         observations=[breastfeeding_status("bf", "p1", True, day(-14))],
                         medication_requests=[medication_request("rx1", "p1", *COMBO)])
    [f] = [f for f in evaluate(active, "patient-view") if f.kind == "safety"]
    assert f.rule == "fhir-pain/fda-limit/breastfeeding/codeine" and "This is an active prescription" in f.detail


def test_missing_procedures_are_owned_up_to_only_by_the_tonsillectomy_limit():
    assert PROCEDURES in one(ctx(AGE_15, procedures=[TONSILLECTOMY])).extra["relevantMissing"]


def test_code_lists_have_sources_and_the_prefetch_asks_for_every_observation_code():
    lists = age_limits()["codeLists"]
    assert all(len(v["source"]) > 40 for v in lists.values())
    assert set(observation_codes()) == {"59576-9", "39156-5", "63895-7", "413712001"}
    assert [r.ref for r in conditions_in([condition("x", "p1", "E66.01", "Morbid obesity", day(-1),
                                                    system=ICD10CM)], "obesity")] == ["Condition/x"]


def test_a_status_of_the_wrong_json_type_is_read_as_no_status_never_a_crash():
    # regression (hostile-input battery): {"status": {...}} in an Observation or Procedure was a TypeError -> 500
    from fhir_pain.rules.records import latest, procedures_in
    from datetime import datetime, timezone
    now = datetime(2026, 5, 1, tzinfo=timezone.utc)
    obs = {"resourceType": "Observation", "id": "o1", "status": {"a": 1},
           "code": {"coding": [{"system": "http://loinc.org", "code": "63895-7"}]}}
    reading = latest([obs], {"http://loinc.org|63895-7"}, now, 365)   # raised TypeError before
    assert reading is None or reading.ref == "Observation/o1"
    assert isinstance(procedures_in([{"resourceType": "Procedure", "id": "p", "status": ["x"],
                                      "code": {"text": "tonsillectomy"}}], "tonsillectomy"), list)
