"""A questionnaire filled inside a SMART dashboard session, in a real headless Chromium: the scored Observations are
written to the session's FHIR server (the test EHR's gateway in front of sekmet) with the session's access token,
the pain trend draws the new score, and a patient-view hook call whose prefetch is read from sekmet sees it. Then:
no write scope, no CSRF token, another origin and a FHIR server that went away each give a page saying so, never a
trace, and nothing written."""
from __future__ import annotations

import uuid

import pytest

from ehr_stack import SmartEHR, dashboard, demo_sekmet, launch
from fhir_pain.app import create_app
from fhir_pain.services import SERVICE_IDS
from serve_process import free_port

pytestmark = pytest.mark.integration
MARA = "demo-13-mara-non-responder"       # NRS 7-8 on gabapentin; no PEG on file
INES = "demo-09-ines-no-pgx"
PEG_TOTAL, PEG_ITEMS = "91147-9", ("75893-8", "91145-3", "91146-1")
NRS = "72514-3"


@pytest.fixture(scope="module")
def sekmet(tmp_path_factory):
    server = demo_sekmet(tmp_path_factory.mktemp("sekmet-record"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stack(sekmet, tmp_path_factory):
    ehr_port = free_port()
    serve = dashboard(tmp_path_factory.mktemp("record-serve"), ehr_port, workers=2)
    ehr = SmartEHR(sekmet, f"{serve.url}/dashboard/callback", port=ehr_port)
    yield serve, ehr
    ehr.stop()
    output = serve.stop()
    assert "Bearer" not in output and "access_token" not in output   # no token in the service's log
    assert "Mara" not in output and MARA not in output               # no patient data either


def _signed_in(page, serve, ehr, patient: str, consent: str = "#allow") -> None:
    launch(page, serve, ehr, patient)
    page.click(consent)
    page.wait_for_url(f"{serve.url}/dashboard/")


def _observations(sekmet, patient: str, code: str) -> list[dict]:
    return sekmet.search(f"Observation?subject=Patient/{patient}&code={code}")


def _prefetch(sekmet, patient: str) -> tuple:
    """(an app with the clinical services, the patient-view service, its prefetch templates each read from sekmet
    as an EHR would answer them)."""
    app = create_app({"AUTH": "off", "DATABASE_URL": "sqlite://"})
    service = app.extensions["cds_hooks"].registry.get(SERVICE_IDS["patient-view"])
    out = {}
    for key, template in service.prefetch.items():
        query = template.replace("{{context.patientId}}", patient)
        if "?" in query:
            out[key] = {"resourceType": "Bundle", "type": "searchset",
                        "entry": [{"resource": r} for r in sekmet.search(query)]}
        else:
            out[key] = sekmet.read(query)
    return app, service, out


def test_peg_filled_in_a_session_is_written_drawn_and_seen_by_the_next_hook_call(page, stack, sekmet):
    serve, ehr = stack
    _signed_in(page, serve, ehr, MARA)
    assert "patient/Observation.c" in ehr.requests_seen()[-1]["scope"].split()
    links = page.eval_on_selector_all("#record-questionnaire a", "els => els.map(e => [e.dataset.instrument, "
                                      "e.getAttribute('href')])")
    assert ["peg", "/dashboard/record/peg"] in links and ["phq9", "/dashboard/record/phq9"] in links
    assert _observations(sekmet, MARA, PEG_TOTAL) == []

    page.click("#record-questionnaire summary")
    page.click('#record-questionnaire a[data-instrument="peg"]')
    page.wait_for_url(f"{serve.url}/dashboard/record/peg")
    # the patient is the session's: the form does not carry one
    assert page.locator('input[name="patient"]').count() == 0
    for link, score in zip(("peg-1", "peg-2", "peg-3"), (5, 4, 3)):
        page.locator(f'fieldset#{link} input[value="{score}"]').check()
    with page.expect_request(lambda r: r.method == "POST") as sent:
        page.click("button[type=submit]")
    page.wait_for_url(f"{serve.url}/dashboard/")

    # the pain trend draws the new PEG point (mean 4) beside the NRS scores, and the table lists it
    points = page.eval_on_selector_all('svg[data-chart="pain"] g.point',
                                       "els => els.map(e => [e.dataset.instrument, e.dataset.value])")
    assert sorted(float(v) for i, v in points if i == "nrs") == [7, 7, 7, 8, 8]
    assert [v for i, v in points if i == "peg"] == ["4"]
    assert page.locator('#pain-table tr[data-instrument="peg"]').evaluate_all(
        "rows => rows.map(r => r.dataset.value)") == ["4"]

    # on the FHIR server: the total (4, hasMember its 3 items) and each item, from the stored response
    [total] = _observations(sekmet, MARA, PEG_TOTAL)
    assert total["valueQuantity"]["value"] == 4 and total["subject"]["reference"] == f"Patient/{MARA}"
    assert len(total["hasMember"]) == 3 and total["derivedFrom"][0]["reference"].startswith("QuestionnaireResponse/")
    items = {o["code"]["coding"][0]["code"]: o["valueInteger"]
             for code in PEG_ITEMS for o in _observations(sekmet, MARA, code)}
    assert items == dict(zip(PEG_ITEMS, (5, 4, 3)))
    [qr] = sekmet.search(f"QuestionnaireResponse?subject=Patient/{MARA}")
    assert qr["status"] == "completed" and qr["questionnaire"].startswith("https://")

    # the same POST again (a reload, a double click): accepted, and nothing new on the server
    again = page.request.post(sent.value.url, data=sent.value.post_data, max_redirects=0,
                              headers={"Content-Type": "application/x-www-form-urlencoded", "Origin": serve.url})
    assert again.status == 303 and again.headers["location"].endswith("/dashboard/")
    assert len(_observations(sekmet, MARA, PEG_TOTAL)) == 1
    assert len(sekmet.search(f"QuestionnaireResponse?subject=Patient/{MARA}")) == 1

    # the next patient-view call, its prefetch read from the FHIR server, takes the new score as pain now
    app, service, prefetch = _prefetch(sekmet, MARA)
    answer = app.test_client().post(f"/cds-services/{service.id}", json={
        "hook": "patient-view", "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/example", "patientId": MARA}, "prefetch": prefetch})
    assert answer.status_code == 200
    [profile] = [c for c in answer.get_json()["cards"] if c["summary"].startswith("Pain profile")]
    assert "pain 4/10" in profile["summary"] and "**Intensity:** 4/10 (PEG" in profile["detail"]
    assert f"Observation/{total['id']}" in profile["detail"]


def test_without_a_write_scope_the_answers_are_scored_and_the_page_says_they_were_not_saved(page, stack, sekmet):
    serve, ehr = stack
    _signed_in(page, serve, ehr, INES, consent="#allow-read")
    page.goto(f"{serve.url}/dashboard/record/phq2")
    assert "will be scored and shown, not saved" in page.locator("#notice").inner_text()
    page.locator("fieldset#phq2-1").get_by_label("More than half the days", exact=True).check()
    page.locator("fieldset#phq2-2").get_by_label("Several days", exact=True).check()
    with page.expect_response(lambda r: r.request.method == "POST") as answered:
        page.click("button[type=submit]")
    assert answered.value.status == 403
    assert page.locator("#score strong").inner_text() == "3"
    assert "did not grant this app permission to write" in page.locator("#written").inner_text()
    assert "Traceback" not in page.content()
    assert _observations(sekmet, INES, "55758-7") == []


def test_a_post_without_the_csrf_token_or_from_another_origin_is_refused(page, stack, sekmet):
    serve, ehr = stack
    _signed_in(page, serve, ehr, INES)
    page.goto(f"{serve.url}/dashboard/record/nrs")
    fields = {i.get_attribute("name"): i.get_attribute("value") for i in page.locator('input[type="hidden"]').all()}
    assert set(fields) == {"csrf", "authored", "sig"}
    before = len(_observations(sekmet, INES, NRS))
    url = f"{serve.url}/dashboard/record/nrs"

    no_token = page.request.post(url, form={**fields, "csrf": "", "nrs": "2"}, max_redirects=0,
                                 headers={"Origin": serve.url})
    assert no_token.status == 400 and "CSRF" in no_token.text()
    elsewhere = page.request.post(url, form={**fields, "nrs": "2"}, max_redirects=0,
                                  headers={"Origin": "https://evil.example"})
    assert elsewhere.status == 403 and "own page" in elsewhere.text()
    backdated = page.request.post(url, form={**fields, "authored": "2020-01-01T00:00:00Z", "nrs": "2"},
                                  max_redirects=0, headers={"Origin": serve.url})
    assert backdated.status == 400 and "not served by the dashboard" in backdated.text()
    # another patient named in the request changes nothing: the answer is the session patient's
    assert page.goto(f"{serve.url}/dashboard/record/nrs?patient={MARA}").status == 200
    assert len(_observations(sekmet, INES, NRS)) == before


def test_a_fhir_server_that_went_away_gives_a_page_with_the_score_not_saved(page, sekmet, tmp_path):
    ehr_port = free_port()
    serve = dashboard(tmp_path, ehr_port, workers=1)
    ehr = SmartEHR(sekmet, f"{serve.url}/dashboard/callback", port=ehr_port)
    try:
        _signed_in(page, serve, ehr, INES)
        page.goto(f"{serve.url}/dashboard/record/nrs")
        page.locator('fieldset#nrs input[value="6"]').check()
        before = len(_observations(sekmet, INES, NRS))
        ehr.stop()                                     # the EHR and its FHIR gateway go away
        with page.expect_response(lambda r: r.request.method == "POST") as answered:
            page.click("button[type=submit]")
        assert answered.value.status == 502
        assert page.locator("#score strong").inner_text() == "6"
        assert "nothing was written" in page.locator("#written").inner_text()
        assert "Traceback" not in page.content()
        assert len(_observations(sekmet, INES, NRS)) == before
    finally:
        if ehr.proc.poll() is None:
            ehr.stop()
        serve.stop()
