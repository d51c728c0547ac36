"""The HTTP layer against the CDS Hooks 2.0.1 checklist: discovery, service calls, feedback, errors as
OperationOutcome, CORS, JWT on the wire, one log line per call. Requests are the spec's examples, the Hook
Library's R4 contexts and real CDS Hooks Sandbox captures."""
from __future__ import annotations

import io
import json
import logging

import jwt
import pytest
import responses
from cds_jwt_keys import EHR_ISS, mint

from cds_hooks import Card, CDSResponse, Service, Source, Suggestion, Action
from cds_hooks import schemas
from cds_hooks.errors import PreconditionFailed

SANDBOX_KID = "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f"
SANDBOX_JKU = "https://sandbox.cds-hooks.org/.well-known/jwks.json"
FHIR = "https://ehr.example.org/fhir"
seen = []  # HookRequests the echo handler received


def echo(request):
    seen.append(request)
    if not request.context.get("draftOrders", {}).get("entry", [{}])[0].get("resource", {}).get(
            "medicationCodeableConcept") and request.hook == "order-select":
        return []  # the sandbox's first order-select has no medication yet
    return CDSResponse(cards=[Card(
        summary=f"{request.hook} for {request.patient_id}", indicator="info", source=Source(label="test"),
        suggestions=[Suggestion(label="Remove the draft", actions=[
            Action(type="delete", description="remove", resource_id="MedicationRequest/request-123")])],
        selection_behavior="at-most-one")])


def register(app, **service):
    spec = {"id": "svc", "hook": "patient-view", "title": "Test", "description": "test service",
            "handler": echo, "prefetch": {"patient": "Patient/{{context.patientId}}"}}
    spec.update(service)
    return app.extensions["cds_hooks"].registry.register(Service(**spec))


def oo_diagnostics(response) -> str:
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["severity"] == "error"
    return body["issue"][0].get("diagnostics", "")


@pytest.fixture
def app(app_factory):
    seen.clear()
    app = app_factory()
    register(app, id="pv")
    register(app, id="os", hook="order-select")
    register(app, id="sign", hook="order-sign")
    return app


@pytest.fixture
def client(app):
    return app.test_client()


def full_request(fixture_json, name: str, hook: str) -> dict:
    """A Hook Library context example wrapped into a complete call."""
    return {"hook": hook, "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
            "context": fixture_json(f"cds-hooks/{name}")["context"]}


# -- discovery ---------------------------------------------------------------------------------------------------

def test_discovery_without_services_is_an_empty_list(app_factory):
    response = app_factory().test_client().get("/cds-services")
    assert response.status_code == 200 and response.get_json() == {"services": []}


def test_discovery_lists_services_and_validates(client):
    for path in ("/cds-services", "/cds-services/"):
        body = client.get(path).get_json()
        assert [s["id"] for s in body["services"]] == ["pv", "os", "sign"]
        assert schemas.first_error("discovery", body) is None
    assert client.get("/cds-services").headers["Content-Type"] == "application/json"


def test_discovery_publishes_required_prefetch_keys_in_the_service_extension(app_factory):
    app = app_factory()
    register(app, prefetch={"patient": "Patient/{{context.patientId}}", "meds": "MedicationRequest?patient="
                            "{{context.patientId}}", "pgx": "Observation?patient={{context.patientId}}"},
             required_prefetch=frozenset({"pgx", "patient"}), extension={"example.org/owner": "pharmacy"})
    body = app.test_client().get("/cds-services").get_json()
    assert schemas.first_error("discovery", body) is None
    assert body["services"][0]["extension"] == {"example.org/owner": "pharmacy",
                                                "io.fhir-pain.requiredPrefetch": ["patient", "pgx"]}


# -- service calls -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("capture,service", [("patient-view-request.json", "pv"),
                                             ("order-select-request-1.json", "os"),
                                             ("order-select-request-2.json", "os"),
                                             ("order-select-request-3.json", "os")])
def test_sandbox_captures_are_accepted(client, fixture_json, capture, service):
    # includes the sandbox's non-R4 shapes: reasonCode/category as objects, draftOrders without Bundle.type
    response = client.post(f"/cds-services/{service}", json=fixture_json(f"sandbox/{capture}"))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert schemas.first_error("response", body) is None
    if capture == "order-select-request-1.json":
        assert body == {"cards": []}
    else:
        assert body["cards"][0]["summary"].endswith("pat-1")
    assert seen[-1].prefetch["patient"]["id"] == "pat-1" and seen[-1].missing == ()


def test_spec_request_example(client, fixture_json):
    request = fixture_json("cds-hooks/spec201-L0198-example.json")
    # the spec example's prefetch key is "patientToGreet": ours ("patient") is absent, and the example's
    # fhirServer is not allowlisted, so the service runs degraded with "patient" missing
    response = client.post("/cds-services/pv", json=request)
    assert response.status_code == 200
    hook_request = seen[-1]
    assert (hook_request.hook, hook_request.hook_instance) == ("patient-view", request["hookInstance"])
    assert (hook_request.patient_id, hook_request.user_id, hook_request.encounter_id) == (
        "1288992", "Practitioner/example", "89284")
    assert hook_request.fhir_server == request["fhirServer"] and hook_request.missing == ("patient",)


@pytest.mark.parametrize("name,hook,service", [("order-select-L0050-example-r4.json", "order-select", "os"),
                                               ("order-sign-L0052-example-r4.json", "order-sign", "sign"),
                                               ("patient-view-L0031-examples.json", "patient-view", "pv"),
                                               ("patient-view-L0038-examples.json", "patient-view", "pv")])
def test_hook_library_r4_contexts_are_accepted(client, fixture_json, name, hook, service):
    # order-select's example has doseAndRate as an object, not a list: lenient in
    response = client.post(f"/cds-services/{service}", json=full_request(fixture_json, name, hook))
    assert response.status_code == 200, response.get_json()


def test_extension_on_the_request_is_accepted(client, fixture_json):
    request = fixture_json("cds-hooks/spec201-L1119-extensions.json")
    request["context"]["patientId"] = "1288992"
    assert client.post("/cds-services/pv", json=request).status_code == 200


@pytest.mark.parametrize("mutate,field", [
    (lambda r: r.pop("hookInstance"), "hookInstance"),
    (lambda r: r.pop("context"), "context"),
    (lambda r: r["context"].pop("patientId"), "context.patientId"),
    (lambda r: r["context"].update(userId="example"), "context.userId"),
    (lambda r: r.update(fhirServer="not a url"), "fhirServer"),
    (lambda r: r.pop("fhirServer"), "fhirServer"),  # fhirAuthorization requires fhirServer (cds-r-1)
    (lambda r: r["fhirAuthorization"].pop("access_token"), "fhirAuthorization.access_token"),
    (lambda r: r["fhirAuthorization"].update(expires_in="300"), "fhirAuthorization.expires_in"),
    (lambda r: r["prefetch"].update(patientToGreet="123"), "prefetch.patientToGreet"),
    (lambda r: r.update(extension=[]), "extension"),
])
def test_schema_violations_are_400_naming_the_field(client, fixture_json, mutate, field):
    request = fixture_json("cds-hooks/spec201-L0198-example.json")
    mutate(request)
    response = client.post("/cds-services/pv", json=request)
    assert response.status_code == 400
    assert oo_diagnostics(response).startswith(field)


def test_order_hooks_require_their_context(client, fixture_json):
    request = fixture_json("sandbox/order-select-request-2.json")
    del request["context"]["selections"]
    assert "selections" in oo_diagnostics(client.post("/cds-services/os", json=request))
    request = fixture_json("sandbox/order-select-request-2.json")
    request["context"]["draftOrders"] = {"resourceType": "Patient"}
    assert client.post("/cds-services/os", json=request).status_code == 400


def test_hook_must_match_the_service(client, fixture_json):
    response = client.post("/cds-services/os", json=fixture_json("sandbox/patient-view-request.json"))
    assert response.status_code == 400 and "answers hook 'order-select'" in oo_diagnostics(response)


def test_unknown_service_404(client, fixture_json):
    response = client.post("/cds-services/nope", json=fixture_json("sandbox/patient-view-request.json"))
    assert response.status_code == 404 and oo_diagnostics(response)
    assert client.get("/no-such-path").status_code == 404


def test_wrong_method_405(client):
    response = client.get("/cds-services/pv")
    assert response.status_code == 405 and "POST" in response.headers["Allow"]
    assert response.get_json()["resourceType"] == "OperationOutcome"
    assert client.delete("/cds-services").status_code == 405


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_wrong_content_type_415(client, fixture_json, content_type):
    data = json.dumps(fixture_json("sandbox/patient-view-request.json"))
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/cds-services/pv", data=data, headers=headers)
    assert response.status_code == 415 and response.get_json()["resourceType"] == "OperationOutcome"


def test_fhir_json_content_type_is_fine(client, fixture_json):
    data = json.dumps(fixture_json("sandbox/patient-view-request.json"))
    assert client.post("/cds-services/pv", data=data,
                       headers={"Content-Type": "application/fhir+json; charset=utf-8"}).status_code == 200


def test_body_over_the_limit_413(app_factory, fixture_json):
    app = app_factory(MAX_CONTENT_LENGTH=2000)
    register(app)
    request = fixture_json("sandbox/patient-view-request.json")  # ~4 KB
    response = app.test_client().post("/cds-services/svc", json=request)
    assert response.status_code == 413 and response.get_json()["resourceType"] == "OperationOutcome"
    # a chunked body without Content-Length (gunicorn marks such input as terminated) is cut off too
    response = app.test_client().post("/cds-services/svc", input_stream=io.BytesIO(json.dumps(request).encode()),
                                      headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
                                      environ_overrides={"wsgi.input_terminated": True})
    assert response.status_code == 413


@pytest.mark.parametrize("body", [b"{not json", b"", b"[]", b"null", b'"string"', b"\xff\xfe"])
def test_malformed_json_400(client, body):
    response = client.post("/cds-services/pv", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.get_json()["resourceType"] == "OperationOutcome"


@responses.activate
def test_required_prefetch_unavailable_412_names_the_key(app_factory, fixture_json):
    app = app_factory(FHIR_SERVER_ALLOWLIST=[FHIR])
    register(app, required_prefetch=frozenset({"patient"}))
    responses.get(f"{FHIR}/Patient/1288992", status=401)
    request = fixture_json("cds-hooks/spec201-L0198-example.json")
    request["fhirServer"] = FHIR
    del request["prefetch"]
    response = app.test_client().post("/cds-services/svc", json=request)
    assert response.status_code == 412
    issue = response.get_json()["issue"][0]
    assert issue["code"] == "processing" and "patient" in issue["diagnostics"] and issue["expression"] == ["patient"]
    assert responses.calls[0].request.headers["Authorization"] == "Bearer some-opaque-fhir-access-token"


@responses.activate
def test_missing_prefetch_is_fetched_for_the_handler(app_factory, fixture_json):
    app = app_factory(FHIR_SERVER_ALLOWLIST=[FHIR])
    register(app, required_prefetch=frozenset({"patient"}))
    patient = {"resourceType": "Patient", "id": "1288992", "gender": "male"}
    responses.get(f"{FHIR}/Patient/1288992", json=patient)
    request = fixture_json("cds-hooks/spec201-L0198-example.json")
    request["fhirServer"] = FHIR
    request["prefetch"] = {"patient": {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "timeout"}]}}
    response = app.test_client().post("/cds-services/svc", json=request)
    assert response.status_code == 200 and seen[-1].prefetch["patient"] == patient


def test_handler_may_raise_412_itself(app_factory, fixture_json):
    def needs_more(request):
        raise PreconditionFailed("no PGx results could be read", expression="pgx")
    app = app_factory()
    register(app, handler=needs_more)
    response = app.test_client().post("/cds-services/svc", json=fixture_json("sandbox/patient-view-request.json"))
    assert response.status_code == 412 and response.get_json()["issue"][0]["expression"] == ["pgx"]


def test_unexpected_error_is_500_without_internals(app_factory, fixture_json, caplog):
    def broken(request):
        value = "-".join(("secret", "patient", "name"))  # data, not source text: the log shows source lines
        raise KeyError(value)
    app = app_factory()
    register(app, handler=broken)
    with caplog.at_level(logging.INFO):
        response = app.test_client().post("/cds-services/svc",
                                          json=fixture_json("sandbox/patient-view-request.json"))
    assert response.status_code == 500
    assert response.get_json() == {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "exception", "diagnostics": "internal error"}]}
    errors = [r for r in caplog.records if r.name == "cds_hooks.error"]
    assert errors and "KeyError" in errors[0].getMessage() and "broken" in errors[0].getMessage()
    assert "secret-patient-name" not in caplog.text  # the exception's message may hold data: not logged


def test_handler_returning_none_or_empty_gives_empty_cards(app_factory, fixture_json):
    app = app_factory()
    register(app, handler=lambda r: None)
    response = app.test_client().post("/cds-services/svc", json=fixture_json("sandbox/patient-view-request.json"))
    assert response.status_code == 200 and response.get_json() == {"cards": []}


def test_double_slash_from_the_sandbox_is_served(client, fixture_json):
    response = client.post("/cds-services//pv", json=fixture_json("sandbox/patient-view-request.json"))
    assert response.status_code == 200


# -- feedback ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["cds-hooks/spec201-L0862-example-suggestion-accepted.json",
                                  "cds-hooks/spec201-L0894-example-overridden-guidance-without-overridereason.json",
                                  "cds-hooks/spec201-L0926-example-overridden-guidance-with-overridereason.json",
                                  "sandbox/feedback-order-select.json", "sandbox/feedback-patient-view.json"])
def test_feedback_examples_are_stored(app, client, fixture_json, name):
    body = fixture_json(name)
    response = client.post("/cds-services/pv/feedback", json=body)
    assert response.status_code == 200 and response.get_json() == {"stored": 1}
    [row] = app.extensions["fhir_pain.store"].list_feedback()
    entry = body["feedback"][0]
    assert (row["card_uuid"], row["outcome"], row["service_id"]) == (entry["card"], entry["outcome"], "pv")
    assert row["accepted_suggestions"] == [s["id"] for s in entry.get("acceptedSuggestions", [])]
    reason = entry.get("overrideReason", {})
    assert row["override_reason_code"] == reason.get("reason", {}).get("code")
    assert row["override_comment"] == reason.get("userComment")
    assert row["outcome_timestamp_raw"] == entry["outcomeTimestamp"]


@pytest.mark.parametrize("entry,field", [
    ({"card": "c", "outcome": "accepted", "outcomeTimestamp": "2021-12-11T10:05:31Z"},
     "feedback.0.acceptedSuggestions"),
    ({"card": "c", "outcome": "ignored", "outcomeTimestamp": "2021-12-11T10:05:31Z"}, "feedback.0.outcome"),
    ({"card": "c", "outcome": "overridden", "outcomeTimestamp": "yesterday"}, "feedback.0.outcomeTimestamp"),
    ({"card": "c", "outcome": "overridden", "outcomeTimestamp": "2021-12-11T10:05:31Z", "overrideReason": {}},
     "feedback.0.overrideReason"),
    ({"outcome": "overridden", "outcomeTimestamp": "2021-12-11T10:05:31Z"}, "feedback.0.card"),
])
def test_invalid_feedback_is_400_and_nothing_is_stored(app, client, entry, field):
    response = client.post("/cds-services/pv/feedback", json={"feedback": [entry]})
    assert response.status_code == 400 and oo_diagnostics(response).startswith(field)
    assert client.post("/cds-services/pv/feedback", json={"feedback": []}).status_code == 400
    assert app.extensions["fhir_pain.store"].list_feedback() == []


def test_feedback_for_an_unknown_service_404(client, fixture_json):
    body = fixture_json("sandbox/feedback-patient-view.json")
    assert client.post("/cds-services/nope/feedback", json=body).status_code == 404


# -- CORS --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/cds-services", "/cds-services/pv", "/cds-services/pv/feedback"])
def test_preflight_needs_no_jwt(app_factory, path):
    app = app_factory(AUTH="required")
    register(app, id="pv")
    response = app.test_client().options(path, headers={
        "Origin": "https://sandbox.cds-hooks.org", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] in ("*", "https://sandbox.cds-hooks.org")
    assert "authorization" in response.headers["Access-Control-Allow-Headers"].lower()
    assert "POST" in response.headers["Access-Control-Allow-Methods"]


def test_cors_header_on_every_response_errors_included(app_factory, fixture_json):
    app = app_factory(AUTH="required")
    register(app, id="pv")
    client = app.test_client()
    origin = {"Origin": "https://sandbox.cds-hooks.org"}
    for response in (client.get("/cds-services", headers=origin),
                     client.post("/cds-services/pv", json=fixture_json("sandbox/patient-view-request.json"),
                                 headers=origin),
                     client.get("/nowhere", headers=origin)):
        assert response.headers.get("Access-Control-Allow-Origin"), response.status_code


# -- JWT on the wire ---------------------------------------------------------------------------------------------

def auth_app(app_factory, key, **config):
    app = app_factory(AUTH="required", TRUSTED_ISSUERS=[{"iss": EHR_ISS, "jwks": key.jwks()}], **config)
    register(app, id="pv")
    return app


def test_auth_required_call_needs_a_valid_token(app_factory, es384_key, fixture_json, caplog):
    app = auth_app(app_factory, es384_key)
    client = app.test_client()
    request = fixture_json("sandbox/patient-view-request.json")
    with caplog.at_level(logging.INFO):
        response = client.post("/cds-services/pv", json=request)
        assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "Bearer"
        assert oo_diagnostics(response) == "Unauthorized"
        token = mint(es384_key, "http://localhost/cds-services/pv", jku=None, claims={"tenant": "t-1"})
        ok = client.post("/cds-services/pv", json=request, headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200 and seen[-1].issuer == EHR_ISS and seen[-1].tenant == "t-1"
        replay = client.post("/cds-services/pv", json=request, headers={"Authorization": f"Bearer {token}"})
        assert replay.status_code == 401 and replay.get_json() == response.get_json()  # same bare answer
    assert token not in caplog.text and token.split(".")[2] not in caplog.text
    access = [json.loads(r.getMessage()) for r in caplog.records if r.name == "cds_hooks.access"]
    assert [a.get("auth_failure") for a in access] == ["no-token", None, "replayed-jti"]
    assert access[1]["iss"] == EHR_ISS and access[1]["jti"]


def test_unauthenticated_callers_learn_nothing(app_factory, es384_key):
    client = auth_app(app_factory, es384_key).test_client()
    for path, kwargs in (("/cds-services/nope", {"json": {}}), ("/cds-services/pv", {"data": "x"}),
                         ("/cds-services/pv/feedback", {"json": {}})):
        assert client.post(path, **kwargs).status_code == 401


def test_feedback_requires_the_jwt_and_stores_its_issuer(app_factory, es384_key, fixture_json):
    app = auth_app(app_factory, es384_key)
    body = fixture_json("sandbox/feedback-order-select.json")
    client = app.test_client()
    assert client.post("/cds-services/pv/feedback", json=body).status_code == 401
    token = mint(es384_key, "http://localhost/cds-services/pv/feedback", claims={"tenant": "t-9"}, jku=None)
    assert client.post("/cds-services/pv/feedback", json=body,
                       headers={"Authorization": f"Bearer {token}"}).status_code == 200
    [row] = app.extensions["fhir_pain.store"].list_feedback()
    assert (row["issuer"], row["tenant"]) == (EHR_ISS, "t-9")


def test_aud_is_the_public_base_url_behind_a_proxy(app_factory, es384_key, fixture_json):
    app = auth_app(app_factory, es384_key, PUBLIC_BASE_URL="https://cds.example.org/")
    client = app.test_client()
    request = fixture_json("sandbox/patient-view-request.json")
    internal = mint(es384_key, "http://localhost/cds-services/pv", jku=None)
    public = mint(es384_key, "https://cds.example.org/cds-services/pv", jku=None)
    assert client.post("/cds-services/pv", json=request,
                       headers={"Authorization": f"Bearer {internal}"}).status_code == 401
    assert client.post("/cds-services/pv", json=request,
                       headers={"Authorization": f"Bearer {public}"}).status_code == 200


def test_aud_is_the_path_as_called_with_double_slash(app_factory, es384_key, fixture_json):
    client = auth_app(app_factory, es384_key).test_client()
    token = mint(es384_key, "http://localhost/cds-services//pv", jku=None)
    response = client.post("/cds-services//pv", json=fixture_json("sandbox/patient-view-request.json"),
                           headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


def sandbox_token(aud: str) -> str:
    from pathlib import Path
    pem = (Path(__file__).parents[1] / "fixtures/sandbox/sandbox-published-private-key.pem").read_text()
    import time
    import uuid
    now = int(time.time())
    return jwt.encode({"iss": "https://sandbox.cds-hooks.org", "aud": aud, "exp": now + 300, "iat": now,
                       "jti": str(uuid.uuid4())}, pem, algorithm="ES384",
                      headers={"kid": SANDBOX_KID, "jku": SANDBOX_JKU, "typ": "JWT"})


def test_sandbox_issuer_only_when_opted_in(app_factory, fixture_json):
    request = fixture_json("sandbox/patient-view-request.json")
    headers = {"Authorization": "Bearer " + sandbox_token("http://localhost/cds-services/pv")}
    default = app_factory(AUTH="required")
    register(default, id="pv")
    assert default.test_client().post("/cds-services/pv", json=request, headers=headers).status_code == 401
    opted_in = app_factory(AUTH="required", TRUST_SANDBOX_ISSUER=True)
    register(opted_in, id="pv")
    # verified offline with the shipped public key: no fetch of the sandbox's jku
    assert opted_in.test_client().post("/cds-services/pv", json=request, headers=headers).status_code == 200


# -- logging -----------------------------------------------------------------------------------------------------

def test_one_structured_line_per_call_without_patient_data(client, fixture_json, caplog):
    request = fixture_json("sandbox/order-select-request-3.json")
    with caplog.at_level(logging.INFO, logger="cds_hooks.access"):
        client.post("/cds-services/os", json=request)
        client.get("/cds-services")
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "cds_hooks.access"]
    assert len(lines) == 2
    call = lines[0]
    assert call["service"] == "os" and call["hookInstance"] == request["hookInstance"]
    assert call["status"] == 200 and call["cards"] == 1 and call["duration_ms"] >= 0
    for private in ("pat-1", "Testpatient", "Amlodipine", "1970-01-01", "COREPRACTITIONER1"):
        assert private not in caplog.text


def test_healthz_and_openapi(client):
    assert client.get("/healthz").get_json() == {"status": "pass"}
    doc = client.get("/openapi.json").get_json()
    assert doc["openapi"].startswith("3.1") and "/cds-services/pv" in doc["paths"]
    assert doc["paths"]["/cds-services/pv"]["post"]["requestBody"]["content"]["application/json"]


# -- the EHR's access token is transient ------------------------------------------------------------------------

@responses.activate
def test_fhir_access_token_is_used_but_never_logged_or_stored(app_factory, fixture_json, caplog):
    app = app_factory(FHIR_SERVER_ALLOWLIST=[FHIR])
    register(app)
    responses.get(f"{FHIR}/Patient/1288992", status=500)  # a failure path logs the most
    request = fixture_json("cds-hooks/spec201-L0198-example.json")
    request["fhirServer"] = FHIR
    request["fhirAuthorization"]["access_token"] = token = "opaque-EHR-token-4f9c2a"
    del request["prefetch"]
    client = app.test_client()
    with caplog.at_level(logging.DEBUG):
        assert client.post("/cds-services/svc", json=request).status_code == 200
        assert client.post("/cds-services/svc/feedback", json=fixture_json(
            "sandbox/feedback-patient-view.json")).status_code == 200
    assert responses.calls[0].request.headers["Authorization"] == f"Bearer {token}"
    assert token not in caplog.text
    assert token not in repr(seen[-1])  # HookRequest keeps the raw body out of its repr
    assert token not in json.dumps(app.extensions["fhir_pain.store"].list_feedback(), default=str)


def test_concurrent_feedback_over_http_loses_nothing(app, fixture_json):
    import threading
    base = fixture_json("sandbox/feedback-order-select.json")["feedback"][0]
    errors = []

    def post(t: int) -> None:
        client = app.test_client()
        for i in range(10):
            body = {"feedback": [{**base, "card": f"card-{t}-{i}"}]}
            if client.post("/cds-services/os/feedback", json=body).status_code != 200:
                errors.append((t, i))

    threads = [threading.Thread(target=post, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len({r["card_uuid"] for r in app.extensions["fhir_pain.store"].list_feedback(limit=None)}) == 80


# -- regressions from the protocol and security review ---------------------------------------------------------

def test_host_header_cannot_choose_the_audience(app_factory, es384_key, fixture_json):
    """Without PUBLIC_BASE_URL the aud was built from the Host header: a token an EHR signed for another CDS
    service (aud https://other.example/...) was accepted here when replayed with ``Host: other.example``."""
    client = auth_app(app_factory, es384_key).test_client()
    request = fixture_json("sandbox/patient-view-request.json")
    stolen = mint(es384_key, "http://other.example/cds-services/pv", jku=None)
    response = client.post("/cds-services/pv", json=request, base_url="http://other.example",
                           headers={"Authorization": f"Bearer {stolen}"})
    assert response.status_code == 401 and oo_diagnostics(response) == "Unauthorized"
    # loopback hosts (local development, the sandbox against 127.0.0.1) still work without configuration
    for base in ("http://127.0.0.1:8080", "http://[::1]:8080", "http://localhost"):
        token = mint(es384_key, f"{base}/cds-services/pv", jku=None)
        assert client.post("/cds-services/pv", json=request, base_url=base,
                           headers={"Authorization": f"Bearer {token}"}).status_code == 200, base
    # a public deployment names its URL; then the Host header plays no part
    app = auth_app(app_factory, es384_key, PUBLIC_BASE_URL="https://cds.example.org")
    token = mint(es384_key, "https://cds.example.org/cds-services/pv", jku=None)
    assert app.test_client().post("/cds-services/pv", json=request, base_url="http://10.0.0.7:8080",
                                  headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_aud_of_a_trailing_slash_call_is_the_path_as_called(app_factory, es384_key, fixture_json):
    client = auth_app(app_factory, es384_key).test_client()
    request = fixture_json("sandbox/patient-view-request.json")
    without = mint(es384_key, "http://localhost/cds-services/pv", jku=None)
    assert client.post("/cds-services/pv/", json=request,
                       headers={"Authorization": f"Bearer {without}"}).status_code == 401
    signed_as_called = mint(es384_key, "http://localhost/cds-services/pv/", jku=None)
    assert client.post("/cds-services/pv/", json=request,
                       headers={"Authorization": f"Bearer {signed_as_called}"}).status_code == 200


def test_thousands_of_prefetch_keys_are_refused_before_validation(client, fixture_json):
    """Schema validation of 100 000 prefetch keys took ~5 s of CPU per 4.5 MB call."""
    request = fixture_json("sandbox/patient-view-request.json")
    request["prefetch"] = {f"key{i}": {"resourceType": "Bundle", "type": "searchset"} for i in range(5000)}
    response = client.post("/cds-services/pv", json=request)
    assert response.status_code == 413 and response.get_json()["issue"][0]["expression"] == ["prefetch"]
    request["prefetch"] = {f"key{i}": None for i in range(100)}  # the limit itself is fine
    assert client.post("/cds-services/pv", json=request).status_code == 200


def test_thousands_of_feedback_entries_are_refused_before_validation(app, client):
    """50 000 feedback entries took ~7 s to validate, then went into one transaction."""
    entry = {"card": "c2b1a6a8-5a1d-4a37-9c40-1b2d3e4f5a6b", "outcome": "overridden",
             "outcomeTimestamp": "2026-01-05T10:00:00Z"}
    response = client.post("/cds-services/pv/feedback", json={"feedback": [entry] * 1001})
    assert response.status_code == 413 and response.get_json()["resourceType"] == "OperationOutcome"
    assert app.extensions["fhir_pain.store"].list_feedback() == []
    assert client.post("/cds-services/pv/feedback", json={"feedback": [entry] * 1000}).status_code == 200


@pytest.mark.parametrize("entry,field", [
    ({"card": "c" * 129}, "feedback.0.card"),  # the store keeps card ids in VARCHAR(128)
    ({"outcomeTimestamp": "2026-01-05T10:00:00." + "1" * 80 + "Z"}, "feedback.0.outcomeTimestamp"),  # VARCHAR(64)
])
def test_feedback_fields_longer_than_their_columns_are_400(app, client, entry, field):
    body = {"feedback": [{"card": "c2b1a6a8", "outcome": "overridden", "outcomeTimestamp": "2026-01-05T10:00:00Z",
                          **entry}]}
    response = client.post("/cds-services/pv/feedback", json=body)
    assert response.status_code == 400 and oo_diagnostics(response).startswith(field)
    assert app.extensions["fhir_pain.store"].list_feedback() == []


def test_unknown_service_id_is_not_echoed_whole(client, fixture_json):
    response = client.post("/cds-services/" + "x" * 20_000, json=fixture_json("sandbox/patient-view-request.json"))
    assert response.status_code == 404 and len(oo_diagnostics(response)) < 200


@pytest.mark.parametrize("body", [
    b'{"hook": "patient-view", "x": ' + b"[" * 1100 + b"]" * 1100 + b"}",  # deeper than orjson's 1024 levels
    b'{"hook": "patient-view", "x": 1e400}',  # not a double
    b'{"hook": "patient-view", "x": NaN}',
    b'{"hook": "patient-view", "x": "\\ud800"}',  # a lone surrogate
    b"\xef\xbb\xbf{}",  # a byte-order mark (RFC 8259 §8.1: must not be sent)
])
def test_hostile_json_is_400(client, body):
    response = client.post("/cds-services/pv", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and oo_diagnostics(response) == "the body is not valid JSON"


def test_errors_carry_no_stack_trace_or_html(app_factory, fixture_json):
    def broken(request):
        raise KeyError("secret-patient-1288992")
    app = app_factory()
    register(app, id="broken", handler=broken)
    client = app.test_client()
    for response in (client.post("/cds-services/broken", json=fixture_json("sandbox/patient-view-request.json")),
                     client.put("/cds-services/broken", json={}), client.patch("/cds-services"),
                     client.post("/cds-services/broken", data="x", content_type="text/html")):
        text = response.get_data(as_text=True)
        assert response.mimetype == "application/json" and response.status_code in (405, 415, 500)
        assert "Traceback" not in text and "secret-patient" not in text and "<" not in text


def test_cors_origin_list_is_matched_exactly(app_factory):
    app = app_factory(CORS_ORIGINS=["https://ehr.example.org"])
    register(app, id="pv")
    client = app.test_client()
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    ok = client.options("/cds-services/pv", headers={"Origin": "https://ehr.example.org", **preflight})
    assert ok.headers["Access-Control-Allow-Origin"] == "https://ehr.example.org"
    for origin in ("https://ehr.example.org.evil.example", "https://evil.example", "http://ehr.example.org"):
        refused = client.options("/cds-services/pv", headers={"Origin": origin, **preflight})
        assert "Access-Control-Allow-Origin" not in refused.headers, origin


@pytest.mark.parametrize("entry", ["ehr.example.org/fhir", "https://user@ehr.example.org/fhir",
                                   "https://ehr.example.org/fhir /x", 42])
def test_an_unreadable_fhir_allowlist_entry_fails_at_startup(app_factory, entry):
    """Such an entry used to be skipped silently on every call: prefetch then never fetched, with no reason."""
    with pytest.raises(ValueError, match="FHIR_SERVER_ALLOWLIST"):
        app_factory(FHIR_SERVER_ALLOWLIST=[entry])


def test_plain_http_fhir_server_is_warned_about_and_http_jku_refused(app_factory, es384_key, caplog):
    with caplog.at_level(logging.WARNING, logger="fhir_pain.app"):
        app_factory(FHIR_SERVER_ALLOWLIST=["http://ehr.example.org/fhir", "http://127.0.0.1:8090/fhir"])
    warned = [r.getMessage() for r in caplog.records if "plain-http" in r.getMessage()]
    assert len(warned) == 1 and "ehr.example.org" in warned[0]
    with pytest.raises(ValueError, match="must be https"):
        app_factory(AUTH="required", TRUSTED_ISSUERS=[{"iss": EHR_ISS, "jku": "http://ehr.example.org/jwks"}])


# -- hostile input reaching the endpoints (the hostile-input battery's root causes) -----------------------------

@pytest.mark.parametrize("path", ["/cds-services/pv", "/cds-services/pv/feedback"])
@pytest.mark.parametrize("depth", [65, 500, 1000])
def test_first_error_recursion_is_prevented_body_nested_deeper_than_64_is_400(client, fixture_json, path, depth):
    # was RecursionError in schemas.first_error (a 500) for JSON nested a few hundred levels: orjson accepts 1024
    request = json.dumps(fixture_json("sandbox/patient-view-request.json"))
    data = request[:-1] + ', "x": ' + "[" * depth + "]" * depth + "}"
    response = client.post(path, data=data, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert oo_diagnostics(response) == "the body nests arrays or objects more than 64 levels deep"


@pytest.mark.parametrize("inner", ['"]]]]"', '"[[[["', '"\\\\"', '"\\"]]]"', '"\\\\\\"[{"', '{"k]": "v{"}'])
def test_nesting_is_read_from_the_text_so_brackets_quotes_and_escapes_in_strings_do_not_count(inner):
    from cds_hooks.endpoints import deeper_than
    for depth in (3, 9, 10, 11):
        text = ("[" * depth + inner + "]" * depth).encode()
        json.loads(text)  # valid JSON, as deeper_than requires
        levels = depth + inner.startswith("{")
        assert deeper_than(text, 10) == (levels > 10), (text, levels)
        assert deeper_than(b'{"a": [{"b": [' + text + b"]}]}", 14) == (levels + 4 > 14)


def test_a_realistic_request_is_not_near_the_nesting_limit(client, fixture_json):
    from cds_hooks.endpoints import MAX_JSON_DEPTH, deeper_than
    request = fixture_json("sandbox/patient-view-request.json")
    text = json.dumps(request).encode()
    assert not deeper_than(text, 12) and deeper_than(text, 2) and MAX_JSON_DEPTH == 64
    request["context"]["x"] = json.loads("[" * 50 + "]" * 50)
    assert client.post("/cds-services/pv", json=request).status_code == 200


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "Application/JSON; Charset=UTF-8",
                                          "APPLICATION/JSON", "application/json;charset=\"utf-8\""])
def test_json_content_type_with_parameters_in_any_case_is_accepted(client, fixture_json, content_type):
    data = json.dumps(fixture_json("sandbox/patient-view-request.json"))
    assert client.post("/cds-services/pv", data=data, headers={"Content-Type": content_type}).status_code == 200


@pytest.mark.parametrize("content_type", ["application/json, application/json", "application/json application/json",
                                          ";", "/", "application/", "*/*", "application/jsonx"])
def test_odd_or_doubled_content_type_is_415_with_an_operation_outcome(client, fixture_json, content_type):
    data = json.dumps(fixture_json("sandbox/patient-view-request.json"))
    response = client.post("/cds-services/pv", data=data, headers={"Content-Type": content_type})
    assert response.status_code == 415 and oo_diagnostics(response).startswith("the body must be JSON")


def test_a_body_the_server_cannot_read_is_400(client):
    from gunicorn.http.errors import InvalidChunkSize

    class Broken(io.BytesIO):   # gunicorn's wsgi.input on a malformed chunk (was a 500: an unexpected exception)
        def read(self, *size):
            raise InvalidChunkSize(b"zz")

        readline = read1 = readinto = read
    response = client.post("/cds-services/pv", headers={"Content-Type": "application/json",
                                                         "Transfer-Encoding": "chunked"},
                           environ_overrides={"wsgi.input": Broken(), "wsgi.input_terminated": True})
    assert response.status_code == 400 and oo_diagnostics(response) == "the body could not be read"


def _depth(value) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def test_nesting_read_from_the_text_agrees_with_a_walk_of_the_value_for_mixed_structures():
    """Each pass must remove exactly one level: '{[]}' is two levels although dropping '[]' uncovers '{}'."""
    from hypothesis import given, settings, strategies as st

    from cds_hooks.endpoints import deeper_than
    values = st.recursive(st.none() | st.integers() | st.text(alphabet='[]{}"\\ab', max_size=6),
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                              st.text(alphabet='[]{}"a', max_size=3), inner, max_size=3), max_leaves=30)

    @settings(max_examples=400, deadline=None, derandomize=True)
    @given(values, st.integers(min_value=0, max_value=12))
    def agrees(value, limit):
        text = json.dumps(value).encode()
        assert deeper_than(text, limit) == (_depth(value) > limit), (text, limit)
    agrees()
