"""The safety signals through the real services (order-select / order-sign over the Flask test client): PHQ-9 item 9
with a tricyclic or an opioid, the FDA limits of codeine and tramadol, and possible neuropathic pain."""
from __future__ import annotations

import re

import pytest
import responses

from fhir_pain.fhir_models import check_cds_response
from fhir_pain.services import prefetch_templates
from golden.fhir_builders import (
    bmi_percentile, breastfeeding_status, condition, day, draft, genotype, hook_request, patient, phq9_panel,
    procedure, project_score, searchset,
)

FHIR = "https://ehr.example.org/fhir"
NOW = "2026-05-01T12:00:00Z"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
CPT = "http://www.ama-assn.org/go/cpt"
CODEINE = ("2670", "codeine phosphate 30 MG Oral Tablet")
TRAMADOL = ("10689", "tramadol hydrochloride 50 MG Oral Tablet")
AMITRIPTYLINE = ("704", "amitriptyline hydrochloride 10 MG Oral Tablet")
OXYCODONE = ("7804", "oxycodone hydrochloride 5 MG Oral Tablet")
ITEM9 = phq9_panel("phq", "p1", [1, 1, 1, 0, 0, 1, 0, 0, 2], day(-6))


@pytest.fixture
def client(app_factory):
    return app_factory(REGISTER_CLINICAL_SERVICES=True, NOW=NOW, FHIR_SERVER_ALLOWLIST=[FHIR]).test_client()


def call(client, hook, order, *, birth="1990-06-01", procedures=(), safety_obs=(), omit=(), **kw):
    from golden.fhir_builders import prefetch
    body = hook_request(hook, "p1", name=f"safety-{hook}", drafts=[draft("rx1", "p1", *order)],
                        prefetch=prefetch("p1", birth=birth, procedures=list(procedures),
                                          safety_obs=list(safety_obs), omit=omit, **kw))
    r = client.post(f"/cds-services/pain-pgx-{hook}", json=body)
    assert r.status_code == 200, r.get_data(as_text=True)
    out = r.get_json()
    assert check_cds_response(out) == []
    return out["cards"]


def rules(card):
    return [f["rule"] for f in card["extension"]["io.fhir-pain.findings"]]


def creates(card):
    return [a["resource"]["resourceType"] for s in card.get("suggestions", ()) for a in s["actions"]
            if a["type"] == "create"]


def removes_draft(card):
    return any([a["type"] for a in s["actions"]] == ["delete"] for s in card.get("suggestions", ()))


def test_discovery_offers_the_procedure_and_safety_observation_templates_and_keeps_the_others(client):
    t = prefetch_templates()
    assert t["procedures"] == "Procedure?patient={{context.patientId}}"
    assert t["safetyObservations"] == "Observation?patient={{context.patientId}}&code=59576-9,39156-5,63895-7,413712001"
    assert {"patient", "pgxResults", "painAssessments", "conditions", "activeMedications",
            "medicationHistory"} <= set(t)


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_phq9_item9_with_amitriptyline_warns_and_offers_no_tricyclic_draft(client, hook):
    cards = call(client, hook, AMITRIPTYLINE, pain=[ITEM9],
                 pgx=[genotype("g1", "p1", "CYP2C19", "*17/*17"), genotype("g2", "p1", "CYP2D6", "*1/*1")])
    warning = next(c for c in cards if rules(c) == ["fhir-pain/safety/phq9-item9-overdose/amitriptyline"])
    assert warning["indicator"] == "warning" and "limit the supply" in warning["summary"]
    assert warning["extension"]["io.fhir-pain.findings"][0]["kind"] == "safety"
    assert {o["code"] for o in warning["overrideReasons"]} == {"risk-assessed", "in-mental-health-care",
                                                                "supervised-supply"}
    assert cards[0] is warning or cards[0]["indicator"] == "critical"
    assert not any("MedicationRequest" in creates(c) for c in cards)          # CPIC named nortriptyline: held back


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_phq9_item9_with_codeine_warns_about_opioid_overdose(client, hook):
    cards = call(client, hook, CODEINE, pain=[ITEM9], pgx=[genotype("g1", "p1", "CYP2D6", "*1/*1")])
    [card] = [c for c in cards if "fhir-pain/safety/phq9-item9-overdose/codeine" in rules(c)]
    assert card["indicator"] == "warning" and "naloxone" in card["detail"]


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_15_year_old_after_tonsillectomy_gets_a_critical_card_that_removes_the_codeine_draft(client, hook):
    tonsils = procedure("pr1", "p1", "42821", "Tonsillectomy and adenoidectomy; age 12 or over", day(-1), system=CPT)
    [card] = call(client, hook, CODEINE, birth="2010-11-02", procedures=[tonsils])
    assert card["indicator"] == "critical" and rules(card) == ["fhir-pain/fda-limit/tonsillectomy/codeine"]
    assert removes_draft(card) and creates(card) == []
    assert {o["code"] for o in card["overrideReasons"]} == {"not-postoperative", "record-wrong",
                                                             "specialist-supervised"}
    assert card["links"][0]["label"] == "FDA Drug Safety Communication 2017-04-20"
    assert card["extension"]["io.fhir-pain.findings"][0]["knowledge"]["source"] == "FDA"


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_14_year_old_with_sleep_apnoea_gets_a_warning_for_tramadol(client, hook):
    osa = condition("osa", "p1", "G47.33", "Obstructive sleep apnea (adult) (pediatric)", day(-200), system=ICD10CM)
    [card] = call(client, hook, TRAMADOL, birth="2011-09-20", conditions=[osa])
    # no genotype on file: the CPIC pre-test alert joins the drug's card; the FDA warning leads it
    assert card["indicator"] == "warning" and rules(card) == ["fhir-pain/fda-limit/breathing-risk/tramadol",
                                                              "cpic-pretest/tramadol/CYP2D6"]
    assert card["summary"].startswith("Age 14 with obstructive sleep apnoea") and removes_draft(card)
    assert "Data not available" not in card["detail"]


def test_obesity_from_the_percentile_prefetch_and_missing_bmi_data_is_owned_up_to(client):
    [card] = call(client, "order-sign", CODEINE, birth="2011-09-20",
                  safety_obs=[bmi_percentile("pct", "p1", 98, day(-30))])
    assert card["summary"].startswith("Age 14 with obesity")
    osa = condition("osa", "p1", "G47.33", "Obstructive sleep apnea", day(-200), system=ICD10CM)
    [card] = call(client, "order-sign", CODEINE, birth="2011-09-20", conditions=[osa], omit=("safetyObservations",))
    assert "**Data not available:** BMI and breastfeeding status." in card["detail"]


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_breastfeeding_codeine_gets_a_warning(client, hook):
    [card] = call(client, hook, CODEINE, gender="female",
                  safety_obs=[breastfeeding_status("bf", "p1", True, day(-20))])
    assert card["indicator"] == "warning" and "fhir-pain/fda-limit/breastfeeding/codeine" in rules(card)
    assert card["summary"].startswith("Breastfeeding on record: codeine is not recommended")
    assert {o["code"] for o in card["overrideReasons"]} == {"not-breastfeeding", "infant-monitored", "no-alternative"}


def test_a_genotype_warning_and_an_fda_warning_share_the_drug_card_led_by_the_fda(client):
    # CYP2D6 intermediate metabolizer (CPIC: monitor, a warning) + breastfeeding (FDA: not recommended)
    [card] = call(client, "order-sign", CODEINE, pgx=[genotype("g1", "p1", "CYP2D6", "*4/*41")],
                  safety_obs=[breastfeeding_status("bf", "p1", True, day(-20))])
    assert card["summary"].startswith("Breastfeeding on record") and len(rules(card)) == 2


@responses.activate
def test_procedures_are_fetched_from_the_fhir_server_when_not_prefetched(client):
    responses.get(re.compile(re.escape(FHIR) + r"/Procedure\?patient=p1$"),
                  json=searchset(procedure("pr1", "p1", "173422009", "Tonsillectomy", day(-2))))
    responses.get(re.compile(re.escape(FHIR) + r"/.*"), json=searchset())
    body = hook_request("order-sign", "p1", name="safety-fetch", drafts=[draft("rx1", "p1", *TRAMADOL)],
                        prefetch={"patient": patient("p1", birth="2009-12-24")})
    body["fhirAuthorization"] = {"access_token": "secret-token", "token_type": "Bearer", "expires_in": 300,
                                 "scope": "patient/*.read", "subject": "cds-service"}
    [card] = client.post("/cds-services/pain-pgx-order-sign", json=body).get_json()["cards"]
    assert card["indicator"] == "critical" and rules(card)[0] == "fhir-pain/fda-limit/tonsillectomy/tramadol"


def test_dn4_alone_with_an_opioid_gives_advice_and_no_drafts(client):
    dn4 = project_score("dn4", "p1", "dn4-total", 6, day(-30))
    cards = call(client, "order-sign", OXYCODONE, pain=[dn4], pgx=[genotype("g1", "p1", "CYP2D6", "*1/*1")])
    [card] = [c for c in cards if "fhir-pain/opioid-for-neuropathic-pain" in rules(c)]
    assert card["indicator"] == "info" and creates(card) == [] and "Possible neuropathic pain" in card["summary"]
