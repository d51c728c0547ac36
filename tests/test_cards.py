"""Findings -> cards: grouping, suggestions (valid R4, safe only), override reasons, links, findings extension."""
from __future__ import annotations

from datetime import datetime, timezone

from fhir_pain.cards import card_for, group_findings, render
from fhir_pain.facts import Drug, Finding, GenePhenotype, MedicationUse, PatientData
from fhir_pain.fhir_models import check_cds_response, validate
from fhir_pain.gather import MEDICATION_HISTORY, MEDICATIONS, PAIN
from fhir_pain.rules.knowledge import pain_rules

NOW = datetime(2026, 5, 1, tzinfo=timezone.utc)
CODEINE = Drug("2670", "codeine")
MORPHINE = Drug("7052", "morphine")
PM = GenePhenotype(gene="CYP2D6", phenotype="Poor Metabolizer", diplotype="*4/*4", activity_score="0.0",
                   evidence=("Observation/g1",))
DATA = PatientData(patient_id="p1", now=NOW)


def med(ref="MedicationRequest/rx1", draft=True, encounter=None):
    resource = {"resourceType": "MedicationRequest", "id": ref.split("/")[-1]}
    if encounter:
        resource["encounter"] = {"reference": encounter}
    return MedicationUse(ref=ref, status="draft" if draft else "active", intent="order", ingredients=(CODEINE,),
                         text="codeine 30 MG", is_draft=draft, resource=resource)


def cpic(m=None, **kw):
    base = dict(rule="cpic/codeine/CYP2D6", kind="drug-gene", indicator="critical",
                summary="CYP2D6 poor metabolizer: avoid codeine", detail="**Implication:** ...", drug=CODEINE,
                genes={"CYP2D6": PM}, classification="Strong", action="avoid", evidence=("Observation/g1",),
                knowledge={"source": "CPIC", "version": "2021", "url": "https://cpicpgx.org/guidelines/x/"},
                medication=m or med(), alternatives=(MORPHINE,))
    base.update(kw)
    return Finding(**base)


def test_one_card_per_drug_with_the_findings_contract():
    f = cpic()
    pre = Finding(rule="cpic-pretest/codeine/CYP2C19", kind="pre-test", indicator="info", summary="s", drug=CODEINE,
                  medication=f.medication, action="order-test", extra={"testGenes": ["CYP2C19"]})
    groups = group_findings([f, pre])
    assert len(groups) == 1
    card = card_for(groups[0], DATA).to_dict()
    assert card["indicator"] == "critical" and card["summary"] == f.summary
    assert card["extension"]["io.fhir-pain.findings"] == [f.to_contract(), pre.to_contract()]
    assert check_cds_response({"cards": [card]}) == []


def test_replace_suggestion_deletes_the_draft_and_creates_an_undosed_draft():
    card = card_for([cpic(m=med(encounter="Encounter/e1"))], DATA).to_dict()
    assert card["selectionBehavior"] == "at-most-one"
    [s] = card["suggestions"]
    delete, create = s["actions"]
    assert delete == {"type": "delete", "description": "Remove the draft order for codeine",
                      "resourceId": "MedicationRequest/rx1"}
    mr = create["resource"]
    validate(mr)
    assert (mr["status"], mr["intent"], mr["subject"], mr["encounter"]) == (
        "draft", "order", {"reference": "Patient/p1"}, {"reference": "Encounter/e1"})
    assert mr["medicationCodeableConcept"]["coding"][0] == {
        "system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "7052", "display": "morphine"}
    assert "dosageInstruction" not in mr


def test_unverified_rxnorm_code_is_never_written_into_a_suggested_order():
    """Regression: granisetron's RxCUI (26237) is not verified here; a wrong code could order the wrong drug."""
    granisetron = Drug("26237", "granisetron")
    card = card_for([cpic(alternatives=(granisetron, MORPHINE))], DATA).to_dict()
    codes = [a["resource"]["medicationCodeableConcept"]["coding"][0]["code"]
             for s in card["suggestions"] for a in s["actions"] if a["type"] == "create"]
    assert codes == ["7052"]
    only_unverified = card_for([cpic(alternatives=(granisetron,), extra={"offerRemoval": True})], DATA).to_dict()
    assert [s["label"] for s in only_unverified["suggestions"]] == ["Remove the codeine draft; choose another analgesic"]


def test_no_replacement_for_active_medications_or_drafts_without_id():
    assert "suggestions" not in card_for([cpic(m=med(draft=False))], DATA).to_dict()
    assert "suggestions" not in card_for([cpic(m=med(ref="urn:uuid:1f0e"))], DATA).to_dict()


def test_reduce_dose_never_suggests_a_change():
    card = card_for([cpic(action="reduce-dose", indicator="warning", alternatives=())], DATA).to_dict()
    assert "suggestions" not in card


def test_test_and_confirmation_orders_are_valid_service_requests():
    f = cpic(action="order-test", alternatives=(), extra={"confirmGenes": ["CYP2D6"],
                                                          "uncertainty": {"CYP2D6": "ambiguous"}})
    card = card_for([f], DATA).to_dict()
    assert card["selectionBehavior"] == "any"
    sr = card["suggestions"][0]["actions"][0]["resource"]
    validate(sr)
    assert sr["code"] == {"coding": [{"system": "http://loinc.org", "code": "51969-4",
                                      "display": "Genetic analysis report"}], "text": "CYP2D6 genotype"}
    assert "ambiguous" in sr["reasonCode"][0]["text"]


def test_referrals_share_one_card_with_valid_service_requests():
    refs = pain_rules()["referrals"]
    fs = [Finding(rule=r["id"], kind="pain-phenotype", indicator="info", summary=f"s{i}", action="refer",
                  evidence=("Observation/pcs", "Condition/fm", "MedicationRequest/x"),
                  extra={"referral": r, "reason": "high pain catastrophizing (PCS 36)"}) for i, r in enumerate(refs)]
    [card] = [c.to_dict() for c in render(fs, DATA)]
    assert card["summary"].startswith("Consider referral: pain psychology (CBT); physiotherapy")
    for s in card["suggestions"]:
        sr = s["actions"][0]["resource"]
        validate(sr)
        assert sr["reasonReference"] == [{"reference": "Observation/pcs"}, {"reference": "Condition/fm"}]
        assert sr["code"]["coding"][0]["system"] == "https://fhir-pain.io/CodeSystem/referral"


def test_override_reasons_links_and_missing_data():
    data = PatientData(patient_id="p1", now=NOW, missing=(MEDICATIONS, PAIN))
    card = card_for([cpic()], data).to_dict()
    assert all(r["display"] for r in card["overrideReasons"])
    assert {r["code"] for r in card["overrideReasons"]} >= {"previously-tolerated", "palliative-care"}
    assert card["links"] == [{"label": "CPIC guideline for codeine", "url": "https://cpicpgx.org/guidelines/x/",
                              "type": "absolute"}]
    assert "**Data not available:** active medication list." in card["detail"]
    assert "pain assessments" not in card["detail"]       # not relevant to a drug-gene card


def test_cards_follow_the_order_of_the_findings():
    other = cpic(rule="cpic/celecoxib/CYP2C9", drug=Drug("140587", "celecoxib"), indicator="warning",
                 medication=med(ref="MedicationRequest/rx2"), summary="celecoxib")
    assert [c.summary for c in render([cpic(), other], DATA)] == ["CYP2D6 poor metabolizer: avoid codeine",
                                                                   "celecoxib"]


def test_a_rule_can_bring_its_own_override_reasons():
    alert = Finding(rule="fhir-pain/safety/phq9-item9", kind="pain-phenotype", indicator="warning", summary="s")
    codes = [r["code"] for r in card_for([alert], DATA).to_dict()["overrideReasons"]]
    assert codes == ["risk-assessed", "in-mental-health-care"]     # not the prescribing reasons of its kind
    referral = Finding(rule="fhir-pain/referral/physiotherapy", kind="pain-phenotype", indicator="info", summary="s")
    assert "first-line-tried" in [r["code"] for r in card_for([referral], DATA).to_dict()["overrideReasons"]]


def test_missing_medication_history_is_owned_up_to_by_treatment_response_cards_only():
    data = PatientData(patient_id="p1", now=NOW, missing=(MEDICATION_HISTORY,))
    response = Finding(rule="fhir-pain/analgesic-non-response", kind="treatment-response", indicator="warning",
                       summary="s", detail="d")
    assert "**Data not available:** earlier prescriptions" in card_for([response], data).to_dict()["detail"]
    assert "Data not available" not in card_for([cpic()], data).to_dict()["detail"]


def removal(**kw) -> Finding:
    """CPIC Strong avoid with no replacement to draft (CPIC names a class, not a drug)."""
    return cpic(alternatives=(), extra={"offerRemoval": True}, **kw)


def test_avoid_without_a_replacement_offers_a_delete_only_suggestion_never_recommended():
    card = card_for([removal()], DATA).to_dict()
    assert check_cds_response({"cards": [card]}) == []
    [s] = card["suggestions"]
    assert s["label"] == "Remove the codeine draft; choose another analgesic"
    assert s["actions"] == [{"type": "delete", "description": "Remove the draft order for codeine",
                             "resourceId": "MedicationRequest/rx1"}]
    assert "isRecommended" not in s and card["selectionBehavior"] == "any"


def test_no_delete_only_for_active_meds_combinations_drafts_without_id_or_when_a_replacement_is_offered():
    assert "suggestions" not in card_for([removal(m=med(draft=False))], DATA).to_dict()
    assert "suggestions" not in card_for([removal(m=med(ref="urn:uuid:1f0e"))], DATA).to_dict()
    combo = MedicationUse(ref="MedicationRequest/rx1", status="draft", intent="order",
                          ingredients=(Drug("161", "acetaminophen"), CODEINE),
                          text="Acetaminophen 300 MG / Codeine Phosphate 30 MG Oral Tablet", is_draft=True)
    assert "suggestions" not in card_for([removal(m=combo)], DATA).to_dict()
    replaced = card_for([cpic(extra={"offerRemoval": True})], DATA).to_dict()
    assert [s["label"] for s in replaced["suggestions"]] == ["Replace codeine with morphine (new draft without dose)"]


def test_delete_only_needs_the_rules_offer_and_an_avoid_or_alternative_action():
    # a use-alternative finding that does not offer removal (non-response: opioids are tapered, not stopped)
    response = cpic(rule="fhir-pain/analgesic-non-response", kind="treatment-response", action="use-alternative",
                    indicator="warning", alternatives=())
    assert "suggestions" not in card_for([response], DATA).to_dict()
    assert "suggestions" not in card_for([removal(action="reduce-dose", indicator="warning")], DATA).to_dict()
    non_analgesic = removal(drug=Drug("26225", "ondansetron"), action="use-alternative", indicator="warning")
    assert card_for([non_analgesic], DATA).to_dict()["suggestions"][0]["label"] == \
        "Remove the ondansetron draft; choose an alternative"


def test_age_limit_card_leads_the_drug_card_with_its_own_override_reasons_and_no_unrelated_missing_data():
    age = Finding(rule="fhir-pain/age-limit/codeine", kind="informational", indicator="critical", action="avoid",
                  summary="Age 7: codeine is contraindicated under 12 years (FDA)", detail="**Why:** ...",
                  drug=CODEINE, medication=med(), evidence=("Patient/p1", "MedicationRequest/rx1"),
                  knowledge={"source": "fhir-pain rules (FDA Drug Safety Communication 2017-04-20)",
                             "version": "1.0.0", "url": "https://www.fda.gov/x"},
                  extra={"joins": "drug", "primary": True, "offerRemoval": True, "relevantMissing": ()})
    [group] = group_findings([removal(), age])
    card = card_for(group, PatientData(patient_id="p1", now=NOW, missing=(PAIN,))).to_dict()
    assert card["summary"] == age.summary and card["indicator"] == "critical"
    assert [f["rule"] for f in card["extension"]["io.fhir-pain.findings"]] == ["cpic/codeine/CYP2D6",
                                                                             "fhir-pain/age-limit/codeine"]
    assert [r["code"] for r in card["overrideReasons"]] == ["birth-date-wrong", "specialist-supervised",
                                                            "palliative-care"]
    assert len(card["suggestions"]) == 1 and card["suggestions"][0]["actions"][0]["type"] == "delete"
    alone = card_for([age], PatientData(patient_id="p1", now=NOW, missing=(PAIN, MEDICATIONS))).to_dict()
    assert "Data not available" not in alone["detail"]
