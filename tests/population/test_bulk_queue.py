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
    # 3 workers x 2 at a time, each evaluation paused 0.3 s between its read and its writes: a kill lands mid-job
    workers = [WorkerProcess(pg_url, sekmet.base_url, sekmet.token, slow_s=0.3, log_path=tmp_path / f"w{i}.log")
               for i in range(3)]
    sweep = coordinator(sekmet, pg_url)
    try:
        wait_for(lambda: len(jobs(pg_url, "succeeded")) >= 6, 120, "the sweep to get under way")
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
        wait_for(lambda: len(jobs(pg_url, "todo")) == PATIENTS, 120, "the patients to be queued")
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

    sweep = coordinator(sekmet, pg_url, "--full")      # no worker: it waits
    try:
        wait_for(lambda: len(jobs(pg_url, "todo")) == PATIENTS, 120, "the patients to be queued")
        sweep.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        code, out = finish(sweep, 30)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert code == 130, out
    assert time.monotonic() - sent < 10
    assert "interrupted" in out and "cursor held" in out
    assert len(jobs(pg_url, "todo")) == PATIENTS     # the workers' work, for when they come


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
    queued = {j["args"]["patient_id"] for j in jobs(pg_url)}
    assert queued == set(population) - judged


def test_a_done_mark_carries_the_counts_and_fits_its_column():
    from fhir_pain.poller.cycle import PatientOutcome
    from fhir_pain.population import dispatch

    assert dispatch.mark(PatientOutcome(findings=2, created=1, unchanged=1)) == "evaluated 2,1,0,0,1"
    assert dispatch._outcome("evaluated 2,1,0,0,1") == PatientOutcome(findings=2, created=1, unchanged=1)
    huge = PatientOutcome(findings=10 ** 6, created=10 ** 6, updated=10 ** 6)
    assert dispatch.mark(huge) == "evaluated"                    # still counted as evaluated
    assert dispatch._outcome("evaluated") == PatientOutcome()    # as the inline sweep marks it
