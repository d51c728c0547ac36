"""Reading notifications: which patients changed, in every shape a rest-hook server sends (R4 with and without
payload, the Subscriptions Backport's R4 Parameters and R4B SubscriptionStatus, full-resource and id-only)."""
from __future__ import annotations

import pytest

from fhir_pain.subscriptions.notifications import NotANotification, read, reference

BASE = "https://fhir.example.org/r4"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def order(rid: str = "mr1", patient: str = "Patient/p1") -> dict:
    return {"resourceType": "MedicationRequest", "id": rid, "status": "active", "intent": "order",
            "meta": {"versionId": "1", "lastUpdated": "2026-12-04T08:00:00Z"},
            "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "2670", "display": "codeine"}]},
            "subject": {"reference": patient}}


def status_parameters(kind: str, events: list[list[dict]] = ()) -> dict:
    params = [
        {"name": "subscription", "valueReference": {"reference": f"{BASE}/Subscription/s1"}},
        {"name": "topic", "valueCanonical": "http://example.org/topic/medication-request"},
        {"name": "status", "valueCode": "active"},
        {"name": "type", "valueCode": kind},
        {"name": "events-since-subscription-start", "valueString": "3"},
    ]
    for n, parts in enumerate(events, 1):
        params.append({"name": "notification-event",
                       "part": [{"name": "event-number", "valueString": str(n)}, *parts]})
    return {"resourceType": "Parameters", "id": "st1", "parameter": params}


def history(status: dict, resources: list[dict] = ()) -> dict:
    return {"resourceType": "Bundle", "type": "history", "timestamp": "2026-12-04T08:00:01Z",
            "entry": [{"fullUrl": "urn:uuid:8a1f6f0e-2c1b-4a56-9f0d-5f1d5a7b2c11", "resource": status},
                      *({"fullUrl": f"{BASE}/{r['resourceType']}/{r['id']}", "resource": r,
                         "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
                         "response": {"status": "200"}} for r in resources)]}


def focus(ref: str) -> dict:
    return {"name": "focus", "valueReference": {"reference": ref}}


def context(ref: str) -> dict:
    return {"name": "additional-context", "valueReference": {"reference": ref}}


def test_an_r4_full_resource_notification_names_its_subject():
    note = read(order(patient="Patient/p1"), ("MedicationRequest", "mr1"))
    assert (note.kind, note.patients, note.focus) == ("event-notification", {"p1"}, set())


def test_an_absolute_subject_reference_with_history_is_read():
    note = read(order(patient=f"{BASE}/Patient/p9/_history/2"))
    assert note.patients == {"p9"}


def test_a_changed_patient_is_its_own_patient():
    note = read({"resourceType": "Patient", "id": "p4", "birthDate": "2010-02-01"})
    assert note.patients == {"p4"}


def test_an_r4_ping_at_the_resource_url_names_the_resource_to_resolve():
    note = read(None, ("MedicationRequest", "mr1"))
    assert (note.kind, note.patients, note.focus) == ("ping", set(), {"MedicationRequest/mr1"})
    assert read(None, ("Patient", "p2")).patients == {"p2"}
    assert read(None).patients == set() and read(None).focus == set()   # a bare ping names nothing


def test_backport_full_resource_takes_the_patient_from_the_resource():
    body = history(status_parameters("event-notification", [[focus(f"{BASE}/MedicationRequest/mr1")]]),
                   [order("mr1", "Patient/p1")])
    note = read(body)
    assert (note.patients, note.focus) == ({"p1"}, set())


def test_backport_id_only_takes_the_patient_from_the_additional_context():
    body = history(status_parameters("event-notification", [
        [focus(f"{BASE}/MedicationRequest/mr1"), context(f"{BASE}/Patient/p1")],
        [focus(f"{BASE}/Observation/o7"), context(f"{BASE}/Patient/p2")],
    ]))
    note = read(body)
    assert (note.patients, note.focus) == ({"p1", "p2"}, set())


def test_backport_id_only_without_a_patient_leaves_the_focus_to_resolve():
    body = history(status_parameters("event-notification", [[focus(f"{BASE}/Condition/c3")]]))
    note = read(body)
    assert (note.patients, note.focus) == (set(), {"Condition/c3"})


@pytest.mark.parametrize("kind", ["handshake", "heartbeat", "query-status"])
def test_handshakes_and_heartbeats_name_nothing(kind):
    note = read(history(status_parameters(kind)))
    assert (note.kind, note.patients, note.focus) == (kind, set(), set())


def test_an_r4b_subscription_status_is_read_too():
    status = {"resourceType": "SubscriptionStatus", "status": "active", "type": "event-notification",
              "eventsSinceSubscriptionStart": "2", "topic": "http://example.org/topic/medication-request",
              "notificationEvent": [{"eventNumber": "2", "focus": {"reference": f"{BASE}/MedicationRequest/mr5"},
                                     "additionalContext": [{"reference": f"{BASE}/Patient/p5"}]}]}
    assert read(history(status)).patients == {"p5"}


def test_a_bundle_of_resources_names_each_subject():
    body = {"resourceType": "Bundle", "type": "collection",
            "entry": [{"resource": order("a", "Patient/p1")}, {"resource": order("b", "Patient/p2")},
                      {"resource": {"resourceType": "Organization", "id": "o1"}}]}
    assert read(body).patients == {"p1", "p2"}


@pytest.mark.parametrize("body", [[1, 2], "text", {"id": "x"}, {"resourceType": 7}])
def test_what_is_not_a_fhir_resource_is_refused(body):
    with pytest.raises(NotANotification):
        read(body)


def test_a_resource_of_another_type_than_its_url_is_refused():
    with pytest.raises(NotANotification):
        read({"resourceType": "Organization", "id": "o1"}, ("MedicationRequest", "mr1"))


@pytest.mark.parametrize("ref", ["Patient/", "Patient/a b", "patient/p1", "../../etc/passwd", 7, None,
                                 "Patient/" + "x" * 65])
def test_references_that_are_not_references_name_nothing(ref):
    assert reference(ref) is None
    body = history(status_parameters("event-notification", [[focus("MedicationRequest/mr1"), context(ref)]]))
    assert read(body).patients == set()
