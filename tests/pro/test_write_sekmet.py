"""Answers written into a real FHIR server (sekmet): idempotent, seen by the next hook call that fetches from that
server, and picked up by the poller."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from cds_hooks.fhir_client import FHIRClient
from fhir_pain.poller.cycle import Poller
from fhir_pain.store import Store
from golden.fhir_builders import hook_request
from pgx_seed import patient_entries, seed
from pro_builders import response
from written_issues import issues_for

pytestmark = pytest.mark.integration
EXTRACT = "/pro/QuestionnaireResponse/$extract?write=true"
NOW = "2026-12-01T10:00:00Z"


@pytest.fixture
def client(app_factory, pro_sekmet):
    return app_factory(REGISTER_CLINICAL_SERVICES=True, NOW=NOW, FHIR_SERVER_ALLOWLIST=[pro_sekmet.base_url],
                       PRO_FHIR_SERVER=pro_sekmet.base_url, PRO_FHIR_TOKEN=pro_sekmet.token,
                       FHIR_TIMEOUT_S=[2.0, 30.0], FHIR_DEADLINE_S=30.0).test_client()


def _patient(server, family: str) -> str:
    [[patient]] = seed(server, [patient_entries(family)])
    return patient


def test_written_once_and_the_same_response_again_writes_nothing(client, pro_sekmet):
    patient = _patient(pro_sekmet, "ProTwice")
    qr = response("phq9", pid=patient.split("/")[1])
    first = client.post(EXTRACT, json=qr)
    assert first.status_code == 200, first.get_data(as_text=True)
    statuses = [e["response"]["status"] for e in first.get_json()["entry"]]
    assert statuses == ["201 Created"] * 11
    stored = pro_sekmet.search(f"Observation?subject={patient}")
    assert len(stored) == 10
    versions = {o["id"]: o["meta"]["versionId"] for o in stored}

    again = client.post(EXTRACT, json=qr)
    assert [e["response"]["status"] for e in again.get_json()["entry"]] == ["200 OK"] * 11
    assert {e["response"]["location"] for e in again.get_json()["entry"]} == \
        {e["response"]["location"] for e in first.get_json()["entry"]}
    after = pro_sekmet.search(f"Observation?subject={patient}")
    assert {o["id"]: o["meta"]["versionId"] for o in after} == versions
    # sekmet 0.1.1 ignores subject= on QuestionnaireResponse: filter here
    [stored_qr] = [q for q in pro_sekmet.search("QuestionnaireResponse?_count=100")
                   if q["subject"]["reference"] == patient]
    total = next(o for o in after if o["code"]["coding"][0]["code"] == "44261-6")
    assert total["derivedFrom"] == [{"reference": f"QuestionnaireResponse/{stored_qr['id']}"}]
    assert {m["reference"] for m in total["hasMember"]} == {f"Observation/{o['id']}" for o in after} - \
        {f"Observation/{total['id']}"}


def test_the_next_hook_call_fetching_from_the_server_sees_the_answer_and_so_does_the_poller(client, pro_sekmet,
                                                                                            tmp_path):
    since = datetime.now(timezone.utc)
    patient = _patient(pro_sekmet, "ProItem9")
    pid = patient.split("/")[1]
    body = hook_request("patient-view", pid, name="pro-sekmet")
    body["fhirServer"] = pro_sekmet.base_url
    body["fhirAuthorization"] = {"access_token": pro_sekmet.token, "token_type": "Bearer", "expires_in": 300,
                                 "scope": "patient/*.read", "subject": "fhir-pain"}

    def rules() -> set[str]:
        r = client.post("/cds-services/pain-pgx-patient-view", json=body)     # no prefetch: all fetched
        assert r.status_code == 200, r.get_data(as_text=True)
        return {f["rule"] for card in r.get_json()["cards"] for f in card["extension"]["io.fhir-pain.findings"]}

    assert "fhir-pain/safety/phq9-item9" not in rules()
    written = client.post(EXTRACT, json=response("phq9", [0, 1, 0, 1, 0, 0, 0, 0, 1], pid=pid,
                                                 authored="2026-11-30T09:15:00Z"))
    assert written.status_code == 200
    assert "fhir-pain/safety/phq9-item9" in rules()

    store = Store(f"sqlite:///{tmp_path / 'poller.sqlite3'}")
    try:
        fhir = FHIRClient(pro_sekmet.base_url, auth=pro_sekmet.token, timeout=(2.0, 30.0), retries=2,
                          backoff_s=0.01, max_pages=50)
        poller = Poller(fhir, store, cursor_name="poller:pro", since=since, workers=1, page_size=50,
                        clock=lambda: datetime(2026, 12, 1, 10, tzinfo=timezone.utc))
        stats = poller.run_cycle()
        assert stats.failed == 0 and stats.created >= 1
    finally:
        store.dispose()
    [issue] = [i for i in issues_for(pro_sekmet, patient)
               if any(c.get("code") == "fhir-pain/safety/phq9-item9" for cc in [i["code"]] for c in cc["coding"])]
    assert issue["status"] == "final" and issue["severity"] == "moderate"
    item9 = pro_sekmet.search(f"Observation?subject={patient}&code=http://loinc.org|44260-8")[0]
    assert {"reference": f"Observation/{item9['id']}"} in issue["evidence"][0]["detail"]


def test_a_response_the_server_refuses_is_a_422_and_nothing_is_written(client, pro_sekmet):
    patient = _patient(pro_sekmet, "ProRefused")
    qr = response("nrs", pid=patient.split("/")[1])
    qr["identifier"] = {"system": "urn:ietf:rfc:3986", "value": 7}      # not a FHIR string: the server says 400
    r = client.post(EXTRACT, json=qr)
    assert r.status_code == 422, r.get_data(as_text=True)
    assert r.get_json()["issue"][0]["diagnostics"].startswith("the FHIR server did not take the answers (400)")
    assert pro_sekmet.search(f"Observation?subject={patient}") == []
