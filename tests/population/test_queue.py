"""The PostgreSQL work queue (procrastinate) on a real PostgreSQL server, with real worker processes against a real
FHIR server (sekmet): coalescing, the schema on first use, and three workers of which one is killed mid-sweep."""
from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from fhir_pain.poller import detected_issue as di
from fhir_pain.population import queue as q
from fhir_pain.store import Store
from integration.pgx_seed import CODEINE, IBUPROFEN, patient_entries, seed
from subscriptions.harness import WorkerProcess, jobs, pg_url, sekmet, wait_for  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration
SERVER = "http://fhir.example.org/r4"


@pytest.fixture
def work_queue(pg_url):
    queue = q.WorkQueue(pg_url)
    yield queue
    queue.close()


def test_a_patient_waiting_is_queued_once_and_a_sweep_never_swallows_a_live_change(work_queue, pg_url):
    assert work_queue.enqueue([(SERVER, "p1", None), (SERVER, "p1", None), (SERVER, "p2", None)]) == 2
    # a burst later: p1 and p2 are still waiting, only p3 is new
    assert work_queue.enqueue([(SERVER, "p2", None), (SERVER, "p3", None), (SERVER + "/", "p1", None)]) == 1
    # a sweep's job for p1 reads the spooled export, a live one the server now: both wait
    assert work_queue.enqueue([(SERVER, "p1", "sweep-1")]) == 1
    waiting = jobs(pg_url, "todo")
    assert Counter((j["args"]["patient_id"], j["args"]["sweep"]) for j in waiting) == {
        ("p1", None): 1, ("p2", None): 1, ("p3", None): 1, ("p1", "sweep-1"): 1}
    assert {j["args"]["server"] for j in waiting} == {SERVER}


def test_more_than_one_chunk_with_some_already_waiting(work_queue, pg_url):
    assert work_queue.enqueue([(SERVER, "p7", None)]) == 1
    items = [(SERVER, f"p{i}", None) for i in range(q.ENQUEUE_CHUNK + 20)]
    assert work_queue.enqueue(items) == q.ENQUEUE_CHUNK + 19
    assert len(jobs(pg_url, "todo")) == q.ENQUEUE_CHUNK + 20


def test_enqueue_patients_opens_the_queue_on_the_stores_postgresql(pg_url):
    store = Store(pg_url)
    try:
        assert q.enqueue_patients([(SERVER, "a", None), (SERVER, "a", None)], store=store) == 1
    finally:
        store.dispose()
    assert [j["args"]["patient_id"] for j in jobs(pg_url, "todo")] == ["a"]


def test_the_schema_is_created_once_when_processes_start_together(pg_url):
    errors = []

    def start():
        try:
            q.ensure_schema(pg_url)
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    q.ensure_schema(pg_url)   # and again, on a database that has it
    assert jobs(pg_url) == []


def test_a_worker_needs_the_postgresql_store():
    with pytest.raises(ValueError, match="PostgreSQL"):
        q.worker_database_url("sqlite:///x.sqlite3")


def test_inline_on_the_sqlite_store_evaluates_each_patient_once(sekmet, tmp_path):
    from cds_hooks.fhir_client import FHIRClient

    (patient, _, _), = seed(sekmet, [patient_entries("Inline", diplotype="*4/*4", drugs=(CODEINE,))])
    pid = patient.split("/")[1]
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    client = FHIRClient(sekmet.base_url, auth=sekmet.token)
    try:
        items = [(sekmet.base_url, pid, None), (sekmet.base_url, pid, None)]
        assert q.enqueue_patients(items, store=store, client=client) == 1
    finally:
        client.close()
        store.dispose()
    issues = sekmet.search(f"DetectedIssue?_tag={di.PATIENT_TAG_SYSTEM}|{pid}")
    assert len(issues) == 1 and issues[0]["meta"]["versionId"] == "1"


def test_three_workers_one_killed_mid_sweep_every_issue_once(sekmet, pg_url, tmp_path):
    at_risk = seed(sekmet, [patient_entries(f"Kill{i}", diplotype="*4/*4", drugs=(CODEINE,)) for i in range(24)])
    quiet = seed(sekmet, [patient_entries(f"Quiet{i}", diplotype="*1/*1", drugs=(IBUPROFEN,)) for i in range(12)])
    ids = [refs[0].split("/")[1] for refs in at_risk + quiet]
    store = Store(pg_url)
    try:
        assert q.enqueue_patients([(sekmet.base_url, pid, None) for pid in ids], store=store) == len(ids)
    finally:
        store.dispose()

    # 36 patients, 3 batch workers (--until-empty, as in a Kubernetes Job) x 2 at a time, each evaluation paused
    # 0.4 s between its read and its writes
    workers = [WorkerProcess(pg_url, sekmet.base_url, sekmet.token, slow_s=0.4, until_empty=True,
                             log_path=tmp_path / f"worker{i}.log") for i in range(3)]
    try:
        # the victim is killed once the sweep is under way: some patients done, its own jobs running
        wait_for(lambda: len(jobs(pg_url, "succeeded")) >= 6, 120, "the sweep to get under way")
        victim = workers[0]
        victim.kill()
        killed_at = time.monotonic()
        stranded = len(jobs(pg_url, "doing"))
        # the survivors finish everything, the victim's jobs included, and only then exit
        codes = [w.wait(120) for w in workers[1:]]
        recovered_in = time.monotonic() - killed_at
    finally:
        for w in workers[1:]:
            w.stop()
    assert codes == [0, 0], [w.log()[-3000:] for w in workers]
    assert stranded >= 1
    assert len(jobs(pg_url, "succeeded")) == len(ids)
    # the victim's jobs were put back in the queue (attempts counts the retry) and finished by the others
    assert any(j["attempts"] >= 1 for j in jobs(pg_url)), jobs(pg_url)
    assert recovered_in < 60
    assert not jobs(pg_url, "failed") and not jobs(pg_url, "doing") and not jobs(pg_url, "todo")

    for refs in at_risk:
        pid = refs[0].split("/")[1]
        issues = sekmet.search(f"DetectedIssue?_tag={di.PATIENT_TAG_SYSTEM}|{pid}")
        assert len(issues) == 1, pid
        # written once: a retry re-read the patient, found its issue and wrote nothing
        assert issues[0]["meta"]["versionId"] == "1", pid
        assert issues[0]["status"] == "final"
    for refs in quiet:
        assert sekmet.search(f"DetectedIssue?_tag={di.PATIENT_TAG_SYSTEM}|{refs[0].split('/')[1]}") == []
    # and no worker logged a patient id
    logs = "".join(w.log() for w in workers)
    assert not any(pid in logs for pid in ids)


def test_an_id_only_change_without_its_patient_is_resolved_by_the_worker(sekmet, pg_url, tmp_path):
    (patient, _, order), = seed(sekmet, [patient_entries("Focus", diplotype="*4/*4", drugs=(CODEINE,))])
    queue = q.WorkQueue(pg_url)
    try:
        assert queue.enqueue_focus(sekmet.base_url, order)
        assert not queue.enqueue_focus(sekmet.base_url, order)          # coalesced too
        assert queue.enqueue_focus(sekmet.base_url, "MedicationRequest/no-such-order")
    finally:
        queue.close()
    worker = WorkerProcess(pg_url, sekmet.base_url, sekmet.token, until_empty=True, log_path=tmp_path / "w.log")
    assert worker.wait(120) == 0, worker.log()[-2000:]
    assert [j["status"] for j in jobs(pg_url)] == ["succeeded", "succeeded"]   # a deleted one is no failure
    issues = sekmet.search(f"DetectedIssue?_tag={di.PATIENT_TAG_SYSTEM}|{patient.split('/')[1]}")
    assert len(issues) == 1


@pytest.mark.parametrize("argv, words", [
    (["--database-url", "sqlite:///x.sqlite3"], "PostgreSQL"),
    (["--database-url", "postgresql://u@/db", "--concurrency", "0"], "positive"),
    (["--database-url", "postgresql://u@/db", "--heartbeat", "5", "--stalled-after", "6"], "twice"),
])
def test_worker_refuses_a_bad_configuration_with_exit_2(argv, words, capsys, monkeypatch):
    from fhir_pain import cli

    monkeypatch.delenv("FHIR_PAIN_DATABASE_URL", raising=False)
    assert cli.main(["worker", "--fhir-server", SERVER, *argv]) == 2
    assert words in capsys.readouterr().err


def test_procrastinate_log_lines_keep_no_job_arguments_nor_tracebacks():
    import logging

    from fhir_pain.population.worker import JobLogFilter

    try:
        raise ValueError("patient pat-123 has no birthDate")
    except ValueError:
        import sys
        exc_info = sys.exc_info()
    record = logging.LogRecord("procrastinate.worker", logging.ERROR, __file__, 1,
                               "Job %s failed", ("fhir_pain.evaluate_patient(patient_id='pat-123')",), exc_info)
    record.action = "job_error"
    record.job = {"id": 42, "call_string": "fhir_pain.evaluate_patient(patient_id='pat-123')"}
    assert JobLogFilter().filter(record)
    line = logging.Formatter().format(record) + repr(record.__dict__)
    assert "pat-123" not in line
    assert record.getMessage() == "job_error job 42 (ValueError)"
