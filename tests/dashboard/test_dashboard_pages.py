"""The dashboard's pages without a browser: who may see the demo, what errors look like, the headers, the
server-side session store, SMART discovery and scopes against a real HTTP server."""
from __future__ import annotations

import logging
import re

import pytest
import sqlalchemy as sa

from fhir_pain.app import create_app
from fhir_pain.dashboard import _local_path, smart, view
from fhir_pain.dashboard.sessions import SessionStore
from fhir_pain.store import Store

MARA = "/dashboard/demo/demo-13-mara-non-responder"


def _app(**config):
    return create_app({"AUTH": "off", "DATABASE_URL": "sqlite://", "DASHBOARD_DEMO": True, **config})


@pytest.mark.parametrize("config, environ, host", [
    ({"DASHBOARD_DEMO": False}, {}, "127.0.0.1"),
    ({"AUTH": "required"}, {}, "127.0.0.1"),
    ({}, {"REMOTE_ADDR": "10.1.2.3"}, "127.0.0.1"),       # a client from elsewhere
    ({}, {}, "cds.example.org"),                           # served under a public name
])
def test_demo_is_only_for_loopback_with_auth_off_and_the_setting(config, environ, host):
    client = _app(**config).test_client()
    response = client.get(MARA, environ_base=environ, headers={"Host": host})
    assert response.status_code == 404
    assert b"Mara" not in response.data


def test_demo_page_headers_forbid_scripts_and_framing_by_others():
    response = _app().test_client().get(MARA)
    assert response.status_code == 200
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp and "frame-ancestors 'self'" in csp
    assert response.headers["Cache-Control"] == "no-store" and response.headers["Referrer-Policy"] == "no-referrer"
    assert b"<script" not in response.data


def test_frame_ancestors_names_the_configured_ehr():
    response = _app(DASHBOARD_FRAME_ANCESTORS="https://ehr.example.org").test_client().get(MARA)
    assert "frame-ancestors https://ehr.example.org" in response.headers["Content-Security-Policy"]


def test_unknown_demo_patient_is_a_page_not_a_trace():
    response = _app().test_client().get("/dashboard/demo/nobody")
    assert response.status_code == 404 and b"No demo patient" in response.data


def test_unexpected_error_is_a_page_and_logs_no_patient_data(monkeypatch, caplog):
    def boom(data):
        raise RuntimeError(f"failed on {data.patient.get('name')}")
    monkeypatch.setattr(view, "build", boom)
    with caplog.at_level(logging.INFO):
        response = _app().test_client().get(MARA)
    assert response.status_code == 500
    assert b"Something went wrong" in response.data and b"Traceback" not in response.data
    assert b"Mara" not in response.data and "Mara" not in caplog.text and "RuntimeError" in caplog.text


def test_launch_without_registration_or_session_says_what_is_missing():
    client = _app().test_client()
    assert b"SMART_CLIENT_ID is not set" in client.get("/dashboard/launch?iss=https://x").data
    response = client.get("/dashboard/")
    assert response.status_code == 401 and b"Not signed in" in response.data
    response = client.get("/dashboard/callback?code=c&state=s")
    assert response.status_code == 400 and b"Launch not found" in response.data


def test_launch_needs_public_base_url_off_loopback(monkeypatch):
    app = _app(SMART_CLIENT_ID="c", FHIR_SERVER_ALLOWLIST=["https://ehr.example.org/fhir"])
    monkeypatch.setattr(smart, "discover", lambda iss: smart.Endpoints("https://ehr.example.org/auth",
                                                                       "https://ehr.example.org/t", True))
    response = app.test_client().get("/dashboard/launch?iss=https://ehr.example.org/fhir&launch=l",
                                     headers={"Host": "attacker.example"})
    assert response.status_code == 400 and b"PUBLIC_BASE_URL" in response.data


@pytest.mark.parametrize("target, ok", [
    ("/dashboard/signed-out", True), ("https://evil.example/", False), ("//evil.example/x", False),
    ("/\\evil.example", False), ("/dashboard/\\..\\x", False), ("/cds-services", False), ("", False),
    ("javascript:alert(1)", False),
])
def test_only_dashboard_paths_are_redirect_targets(target, ok):
    assert _local_path(target) is ok


def test_session_store_keeps_tokens_encrypted_and_forgets_them(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 's.sqlite3'}")
    sessions = SessionStore(store, "secret-one", ttl_s=60)
    sid = sessions.create({"access_token": "tok-123", "patient": "p1"})
    with store.engine.connect() as conn:
        raw = " ".join(str(v) for row in conn.execute(sa.text("select * from dashboard_sessions")) for v in row)
    assert "tok-123" not in raw and sid not in raw          # neither the token nor the cookie's id at rest
    assert sessions.get(sid) == {"access_token": "tok-123", "patient": "p1"}
    assert SessionStore(store, "another-secret", ttl_s=60).get(sid) is None
    expired = SessionStore(store, "secret-one", ttl_s=-1)
    assert expired.get(expired.create({"access_token": "old"})) is None
    sessions.delete(sid)
    assert sessions.get(sid) is None and sessions.get(None) is None and sessions.get(123) is None


def test_scopes_v2_and_v1():
    assert smart.scopes(True, ehr_launch=True).split()[:3] == ["launch", "patient/Patient.rs", "patient/Observation.rs"]
    assert "patient/Observation.read" in smart.scopes(False, ehr_launch=False).split()
    assert smart.scopes(False, ehr_launch=False).startswith("launch/patient ")
    # a filled questionnaire writes its response and the scored Observations
    assert smart.scopes(True, ehr_launch=True).split()[-2:] == ["patient/Observation.c",
                                                                 "patient/QuestionnaireResponse.c"]
    assert smart.scopes(False, ehr_launch=True).split()[-2:] == ["patient/Observation.write",
                                                                  "patient/QuestionnaireResponse.write"]


@pytest.mark.parametrize("granted, allowed", [
    ("launch patient/Observation.rs patient/Observation.c", True),
    ("patient/Observation.cruds", True),
    ("patient/*.cud", True),
    ("user/Observation.write", True),
    ("patient/Observation.*", True),
    ("patient/Observation.c?category=survey", True),         # a v2 scope narrowed by a query still creates
    ("launch patient/Observation.rs patient/Observation.read", False),
    ("patient/Observation.rs patient/Condition.c", False),  # another type
    ("patient/Observation.sc", False),                       # not a v2 permission string (order c r u d s)
    ("system/Observation.c", False),                         # not a user-facing context
    ("", False),
])
def test_write_is_allowed_only_by_a_create_or_write_scope_for_the_type(granted, allowed):
    assert smart.can_write(granted, "Observation") is allowed


def _signed_in_client(app, *, scope: str, iss: str = "https://ehr.example.org/fhir"):
    sid = app.extensions["fhir_pain.dashboard"].create({
        "stage": "ready", "iss": iss, "access_token": "t", "patient": "p1", "expires_at": None, "csrf": "tok",
        "scope": scope})
    client = app.test_client()
    with client.session_transaction() as session:
        session["sid"] = sid
    return client


def test_record_needs_a_session_and_offers_only_instruments_with_item_text():
    app = _app(SMART_CLIENT_ID="c", FHIR_SERVER_ALLOWLIST=["https://ehr.example.org/fhir"])
    assert app.test_client().get("/dashboard/record/peg").status_code == 401
    client = _signed_in_client(app, scope="patient/Observation.rs")
    assert client.get("/dashboard/record/pcs").status_code == 404          # licensed text: not shown
    assert client.get("/dashboard/record/nope").status_code == 404
    page = client.get("/dashboard/record/peg")
    assert page.status_code == 200 and b"not saved" in page.data            # no write scope: said before filling
    assert page.headers["Referrer-Policy"] == "same-origin"                 # so the POST carries its Origin


def test_a_fhir_server_refusing_the_sessions_token_for_writing_gives_a_403_page_with_the_score(httpserver):
    iss = httpserver.url_for("/fhir")
    httpserver.expect_request("/fhir", method="POST").respond_with_json(
        {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "forbidden"}]}, status=403)
    app = _app(SMART_CLIENT_ID="c", FHIR_SERVER_ALLOWLIST=[iss])
    client = _signed_in_client(app, iss=iss, scope="patient/Observation.c patient/QuestionnaireResponse.c")
    page = client.get("/dashboard/record/nrs").data.decode()
    fields = dict(re.findall(r'name="(csrf|authored|sig)" value="([^"]*)"', page))
    answer = client.post("/dashboard/record/nrs", data={**fields, "nrs": "5"})
    assert answer.status_code == 403 and b"refused this session" in answer.data
    assert b'data-code="72514-3" data-value="5"' in answer.data               # scored, shown, not saved


def test_discovery_reads_endpoints_and_permission_version(httpserver):
    base = httpserver.url_for("/fhir")
    httpserver.expect_request("/fhir/.well-known/smart-configuration").respond_with_json({
        "authorization_endpoint": httpserver.url_for("/authorize"), "token_endpoint": httpserver.url_for("/token"),
        "capabilities": ["launch-ehr", "permission-v1"]})
    endpoints = smart.discover(base)
    assert endpoints.authorize.endswith("/authorize") and endpoints.v2 is False


@pytest.mark.parametrize("doc, title", [
    ({"authorization_endpoint": "http://ehr.example.org/authorize", "token_endpoint": "https://ehr.example.org/t"},
     "SMART configuration not usable"),                    # plain http off loopback: the code would leak
    ({"token_endpoint": "https://ehr.example.org/t"}, "SMART configuration not usable"),
])
def test_discovery_refuses_unusable_configuration(httpserver, doc, title):
    httpserver.expect_request("/fhir/.well-known/smart-configuration").respond_with_json(doc)
    with pytest.raises(smart.LaunchError) as caught:
        smart.discover(httpserver.url_for("/fhir"))
    assert caught.value.title == title


def test_discovery_of_a_server_that_is_down():
    with pytest.raises(smart.LaunchError) as caught:
        smart.discover("http://127.0.0.1:9/fhir")
    assert caught.value.status == 502


def test_session_past_the_tokens_expiry_says_so_without_calling_the_fhir_server():
    app = _app(SMART_CLIENT_ID="c", FHIR_SERVER_ALLOWLIST=["https://ehr.example.org/fhir"])
    sid = app.extensions["fhir_pain.dashboard"].create({
        "stage": "ready", "iss": "https://ehr.example.org/fhir", "access_token": "t", "patient": "p",
        "expires_at": 1.0, "csrf": "x"})
    client = app.test_client()
    with client.session_transaction() as session:
        session["sid"] = sid
    response = client.get("/dashboard/")
    assert response.status_code == 401 and b"Session expired" in response.data
