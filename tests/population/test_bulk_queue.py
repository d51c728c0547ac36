"""Bulk sweeps in queue mode (``fhir-pain poll --bulk --workers-queue``): a real coordinator process, real
``fhir-pain worker`` processes, a real PostgreSQL store and a real FHIR server (sekmet) loaded with the synthetic
population. What the workers write is what an inline sweep writes: a full inline sweep run after them finds every
issue already there and writes nothing."""
from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import datetime, timezone

import pytest

from cds_hooks.fhir_client import normalize_base
from fhir_pain.poller import detected_issue as di
from fhir_pain.population.sweep import cursor_name
from fhir_pain.store import Store
from population_helpers import load_population, make_sweep
from sekmet_server import Sekmet
from subscriptions.harness import WorkerProcess, jobs, pg_url, sekmet, wait_for  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration
PATIENTS = 60


def our_issues(server) -> list[dict]:
    return [r for r in server.search("DetectedIssue?_count=500") if di.issue_key(r)]


def patient_of_issue(issue: dict) -> str:
    return next(t["code"] for t in issue["meta"]["tag"] if t["system"] == di.PATIENT_TAG_SYSTEM)


def coordinator(server, database_url: str, *extra: str) -> subprocess.Popen:
    """``fhir-pain poll --bulk --workers-queue --once`` as a user runs it (static token from the environment)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_PAIN_")}
    env["FHIR_PAIN_POLL_TOKEN"] = server.token
    cmd = [sys.executable, "-m", "fhir_pain.cli", "poll", "--fhir-server", server.base_url, "--bulk",
           "--workers-queue", "--database-url", database_url, "--once", "--progress", "never", *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL)


def queued_patients(database_url: str, status: str | None = None) -> list[str]:
    """The patients of the sweep's jobs (batches of ``--queue-batch``) in the queue."""
    return [pid for j in jobs(database_url, status) for pid in j["args"].get("patient_ids", [])]


def finish(proc: subprocess.Popen, timeout_s: float = 300) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out


def assert_once_each_and_what_an_inline_sweep_writes(server, tmp_path) -> list[dict]:
    issues = our_issues(server)
    assert issues
    keys = Counter((patient_of_issue(r), di.issue_key(r)) for r in issues)
    assert max(keys.values()) == 1, [k for k, n in keys.items() if n > 1]
    assert len({r["id"] for r in issues}) == len(issues)
    inline = make_sweep(server, Store(f"sqlite:///{tmp_path / 'inline.sqlite3'}"), full=True)
    inline.clock = lambda: datetime.now(timezone.utc)    # the workers' clock
    stats = inline.run()
    assert not stats.errors and stats.evaluated == PATIENTS
    assert (stats.created, stats.updated, stats.closed) == (0, 0, 0)
    assert stats.findings == len(issues)
    return issues


def cursor(database_url: str, server) -> str | None:
    store = Store(database_url)
    try:
        return store.get_cursor(cursor_name(normalize_base(server.base_url)))
    finally:
        store.dispose()


def spooled_rows(database_url: str) -> int:
    store = Store(database_url)
    try:
        with store.engine.connect() as conn:
            return conn.exec_driver_sql("SELECT count(*) FROM bulk_spool").scalar()
    finally:
        store.dispose()


@pytest.fixture(scope="module")
def population(sekmet):
    return load_population(sekmet, PATIENTS)


def test_three_workers_one_killed_mid_sweep_write_every_issue_once_and_the_cursor_advances(
        sekmet, population, pg_url, tmp_path):
    # 3 workers x 2 at a time, each evaluation paused 0.3 s between its read and its writes, jobs of 4 patients:
    # a kill lands mid-batch
    workers = [WorkerProcess(pg_url, sekmet.base_url, sekmet.token, slow_s=0.3, log_path=tmp_path / f"w{i}.log")
               for i in range(3)]
    sweep = coordinator(sekmet, pg_url, "--queue-batch", "4")
    try:
        wait_for(lambda: len(jobs(pg_url, "succeeded")) >= 3, 120, "the sweep to get under way")
        workers[0].kill()
        stranded = len(jobs(pg_url, "doing"))
        code, out = finish(sweep)
    finally:
        for w in workers[1:]:
            w.stop()
    assert code == 0, out + "".join(w.log()[-2000:] for w in workers)
    assert f"{PATIENTS} patients, {PATIENTS} evaluated" in out and "errors: none" in out
    assert "cursor advanced" in out and cursor(pg_url, sekmet) is not None
    assert stranded >= 1 and any(j["attempts"] >= 1 for j in jobs(pg_url))   # the victim's jobs were redone
    assert not jobs(pg_url, "todo") and not jobs(pg_url, "doing") and not jobs(pg_url, "failed")
    assert spooled_rows(pg_url) == 0                                           # the spool is dropped
    assert_once_each_and_what_an_inline_sweep_writes(sekmet, tmp_path)
    assert not any(pid in out for pid in population)                           # no patient id in the output


def test_patients_whose_jobs_failed_for_good_hold_the_cursor_and_the_next_run_redoes_them(
        sekmet, population, pg_url, tmp_path):
    sweep = coordinator(sekmet, pg_url, "--full")      # no worker yet
    try:
        wait_for(lambda: len(queued_patients(pg_url, "todo")) == PATIENTS, 120, "the patients to be queued")
    except AssertionError:
        finish(sweep, 5)
        raise
    # retries exhausted (what a FHIR server down for minutes does to every job): nothing waiting, nothing running
    store = Store(pg_url)
    try:
        with store.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE procrastinate_jobs SET status = 'failed' WHERE status = 'todo'")
    finally:
        store.dispose()
    code, out = finish(sweep, 120)
    assert code == 1, out
    assert f"errors: patient-transient-queue {PATIENTS}; cursor held" in out
    assert cursor(pg_url, sekmet) is None

    worker = WorkerProcess(pg_url, sekmet.base_url, sekmet.token, log_path=tmp_path / "w.log")
    try:
        code, out = finish(coordinator(sekmet, pg_url))
    finally:
        worker.stop()
    assert code == 0, out + worker.log()[-2000:]
    assert "(full, resumed)" in out and f"{PATIENTS} evaluated" in out and "cursor advanced" in out
    assert cursor(pg_url, sekmet) is not None and spooled_rows(pg_url) == 0


def test_two_queue_sweeps_started_together_write_no_duplicates(pg_url, tmp_path_factory, tmp_path):
    server = Sekmet(tmp_path_factory.mktemp("sekmet-two-sweeps")).start()
    try:
        load_population(server, PATIENTS)
        workers = [WorkerProcess(pg_url, server.base_url, server.token, log_path=tmp_path / f"w{i}.log")
                   for i in range(2)]
        try:
            sweeps = [coordinator(server, pg_url) for _ in range(2)]
            results = [finish(s) for s in sweeps]
        finally:
            for w in workers:
                w.stop()
        assert [code for code, _ in results] == [0, 0], (results, [(j["status"], j["attempts"]) for j in jobs(pg_url)
                                                                   if j["status"] != "succeeded"],
                                                         [w.log()[-1500:] for w in workers])
        assert all("errors: none" in out for _, out in results)
        assert_once_each_and_what_an_inline_sweep_writes(server, tmp_path)
    finally:
        server.stop()


def test_queue_mode_needs_the_postgresql_store(tmp_path, capsys, monkeypatch):
    from fhir_pain import cli

    monkeypatch.delenv("FHIR_PAIN_DATABASE_URL", raising=False)
    argv = ["poll", "--fhir-server", "http://127.0.0.1:9/fhir", "--once", "--workers-queue"]
    assert cli.main(argv + ["--bulk", "--database-url", f"sqlite:///{tmp_path / 's.sqlite3'}"]) == 2
    assert "--workers-queue needs the PostgreSQL store" in capsys.readouterr().err
    assert cli.main(argv) == 2
    assert "--workers-queue needs --bulk" in capsys.readouterr().err


def test_sigterm_while_waiting_for_the_workers_leaves_their_jobs_queued_and_exits_130(sekmet, population, pg_url):
    import signal
    import time

    sweep = coordinator(sekmet, pg_url, "--full", "--queue-batch", "25")      # no worker: it waits
    try:
        wait_for(lambda: len(jobs(pg_url, "todo")) == 3, 120, "the patients to be queued")
        sweep.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        code, out = finish(sweep, 30)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert code == 130, out
    assert time.monotonic() - sent < 10
    assert "interrupted" in out and "cursor held" in out
    assert sorted(queued_patients(pg_url, "todo")) == sorted(population)   # the workers' work, for when they come


def test_reevaluate_in_queue_mode_queues_only_the_patients_not_judged_by_the_current_knowledge(
        sekmet, population, pg_url, tmp_path):
    inline = make_sweep(sekmet, Store(f"sqlite:///{tmp_path / 'inline.sqlite3'}"), full=True)
    inline.clock = lambda: datetime.now(timezone.utc)
    assert not inline.run().errors                 # every issue there, under the current knowledge
    judged = {patient_of_issue(r) for r in our_issues(sekmet)}
    assert 0 < len(judged) < PATIENTS
    worker = WorkerProcess(pg_url, sekmet.base_url, sekmet.token, log_path=tmp_path / "w.log")
    try:
        code, out = finish(coordinator(sekmet, pg_url, "--reevaluate"))
    finally:
        worker.stop()
    assert code == 0, out + worker.log()[-2000:]
    assert (f"{PATIENTS} patients, {PATIENTS - len(judged)} evaluated, {len(judged)} already current" in out), out
    assert "(0 created, 0 updated, 0 closed" in out and "cursor advanced" in out
    queued = queued_patients(pg_url)
    assert len(queued) == len(set(queued)) and set(queued) == set(population) - judged


def test_a_done_mark_carries_the_counts_and_fits_its_column():
    from fhir_pain.poller.cycle import PatientOutcome
    from fhir_pain.population import dispatch

    assert dispatch.mark(PatientOutcome(findings=2, created=1, unchanged=1)) == "evaluated 2,1,0,0,1"
    assert dispatch._outcome("evaluated 2,1,0,0,1") == PatientOutcome(findings=2, created=1, unchanged=1)
    huge = PatientOutcome(findings=10 ** 6, created=10 ** 6, updated=10 ** 6)
    assert dispatch.mark(huge) == "evaluated"                    # still counted as evaluated
    assert dispatch._outcome("evaluated") == PatientOutcome()    # as the inline sweep marks it


# ---- batches of patients per job (--queue-batch) ------------------------------------------------------------------

def done_marks(database_url: str) -> dict[str, str]:
    """The spool's done marks (none before the coordinator made its tables)."""
    store = Store(database_url)
    try:
        with store.engine.connect() as conn:
            if conn.exec_driver_sql("SELECT to_regclass('bulk_done')").scalar() is None:
                return {}
            return dict(conn.exec_driver_sql("SELECT patient, outcome FROM bulk_done").all())
    finally:
        store.dispose()


def versions(server) -> dict[str, str]:
    """Our DetectedIssues' ids and their versions (a PUT makes a new version)."""
    return {r["id"]: r["meta"]["versionId"] for r in our_issues(server)}


def test_a_patient_failing_for_good_inside_a_batch_is_marked_with_its_cause_and_the_others_are_written(
        pg_url, tmp_path_factory, tmp_path):
    from fhir_pain.population import queue as q
    from fhir_pain.population import spool
    from fhir_pain.population.patient_job import writeback_evaluate
    from fhir_pain.population.progress import SweepStats
    from population_helpers import NOW, fhir_client

    server = Sekmet(tmp_path_factory.mktemp("sekmet-batch-failure")).start()
    store = Store(pg_url)
    try:
        load_population(server, PATIENTS)
        sweeper = make_sweep(server, store, full=True)
        sweep = sweeper._export(SweepStats())              # the coordinator's spool
        batch = next(spool.patients(store, sweep, chunk=20))
        victim = batch[7]

        def evaluate(data, hook):
            if data.patient_id == victim:
                raise KeyError("valueCodeableConcept")     # what a rule does with data it cannot read
            return writeback_evaluate(data, hook)

        runtime = q.Runtime(server=normalize_base(server.base_url), client=fhir_client(server), store=store,
                            evaluate=evaluate, clock=lambda: NOW)
        result = q._run_batch(runtime, sweep, batch)       # the job: no exception, the others are not failed
        marks = done_marks(pg_url)
        assert set(marks) == set(batch)
        assert marks[victim] == "patient-rules-error"
        assert all(marks[pid].startswith("evaluated ") for pid in batch if pid != victim)
        assert result["evaluated"] == len(batch) - 1 and result["errors"] == {"patient-rules-error": 1}
        issues = our_issues(server)
        assert {patient_of_issue(r) for r in issues} <= set(batch) - {victim}
        assert result["created"] == len(issues) > 0

        written = versions(server)
        again = q._run_batch(runtime, sweep, batch)        # a retry of the job: every patient is marked done
        assert again["evaluated"] == 0 and not again["errors"] and versions(server) == written

        # what the batch wrote is what an inline sweep writes for those patients: it finds them all, unchanged
        inline = make_sweep(server, Store(f"sqlite:///{tmp_path / 'inline.sqlite3'}"), full=True)
        stats = inline.run()
        assert not stats.errors and (stats.updated, stats.closed) == (0, 0)
        assert {k: v for k, v in versions(server).items() if k in written} == written
    finally:
        store.dispose()
        server.stop()


def test_a_batch_job_killed_mid_way_is_retried_skips_its_patients_marked_done_and_writes_no_duplicate(
        pg_url, tmp_path_factory, tmp_path):
    server = Sekmet(tmp_path_factory.mktemp("sekmet-batch-kill")).start()
    try:
        load_population(server, PATIENTS)
        # one job for the whole population; the worker writes and marks every 2 DetectedIssues, 0.2 s a patient
        victim = WorkerProcess(pg_url, server.base_url, server.token, concurrency=1, slow_s=0.2, write_batch=2,
                               log_path=tmp_path / "victim.log")
        sweep = coordinator(server, pg_url, "--queue-batch", str(PATIENTS))
        rescuer = None
        try:
            wait_for(lambda: len(done_marks(pg_url)) >= 10, 120, "the batch to mark its first patients")
            victim.kill()
            marked_before = done_marks(pg_url)
            written_before = versions(server)
            assert 10 <= len(marked_before) < PATIENTS and written_before
            rescuer = WorkerProcess(pg_url, server.base_url, server.token, log_path=tmp_path / "rescuer.log")
            code, out = finish(sweep)
        finally:
            if rescuer is not None:
                rescuer.stop()
        assert code == 0, out + victim.log()[-2000:] + (rescuer.log()[-2000:] if rescuer else "")
        assert f"{PATIENTS} patients, {PATIENTS} evaluated" in out and "errors: none" in out, out
        assert "cursor advanced" in out
        [job] = jobs(pg_url)
        assert job["status"] == "succeeded" and job["attempts"] >= 1 and len(job["args"]["patient_ids"]) == PATIENTS
        # the patients marked done before the kill were not evaluated again: their issues were not written again
        done_before = {pid for pid, mark in marked_before.items() if mark.startswith("evaluated")}
        after = {r["id"]: (patient_of_issue(r), r["meta"]["versionId"]) for r in our_issues(server)}
        mine = {i: v for i, (pid, v) in after.items() if pid in done_before}
        assert mine and all(written_before[i] == v for i, v in mine.items())
        # nothing twice, the summary's counts add up to what is there
        issues = assert_once_each_and_what_an_inline_sweep_writes(server, tmp_path)
        assert f"{len(issues)} written ({len(issues)} created, 0 updated" in out, out
    finally:
        server.stop()
