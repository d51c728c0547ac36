"""The three clinical services end to end: discovery, hooks over HTTP (with prefetch fallback to a mocked FHIR
server), and the ``fhir-pain evaluate`` subcommand."""
from __future__ import annotations

import json
import re

import pytest
import responses

from fhir_pain.cli import main as cli_main
from fhir_pain.fhir_models import check_cds_response
from fhir_pain.services import SERVICE_IDS, prefetch_templates
from golden.fhir_builders import (
    day, draft, genotype, hook_request, medication_request, nrs, patient, prefetch, searchset,
)

FHIR = "https://ehr.example.org/fhir"
NOW = "2026-05-01T12:00:00Z"


@pytest.fixture
def client(app_factory):
    return app_factory(REGISTER_CLINICAL_SERVICES=True, NOW=NOW, FHIR_SERVER_ALLOWLIST=[FHIR]).test_client()


def test_discovery_lists_the_three_services_with_prefetch_templates(client):
    services = {s["id"]: s for s in client.get("/cds-services").get_json()["services"]}
    assert {sid: s["hook"] for sid, s in services.items()} == {v: k for k, v in SERVICE_IDS.items()}
    for s in services.values():
        assert s["prefetch"] == prefetch_templates() and s["description"] and s["usageRequirements"]
        for template in s["prefetch"].values():
            assert set(re.findall(r"\{\{(.*?)\}\}", template)) == {"context.patientId"}
    templates = prefetch_templates()
    assert "code=84413-4,53040-2" in templates["pgxResults"]
    assert all(code in templates["painAssessments"] for code in ("72514-3", "44261-6", "pcs-total", "dn4-total"))
    assert templates["activeMedications"].endswith("&status=active")
    assert templates["medicationHistory"] == \
        "MedicationRequest?patient={{context.patientId}}&status=completed,stopped,on-hold"
    assert max(len(t) for t in templates.values()) < 1024     # prefetch URLs stay short


def test_patient_view_links_a_renewal_through_the_medication_history_prefetch(client):
    gaba = ("25480", "gabapentin 300 MG Oral Capsule")
    renewal = medication_request("a2", "p1", *gaba, authored=day(-30), prior="a1")
    first = medication_request("a1", "p1", *gaba, status="completed", authored=day(-120))
    pain = [nrs("n0", "p1", 7, day(-130)), nrs("n1", "p1", 7, day(-7))]

    def summaries(**kw):
        body = hook_request("patient-view", "p1", name="t-history", prefetch=prefetch("p1", pain=pain, **kw))
        return [c["summary"] for c in client.post("/cds-services/pain-pgx-patient-view", json=body).get_json()["cards"]]
    assert any(s.startswith("No meaningful response to gabapentin") for s in summaries(meds=[renewal],
                                                                                        history=[first]))
    assert not any("gabapentin" in s for s in summaries(meds=[renewal], omit=("medicationHistory",)))


def test_order_sign_with_full_prefetch(client):
    body = hook_request("order-sign", "p1", name="t1", drafts=[draft("rx1", "p1", "2670", "codeine 30 MG Oral Tablet")],
                        prefetch=prefetch("p1", pgx=[genotype("g1", "p1", "CYP2D6", "*4/*4")]))
    r = client.post("/cds-services/pain-pgx-order-sign", json=body)
    assert r.status_code == 200
    out = r.get_json()
    assert check_cds_response(out) == []
    assert [c["indicator"] for c in out["cards"]] == ["critical"]


def test_sandbox_first_order_select_call_gets_no_cards(client, fixture_json):
    r = client.post("/cds-services/pain-pgx-order-select", json=fixture_json("sandbox/order-select-request-1.json"))
    assert r.status_code == 200 and r.get_json() == {"cards": []}


@responses.activate
def test_missing_prefetch_is_fetched_from_the_fhir_server(client):
    responses.get(re.compile(re.escape(FHIR) + r"/Observation\?.*code=84413-4.*"),
                  json=searchset(genotype("g1", "p1", "CYP2D6", "*4/*4")))
    responses.get(re.compile(re.escape(FHIR) + r"/Observation\?.*code=72514-3.*"), json=searchset())
    responses.get(re.compile(re.escape(FHIR) + r"/Condition\?.*"), json=searchset())
    responses.get(re.compile(re.escape(FHIR) + r"/MedicationRequest\?.*"), json=searchset())
    body = hook_request("order-select", "p1", name="t2", drafts=[draft("rx1", "p1", "2670", "codeine 30 MG")],
                        prefetch={"patient": patient("p1")})
    body["fhirAuthorization"] = {"access_token": "secret-token", "token_type": "Bearer", "expires_in": 300,
                                 "scope": "patient/*.read", "subject": "cds-service"}
    out = client.post("/cds-services/pain-pgx-order-select", json=body).get_json()
    assert [c["summary"].split(":")[0] for c in out["cards"]] == ["CYP2D6 poor metabolizer"]
    assert "Data not available" not in out["cards"][0]["detail"]
    assert all(call.request.headers["Authorization"] == "Bearer secret-token" for call in responses.calls)


@responses.activate
def test_a_failing_fhir_server_degrades_and_the_card_says_what_was_missing(client):
    responses.get(re.compile(re.escape(FHIR) + r"/Observation\?.*code=84413-4.*"),
                  json=searchset(genotype("g1", "p1", "CYP2D6", "*4/*4")))
    responses.get(re.compile(re.escape(FHIR) + r"/.*"), status=500)
    body = hook_request("order-sign", "p1", name="t3", drafts=[draft("rx1", "p1", "2670", "codeine 30 MG")],
                        prefetch={"patient": patient("p1")})
    r = client.post("/cds-services/pain-pgx-order-sign", json=body)
    assert r.status_code == 200
    [card] = r.get_json()["cards"]
    assert card["indicator"] == "critical"
    assert "**Data not available:** active medication list." in card["detail"]


# ---- fhir-pain evaluate -------------------------------------------------------------------------------------

def _write(tmp_path, body) -> str:
    path = tmp_path / "request.json"
    path.write_text(json.dumps(body))
    return str(path)


def test_evaluate_prints_the_response(tmp_path, capsys):
    body = hook_request("order-sign", "p1", name="t4", drafts=[draft("rx1", "p1", "2670", "codeine 30 MG")],
                        prefetch=prefetch("p1", pgx=[genotype("g1", "p1", "CYP2D6", "*4/*4")]))
    assert cli_main(["evaluate", _write(tmp_path, body), "--now", NOW]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [c["indicator"] for c in out["cards"]] == ["critical"]


def test_evaluate_with_an_explicit_service_and_errors(tmp_path, capsys):
    body = hook_request("patient-view", "p1", name="t5", prefetch=prefetch("p1"))
    path = _write(tmp_path, body)
    assert cli_main(["evaluate", path, "--service", "pain-pgx-patient-view"]) == 0
    assert json.loads(capsys.readouterr().out) == {"cards": []}
    assert cli_main(["evaluate", str(tmp_path / "nope.json")]) == 2
    assert cli_main(["evaluate", _write(tmp_path, {"hook": "encounter-start"})]) == 2
    assert cli_main(["evaluate", path, "--now", "yesterday"]) == 2
    bad = _write(tmp_path, {"hook": "order-sign", "context": {}})        # invalid request: the app's 400 is printed
    assert cli_main(["evaluate", bad]) == 1
    assert json.loads(capsys.readouterr().out)["resourceType"] == "OperationOutcome"


def test_evaluate_with_a_bad_setting_in_the_environment_says_which_without_a_traceback(tmp_path, capsys,
                                                                                      monkeypatch):
    monkeypatch.setenv("FHIR_PAIN_GUIDELINES", "bogus")
    path = _write(tmp_path, hook_request("patient-view", "p1", name="t6", prefetch=prefetch("p1")))
    assert cli_main(["evaluate", path]) == 2
    err = capsys.readouterr().err
    assert "GUIDELINES" in err and "Traceback" not in err
