"""The work queue: patients to evaluate, as jobs in PostgreSQL, run by any number of ``fhir-pain worker`` processes.

procrastinate (``pip install 'fhir-pain[workers]'``) keeps the jobs in the store's own PostgreSQL database; its
tables are created on first use (under an advisory lock, so processes starting together do not race). One job
evaluates one patient of one FHIR server (``evaluate_patient_task``):

- **coalescing**: a job's ``queueing_lock`` is server + patient + sweep, so a patient already waiting is not
  queued again (a burst of notifications about one patient is one evaluation). A patient being evaluated right
  now can be queued once more: the change that caused it may have come after that evaluation read the data.
- **one patient at a time**: a job's ``lock`` is server + patient, so two workers never evaluate the same
  patient at once (the second waits for the first).
- **queues per FHIR server**: a worker serves one server (its credentials) and takes only that server's jobs.
- **retries**: a transient failure (the FHIR server down, 5xx, timeout, 401/408/429) is retried with
  exponential back-off (2, 4, 8 ... s, ``MAX_ATTEMPTS`` in all); a permanent one fails the job (logged).
- **a worker that dies** (SIGKILL, power loss) leaves its job in ``doing``. Every worker sends a heartbeat every
  ``heartbeat`` seconds; every ``recover_every`` seconds each live worker puts back in the queue the jobs of
  workers silent for ``stalled_after`` seconds (procrastinate's stalled-job API), so another worker finishes
  them: a job is retried at most ``stalled_after + recover_every`` seconds (+ one fetch) after its worker died
  (defaults 10 + 5 s; ``fhir-pain worker --help``). Re-running a job writes nothing twice: each DetectedIssue
  has a deterministic id (a create is a PUT) and an unchanged finding is not written.

A bulk sweep in queue mode (population/dispatch.py) queues its patients in batches (``evaluate_batch_task``, up to
``--queue-batch`` patients a job, coalesced per sweep and batch, no per-patient ``lock``: a sweep's batches are
disjoint): a job reads its patients from the sweep's spool in one query, evaluates and writes them as the inline
sweep does (``sweep.evaluate_spooled``: DetectedIssues in transaction Bundles) and marks each done there after
its writes, which is what the sweep's coordinator waits for. A retried batch skips its patients marked done. A
single patient's job with a ``sweep`` (``evaluate_patient_task``) does the same for one patient.

With the embedded SQLite store (one process) there is no procrastinate: ``enqueue_patients`` evaluates the
patients inline, at once, in the calling process, and returns when they are written.
"""
from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from cds_hooks.fhir_client import FHIRError, normalize_base
from fhir_pain.poller.cycle import PatientOutcome, _is_transient, patient_of
from fhir_pain.population import patient_job

log = logging.getLogger(__name__)

EVALUATE_TASK = "fhir_pain.evaluate_patient"
BATCH_TASK = "fhir_pain.evaluate_sweep_batch"
SWEEP_TASKS = (EVALUATE_TASK, BATCH_TASK)   # the tasks whose jobs carry a ``sweep``
FOCUS_TASK = "fhir_pain.evaluate_focus"
MAX_ATTEMPTS = 6                 # a transient failure: retried after 2, 4, 8, 16, 32 s, then the job fails
ENQUEUE_CHUNK = 500              # jobs deferred per round trip
# pg_advisory_xact_lock key held while procrastinate's schema is created ("fhirqueu")
SCHEMA_LOCK_KEY = 0x66686972_71756575

Item = tuple[str, str, "str | None"]   # (FHIR base URL, patient id, sweep id or None)


class TransientFailure(Exception):
    """A failure worth retrying (the server, the network, the credentials; not our data)."""


def is_postgresql(database_url: str) -> bool:
    return sa.engine.make_url(database_url).get_backend_name() == "postgresql"


def conninfo(database_url: str) -> str:
    """The SQLAlchemy URL of the store as a libpq URI (what psycopg and procrastinate take)."""
    url = sa.engine.make_url(database_url)
    if url.get_backend_name() != "postgresql":
        raise ValueError("the work queue needs a PostgreSQL database (postgresql://...)")
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def queue_name(server: str) -> str:
    """One procrastinate queue per FHIR server: a worker holds one server's credentials."""
    return "patients-" + hashlib.sha256(normalize_base(server).encode()).hexdigest()[:20]


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def coalescing_key(server: str, patient_id: str, sweep: str | None) -> str:
    """Jobs waiting with the same key are one job. The sweep is part of it: a sweep's job evaluates the data
    spooled at export time, a live one (sweep None) what the server holds now; neither may swallow the other."""
    return "q:" + _digest(normalize_base(server), patient_id, sweep or "")


def patient_lock(server: str, patient_id: str) -> str:
    return "p:" + _digest(normalize_base(server), patient_id)


def ensure_schema(database_url: str) -> None:
    """Create procrastinate's tables if they are not there (first use). Idempotent, safe to race."""
    import psycopg
    from procrastinate.schema import SchemaManager

    with psycopg.connect(conninfo(database_url), connect_timeout=10) as conn:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
            present = conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()[0]
            if present is None:
                conn.execute(SchemaManager.get_schema())   # no parameters: its % signs are taken as written


# ---- the procrastinate app and its tasks ------------------------------------------------------------------------

@dataclass
class Runtime:
    """What a worker's jobs use: the FHIR server it serves and its client, the store, the rules."""
    server: str
    client: Any
    store: Any
    evaluate: Callable | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(timezone.utc))
    on_outcome: Callable[[PatientOutcome], None] | None = None
    writer: Any = None           # the sweep's IssueWriter for batch jobs (made on first use)
    write_batch: int | None = None   # DetectedIssues per transaction Bundle of a batch job (None: the sweep's)


def _runtime(context, server: str) -> Runtime:
    runtime: Runtime = (context.additional_context or {})["runtime"]
    if normalize_base(server) != normalize_base(runtime.server):
        # never happens through the per-server queues; a job must not reach a server the worker was not given
        raise ValueError("job for another FHIR server than this worker's")
    return runtime


def _run(runtime: Runtime, patient_id: str, resources: list[dict] | None) -> PatientOutcome:
    try:
        outcome = patient_job.evaluate_patient(runtime.client, runtime.store, patient_id=patient_id,
                                               resources=resources, now=runtime.clock(),
                                               evaluate=runtime.evaluate)
    except Exception as exc:
        if _is_transient(exc):
            raise TransientFailure(type(exc).__name__ + (f" HTTP {exc.status}" if getattr(exc, "status", None)
                                                         else "")) from exc
        raise
    if runtime.on_outcome is not None:
        runtime.on_outcome(outcome)
    return outcome


def _run_for_sweep(runtime: Runtime, patient_id: str, sweep: str) -> PatientOutcome | None:
    """A bulk sweep's patient (population/dispatch.py): evaluated from the spool, then marked done there with its
    outcome, after its writes. A permanent failure is marked too (the sweep counts it) and fails the job; a
    transient one marks nothing and is retried. None: the sweep is gone (finished or dropped), nothing to do."""
    from fhir_pain.population import dispatch, spool

    found = spool.load_many(runtime.store, sweep, [patient_id])
    if patient_id not in found:
        return None
    try:
        outcome = _run(runtime, patient_id, found[patient_id])   # None: an incremental sweep's, read whole
    except patient_job.PatientMissing:
        spool.mark_done(runtime.store, sweep, {patient_id: "patient-missing"})
        return PatientOutcome()
    except TransientFailure:
        raise
    except Exception as exc:
        cause = "patient-read-refused" if isinstance(exc, FHIRError) else "patient-rules-error"
        spool.mark_done(runtime.store, sweep, {patient_id: cause})
        raise
    spool.mark_done(runtime.store, sweep, {patient_id: dispatch.mark(outcome)})
    return outcome


def _run_batch(runtime: Runtime, sweep: str, patient_ids: list[str]) -> dict:
    """A batch of a bulk sweep's patients (population/dispatch.py), evaluated as the inline sweep evaluates a
    chunk (``sweep.evaluate_spooled``: one spool read, DetectedIssues in transaction Bundles, each patient marked
    done with its outcome after its writes). Patients marked done already (a retry of this job, a worker that died
    mid-batch) are skipped; so are patients whose sweep is gone. A permanent failure is marked with its cause and
    does not fail the others or the job; a transient one leaves its patients unmarked and the job is retried
    (TransientFailure) for them alone."""
    from fhir_pain.population import spool
    from fhir_pain.population.progress import SweepStats
    from fhir_pain.population.sweep import WRITE_BATCH, IssueWriter, evaluate_spooled

    todo = spool.not_done(runtime.store, sweep, patient_ids)
    found = spool.load_many(runtime.store, sweep, todo) if todo else {}
    todo = [pid for pid in todo if pid in found]
    stats = SweepStats()
    if todo:
        if runtime.writer is None:
            runtime.writer = IssueWriter(runtime.client)
        left = evaluate_spooled(runtime.client, runtime.writer, runtime.store, sweep, todo, found, stats,
                                now=runtime.clock(), evaluate=runtime.evaluate,
                                write_batch=runtime.write_batch or WRITE_BATCH)
        if left:
            raise TransientFailure(f"{len(left)} of {len(todo)} patients left pending ("
                                   + ", ".join(sorted(c for c in stats.errors if c.startswith(("patient-transient",
                                                                                               "write-")))) + ")")
    return {"patients": len(patient_ids), "evaluated": stats.evaluated, "findings": stats.findings,
            "created": stats.created, "updated": stats.updated, "closed": stats.closed,
            "errors": dict(stats.errors)}


def evaluate_batch_task(context, server: str, sweep: str, patient_ids: list[str]) -> dict:
    """Evaluate a batch of a sweep's spooled patients and write their DetectedIssues (``WorkQueue.enqueue_batches``)."""
    return _run_batch(_runtime(context, server), sweep, list(patient_ids))


def evaluate_patient_task(context, server: str, patient_id: str, sweep: str | None = None) -> dict:
    """Evaluate one patient and write its DetectedIssues (the job of ``enqueue_patients``)."""
    runtime = _runtime(context, server)
    if sweep:
        outcome = _run_for_sweep(runtime, patient_id, sweep) or PatientOutcome()
    else:
        outcome = _run(runtime, patient_id, None)
    return {"findings": outcome.findings, "created": outcome.created, "updated": outcome.updated,
            "closed": outcome.closed}


def evaluate_focus_task(context, server: str, reference: str) -> dict | None:
    """An id-only notification that named the changed resource but not its patient: read it, evaluate its
    patient (nothing when it has none, or is gone: a deletion's patient is caught by the next sweep)."""
    from cds_hooks.fhir_client import FHIRNotFound

    runtime = _runtime(context, server)
    try:
        resource = runtime.client.read(reference)
    except FHIRNotFound:
        return None
    except Exception as exc:
        if _is_transient(exc):
            raise TransientFailure(type(exc).__name__) from exc
        raise
    patient_id = resource.get("id") if resource.get("resourceType") == "Patient" else patient_of(resource)
    if not isinstance(patient_id, str):
        return None
    outcome = _run(runtime, patient_id, None)
    return {"findings": outcome.findings, "created": outcome.created}


def build_app(database_url: str, **pool_args: Any):
    """A procrastinate App on the store's database with the two tasks (not opened)."""
    import procrastinate

    retry = procrastinate.RetryStrategy(max_attempts=MAX_ATTEMPTS, exponential_wait=2,
                                        retry_exceptions={TransientFailure})
    pool_args.setdefault("min_size", 1)
    pool_args.setdefault("max_size", 4)
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo(database_url),
                                                                     **pool_args))
    app.task(name=EVALUATE_TASK, pass_context=True, retry=retry)(evaluate_patient_task)
    app.task(name=FOCUS_TASK, pass_context=True, retry=retry)(evaluate_focus_task)
    app.task(name=BATCH_TASK, pass_context=True, retry=retry)(evaluate_batch_task)
    return app


# ---- enqueueing -----------------------------------------------------------------------------------------------

class WorkQueue:
    """The sending side, for a process that queues (the service's subscription receiver, a sweep): a sync
    connection pool on the store's PostgreSQL database, opened once and shared by its threads."""

    def __init__(self, database_url: str, *, wait_s: float = 30.0):
        """``wait_s``: how long a call waits for a database connection before it fails."""
        ensure_schema(database_url)
        self.app = build_app(database_url, timeout=wait_s)
        self.app.open()

    def close(self) -> None:
        self.app.close()

    def enqueue(self, items: Iterable[Item]) -> int:
        """Queue each (server, patient, sweep) unless it is waiting already; returns how many were queued."""
        task = self.app.tasks[EVALUATE_TASK]
        jobs, seen = [], set()
        for server, patient_id, sweep in items:
            key = coalescing_key(server, patient_id, sweep)
            if key in seen:
                continue
            seen.add(key)
            jobs.append(task.configure(queue=queue_name(server), queueing_lock=key,
                                       lock=patient_lock(server, patient_id))
                        .make_new_job(server=normalize_base(server), patient_id=patient_id, sweep=sweep))
        return self._defer(jobs)

    def _defer(self, jobs: list) -> int:
        """Defer the jobs in chunks; one already waiting (its queueing lock held) is left out, not an error."""
        from procrastinate.exceptions import AlreadyEnqueued

        queued = 0
        manager = self.app.job_manager
        for start in range(0, len(jobs), ENQUEUE_CHUNK):
            chunk = jobs[start:start + ENQUEUE_CHUNK]
            try:
                queued += len(manager.batch_defer_jobs(chunk))
                continue
            except AlreadyEnqueued:
                pass   # one of them is waiting already: the chunk went in whole or not at all, so one by one
            for job in chunk:
                try:
                    manager.defer_job(job)
                    queued += 1
                except AlreadyEnqueued:
                    pass
        return queued

    def enqueue_batches(self, server: str, sweep: str, batches: Iterable[list[str]]) -> int:
        """Queue each batch of a sweep's patients as one job (``evaluate_batch_task``) unless the same batch is
        waiting already (two coordinators resuming one sweep); returns how many were queued."""
        task = self.app.tasks[BATCH_TASK]
        base = normalize_base(server)
        jobs = [task.configure(queue=queue_name(server), queueing_lock="b:" + _digest(base, sweep, *ids))
                .make_new_job(server=base, sweep=sweep, patient_ids=list(ids)) for ids in batches if ids]
        return self._defer(jobs)

    def enqueue_focus(self, server: str, reference: str) -> bool:
        from procrastinate.exceptions import AlreadyEnqueued

        try:
            self.app.tasks[FOCUS_TASK].configure(
                queue=queue_name(server), queueing_lock="f:" + _digest(normalize_base(server), reference),
            ).defer(server=normalize_base(server), reference=reference)
            return True
        except AlreadyEnqueued:
            return False


def enqueue_patients(items: Iterable[Item], *, store, queue: WorkQueue | None = None, client=None,
                     client_for: Callable[[str], Any] | None = None, evaluate=None,
                     now: datetime | None = None) -> int:
    """Have these patients evaluated; returns how many were queued (or, inline, evaluated).

    A PostgreSQL store: jobs in its database (``queue``, or a WorkQueue opened for this call), coalesced.
    The SQLite store (one process, no procrastinate): evaluated here and now, each patient once, with ``client``
    (or ``client_for(server)``); a patient that fails is logged and skipped (the next incremental poll or sweep
    takes it up) and not counted."""
    if is_postgresql(store.url):
        if queue is not None:
            return queue.enqueue(items)
        own = WorkQueue(store.url)
        try:
            return own.enqueue(items)
        finally:
            own.close()
    done, seen = 0, set()
    for server, patient_id, sweep in items:
        key = coalescing_key(server, patient_id, sweep)
        if key in seen:
            continue
        seen.add(key)
        target = client if client is not None else client_for(normalize_base(server)) if client_for else None
        if target is None:
            raise ValueError("inline evaluation (SQLite store) needs a FHIR client")
        runtime = Runtime(server=server, client=target, store=store, evaluate=evaluate)
        if now is not None:
            runtime.clock = lambda: now
        try:
            if sweep:
                _run_for_sweep(runtime, patient_id, sweep)
            else:
                _run(runtime, patient_id, None)
            done += 1
        except Exception as exc:  # noqa: BLE001 - one patient never stops the others
            log.warning("inline evaluation failed (%s); the next poll or sweep takes the patient up",
                        type(exc).__name__)
    return done


def worker_database_url(explicit: str | None) -> str:
    """--database-url, else FHIR_PAIN_DATABASE_URL (the service's store)."""
    url = explicit or os.environ.get("FHIR_PAIN_DATABASE_URL") or ""
    if not url or not is_postgresql(url):
        raise ValueError("workers need the PostgreSQL store: --database-url postgresql://... "
                         "(or FHIR_PAIN_DATABASE_URL)")
    return url
