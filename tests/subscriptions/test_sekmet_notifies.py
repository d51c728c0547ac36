"""Subscriptions end to end: a real FHIR server (sekmet) notifies a real ``fhir-pain serve`` on a PostgreSQL
store, real ``fhir-pain worker``s evaluate; no poll anywhere."""
from __future__ import annotations

import os
import time

import pytest

import serve_process
from fhir_pain import cli
from fhir_pain.poller import detected_issue as di
from integration.pgx_seed import CODEINE, medication_request, patient_entries, seed
from serve_process import ServeProcess
from subscriptions.harness import WorkerProcess, jobs, wait_for

pytestmark = pytest.mark.integration
ISSUE_WITHIN_S = 5.0
TOPIC = "http://hl7.org/fhir/5.0/StructureDefinition/extension-SubscriptionTopic"


def service_env(pg_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_PAIN_")}
    env["FHIR_PAIN_DATABASE_URL"] = pg_url
    return env


@pytest.fixture
def service(pg_url):
    started = []

    def start(port: int | None = None) -> ServeProcess:
        if port is not None:   # a restart keeps the URL the FHIR server notifies
            original = serve_process.free_port
            serve_process.free_port = lambda: port
            try:
                proc = ServeProcess("--workers", "1", "--threads", "4", env=service_env(pg_url))
            finally:
                serve_process.free_port = original
        else:
            proc = ServeProcess("--workers", "1", "--threads", "4", env=service_env(pg_url))
        started.append(proc)
        assert proc.wait_ready().status_code == 200
        return proc

    yield start
    for proc in started:
        if proc.proc.poll() is None:
            proc.stop()


def subscribe(sekmet, endpoint: str, pg_url: str, monkeypatch, *extra: str) -> None:
    monkeypatch.setenv("FHIR_PAIN_POLL_TOKEN", sekmet.token)
    assert cli.main(["subscribe", "--fhir-server", sekmet.base_url, "--endpoint", endpoint,
                     "--database-url", pg_url, *extra]) == 0


def issues(sekmet, patient_ref: str) -> list[dict]:
    pid = patient_ref.split("/")[1]
    return sekmet.search(f"DetectedIssue?_tag={di.PATIENT_TAG_SYSTEM}|{pid}")


def workers_ready(pg_url: str, n: int = 1) -> None:
    import psycopg
    from fhir_pain.population.queue import conninfo

    def registered():
        with psycopg.connect(conninfo(pg_url)) as conn:
            if conn.execute("SELECT to_regclass('procrastinate_workers')").fetchone()[0] is None:
                return False
            return conn.execute("SELECT count(*) FROM procrastinate_workers").fetchone()[0] >= n
    wait_for(registered, 120, "the workers to start")


def order_codeine(sekmet, patient_ref: str, status: str = "active") -> dict:
    return sekmet._json("POST", "MedicationRequest", medication_request(patient_ref, CODEINE, status=status))


def topic_basic(name: str, resource: str) -> dict:
    """A topic as sekmet keeps them (a Basic with the R5 cross-version extensions): every create and update."""
    return {"resourceType": "Basic", "id": f"topic-{name}",
            "code": {"coding": [{"system": "http://hl7.org/fhir/fhir-types", "code": "SubscriptionTopic"}]},
            "modifierExtension": [{"url": f"{TOPIC}.status", "valueCode": "active"}],
            "extension": [
                {"url": f"{TOPIC}.url", "valueUri": f"http://fhir-pain.test/SubscriptionTopic/{name}"},
                {"url": f"{TOPIC}.title", "valueString": f"{resource} changed"},
                {"url": f"{TOPIC}.resourceTrigger", "extension": [
                    {"url": "description", "valueMarkdown": f"A {resource} was created or updated"},
                    {"url": "resource", "valueUri": f"http://hl7.org/fhir/StructureDefinition/{resource}"},
                    {"url": "supportedInteraction", "valueCode": "create"},
                    {"url": "supportedInteraction", "valueCode": "update"}]}]}


def test_a_codeine_order_for_a_poor_metabolizer_gets_its_issue_within_5s_without_a_poll(
        sekmet, pg_url, service, monkeypatch, tmp_path):
    (patient, _), = seed(sekmet, [patient_entries("SubsR4", diplotype="*4/*4")])
    svc = service()
    subscribe(sekmet, svc.url, pg_url, monkeypatch, "--topics", "never")
    worker = WorkerProcess(pg_url, sekmet.base_url, sekmet.token, log_path=tmp_path / "worker.log")
    try:
        workers_ready(pg_url)
        started = time.monotonic()
        order = order_codeine(sekmet, patient)
        found = wait_for(lambda: issues(sekmet, patient), 30, "the DetectedIssue")
        took = time.monotonic() - started
    finally:
        worker.stop()
    assert took <= ISSUE_WITHIN_S, f"{took:.2f}s\n{worker.log()[-2000:]}"
    assert len(found) == 1 and found[0]["severity"] == "high"
    assert f"MedicationRequest/{order['id']}" in {r["reference"] for r in found[0]["implicated"]}


def test_a_backport_topic_with_id_only_notifications_works_the_same(sekmet, pg_url, service, monkeypatch, tmp_path):
    sekmet.put(topic_basic("fhir-pain-medication-request", "MedicationRequest"))
    (patient, _), = seed(sekmet, [patient_entries("SubsTopic", diplotype="*4/*4")])
    svc = service()
    subscribe(sekmet, svc.url, pg_url, monkeypatch, "--content", "id-only")
    subs = sekmet.search("Subscription?_count=100")
    topic_subs = [s for s in subs if s["criteria"].endswith("/fhir-pain-medication-request")
                  and svc.url in s["channel"]["endpoint"]]
    assert len(topic_subs) == 1
    # the handshake reached the receiver and was answered: the server activated it
    wait_for(lambda: sekmet.read(f"Subscription/{topic_subs[0]['id']}")["status"] == "active", 30,
             "the backport handshake")
    worker = WorkerProcess(pg_url, sekmet.base_url, sekmet.token, log_path=tmp_path / "worker.log")
    try:
        workers_ready(pg_url)
        started = time.monotonic()
        order_codeine(sekmet, patient)
        found = wait_for(lambda: issues(sekmet, patient), 30, "the DetectedIssue")
        took = time.monotonic() - started
    finally:
        worker.stop()
    assert took <= ISSUE_WITHIN_S and len(found) == 1


def test_a_service_restart_between_notification_and_evaluation_loses_nothing(
        sekmet, pg_url, service, monkeypatch, tmp_path):
    (patient, _), = seed(sekmet, [patient_entries("SubsRestart", diplotype="*4/*4")])
    svc = service()
    subscribe(sekmet, svc.url, pg_url, monkeypatch, "--topics", "never")
    order_codeine(sekmet, patient)   # no worker runs: the notification is queued, nothing evaluated
    pid = patient.split("/")[1]
    wait_for(lambda: [j for j in jobs(pg_url, "todo") if j["args"].get("patient_id") == pid], 30,
             "the notification to be queued")
    svc.stop()
    service(port=svc.port)           # the service comes back (an upgrade, a crash): the queue is in PostgreSQL
    assert issues(sekmet, patient) == []
    worker = WorkerProcess(pg_url, sekmet.base_url, sekmet.token, until_empty=True,
                           log_path=tmp_path / "worker.log")
    assert worker.wait(120) == 0, worker.log()[-2000:]
    found = issues(sekmet, patient)
    assert len(found) == 1 and found[0]["status"] == "final"


def test_duplicate_and_out_of_order_notifications_are_harmless(sekmet, pg_url, service, monkeypatch, tmp_path):
    (patient, _), = seed(sekmet, [patient_entries("SubsOrder", diplotype="*4/*4")])
    svc = service()
    subscribe(sekmet, svc.url, pg_url, monkeypatch, "--topics", "never")
    order = order_codeine(sekmet, patient)
    stopped = dict(sekmet.read(f"MedicationRequest/{order['id']}"), status="stopped")
    sekmet.put(stopped)                # the order is stopped before anyone evaluated it
    sub = next(s for s in sekmet.search("Subscription?_count=100")
               if s["criteria"] == "MedicationRequest?" and svc.url in s["channel"]["endpoint"])
    secret_header = sub["channel"]["header"][0]
    name, _, value = secret_header.partition(":")
    import requests

    # the first notification again, late: the order as it was when active
    for _ in range(2):
        resp = requests.put(f"{sub['channel']['endpoint']}/MedicationRequest/{order['id']}", json=order,
                            headers={name: value.strip(), "Content-Type": "application/fhir+json"}, timeout=30)
        assert resp.status_code == 200
    pid = patient.split("/")[1]
    waiting = [j for j in jobs(pg_url, "todo") if j["args"].get("patient_id") == pid]
    assert len(waiting) == 1           # four notifications, one evaluation
    worker = WorkerProcess(pg_url, sekmet.base_url, sekmet.token, until_empty=True,
                           log_path=tmp_path / "worker.log")
    assert worker.wait(120) == 0, worker.log()[-2000:]
    # evaluated against the server's current state: a stopped order raises no issue
    assert issues(sekmet, patient) == []


def test_a_birth_date_change_is_notified_and_the_fda_age_limit_is_written(sekmet, pg_url, service, monkeypatch,
                                                                          tmp_path):
    from datetime import date

    # an adult normal metabolizer on codeine: nothing to say, and nothing evaluated yet (no Subscription then)
    (patient, _, _), = seed(sekmet, [patient_entries("SubsAge", diplotype="*1/*1", drugs=(CODEINE,))])
    svc = service()
    subscribe(sekmet, svc.url, pg_url, monkeypatch, "--topics", "never")
    mine = [s for s in sekmet.search("Subscription?_count=100") if svc.url in s["channel"]["endpoint"]]
    assert sorted(s["criteria"] for s in mine) == ["Condition?", "MedicationRequest?", "Observation?", "Patient?",
                                                   "Procedure?"]
    worker = WorkerProcess(pg_url, sekmet.base_url, sekmet.token, log_path=tmp_path / "worker.log")
    try:
        workers_ready(pg_url)
        # the birth date is corrected: the patient is 8 (codeine is contraindicated under 12, FDA)
        sekmet.put(dict(sekmet.read(patient), birthDate=f"{date.today().year - 8}-01-01"))
        found = wait_for(lambda: issues(sekmet, patient), 30, "the age-limit DetectedIssue")
    finally:
        worker.stop()
    assert len(found) == 1, worker.log()[-2000:]
    assert any(c["code"].endswith("/codeine") and "age" in c["code"] for c in found[0]["code"]["coding"]
               if c["system"] == di.RULE_SYSTEM), found[0]["code"]
