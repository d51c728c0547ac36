"""FHIRClient against a FHIR server mocked with `responses`: paging, allowlist, typed errors, retries, deadline."""
from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
import requests
import responses

from cds_hooks import fhir_client
from cds_hooks.fhir_client import (FHIRClient, FHIRError, FHIRNotFound, FHIRServerError, FHIRTimeout,
                                   FHIRTooManyPages, FHIRUnauthorized, URLNotAllowed, is_allowed, normalize_base)

BASE = "https://ehr.example.org/fhir"
PATIENT = {"resourceType": "Patient", "id": "1288992", "gender": "male", "birthDate": "1925-12-23"}


def obs(i: int) -> dict:
    return {"fullUrl": f"{BASE}/Observation/o{i}",
            "resource": {"resourceType": "Observation", "id": f"o{i}", "status": "final",
                         "code": {"coding": [{"system": "http://loinc.org", "code": "79714-2"}]},
                         "subject": {"reference": "Patient/1288992"}}}


def page(entries: list, next_url: str | None = None) -> dict:
    bundle = {"resourceType": "Bundle", "type": "searchset", "entry": entries}
    if next_url:
        bundle["link"] = [{"relation": "self", "url": "ignored"}, {"relation": "next", "url": next_url}]
    return bundle


@responses.activate
def test_read_sends_bearer_and_fhir_accept():
    responses.get(f"{BASE}/Patient/1288992", json=PATIENT)
    client = FHIRClient(BASE, auth="opaque-token")
    assert client.read("Patient/1288992") == PATIENT
    sent = responses.calls[0].request
    assert sent.headers["Authorization"] == "Bearer opaque-token"
    assert sent.headers["Accept"] == "application/fhir+json"


@responses.activate
def test_auth_callable_is_asked_per_request():
    responses.get(f"{BASE}/Patient/1288992", json=PATIENT)
    tokens = iter(["t1", "t2"])
    client = FHIRClient(BASE, auth=lambda: next(tokens))
    client.read("Patient/1288992")
    client.read("Patient/1288992")
    assert [c.request.headers["Authorization"] for c in responses.calls] == ["Bearer t1", "Bearer t2"]


@responses.activate
def test_search_follows_next_links_and_merges():
    responses.get(f"{BASE}/Observation", match=[responses.matchers.query_param_matcher({"patient": "1288992"})],
                  json=page([obs(1), obs(2)], f"{BASE}/Observation?patient=1288992&_page=2"))
    responses.get(f"{BASE}/Observation", match=[responses.matchers.query_param_matcher(
        {"patient": "1288992", "_page": "2"})], json=page([obs(3)], f"{BASE}/Observation?patient=1288992&_page=3"))
    responses.get(f"{BASE}/Observation", match=[responses.matchers.query_param_matcher(
        {"patient": "1288992", "_page": "3"})], json=page([obs(4)]))
    client = FHIRClient(BASE)
    found = client.search("Observation?patient=1288992")
    assert [r["id"] for r in found] == ["o1", "o2", "o3", "o4"]
    bundle = client.get_bundle("Observation?patient=1288992")
    assert len(bundle["entry"]) == 4 and "link" not in bundle  # complete: no next link left


@responses.activate
def test_page_bound_search_refuses_partial_and_bundle_keeps_next():
    for i in range(1, 4):
        responses.get(f"{BASE}/Observation", match=[responses.matchers.query_param_matcher(
            {"_page": str(i)})], json=page([obs(i)], f"{BASE}/Observation?_page={i + 1}"))
    client = FHIRClient(BASE, max_pages=2)
    with pytest.raises(FHIRTooManyPages):
        client.search("Observation?_page=1")
    bundle = client.get_bundle("Observation?_page=1")
    assert [e["resource"]["id"] for e in bundle["entry"]] == ["o1", "o2"]
    assert bundle["link"] == [{"relation": "next", "url": f"{BASE}/Observation?_page=3"}]


@responses.activate
def test_next_link_to_another_server_is_not_followed():
    responses.get(f"{BASE}/Observation", json=page([obs(1)], "https://attacker.example/steal?x=1"))
    client = FHIRClient(BASE, auth="secret")
    bundle = client.get_bundle("Observation?patient=1")
    assert bundle["link"][0]["url"].startswith("https://attacker.example")  # marked incomplete
    with pytest.raises(URLNotAllowed):
        client.search("Observation?patient=1")
    assert all(c.request.url.startswith(BASE) for c in responses.calls)


@pytest.mark.parametrize("status,error", [(401, FHIRUnauthorized), (403, FHIRUnauthorized), (404, FHIRNotFound),
                                          (410, FHIRNotFound), (500, FHIRServerError), (503, FHIRServerError),
                                          (400, FHIRError), (429, FHIRServerError)])
@responses.activate
def test_http_errors_are_typed(status, error):
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "processing"}]}
    responses.get(f"{BASE}/Patient/1", json=outcome, status=status)
    with pytest.raises(error) as info:
        FHIRClient(BASE).read("Patient/1")
    assert info.value.status == status and info.value.outcome == outcome


@responses.activate
def test_not_fhir_json_is_a_server_error():
    responses.get(f"{BASE}/Patient/1", body="<html>login</html>", status=200)
    with pytest.raises(FHIRServerError, match="not JSON"):
        FHIRClient(BASE).read("Patient/1")
    responses.get(f"{BASE}/Patient/2", json=[1, 2])
    with pytest.raises(FHIRServerError, match="not a FHIR resource"):
        FHIRClient(BASE).read("Patient/2")


@responses.activate
def test_timeouts_are_typed():
    responses.get(f"{BASE}/Patient/1", body=requests.exceptions.ReadTimeout("slow"))
    with pytest.raises(FHIRTimeout):
        FHIRClient(BASE).read("Patient/1")
    responses.get(f"{BASE}/Patient/2", body=requests.exceptions.ConnectionError("refused"))
    with pytest.raises(FHIRServerError, match="unreachable"):
        FHIRClient(BASE).read("Patient/2")


@responses.activate
def test_deadline_bounds_the_whole_client(monkeypatch):
    responses.get(f"{BASE}/Patient/1", json=PATIENT)
    client = FHIRClient(BASE, deadline_s=5.0)
    client.read("Patient/1")
    # the clock moves past the deadline (a real sleep would have to be long, or could be outrun by a busy machine)
    later = time.monotonic() + 5.1
    monkeypatch.setattr(fhir_client, "time", SimpleNamespace(monotonic=lambda: later, time=time.time,
                                                             sleep=time.sleep))
    with pytest.raises(FHIRTimeout, match="deadline"):
        client.read("Patient/1")
    assert len(responses.calls) == 1


@responses.activate
def test_retries_with_backoff_honour_retry_after():
    responses.get(f"{BASE}/Patient/1", status=429, headers={"Retry-After": "0"})
    responses.get(f"{BASE}/Patient/1", status=503)
    responses.get(f"{BASE}/Patient/1", json=PATIENT)
    client = FHIRClient(BASE, retries=2, backoff_s=0.01)
    assert client.read("Patient/1") == PATIENT
    assert len(responses.calls) == 3


@responses.activate
def test_no_retries_on_the_hook_path():
    responses.get(f"{BASE}/Patient/1", status=503)
    with pytest.raises(FHIRServerError):
        FHIRClient(BASE, retries=0).read("Patient/1")
    assert len(responses.calls) == 1


@responses.activate
def test_retry_after_beyond_deadline_gives_up_at_once():
    responses.get(f"{BASE}/Patient/1", status=429, headers={"Retry-After": "30"})
    started = time.monotonic()
    with pytest.raises(FHIRServerError):
        FHIRClient(BASE, retries=3, deadline_s=10.0).read("Patient/1")
    # waiting would take 10 s (the deadline) or 30 s: half the deadline leaves a busy machine room to be slow
    assert time.monotonic() - started < 5.0 and len(responses.calls) == 1


@responses.activate
def test_plain_create_is_not_retried_on_5xx_but_conditional_create_is():
    mr = {"resourceType": "DetectedIssue", "status": "final"}
    responses.post(f"{BASE}/DetectedIssue", status=500)
    with pytest.raises(FHIRServerError):
        FHIRClient(BASE, retries=2, backoff_s=0).create(mr)
    assert len(responses.calls) == 1
    responses.reset()
    responses.post(f"{BASE}/DetectedIssue", status=500)
    responses.post(f"{BASE}/DetectedIssue", json={**mr, "id": "d1"}, status=201)
    created = FHIRClient(BASE, retries=2, backoff_s=0).conditional_create(mr, "identifier=urn:x|1")
    assert created["id"] == "d1"
    assert responses.calls[-1].request.headers["If-None-Exist"] == "identifier=urn:x|1"
    assert responses.calls[-1].request.headers["Content-Type"] == "application/fhir+json"


@responses.activate
def test_update_puts_and_create_without_body_reads_location():
    di = {"resourceType": "DetectedIssue", "id": "d1", "status": "final"}
    responses.put(f"{BASE}/DetectedIssue/d1", json=di)
    assert FHIRClient(BASE).update(di) == di
    responses.post(f"{BASE}/DetectedIssue", status=201, headers={"Location": f"{BASE}/DetectedIssue/d2/_history/1"})
    responses.get(f"{BASE}/DetectedIssue/d2/_history/1", json={**di, "id": "d2"})
    assert FHIRClient(BASE).create({"resourceType": "DetectedIssue", "status": "final"})["id"] == "d2"
    with pytest.raises(ValueError):
        FHIRClient(BASE).update({"resourceType": "DetectedIssue"})


@pytest.mark.parametrize("url", ["https://ehr.example.org/fhir/Patient/1", "https://EHR.example.org:443/fhir/x",
                                 "https://ehr.example.org/fhir"])
def test_allowed(url):
    assert is_allowed(url, [BASE])


@pytest.mark.parametrize("url", ["https://ehr.example.org/fhirx/Patient/1", "http://ehr.example.org/fhir/Patient",
                                 "https://ehr.example.org:8443/fhir", "https://ehr.example.org/fhir/../admin",
                                 "https://ehr.example.org/fhir/%2e%2e/admin", "https://other.example/fhir",
                                 "file:///etc/passwd", "https://user:pw@ehr.example.org/fhir", "not a url"])
def test_not_allowed(url):
    assert not is_allowed(url, [BASE])


def test_client_never_calls_outside_its_bases():
    with pytest.raises(URLNotAllowed):
        FHIRClient("https://other.example/fhir", allowed_bases=[BASE])
    client = FHIRClient(BASE)
    with responses.RequestsMock() as mock:  # any request would fail the test: none is registered
        for target in ("https://attacker.example/x", "../x/Patient/1"):
            with pytest.raises(URLNotAllowed):
                client.read(target)
        with pytest.raises(URLNotAllowed):
            client.search_url("https://attacker.example/Observation?x=1")
        assert len(mock.calls) == 0


def test_normalize_base():
    assert normalize_base("HTTPS://Ehr.Example.org:443/fhir/") == "https://ehr.example.org/fhir"
    assert normalize_base("http://127.0.0.1:8090/fhir") == "http://127.0.0.1:8090/fhir"


# -- regressions from the protocol and security review ---------------------------------------------------------

@pytest.mark.parametrize("url", [
    "https://ehr.example.org@evil.example/fhir",  # the allowed host as userinfo
    "https://ehr.example.org:443@evil.example/fhir",
    "https://@ehr.example.org/fhir",  # an empty userinfo is still userinfo
    "https://ehr.example.org.evil.example/fhir",  # the allowed host as a prefix of another
    "https://evil-ehr.example.org/fhir",
    "https://ehr.example.org./fhir",  # trailing dot: refused rather than treated as the same host
    "https://ehr.exаmple.org/fhir",  # Cyrillic "а": an IDN homograph
    "https://xn--ehr-exmple-5nd.org/fhir",
    "https://ehr.exa\tmple.org/fhir",  # urlsplit drops the tab and allows it; urllib3 sees another host
    "https://evil.example\t@ehr.example.org/fhir",
    "https://ehr.example.org/fhir\n/Patient",
    "https://ehr.example.org\\@evil.example/fhir",  # backslash: "/" to some parsers and servers
    "https://ehr.example.org/fhir\\..\\admin",
    "https://ehr.example.org/fhir/Patient?x=1\r\nHost: evil.example",  # header injection via the query
    "https://ehr.example.org:+443/fhir",
    "//ehr.example.org/fhir", "ehr.example.org/fhir",
])
def test_allowlist_refuses_userinfo_lookalike_and_ambiguous_urls(url):
    """Tabs, newlines and backslashes passed is_allowed (urlsplit strips or ignores them) while the request
    library parses the same string differently; an empty userinfo passed too."""
    assert not is_allowed(url, [BASE])


def test_allowlist_still_accepts_spellings_of_the_same_url():
    for url in ("HTTPS://EHR.EXAMPLE.ORG/fhir/Patient/1", "https://ehr.example.org:443/fhir",
                "https://ehr.example.org/fhir/Observation?code=a b&date=ge2024-01-01T00:00:00+00:00"):
        assert is_allowed(url, [BASE]), url
    assert is_allowed("https://xn--ehr-exmple-5nd.org/fhir/Patient/1", ["https://xn--ehr-exmple-5nd.org/fhir"])


@responses.activate
@pytest.mark.parametrize("next_url", ["//evil.example/fhir/Observation?page=2",
                                      "https://ehr.example.org@evil.example/fhir/Observation?page=2",
                                      "https://ehr.example.org\\@evil.example/fhir/Observation?page=2",
                                      "/other-base/Observation?page=2"])
def test_next_links_that_leave_the_base_are_not_followed(next_url):
    responses.get(f"{BASE}/Observation", json=page([obs(1)], next_url))
    client = FHIRClient(BASE, auth="secret")
    bundle = client.get_bundle("Observation?patient=1")
    assert [e["resource"]["id"] for e in bundle["entry"]] == ["o1"] and bundle["link"][0]["relation"] == "next"
    assert len(responses.calls) == 1


@responses.activate
@pytest.mark.parametrize("token", ["tökén-€", "😀", "ok\r\nX-Injected: 1", "two words", "ok\x00"])
def test_send_with_a_token_http_cannot_carry_raises_unauthorized_and_sends_nothing(token):
    # was UnicodeEncodeError from http.client (a 500 on the hook path) for a non-Latin-1 access token
    responses.get(f"{BASE}/Patient/1288992", json=PATIENT)
    with pytest.raises(FHIRUnauthorized) as raised:
        FHIRClient(BASE, auth=token).read("Patient/1288992")
    assert len(responses.calls) == 0
    assert token not in str(raised.value)


@responses.activate
def test_search_with_wrong_json_types_for_entry_and_link_reads_what_it_can():
    responses.get(f"{BASE}/Observation", json={"resourceType": "Bundle", "type": "searchset", "entry": 5,
                                               "link": "next"})
    with pytest.raises(fhir_client.FHIRServerError):     # a typed error (the data is missing), never a TypeError
        FHIRClient(BASE).get_bundle("Observation?patient=1")
    assert fhir_client.next_link({"link": {"relation": "next", "url": "x"}}) is None
