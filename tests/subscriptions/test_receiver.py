"""The receiver in the service: authentication by the subscription's secret, bad input, floods, and what it
queues (on a real PostgreSQL store: the work queue is procrastinate's tables there)."""
from __future__ import annotations

import orjson
import pytest

from fhir_pain.subscriptions import receiver as rc
from fhir_pain.subscriptions.registry import SubscriptionRegistry
from subscriptions.harness import jobs
from test_notifications import context, focus, history, order, status_parameters

SERVER = "http://127.0.0.1:9/fhir"


@pytest.fixture
def pg_app(app_factory, pg_url):
    app = app_factory(DATABASE_URL=pg_url)
    yield app
    app.extensions["fhir_pain.subscriptions"].close()


def register(app) -> tuple[str, dict]:
    registry = app.extensions["fhir_pain.subscriptions"].registry
    key, secret = registry.add(server=SERVER, criteria="MedicationRequest?", kind="r4")
    return f"{rc.NOTIFY_PATH}/{key}", {"Authorization": f"Bearer {secret}",
                                        "Content-Type": "application/fhir+json"}


def post(client, url, headers, body, method="POST"):
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return client.open(url, method=method, data=data, headers=headers)


def queued(pg_url) -> list[tuple]:
    return sorted((j["task"].rsplit(".", 1)[-1], j["args"].get("patient_id") or j["args"].get("reference"))
                  for j in jobs(pg_url, "todo"))


def test_a_full_resource_notification_queues_its_patient_once_however_often_it_comes(pg_app, pg_url):
    url, headers = register(pg_app)
    client = pg_app.test_client()
    for _ in range(3):   # the server retries, or sends a burst of changes to one patient
        resp = post(client, f"{url}/MedicationRequest/mr1", headers, order("mr1", "Patient/p1"), method="PUT")
        assert resp.status_code == 200
        assert resp.json["resourceType"] == "OperationOutcome"
    assert queued(pg_url) == [("evaluate_patient", "p1")]
    assert jobs(pg_url)[0]["args"]["server"] == SERVER   # the registered server, never one the body names


def test_id_only_notifications_queue_the_patient_or_the_resource_to_resolve(pg_app, pg_url):
    url, headers = register(pg_app)
    client = pg_app.test_client()
    body = history(status_parameters("event-notification", [
        [focus("https://elsewhere.example/fhir/MedicationRequest/mr2"), context("Patient/p2")],
        [focus("Condition/c3")]]))
    assert post(client, url, headers, body).status_code == 200
    assert queued(pg_url) == [("evaluate_focus", "Condition/c3"), ("evaluate_patient", "p2")]


@pytest.mark.parametrize("kind", ["handshake", "heartbeat"])
def test_handshake_and_heartbeat_are_answered_and_queue_nothing(pg_app, pg_url, kind):
    url, headers = register(pg_app)
    resp = post(pg_app.test_client(), url, headers, history(status_parameters(kind)))
    assert resp.status_code == 200 and kind in resp.json["issue"][0]["diagnostics"]
    assert queued(pg_url) == []


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-secret", "Basic dXNlcjpwYXNz", "Bearer ", ""])
def test_a_wrong_or_missing_secret_is_a_bare_401(app_factory, authorization):
    app = app_factory()
    url, headers = register(app)
    headers = {k: v for k, v in headers.items() if k != "Authorization"}
    if authorization is not None:
        headers["Authorization"] = authorization
    resp = post(app.test_client(), url, headers, order())
    assert resp.status_code == 401
    assert resp.json == {"resourceType": "OperationOutcome",
                         "issue": [{"severity": "error", "code": "login", "diagnostics": "Unauthorized"}]}


def test_another_subscriptions_secret_or_an_unknown_key_is_401(app_factory):
    app = app_factory()
    url_a, headers_a = register(app)
    url_b, headers_b = register(app)
    client = app.test_client()
    assert post(client, url_a, headers_b, order()).status_code == 401
    assert post(client, f"{rc.NOTIFY_PATH}/{'x' * 32}", headers_a, order()).status_code == 401
    assert post(client, f"{rc.NOTIFY_PATH}/short", headers_a, order()).status_code == 401


@pytest.mark.parametrize("body, status, words", [
    (b"{not json", 400, "not JSON"),
    (b"[1, 2]", 400, "not a FHIR resource"),
    (orjson.dumps({"resourceType": "Organization", "id": "o1"}), 400, "type its URL names"),
])
def test_bad_bodies_are_400_with_an_operation_outcome(app_factory, body, status, words):
    app = app_factory()
    url, headers = register(app)
    resp = post(app.test_client(), f"{url}/MedicationRequest/mr1", headers, body, method="PUT")
    assert resp.status_code == status
    assert resp.json["resourceType"] == "OperationOutcome" and words in resp.json["issue"][0]["diagnostics"]


def test_a_url_that_names_no_resource_is_400(app_factory):
    app = app_factory()
    url, headers = register(app)
    resp = post(app.test_client(), f"{url}/medicationrequest/a%20b", headers, order(), method="PUT")
    assert resp.status_code == 400 and resp.json["resourceType"] == "OperationOutcome"


def test_an_oversized_notification_is_413_and_queues_nothing(pg_app, pg_url):
    url, headers = register(pg_app)
    big = order()
    big["note"] = [{"text": "x" * rc.MAX_NOTIFICATION_BYTES}]
    resp = post(pg_app.test_client(), url, headers, big)
    assert resp.status_code == 413 and resp.json["issue"][0]["code"] == "too-costly"
    assert queued(pg_url) == []


def test_a_flood_of_patients_in_one_notification_is_refused_whole(pg_app, pg_url):
    url, headers = register(pg_app)
    events = [[focus(f"MedicationRequest/m{i}"), context(f"Patient/p{i}")] for i in range(rc.MAX_PATIENTS + 1)]
    resp = post(pg_app.test_client(), url, headers, history(status_parameters("event-notification", events)))
    assert resp.status_code == 413 and str(rc.MAX_PATIENTS) in resp.json["issue"][0]["diagnostics"]
    assert queued(pg_url) == []
    events = events[:rc.MAX_PATIENTS]
    resp = post(pg_app.test_client(), url, headers, history(status_parameters("event-notification", events)))
    assert resp.status_code == 200 and len(queued(pg_url)) == rc.MAX_PATIENTS


def test_get_is_not_allowed(app_factory):
    app = app_factory()
    url, headers = register(app)
    resp = app.test_client().get(url, headers=headers)
    assert resp.status_code == 405 and resp.json["resourceType"] == "OperationOutcome"


def test_only_the_secrets_hash_is_stored(app_factory):
    app = app_factory()
    _, headers = register(app)
    secret = headers["Authorization"].split()[1]
    store = app.extensions["fhir_pain.store"]
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT * FROM fhir_subscriptions").all()
    assert rows and secret not in repr(rows)
    assert SubscriptionRegistry(store).verify(rows[0].key, f"Bearer {secret}").server == SERVER


def test_subscribe_refuses_an_endpoint_that_is_not_a_url(capsys, tmp_path):
    from fhir_pain import cli

    argv = ["subscribe", "--fhir-server", SERVER, "--endpoint", "cds.example.org",
            "--database-url", f"sqlite:///{tmp_path / 's.sqlite3'}"]
    assert cli.main(argv) == 2
    assert "--endpoint" in capsys.readouterr().err


def test_a_topic_narrowed_by_criteria_covers_nothing():
    from fhir_pain.subscriptions.subscribe import TOPIC, topic_coverage

    def basic(*trigger_parts):
        return {"resourceType": "Basic", "extension": [
            {"url": f"{TOPIC}.url", "valueUri": "http://example.org/topic/t"},
            {"url": f"{TOPIC}.resourceTrigger", "extension": [
                {"url": "resource", "valueUri": "http://hl7.org/fhir/StructureDefinition/MedicationRequest"},
                *trigger_parts]}]}

    every = basic({"url": "supportedInteraction", "valueCode": "create"},
                  {"url": "supportedInteraction", "valueCode": "update"})
    assert topic_coverage(every) == ("http://example.org/topic/t", {"MedicationRequest"})
    # "new active orders only" would never tell us an order was stopped: not a topic for us
    narrowed = basic({"url": "fhirPathCriteria", "valueString": "%current.status = 'active'"})
    create_only = basic({"url": "supportedInteraction", "valueCode": "create"})
    assert topic_coverage(narrowed)[1] == set() and topic_coverage(create_only)[1] == set()
    assert topic_coverage({"resourceType": "Basic"}) is None


def test_a_notification_while_the_database_is_away_is_503_so_the_server_sends_it_again(pg_app, pg_url, postgres):
    url, headers = register(pg_app)
    client = pg_app.test_client()
    assert post(client, url, headers, order("mr1", "Patient/p1")).status_code == 200
    postgres.drop_database(pg_url)       # the database goes away (its connections are cut)
    resp = post(client, url, headers, order("mr1", "Patient/p1"))
    assert resp.status_code == 503
    assert resp.json["issue"][0]["code"] == "transient" and "again" in resp.json["issue"][0]["diagnostics"]
