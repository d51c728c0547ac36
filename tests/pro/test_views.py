"""/pro over HTTP (Flask's test client): $extract, the Questionnaires, the fill page, and the next hook call."""
from __future__ import annotations

import re

import pytest

from fhir_pain.fhir_models import validate
from golden.fhir_builders import hook_request, prefetch
from pro_builders import observations, response

NOW = "2026-12-01T10:00:00Z"
EXTRACT = "/pro/QuestionnaireResponse/$extract"


@pytest.fixture
def app(app_factory):
    return app_factory(REGISTER_CLINICAL_SERVICES=True, NOW=NOW)


@pytest.fixture
def client(app):
    return app.test_client()


def _findings(body: dict) -> list[dict]:
    return [f for card in body["cards"] for f in card["extension"]["io.fhir-pain.findings"]]


def test_extract_answers_the_transaction_bundle(client):
    r = client.post(EXTRACT, json=response("phq9"))
    assert r.status_code == 200 and r.mimetype == "application/fhir+json"
    bundle = r.get_json()
    validate(bundle)
    assert len(bundle["entry"]) == 11      # the response, 9 items, the total
    assert bundle["entry"][-1]["resource"]["valueInteger"] == 9


def test_extract_of_a_partial_response_is_a_422_naming_the_missing_items(client):
    qr = response("gad7")
    del qr["item"][3:]
    r = client.post(EXTRACT, json=qr)
    assert r.status_code == 422
    outcome = r.get_json()
    validate(outcome)
    assert outcome["issue"][0]["code"] == "required"
    assert "4 of 7" in outcome["issue"][0]["diagnostics"] and "gad7-4 (Trouble relaxing)" in \
        outcome["issue"][0]["diagnostics"]


@pytest.mark.parametrize("body, content_type, status", [
    (b"{not json", "application/json", 400),
    (b'{"resourceType": "Observation"}', "application/fhir+json", 400),
    (b"<QuestionnaireResponse/>", "application/xml", 415),
    (b"[" * 200 + b"]" * 200, "application/json", 400),
])
def test_bad_bodies_get_4xx_operation_outcomes(client, body, content_type, status):
    r = client.post(EXTRACT, data=body, content_type=content_type)
    assert r.status_code == status
    assert r.get_json()["resourceType"] == "OperationOutcome"


def test_write_without_a_configured_server_is_refused(client):
    r = client.post(EXTRACT + "?write=true", json=response("nrs"))
    assert r.status_code == 400 and "PRO_FHIR_SERVER" in r.get_json()["issue"][0]["diagnostics"]


def test_a_write_server_not_on_the_allowlist_stops_the_start(app_factory):
    with pytest.raises(ValueError, match="PRO_FHIR_SERVER must be a FHIR base URL listed in FHIR_SERVER_ALLOWLIST"):
        app_factory(PRO_FHIR_SERVER="https://fhir.example.org/r4", FHIR_SERVER_ALLOWLIST=["https://other.example"])


def test_the_questionnaires_are_served(client):
    bundle = client.get("/pro/Questionnaire").get_json()
    validate(bundle)
    assert {e["resource"]["id"] for e in bundle["entry"]} == {"phq9", "phq2", "gad7", "peg", "nrs", "pcs", "dn4"}
    assert client.get("/pro/Questionnaire/peg").get_json()["code"][0]["code"] == "91148-7"
    missing = client.get("/pro/Questionnaire/bpi")
    assert missing.status_code == 404 and missing.get_json()["issue"][0]["code"] == "not-found"


def test_with_auth_required_extract_and_the_page_answer_a_bare_401(app_factory):
    client = app_factory(AUTH="required").test_client()
    r = client.post(EXTRACT, json=response("phq9"))
    assert r.status_code == 401 and r.get_json()["issue"][0].get("diagnostics") == "Unauthorized"
    page = client.get("/pro/fill/phq9?patient=p1")
    assert page.status_code == 401 and "<h1>Unauthorized</h1>" in page.get_data(as_text=True)
    assert client.get("/pro/Questionnaire/phq9").status_code == 200    # the forms are public


def test_with_auth_required_a_cds_client_jwt_for_this_url_opens_extract(app_factory):
    import sys
    from pathlib import Path
    from cryptography.hazmat.primitives.asymmetric import ec
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "cds_hooks"))
    from cds_jwt_keys import EHR_ISS, SigningKey, mint

    key = SigningKey("ES384", "ehr-es384-pro", ec.generate_private_key(ec.SECP384R1()))
    client = app_factory(AUTH="required", TRUSTED_ISSUERS=[{"iss": EHR_ISS, "jwks": key.jwks()}]).test_client()
    aud = "http://localhost/pro/QuestionnaireResponse/$extract"
    ok = client.post(EXTRACT, json=response("nrs"), headers={"Authorization": f"Bearer {mint(key, aud, jku=None)}"})
    assert ok.status_code == 200 and ok.get_json()["type"] == "transaction"
    other = mint(key, "http://localhost/cds-services/pain-pgx-patient-view", jku=None)   # for another URL
    assert client.post(EXTRACT, json=response("nrs"), headers={"Authorization": f"Bearer {other}"}).status_code == 401


def test_a_phq9_answer_changes_the_next_patient_view_call(client):
    """Item 9 endorsed: the extracted Observations, as the EHR prefetches them, raise the same-day alert."""
    def call(pain):
        body = hook_request("patient-view", "pat-1", name="pro-next-call", prefetch=prefetch("pat-1", pain=pain))
        r = client.post("/cds-services/pain-pgx-patient-view", json=body)
        assert r.status_code == 200
        return _findings(r.get_json())

    assert "fhir-pain/safety/phq9-item9" not in {f["rule"] for f in call([])}
    answered = client.post(EXTRACT, json=response("phq9", [1, 2, 2, 2, 1, 1, 1, 0, 1],
                                                  authored="2026-11-30T09:15:00Z")).get_json()
    findings = call(observations(answered))
    [alert] = [f for f in findings if f["rule"] == "fhir-pain/safety/phq9-item9"]
    assert "Observation/x9" in alert["evidence"]          # the item 9 Observation
    [profile] = [f for f in findings if f["rule"] == "fhir-pain/pain-profile"]
    assert "depression" in profile["phenotypes"]          # total 11: moderate


def test_pcs_and_dn4_answers_change_the_pain_profile(client):
    pain = []
    for i, key in enumerate(("pcs", "dn4")):
        pain += observations(client.post(EXTRACT, json=response(key)).get_json(), prefix=f"{key}-")
    body = hook_request("patient-view", "pat-1", name="pro-profile", prefetch=prefetch("pat-1", pain=pain))
    [profile] = [f for f in _findings(client.post("/cds-services/pain-pgx-patient-view", json=body).get_json())
                 if f["rule"] == "fhir-pain/pain-profile"]
    # DN4 >= 4 alone is a screening result: "possible" until history and examination confirm (engine's grading)
    assert {"high-catastrophizing", "neuropathic-possible"} <= set(profile["phenotypes"])


# -- the fill page ---------------------------------------------------------------------------------------------------
def _open(client, key="phq9", patient="pat-1"):
    r = client.get(f"/pro/fill/{key}?patient={patient}")
    assert r.status_code == 200, r.get_data(as_text=True)
    return r, re.search(r'name="csrf" value="([^"]+)"', r.get_data(as_text=True)).group(1)


def _phq9_form(token, item9="LA6569-3"):
    form = {"patient": "pat-1", "csrf": token}
    form.update({f"phq9-{i}": "LA6568-5" for i in range(1, 9)})
    form["phq9-9"] = item9
    return form


def test_the_page_renders_every_item_with_its_answers_and_a_csrf_cookie(client):
    r, token = _open(client)
    html = r.get_data(as_text=True)
    assert html.count('type="radio"') == 9 * 4
    assert "Thoughts that you would be better off dead" in html and "Nearly every day" in html
    cookie = r.headers["Set-Cookie"]
    assert f"pro_csrf={token}" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert r.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert "<script" not in html and "http://" not in html.replace("http://loinc.org", "")   # no CDN, no JS


def test_submitting_the_page_shows_the_scored_observations(client):
    _, token = _open(client)
    r = client.post("/pro/fill/phq9", data=_phq9_form(token))
    html = r.get_data(as_text=True)
    assert r.status_code == 200
    rows = re.findall(r'<tr(?: class="total")? data-system="([^"]+)" data-code="([^"]+)" data-value="([^"]+)">', html)
    assert rows[0] == ("http://loinc.org", "44261-6", "1") and len(rows) == 10
    assert ("http://loinc.org", "44260-8", "Several days") in rows
    assert "Not saved: no FHIR server is configured" in html
    assert '<p id="score">Score: <strong>1</strong> (minimal)</p>' in html       # Kroenke 2001's band


def test_a_page_missing_answers_comes_back_with_them_named_and_the_given_ones_kept(client):
    _, token = _open(client)
    form = _phq9_form(token)
    del form["phq9-4"], form["phq9-9"]
    r = client.post("/pro/fill/phq9", data=form)
    html = r.get_data(as_text=True)
    assert r.status_code == 422
    assert "2 of 9 Patient Health Questionnaire-9 (PHQ-9) items missing: phq9-4 (Feeling tired" in html
    assert html.count(" checked") == 7 and html.count('class="missing"') == 2


@pytest.mark.parametrize("change", ["no-token", "wrong-token", "no-cookie", "other-origin"])
def test_a_post_without_the_pages_csrf_token_or_from_another_origin_is_refused(app, change):
    client = app.test_client()
    _, token = _open(client)
    form, headers = _phq9_form(token), {}
    if change == "no-token":
        del form["csrf"]
    elif change == "wrong-token":
        form["csrf"] = token[::-1]
    elif change == "no-cookie":
        client.delete_cookie("pro_csrf", path="/pro/fill")
    else:
        headers["Origin"] = "https://evil.example"
    r = client.post("/pro/fill/phq9", data=form, headers=headers)
    assert r.status_code == 403 and "<h1>" in r.get_data(as_text=True)
    assert "data-code" not in r.get_data(as_text=True)


@pytest.mark.parametrize("url, status, words", [
    ("/pro/fill/bpi?patient=p1", 404, "offers these questionnaires to fill: "),
    ("/pro/fill/pcs?patient=p1", 404, "Licensed instruments (PCS, DN4)"),
    ("/pro/fill/phq9", 400, "The address must name the patient"),
    ("/pro/fill/phq9?patient=../../etc", 400, "The address must name the patient"),
    ("/pro/fill/phq9?patient=p1%0A", 400, "The address must name the patient"),
])
def test_page_errors_are_clear_pages(client, url, status, words):
    r = client.get(url)
    assert r.status_code == status and r.mimetype == "text/html"
    assert words in r.get_data(as_text=True) and "Traceback" not in r.get_data(as_text=True)


def test_integer_and_tampered_answers_on_the_page(client):
    _, token = _open(client, "peg")
    r = client.post("/pro/fill/peg", data={"patient": "pat-1", "csrf": token, "peg-1": "4", "peg-2": "5",
                                           "peg-3": "99"})
    assert r.status_code == 422 and "item peg-3: the answer" not in r.get_data(as_text=True)
    assert "item peg-3: 99 is outside 0-10" in r.get_data(as_text=True)
    token = re.search(r'name="csrf" value="([^"]+)"', r.get_data(as_text=True)).group(1)   # a new one each time
    r = client.post("/pro/fill/peg", data={"patient": "pat-1", "csrf": token, "peg-1": "4", "peg-2": "5",
                                           "peg-3": "6"})
    assert re.search(r'class="total" data-system="http://loinc.org" data-code="91147-9" data-value="5.0"',
                     r.get_data(as_text=True))


def test_a_write_to_a_server_that_is_down_is_a_502_and_on_the_page_a_clear_error(app_factory):
    import socket
    with socket.socket() as s:          # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{s.getsockname()[1]}/fhir"
    client = app_factory(FHIR_SERVER_ALLOWLIST=[down], PRO_FHIR_SERVER=down, PRO_FHIR_TOKEN="secret-token",
                         FHIR_TIMEOUT_S=[0.5, 0.5]).test_client()
    r = client.post(EXTRACT + "?write=true", json=response("nrs"))
    assert r.status_code == 502
    assert r.get_json()["issue"][0]["diagnostics"] == "the FHIR server did not take the answers: nothing was written"
    assert "secret-token" not in r.get_data(as_text=True)
    _, token = _open(client, "nrs")
    page = client.post("/pro/fill/nrs", data={"patient": "pat-1", "csrf": token, "nrs": "6"})
    assert page.status_code == 502 and "The answers were scored but not saved" in page.get_data(as_text=True)


@pytest.mark.parametrize("key, radios", [("phq9", 36), ("phq2", 8), ("gad7", 28), ("peg", 33), ("nrs", 11)])
def test_every_instrument_with_text_has_a_page(client, key, radios):
    r, _ = _open(client, key)
    assert r.get_data(as_text=True).count('type="radio"') == radios
