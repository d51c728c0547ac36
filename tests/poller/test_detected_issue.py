from datetime import datetime, timezone

import pytest

from fhir_pain.facts import Drug, Finding, GenePhenotype, MedicationUse
from fhir_pain.fhir_models import validate
from fhir_pain.poller import detected_issue as di
from fhir_pain.knowledge_version import knowledge_version

NOW = datetime(2026, 11, 21, 9, 30, tzinfo=timezone.utc)
CODEINE = Drug(rxnorm="2670", name="codeine")
GUIDELINE = "https://cpicpgx.org/guidelines/guideline-for-codeine-and-cyp2d6/"


def codeine_pm_finding(mr_ref="MedicationRequest/mr-1", obs_ref="Observation/geno-1", indicator="critical",
                       summary="CYP2D6 poor metabolizer: avoid codeine (no analgesia); use a non-tramadol opioid",
                       **overrides) -> Finding:
    gene = GenePhenotype(gene="CYP2D6", phenotype="Poor Metabolizer", diplotype="*4/*4", activity_score="0.0",
                         evidence=(obs_ref,))
    medication = MedicationUse(ref=mr_ref, status="active", intent="order", ingredients=(CODEINE,),
                               text="Codeine Phosphate 60 MG")
    fields = dict(
        rule="cpic/codeine/CYP2D6", kind="drug-gene", indicator=indicator, summary=summary,
        detail="**Implication:** greatly reduced morphine formation.\n\n**Classification:** Strong",
        drug=CODEINE, genes={"CYP2D6": gene}, classification="Strong", action="avoid",
        evidence=(obs_ref, mr_ref), medication=medication,
        knowledge={"source": "CPIC", "version": "2021-10", "url": GUIDELINE},
    )
    fields.update(overrides)
    return Finding(**fields)


def test_rendered_issue_is_valid_r4_and_says_what_the_finding_says():
    issue = di.render(codeine_pm_finding(), "pat-1", NOW)
    validate(issue)  # raises on anything that is not valid R4
    assert issue["resourceType"] == "DetectedIssue"
    assert issue["status"] == "final"
    assert issue["severity"] == "high"
    assert issue["patient"] == {"reference": "Patient/pat-1"}
    assert [r["reference"] for r in issue["implicated"]] == ["MedicationRequest/mr-1", "Observation/geno-1"]
    assert issue["evidence"] == [{"detail": [{"reference": "Observation/geno-1"},
                                             {"reference": "MedicationRequest/mr-1"}]}]
    assert issue["reference"] == GUIDELINE
    assert issue["detail"].startswith("CYP2D6 poor metabolizer: avoid codeine")
    assert "Classification:** Strong" in issue["detail"]
    assert issue["identifiedDateTime"] == "2026-11-21T09:30:00Z"
    codes = {(c["system"], c["code"]) for c in issue["code"]["coding"]}
    assert (di.V3_ACT_CODE, "GEN") in codes
    assert (di.RULE_SYSTEM, "cpic/codeine/CYP2D6") in codes
    assert issue["meta"]["tag"] == [{"system": di.PATIENT_TAG_SYSTEM, "code": "pat-1"}, di.knowledge_tag()]
    assert di.knowledge_of(issue) == knowledge_version()


@pytest.mark.parametrize("indicator, severity", [("critical", "high"), ("warning", "moderate"), ("info", "low")])
def test_severity_follows_the_indicator(indicator, severity):
    assert di.render(codeine_pm_finding(indicator=indicator), "p", NOW)["severity"] == severity


def test_identifier_and_id_are_deterministic_per_patient_rule_drug_and_medication():
    a = di.render(codeine_pm_finding(), "pat-1", NOW)
    again = di.render(codeine_pm_finding(), "pat-1", datetime(2030, 1, 1, tzinfo=timezone.utc))
    assert a["identifier"] == again["identifier"] and a["id"] == again["id"]
    assert di.issue_key(a) == di.finding_key("pat-1", codeine_pm_finding())
    other_patient = di.render(codeine_pm_finding(), "pat-2", NOW)
    other_order = di.render(codeine_pm_finding(mr_ref="MedicationRequest/mr-2"), "pat-1", NOW)
    other_rule = di.render(codeine_pm_finding(rule="cpic/tramadol/CYP2D6"), "pat-1", NOW)
    keys = {di.issue_key(r) for r in (a, other_patient, other_order, other_rule)}
    assert len(keys) == 4
    assert len(a["id"]) <= 64 and a["id"].replace("-", "").isalnum()


def test_content_hash_changes_with_the_finding_not_with_the_date():
    base = di.render(codeine_pm_finding(), "pat-1", NOW)
    later = di.render(codeine_pm_finding(), "pat-1", datetime(2027, 1, 1, tzinfo=timezone.utc))
    assert di.stored_hash(base) == di.stored_hash(later)
    assert not di.needs_write(base, later)
    ultrarapid = di.render(codeine_pm_finding(summary="CYP2D6 ultrarapid metabolizer: avoid codeine (toxicity)"),
                           "pat-1", NOW)
    assert di.issue_key(ultrarapid) == di.issue_key(base)
    assert di.stored_hash(ultrarapid) != di.stored_hash(base)
    assert di.needs_write(base, ultrarapid)


def test_update_keeps_the_server_id_and_first_identified_date():
    existing = dict(di.render(codeine_pm_finding(), "pat-1", NOW), id="server-assigned-7",
                    meta={"versionId": "3", "lastUpdated": "2026-11-21T09:30:01.000Z"})
    wanted = di.render(codeine_pm_finding(summary="changed"), "pat-1", datetime(2027, 1, 1, tzinfo=timezone.utc))
    out = di.updated(existing, wanted)
    assert out["id"] == "server-assigned-7"
    assert out["identifiedDateTime"] == "2026-11-21T09:30:00Z"
    assert out["detail"].startswith("changed")
    validate(out)


def test_closing_is_a_status_change_with_a_reason_and_stays_valid():
    existing = dict(di.render(codeine_pm_finding(), "pat-1", NOW),
                    meta={"versionId": "1", "lastUpdated": "2026-11-21T09:30:01.000Z",
                          "tag": [{"system": di.PATIENT_TAG_SYSTEM, "code": "pat-1"}]})
    out = di.closed(existing, datetime(2026, 12, 1, tzinfo=timezone.utc))
    validate(out)
    assert out["status"] == "cancelled" and not di.is_open(out)
    assert out["mitigation"][0]["date"] == "2026-12-01T00:00:00Z"
    assert out["mitigation"][0]["action"]["coding"][0]["code"] == "no-longer-applies"
    assert "versionId" not in out["meta"] and out["meta"]["tag"] == existing["meta"]["tag"]
    assert di.issue_key(out) == di.issue_key(existing) and di.stored_hash(out) == di.stored_hash(existing)
    # reopening: the same finding again differs only by status, which is enough to write it
    assert di.needs_write(out, di.render(codeine_pm_finding(), "pat-1", NOW))


def test_drafts_and_contained_references_are_not_written_to_the_server():
    finding = codeine_pm_finding(mr_ref="urn:uuid:4f1b6c1e-0000-4000-8000-000000000001",
                                 evidence=("Observation/geno-1", "#med", "urn:uuid:x"))
    issue = di.render(finding, "pat-1", NOW)
    validate(issue)
    refs = [r["reference"] for r in issue["implicated"]] + [d["reference"] for d in issue["evidence"][0]["detail"]]
    assert refs == ["Observation/geno-1", "Observation/geno-1"]


def test_a_finding_without_drug_or_guideline_url_still_renders_valid_r4():
    finding = Finding(rule="pain/referral/cbt", kind="pain-phenotype", indicator="warning",
                      summary="High pain catastrophizing: consider CBT or pain psychology", action="refer",
                      phenotypes=("high-catastrophizing",), evidence=("Observation/pcs-1",))
    issue = di.render(finding, "pat-9", NOW)
    validate(issue)
    assert "implicated" not in issue and "reference" not in issue
    assert issue["severity"] == "moderate"


@pytest.mark.parametrize("indicator, action, actionable", [
    ("critical", "avoid", True), ("warning", "no-recommendation", True), ("warning", "refer", True),
    ("info", "reduce-dose", True), ("info", "monitor", False), ("info", "order-test", False),
    ("info", "standard-dose", False), ("info", "informational", False), ("info", None, False),
])
def test_only_actionable_findings_become_issues(indicator, action, actionable):
    assert di.is_actionable(codeine_pm_finding(indicator=indicator, action=action)) is actionable


def test_an_age_contraindication_is_filed_as_an_age_alert():
    # regression: the category was looked up by the whole rule id ("fhir-pain/age-limit/codeine"): never matched
    f = codeine_pm_finding(rule="fhir-pain/age-limit/codeine", kind="safety", genes={},
                           summary="Codeine is contraindicated under 12 years (FDA)")
    issue = di.render(f, "p1", NOW)
    validate(issue)
    categories = [c for c in issue["code"]["coding"] if c["system"] == di.V3_ACT_CODE]
    assert categories == [{"system": di.V3_ACT_CODE, "code": "AGE", "display": "Age Alert"}]


def test_other_safety_limits_are_filed_as_condition_alerts():
    f = codeine_pm_finding(rule="fhir-pain/fda-limit/breastfeeding/codeine", kind="safety", genes={},
                           summary="Codeine is not recommended while breastfeeding (FDA)")
    issue = di.render(f, "p1", NOW)
    validate(issue)
    assert [c["code"] for c in issue["code"]["coding"] if c["system"] == di.V3_ACT_CODE] == ["COND"]


def test_issue_from_older_knowledge_is_rewritten_though_its_content_is_the_same():
    wanted = di.render(codeine_pm_finding(), "pat-1", NOW)
    older = dict(wanted, meta={"tag": [{"system": di.PATIENT_TAG_SYSTEM, "code": "pat-1"},
                                       {"system": di.KNOWLEDGE_TAG_SYSTEM, "code": "cpic-v1.29.0+p.000000000000"}]})
    untagged = dict(wanted, meta={"tag": [{"system": di.PATIENT_TAG_SYSTEM, "code": "pat-1"}]})
    assert di.needs_write(older, wanted)
    assert di.needs_write(untagged, wanted)     # written before versions were recorded
    assert not di.needs_write(dict(wanted), wanted)
