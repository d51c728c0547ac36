"""FHIRClient.transaction (added for the demo loader: one patient, all or nothing): sent once unless the server
cannot have applied it, typed errors, and an answer that does not match the request is an error."""
import orjson
import pytest
import requests
import responses
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from cds_hooks.fhir_client import (FHIRClient, FHIRError, FHIRServerError, FHIRTimeout, FHIRUnauthorized,
                                   URLNotAllowed)

BASE = "https://fhir.example.org/r4"
OUTCOME = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "processing",
                                                          "diagnostics": "Transaction rolled back"}]}
PATIENT = {"resourceType": "Patient", "id": "pt-1", "name": [{"family": "Lind", "given": ["Ava"]}],
           "gender": "female", "birthDate": "1980-04-02"}
GENOTYPE = {"resourceType": "Observation", "id": "pt-1-cyp2d6", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "84413-4"}]},
            "subject": {"reference": "Patient/pt-1"},
            "valueCodeableConcept": {"coding": [{"system": "http://www.pharmvar.org", "code": "CYP2D6 *4/*4"}]}}


def _bundle(*resources: dict) -> dict:
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": f"{BASE}/{r['resourceType']}/{r['id']}", "resource": r,
         "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in resources]}


def _answer(*statuses: str, btype: str = "transaction-response") -> dict:
    return {"resourceType": "Bundle", "type": btype,
            "entry": [{"response": {"status": s, "location": f"Patient/pt-1/_history/{i + 1}"}}
                      for i, s in enumerate(statuses)]}


def _refused() -> requests.ConnectionError:
    """What requests raises when nothing listens on the port: the request never left this machine."""
    return requests.ConnectionError(MaxRetryError(None, BASE, NewConnectionError(None, "Connection refused")))


@responses.activate
def test_posts_the_bundle_to_the_base_once_and_returns_the_response():
    responses.post(BASE, json=_answer("201 Created", "200 OK"))
    client = FHIRClient(BASE, auth="tok", retries=2)
    answer = client.transaction(_bundle(PATIENT, GENOTYPE))
    assert [e["response"]["status"] for e in answer["entry"]] == ["201 Created", "200 OK"]
    [call] = responses.calls
    sent = orjson.loads(call.request.body)
    assert sent == _bundle(PATIENT, GENOTYPE)
    assert call.request.headers["Content-Type"] == "application/fhir+json"
    assert call.request.headers["Authorization"] == "Bearer tok"


@responses.activate
def test_a_429_and_a_refused_connection_are_retried_they_applied_nothing():
    responses.post(BASE, status=429, headers={"Retry-After": "0"})
    responses.post(BASE, body=_refused())
    responses.post(BASE, json=_answer("201 Created"))
    client = FHIRClient(BASE, retries=2, backoff_s=0)
    assert client.transaction(_bundle(PATIENT))["type"] == "transaction-response"
    assert len(responses.calls) == 3


@pytest.mark.parametrize("failure, error", [
    ({"status": 500, "json": OUTCOME}, FHIRServerError),        # may have committed before failing
    ({"status": 503}, FHIRServerError),
    ({"body": requests.ReadTimeout("read timed out")}, FHIRTimeout),   # sent; the answer never came
    ({"body": requests.ConnectionError(ProtocolError("Connection aborted."))}, FHIRServerError),  # dropped
], ids=["500", "503", "read-timeout", "dropped"])
@responses.activate
def test_a_failure_after_sending_is_not_retried(failure, error):
    responses.post(BASE, **failure)
    responses.post(BASE, json=_answer("201 Created"))
    client = FHIRClient(BASE, retries=3, backoff_s=0)
    with pytest.raises(error):
        client.transaction(_bundle(PATIENT))
    assert len(responses.calls) == 1


@responses.activate
def test_create_is_not_resent_after_a_read_timeout():
    """Regression: create() retried a read timeout, so a POST the server had applied could create a duplicate."""
    responses.post(f"{BASE}/Patient", body=requests.ReadTimeout("read timed out"))
    responses.post(f"{BASE}/Patient", json=PATIENT, status=201)
    with pytest.raises(FHIRTimeout):
        FHIRClient(BASE, retries=1, backoff_s=0).create(PATIENT)
    assert len(responses.calls) == 1


@responses.activate
def test_create_is_retried_when_the_connection_never_opened():
    refused = requests.ConnectTimeout("connect timed out")
    responses.post(f"{BASE}/Patient", body=refused)
    responses.post(f"{BASE}/Patient", json=PATIENT, status=201)
    assert FHIRClient(BASE, retries=1, backoff_s=0).create(PATIENT)["id"] == "pt-1"
    assert len(responses.calls) == 2


@pytest.mark.parametrize("status, error", [(400, FHIRError), (405, FHIRError), (422, FHIRError),
                                           (401, FHIRUnauthorized), (501, FHIRServerError)])
@responses.activate
def test_refusals_are_typed_with_status_and_outcome(status, error):
    responses.post(BASE, status=status, json=OUTCOME)
    with pytest.raises(error) as raised:
        FHIRClient(BASE, retries=2, backoff_s=0).transaction(_bundle(PATIENT))
    assert raised.value.status == status and raised.value.outcome == OUTCOME
    assert len(responses.calls) == 1


@pytest.mark.parametrize("answer", [
    _answer("201 Created"),                                     # one entry for two requests
    _answer("201 Created", "200 OK", btype="batch-response"),   # not what was asked
    OUTCOME,                                                    # 200 with no Bundle
    _answer("201 Created", "400 Bad Request"),                  # a failing entry in a "successful" transaction
], ids=["short", "batch-response", "outcome", "failed-entry"])
@responses.activate
def test_an_answer_that_does_not_match_the_transaction_is_an_error(answer):
    responses.post(BASE, json=answer)
    with pytest.raises(FHIRServerError):
        FHIRClient(BASE).transaction(_bundle(PATIENT, GENOTYPE))


@responses.activate
def test_refuses_what_is_not_a_transaction_and_entries_aimed_elsewhere_before_sending():
    client = FHIRClient(BASE)
    with pytest.raises(ValueError):
        client.transaction({**_bundle(PATIENT), "type": "batch"})
    with pytest.raises(ValueError):
        client.transaction({"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": PATIENT}]})
    elsewhere = _bundle(PATIENT)
    elsewhere["entry"][0]["request"]["url"] = "https://evil.example.com/fhir/Patient/pt-1"
    with pytest.raises(URLNotAllowed):
        client.transaction(elsewhere)
    assert len(responses.calls) == 0
