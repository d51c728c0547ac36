"""Prefetch resolution: present -> used, null -> no data, absent/OperationOutcome -> fetched, else 412/missing.

The EHR's FHIR server is mocked with `responses`; the service and requests are realistic (spec and sandbox).
"""
from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import responses

from cds_hooks import Service
from cds_hooks.errors import PreconditionFailed
from cds_hooks.prefetch import FetchPolicy, resolve

FHIR = "https://ehr.example.org/fhir"
POLICY = FetchPolicy(allowed_bases=(FHIR,), timeout=(0.5, 0.5), deadline_s=2.0)
PATIENT = {"resourceType": "Patient", "id": "1288992", "gender": "male", "birthDate": "1925-12-23"}
OUTCOME = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}


def pgx_obs(i: int) -> dict:
    return {"resource": {"resourceType": "Observation", "id": f"pgx{i}", "status": "final",
                         "code": {"coding": [{"system": "http://loinc.org", "code": "79714-2"}]},
                         "subject": {"reference": "Patient/1288992"},
                         "valueCodeableConcept": {"text": "CYP2D6 *4/*4"}}}


def bundle(entries, next_url=None):
    b = {"resourceType": "Bundle", "type": "searchset", "entry": entries}
    if next_url:
        b["link"] = [{"relation": "next", "url": next_url}]
    return b


def service(required=frozenset()):
    return Service(id="pgx", hook="patient-view", title="PGx", description="d", handler=lambda r: [],
                   prefetch={"patient": "Patient/{{context.patientId}}",
                             "pgx": "Observation?patient={{context.patientId}}&code=http://loinc.org|79714-2",
                             "encounter": "Encounter/{{context.encounterId}}"},
                   required_prefetch=required)


def call(prefetch=None, **extra):
    body = {"hook": "patient-view", "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea", "fhirServer": FHIR,
            "fhirAuthorization": {"access_token": "some-opaque-fhir-access-token", "token_type": "Bearer",
                                  "expires_in": 300, "scope": "user/Patient.read user/Observation.read",
                                  "subject": "cds-service4"},
            "context": {"userId": "Practitioner/example", "patientId": "1288992"}}
    if prefetch is not None:
        body["prefetch"] = prefetch
    body.update(extra)
    return body


@responses.activate
def test_everything_given_nothing_fetched():
    given = {"patient": PATIENT, "pgx": bundle([pgx_obs(1)]), "encounter": None}
    prefetch, missing = resolve(service(), call(given), POLICY)
    assert prefetch == given and missing == ()
    assert len(responses.calls) == 0


@responses.activate
def test_null_means_no_data_and_is_not_fetched():
    prefetch, missing = resolve(service({"patient"}), call({"patient": PATIENT, "pgx": None, "encounter": None}),
                                POLICY)
    assert prefetch["pgx"] is None and "pgx" not in missing
    assert len(responses.calls) == 0


@responses.activate
def test_absent_and_operation_outcome_keys_are_fetched_with_the_bearer_token():
    responses.get(f"{FHIR}/Patient/1288992", json=PATIENT)
    responses.get(f"{FHIR}/Observation", json=bundle([pgx_obs(1)]))
    prefetch, missing = resolve(service(), call({"pgx": OUTCOME}), POLICY, ThreadPoolExecutor(4))
    assert prefetch["patient"] == PATIENT
    assert prefetch["pgx"]["entry"][0]["resource"]["id"] == "pgx1"
    # encounterId is not in this context: its template cannot be filled, so it is missing (not fetched)
    assert missing == ("encounter",) and "encounter" not in prefetch
    assert {c.request.headers["Authorization"] for c in responses.calls} == {
        "Bearer some-opaque-fhir-access-token"}
    query = next(c.request.url for c in responses.calls if "/Observation" in c.request.url)
    assert "patient=1288992" in query and "code=http://loinc.org%7C79714-2" in query.replace("|", "%7C")


@responses.activate
def test_prefetch_of_the_wrong_shape_is_refetched():
    responses.get(f"{FHIR}/Observation", json=bundle([pgx_obs(2)]))
    # a single Observation where the search template asks for a Bundle
    prefetch, missing = resolve(service(), call({"patient": PATIENT, "pgx": pgx_obs(9)["resource"],
                                                 "encounter": None}), POLICY)
    assert prefetch["pgx"]["entry"][0]["resource"]["id"] == "pgx2" and missing == ()


@responses.activate
def test_fetch_follows_pagination():
    responses.get(f"{FHIR}/Observation", match=[responses.matchers.query_param_matcher(
        {"patient": "1288992", "code": "http://loinc.org|79714-2"})],
        json=bundle([pgx_obs(1)], f"{FHIR}/Observation?page=2"))
    responses.get(f"{FHIR}/Observation", match=[responses.matchers.query_param_matcher({"page": "2"})],
                  json=bundle([pgx_obs(2)]))
    prefetch, missing = resolve(service(), call({"patient": PATIENT, "encounter": None}), POLICY)
    assert [e["resource"]["id"] for e in prefetch["pgx"]["entry"]] == ["pgx1", "pgx2"] and missing == ()


@responses.activate
def test_paginated_prefetch_from_the_ehr_gets_its_next_pages(fixture_json):
    # the 3.0 ballot's pagination example: the EHR sends page 1 with a next link
    example = fixture_json("cds-hooks/spec300b-L0306-example-of-pagination-in-prefetch.json")
    base = "https://ehr.example.org/fhir"
    responses.get(f"{base}/MedicationRequest", json=bundle([{"resource": {
        "resourceType": "MedicationRequest", "id": "rx-page-2-01", "status": "active", "intent": "order",
        "subject": {"reference": "Patient/1288992"}}}]))
    orders = Service(id="os", hook="order-sign", title="t", description="d", handler=lambda r: [],
                     prefetch={"orders": "MedicationRequest?patient={{context.patientId}}"})
    prefetch, missing = resolve(orders, example, FetchPolicy(allowed_bases=(base,)))
    assert [e["resource"]["id"] for e in prefetch["orders"]["entry"]] == ["rx‑page‑1‑01", "rx-page-2-01"]
    assert missing == () and "link" not in prefetch["orders"]
    # the example has no fhirAuthorization: no token is invented
    assert "Authorization" not in responses.calls[0].request.headers


@responses.activate
def test_incomplete_pages_keep_the_data_and_report_the_key_missing():
    responses.get(f"{FHIR}/Observation", json=bundle([pgx_obs(1)], f"{FHIR}/Observation?page=2"))
    responses.get(f"{FHIR}/Observation", status=500)
    prefetch, missing = resolve(service(), call({"patient": PATIENT, "encounter": None}), POLICY)
    assert prefetch["pgx"]["entry"][0]["resource"]["id"] == "pgx1"
    assert missing == ("pgx",)  # "not seen" must not read as "not there"


@pytest.mark.parametrize("failure", [
    {"status": 401}, {"status": 403}, {"status": 404}, {"status": 500},
    {"body": requests.exceptions.ReadTimeout("slow")}, {"body": requests.exceptions.ConnectTimeout("down")},
])
@responses.activate
def test_fetch_failures_give_412_for_required_keys_and_missing_otherwise(failure):
    responses.get(f"{FHIR}/Patient/1288992", **failure)
    responses.get(f"{FHIR}/Observation", **failure)
    with pytest.raises(PreconditionFailed) as info:
        resolve(service({"patient"}), call({"encounter": None}), POLICY)
    assert "patient" in info.value.message and info.value.expression == "patient"
    prefetch, missing = resolve(service(), call({"encounter": None}), POLICY)
    assert set(missing) == {"patient", "pgx"} and "patient" not in prefetch


@responses.activate
def test_a_read_that_returns_another_type_is_not_used():
    responses.get(f"{FHIR}/Patient/1288992", json=OUTCOME)  # some servers answer 200 + OperationOutcome
    prefetch, missing = resolve(service(), call({"pgx": None, "encounter": None}), POLICY)
    assert missing == ("patient",)


def test_fhir_server_not_on_the_allowlist_is_never_called():
    with responses.RequestsMock() as mock:  # no URL registered: any call would raise
        body = call({"encounter": None}, fhirServer="https://attacker.example/fhir")
        prefetch, missing = resolve(service(), body, POLICY)
        assert set(missing) == {"patient", "pgx"} and len(mock.calls) == 0
        with pytest.raises(PreconditionFailed, match="no allowed fhirServer"):
            resolve(service({"pgx"}), body, POLICY)
        # the default policy allows nothing at all
        _, missing = resolve(service(), call({"encounter": None}), FetchPolicy())
        assert set(missing) == {"patient", "pgx"} and len(mock.calls) == 0


def test_no_fhir_server_at_all(fixture_json):
    request = fixture_json("sandbox/patient-view-request.json")
    del request["fhirServer"]
    _, missing = resolve(service(), request, POLICY)
    assert set(missing) == {"pgx", "encounter"}  # patient was prefetched by the sandbox


@responses.activate
def test_deadline_covers_all_keys_together():
    responses.get(f"{FHIR}/Patient/1288992", body=requests.exceptions.ReadTimeout("slow"))
    responses.get(f"{FHIR}/Observation", body=requests.exceptions.ReadTimeout("slow"))
    policy = FetchPolicy(allowed_bases=(FHIR,), timeout=(0.2, 0.2), deadline_s=0.3)
    prefetch, missing = resolve(service(), call({"encounter": None}), policy, ThreadPoolExecutor(4))
    assert set(missing) == {"patient", "pgx"}


@responses.activate
def test_sandbox_patient_view_capture(fixture_json):
    # the sandbox prefetches "patient" and leaves out what it could not fill; its FHIR server is allowlisted
    request = fixture_json("sandbox/patient-view-request.json")
    sandbox_fhir = request["fhirServer"]
    responses.get(f"{sandbox_fhir}/Observation", json=bundle([pgx_obs(1)]))
    prefetch, missing = resolve(service(), request, FetchPolicy(allowed_bases=(sandbox_fhir,)))
    assert prefetch["patient"]["id"] == "pat-1" and prefetch["pgx"]["entry"]
    assert missing == ("encounter",)
    assert "Authorization" not in responses.calls[0].request.headers  # open sandbox: no fhirAuthorization


@responses.activate
def test_412_names_every_required_key_and_why():
    responses.get(f"{FHIR}/Patient/1288992", status=404)
    responses.get(f"{FHIR}/Observation", body=requests.exceptions.ReadTimeout("slow"))
    with pytest.raises(PreconditionFailed) as info:
        resolve(service({"patient", "pgx"}), call({"encounter": None}), POLICY)
    outcome = info.value.outcome()
    assert info.value.status == 412 and outcome["issue"][0]["expression"] == ["patient", "pgx"]
    assert outcome["issue"][0]["diagnostics"] == (
        "required prefetch data could not be obtained: patient (not found on the FHIR server); "
        "pgx (the FHIR server did not answer within the deadline)")
    assert "some-opaque-fhir-access-token" not in str(outcome)


def test_null_for_a_required_read_is_412_and_for_a_required_search_is_no_data():
    with pytest.raises(PreconditionFailed, match=r"patient \(the EHR sent null: no such resource\)"):
        resolve(service({"patient"}), call({"patient": None, "pgx": None, "encounter": None}), POLICY)
    prefetch, missing = resolve(service({"patient", "pgx"}), call({"patient": PATIENT, "pgx": None,
                                                                   "encounter": None}), POLICY)
    assert prefetch["pgx"] is None and missing == ()


@responses.activate
def test_without_an_executor_the_keys_are_fetched_at_once_in_threads_of_the_call():
    both_in_flight = threading.Barrier(2, timeout=5)  # broken (and the test failing) if one waits for the other
    threads = set()

    def answer(body):
        def callback(request):
            threads.add(threading.current_thread().name)
            both_in_flight.wait()
            return 200, {}, json.dumps(body)
        return callback
    responses.add_callback("GET", f"{FHIR}/Patient/1288992", callback=answer(PATIENT))
    responses.add_callback("GET", f"{FHIR}/Observation", callback=answer(bundle([pgx_obs(1)])))
    prefetch, missing = resolve(service(), call({"encounter": None}), POLICY)
    assert missing == () and prefetch["patient"] == PATIENT
    assert len(threads) == 2 and all(name.startswith("cds-prefetch") for name in threads)


@pytest.mark.parametrize("link", [5, True, "next", {"relation": "next", "url": "x"}, [None, 5, "next"]])
@responses.activate
def test_has_next_with_a_link_of_the_wrong_json_type_is_false_and_nothing_is_fetched(link):
    # was TypeError in _has_next ("int object is not iterable"): a 500 for the whole call
    given = {"patient": PATIENT, "pgx": {**bundle([pgx_obs(1)]), "link": link}, "encounter": None}
    prefetch, missing = resolve(service(), call(given), POLICY)
    assert prefetch["pgx"]["entry"][0]["resource"]["id"] == "pgx1" and missing == ()
    assert len(responses.calls) == 0


@responses.activate
def test_complete_pages_with_entries_of_the_wrong_json_type_keeps_what_it_read():
    responses.get(f"{FHIR}/Observation", json={"resourceType": "Bundle", "type": "searchset", "entry": "x"})
    # was TypeError in _complete_pages (list(5)), raised in the executor: a 500
    paged = {**bundle([pgx_obs(1)], next_url=f"{FHIR}/Observation?page=2"), "entry": 5}
    prefetch, missing = resolve(service(), call({"patient": PATIENT, "pgx": paged, "encounter": None}), POLICY,
                                ThreadPoolExecutor(2))
    # page 2 is not a readable Bundle: what was read is kept, and the key is marked as not fully read
    assert prefetch["pgx"]["entry"] == 5 and missing == ("pgx",)


@pytest.mark.parametrize("token", ["tökén-€", "😀", "ok\r\nX-Injected: 1"])
@responses.activate
def test_fhir_authorization_with_a_non_latin1_access_token_is_unusable_never_sent(token):
    # was UnicodeEncodeError in fhir_client._send: a 500. The data it would fetch is missing (412 if required)
    responses.get(f"{FHIR}/Patient/1288992", json=PATIENT)
    body = call({"pgx": None, "encounter": None})
    body["fhirAuthorization"]["access_token"] = token
    with pytest.raises(PreconditionFailed) as refused:
        resolve(service({"patient"}), body, POLICY)
    assert refused.value.expression == "patient" and token not in refused.value.message
    _, missing = resolve(service(), body, POLICY)
    assert missing == ("patient",)
    assert len(responses.calls) == 0
