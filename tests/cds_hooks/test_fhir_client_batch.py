"""FHIRClient.batch_get (added for the poller: one round trip for a patient's reads)."""
import orjson
import pytest
import responses

from cds_hooks.fhir_client import FHIRClient, FHIRNotFound, FHIRServerError, URLNotAllowed

BASE = "https://fhir.example.org/r4"
OUTCOME = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-found"}]}


def _answer(*entries):
    return {"resourceType": "Bundle", "type": "batch-response", "entry": list(entries)}


@responses.activate
def test_batch_get_sends_one_batch_and_returns_each_answer_in_order():
    searchset = {"resourceType": "Bundle", "type": "searchset", "entry": [],
                 "link": [{"relation": "next", "url": f"{BASE}/Observation?page=2"}]}
    responses.post(BASE, json=_answer(
        {"resource": {"resourceType": "Patient", "id": "p1"}, "response": {"status": "200 OK"}},
        {"resource": searchset, "response": {"status": "200"}},
        {"response": {"status": "404 Not Found", "outcome": OUTCOME}},
    ))
    client = FHIRClient(BASE, auth="tok")
    patient, search, missing = client.batch_get(["Patient/p1", "Observation?patient=p1", "/Patient/gone"])
    assert patient == {"resourceType": "Patient", "id": "p1"}
    assert search["link"][0]["url"].endswith("page=2")          # further pages are the caller's to read
    assert isinstance(missing, FHIRNotFound) and missing.status == 404 and missing.outcome == OUTCOME
    sent = orjson.loads(responses.calls[0].request.body)
    assert sent["type"] == "batch"
    assert [e["request"] for e in sent["entry"]] == [
        {"method": "GET", "url": "Patient/p1"}, {"method": "GET", "url": "Observation?patient=p1"},
        {"method": "GET", "url": "Patient/gone"}]
    assert responses.calls[0].request.headers["Authorization"] == "Bearer tok"


@responses.activate
def test_batch_get_is_retried_like_a_read():
    responses.post(BASE, status=503)
    responses.post(BASE, json=_answer({"resource": {"resourceType": "Patient", "id": "p1"},
                                       "response": {"status": "200 OK"}}))
    client = FHIRClient(BASE, retries=1, backoff_s=0)
    assert client.batch_get(["Patient/p1"])[0]["id"] == "p1"
    assert len(responses.calls) == 2


@responses.activate
def test_a_batch_answer_that_does_not_match_the_request_is_an_error():
    responses.post(BASE, json=_answer())
    with pytest.raises(FHIRServerError):
        FHIRClient(BASE).batch_get(["Patient/p1"])


def test_batch_entries_must_be_relative_paths():
    with pytest.raises(URLNotAllowed):
        FHIRClient(BASE).batch_get(["https://elsewhere.example.org/fhir/Patient/1"])
