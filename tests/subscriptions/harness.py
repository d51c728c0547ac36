"""Processes for the queue and Subscriptions tests: real ``fhir-pain worker``s and a real ``fhir-pain serve`` on
a PostgreSQL store, a real FHIR server (sekmet), and reading the queue's state straight from the database.

Shared by tests/subscriptions/ and tests/population/test_queue*.py (imported as ``subscriptions.harness`` there).
Every process started here is stopped when its test ends, also when it fails (the fixtures' finalizers, atexit).
"""
from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from fhir_pain.population.queue import conninfo
from integration.sekmet_server import Sekmet

HERE = Path(__file__).resolve().parent
_STARTED: set[subprocess.Popen] = set()


@atexit.register
def _stop_all() -> None:
    for proc in list(_STARTED):
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def sekmet(tmp_path_factory):
    """A FHIR server for the module's tests (it sends the notifications; the workers read and write it)."""
    server = Sekmet(tmp_path_factory.mktemp("sekmet")).start()
    yield server
    server.stop()


@pytest.fixture
def pg_url(postgres):
    """A database of its own on the session's PostgreSQL server: the store and its work queue."""
    url = postgres.create_database()
    yield url
    postgres.drop_database(url)


def wait_for(predicate, timeout_s: float, what: str, pause: float = 0.05):
    """Poll ``predicate`` until it returns something truthy; AssertionError naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s}s: {what}")
        time.sleep(pause)


def jobs(database_url: str, status: str | None = None) -> list[dict]:
    """The queue's jobs (id, status, attempts, args), oldest first."""
    query = "SELECT id, status::text, attempts, args, task_name FROM procrastinate_jobs"
    with psycopg.connect(conninfo(database_url)) as conn:
        present = conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()[0]
        if present is None:
            return []
        rows = conn.execute(query + (" WHERE status = %s" if status else "") + " ORDER BY id",
                            (status,) if status else ()).fetchall()
    return [{"id": r[0], "status": r[1], "attempts": r[2], "args": r[3], "task": r[4]} for r in rows]


class WorkerProcess:
    """``fhir-pain worker`` for one FHIR server (static token), with short heartbeat and recovery times so a
    dead worker's jobs come back within about 3 s. ``slow_s``: each evaluation pauses this long between reading
    the patient and writing its DetectedIssues (tests/subscriptions/slow_worker.py), so a kill lands mid-job;
    ``write_batch`` (with ``slow_s``): a batch job writes and marks done every few patients."""

    def __init__(self, database_url: str, fhir_base: str, token: str, *, concurrency: int = 2,
                 slow_s: float = 0.0, until_empty: bool = False, log_path: Path | None = None,
                 write_batch: int | None = None):
        env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_PAIN_")}
        env["FHIR_PAIN_POLL_TOKEN"] = token
        if write_batch:     # slow workers only: DetectedIssues per transaction Bundle of a batch job
            env["SLOW_WORKER_WRITE_BATCH"] = str(write_batch)
        args = ["worker", "--fhir-server", fhir_base, "--database-url", database_url,
                "--concurrency", str(concurrency), "--heartbeat", "0.5", "--stalled-after", "2",
                "--recover-every", "0.5", "--poll-every", "0.5", "--retries", "1", "--timeout", "30"]
        if until_empty:
            args.append("--until-empty")
        if slow_s:
            cmd = [sys.executable, str(HERE / "slow_worker.py"), str(slow_s), *args]
        else:
            cmd = [sys.executable, "-m", "fhir_pain.cli", *args]
        self.log_path = log_path
        out = open(log_path, "ab") if log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if log_path:
            out.close()
        _STARTED.add(self.proc)

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind (its jobs stay 'doing', its heartbeat just stops)."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        _STARTED.discard(self.proc)

    def stop(self, timeout_s: float = 60) -> int:
        """SIGTERM (finish the running jobs, then exit); its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        _STARTED.discard(self.proc)
        return self.proc.returncode

    def wait(self, timeout_s: float) -> int:
        code = self.proc.wait(timeout=timeout_s)
        _STARTED.discard(self.proc)
        return code

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

