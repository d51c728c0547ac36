"""The SMART EHR launch end to end, in a real headless Chromium: the dashboard as ``fhir-pain serve`` (gunicorn),
a test EHR (tests/dashboard/smart_ehr.py: Authlib's authorization server with a consent page, PKCE required, the
patient in the launch context, a FHIR gateway) and a real FHIR server (sekmet) holding the demo patients.
Then every way a launch can fail gives a page that says what happened, never a trace."""
from __future__ import annotations

import re

import pytest
import requests

from ehr_stack import SmartEHR, dashboard, demo_sekmet, launch
from serve_process import free_port

pytestmark = pytest.mark.integration
PATIENT = "demo-13-mara-non-responder"


@pytest.fixture(scope="module")
def sekmet(tmp_path_factory):
    server = demo_sekmet(tmp_path_factory.mktemp("sekmet-dash"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stack(sekmet, tmp_path_factory):
    """The dashboard (gunicorn) and the EHR that launches it; the EHR's FHIR base is the only allowed server."""
    ehr_port = free_port()
    serve = dashboard(tmp_path_factory.mktemp("dash-serve"), ehr_port, workers=2)
    ehr = SmartEHR(sekmet, f"{serve.url}/dashboard/callback", port=ehr_port)
    yield serve, ehr
    ehr.stop()
    output = serve.stop()
    assert "Bearer" not in output and "access_token" not in output   # no token in the service's log
    assert "Mara" not in output and PATIENT not in output            # no patient data either


def _launch(page, serve, ehr, patient: str = PATIENT):
    launch(page, serve, ehr, patient)


def test_ehr_launch_with_consent_shows_the_patient_from_the_fhir_server(page, stack):
    serve, ehr = stack
    _launch(page, serve, ehr)
    assert page.url.startswith(f"{ehr.url}/auth/authorize")          # the EHR's consent page
    page.click("#allow")
    page.wait_for_url(f"{serve.url}/dashboard/")
    assert page.locator("#patient h1").inner_text().startswith("Mara")
    points = page.eval_on_selector_all('svg[data-chart="pain"] g.point', "els => els.map(e => e.dataset.value)")
    assert sorted(map(float, points)) == [7, 7, 7, 8, 8]
    assert page.locator('svg[data-chart="pain"] g.band[data-drug="gabapentin"]').count() == 1
    seen = ehr.requests_seen()[-1]
    assert seen["code_challenge_method"] == "S256" and seen["aud"] == ehr.iss
    assert "patient/Observation.rs" in seen["scope"].split() and "launch" in seen["scope"].split()
    [cookie] = [c for c in page.context.cookies() if c["name"] == "fhir_pain_dashboard"]
    assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    # the cookie holds an opaque session id, never the token
    assert len(cookie["value"]) < 200


def test_denied_consent_says_access_was_not_granted(page, stack):
    serve, ehr = stack
    _launch(page, serve, ehr)
    page.click("#deny")
    page.wait_for_url(re.compile(re.escape(f"{serve.url}/dashboard/callback")))
    assert page.locator("#problem h1").inner_text() == "Access not granted"
    assert "Traceback" not in page.content()


def test_state_mismatch_is_refused(page, stack):
    serve, ehr = stack
    _launch(page, serve, ehr)
    # an answer that belongs to another sign-in (a forged or replayed callback)
    page.goto(f"{serve.url}/dashboard/callback?code=forged&state=not-the-state")
    assert page.locator("#problem h1").inner_text() == "Sign-in could not be verified"


def test_launch_from_a_server_not_on_the_allowlist_is_refused_without_redirect(page, stack):
    serve, _ = stack
    response = page.goto(f"{serve.url}/dashboard/launch?iss=https://evil.example/fhir&launch=x")
    assert response.status == 400 and page.url.startswith(serve.url)     # never sent to the other server
    assert page.locator("#problem h1").inner_text() == "FHIR server not allowed"


def test_sign_out_needs_the_csrf_token_and_redirects_only_inside_thedashboard(page, stack):
    serve, ehr = stack
    _launch(page, serve, ehr)
    page.click("#allow")
    page.wait_for_url(f"{serve.url}/dashboard/")
    forged = page.request.post(f"{serve.url}/dashboard/logout", form={"csrf": "guess"}, max_redirects=0)
    assert forged.status == 400 and "CSRF" in forged.text()
    assert page.goto(f"{serve.url}/dashboard/").status == 200           # still signed in
    token = page.locator('input[name="csrf"]').get_attribute("value")
    out = page.request.post(f"{serve.url}/dashboard/logout", form={"csrf": token, "next": "https://evil.example/"},
                            max_redirects=0)
    assert out.status == 303 and out.headers["location"].endswith("/dashboard/signed-out")
    assert page.goto(f"{serve.url}/dashboard/").status == 401          # the server-side session is gone


def test_token_the_fhir_server_no_longer_accepts_gives_session_expired(page, stack):
    serve, ehr = stack
    _launch(page, serve, ehr)
    page.click("#allow")
    page.wait_for_url(f"{serve.url}/dashboard/")
    requests.post(f"{ehr.url}/ehr/expire", timeout=(2, 10)).raise_for_status()
    response = page.goto(f"{serve.url}/dashboard/")
    assert response.status == 401 and page.locator("#problem h1").inner_text() == "Session expired"


def test_standalone_launch_lets_the_user_pick_the_patient(page, stack):
    serve, ehr = stack
    page.goto(f"{serve.url}/dashboard/launch?iss={ehr.iss}")
    assert "launch/patient" in ehr.requests_seen()[-1]["scope"].split()
    page.fill("#patient-id", "demo-12-luca-catastrophizing")
    page.click("#allow")
    page.wait_for_url(f"{serve.url}/dashboard/")
    assert page.locator("#patient h1").inner_text().startswith("Luca")
    assert page.locator("#item9-flag").is_visible()


def test_v1_only_server_and_fhir_server_down(page, sekmet, tmp_path):
    ehr_port = free_port()
    serve = dashboard(tmp_path, ehr_port, workers=1)
    ehr = SmartEHR(sekmet, f"{serve.url}/dashboard/callback", port=ehr_port, v1_only=True)
    try:
        _launch(page, serve, ehr, "demo-07-greta-cyp2c9-pm")
        seen = ehr.requests_seen()[-1]
        assert "patient/Observation.read" in seen["scope"].split()       # v1 scopes for a v1-only server
        page.click("#allow")
        page.wait_for_url(f"{serve.url}/dashboard/")
        assert page.locator('#genes-table tr[data-gene="CYP2C9"]').count() == 1
        ehr.stop()                                                       # the EHR and its FHIR server go away
        response = page.goto(f"{serve.url}/dashboard/")
        assert response.status == 502 and page.locator("#problem h1").inner_text() == "FHIR server unavailable"
        response = page.goto(f"{serve.url}/dashboard/launch?iss={ehr.iss}&launch=x")
        assert response.status == 502 and page.locator("#problem h1").inner_text() == "FHIR server unreachable"
        assert "Traceback" not in page.content()
    finally:
        if ehr.proc.poll() is None:
            ehr.stop()
        serve.stop()
