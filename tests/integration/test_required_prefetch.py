"""412 for each clinical service, over HTTP, when the patient (its required prefetch key) cannot be had.

CDS Hooks 2.0.1 §Prefetch: a service that cannot obtain the data it requires answers 412. The services require
``patient`` (published in discovery as ``extension["io.fhir-pain.requiredPrefetch"]``); every other key is
optional and its absence is stated on the cards. The FHIR server "down" is a real closed port.
"""
from __future__ import annotations

import socket

import pytest

from cds_hooks import schemas
from fhir_pain.services import SERVICE_IDS
from golden.fhir_builders import draft, hook_request, patient, prefetch

NOW = "2026-05-01T12:00:00Z"
TOKEN = "opaque-token-of-the-ehr"
HOOKS = sorted(SERVICE_IDS)


@pytest.fixture(scope="module")
def down_base() -> str:
    """The base URL of a FHIR server that is down: a loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/fhir"


@pytest.fixture
def client(app_factory, down_base):
    return app_factory(REGISTER_CLINICAL_SERVICES=True, NOW=NOW, FHIR_SERVER_ALLOWLIST=[down_base],
                       FHIR_DEADLINE_S=1.0).test_client()


def call(hook: str, fhir_server: str | None, prefetch_: dict | None) -> dict:
    drafts = [] if hook == "patient-view" else [draft("rx1", "p1", "2670", "codeine phosphate 30 MG Oral Tablet")]
    body = hook_request(hook, "p1", name=f"required-{hook}", drafts=drafts, prefetch=prefetch_)
    del body["fhirServer"]
    if fhir_server:
        body["fhirServer"] = fhir_server
        body["fhirAuthorization"] = {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 300,
                                     "scope": "patient/*.read", "subject": "fhir-pain"}
    return body


def precondition_failed(response) -> dict:
    assert response.status_code == 412, response.get_data(as_text=True)
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome" and len(outcome["issue"]) == 1
    issue = outcome["issue"][0]
    assert (issue["severity"], issue["code"], issue["expression"]) == ("error", "processing", ["patient"])
    assert TOKEN not in response.get_data(as_text=True)
    return issue


def test_discovery_says_which_keys_are_required(client):
    body = client.get("/cds-services").get_json()
    assert schemas.first_error("discovery", body) is None
    assert {s["id"]: s["extension"]["io.fhir-pain.requiredPrefetch"] for s in body["services"]} == {
        sid: ["patient"] for sid in SERVICE_IDS.values()}


@pytest.mark.parametrize("hook", HOOKS)
def test_no_prefetch_and_the_fhir_server_down_is_412_naming_the_patient(client, down_base, hook):
    response = client.post(f"/cds-services/{SERVICE_IDS[hook]}", json=call(hook, down_base, None))
    issue = precondition_failed(response)
    assert issue["diagnostics"] == ("required prefetch data could not be obtained: patient (the FHIR server could "
                                    "not be reached, or its answer is not usable FHIR)")


@pytest.mark.parametrize("hook", HOOKS)
def test_no_prefetch_and_no_fhir_access_is_412(client, hook):
    response = client.post(f"/cds-services/{SERVICE_IDS[hook]}", json=call(hook, None, None))
    assert precondition_failed(response)["diagnostics"] == (
        "required prefetch data could not be obtained: patient (not in the prefetch, and no allowed fhirServer "
        "to fetch it from)")


@pytest.mark.parametrize("hook", HOOKS)
def test_a_null_patient_is_412(client, hook):
    response = client.post(f"/cds-services/{SERVICE_IDS[hook]}",
                           json=call(hook, None, prefetch("p1") | {"patient": None}))
    assert "patient (the EHR sent null: no such resource)" in precondition_failed(response)["diagnostics"]


@pytest.mark.parametrize("hook", HOOKS)
def test_with_the_patient_the_optional_keys_missing_still_give_cards_that_say_so(client, down_base, hook):
    response = client.post(f"/cds-services/{SERVICE_IDS[hook]}",
                           json=call(hook, down_base, {"patient": patient("p1")}))
    assert response.status_code == 200, response.get_data(as_text=True)
    summaries = [c["summary"] for c in response.get_json()["cards"]]
    if hook == "patient-view":
        assert summaries == ["Pharmacogenomic results could not be retrieved"]
    else:
        assert summaries == ["PGx results could not be retrieved: CYP2D6 check for codeine not done"]
