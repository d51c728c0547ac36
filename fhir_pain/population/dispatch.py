"""A bulk sweep's queue mode (``fhir-pain poll --bulk --workers-queue``): the coordinator exports and spools as the
inline sweep does, then hands every pending patient to the work queue (population/queue.py) and waits while any
number of ``fhir-pain worker`` processes evaluate them from the spool.

- The patients go in jobs of up to ``--queue-batch`` (100): a job reads them from the spool in one query and
  evaluates and writes them as the inline sweep does (transaction Bundles; population/queue.py ``_run_batch``).
- A worker's job marks each patient done in the spool (``bulk_done``) after its writes, with the outcome and its
  counts (``mark``); the coordinator's progress and summary are read back from those marks (``tally``).
- ``--reevaluate``: the coordinator itself skips the patients already evaluated under the current knowledge (as
  the inline sweep does, from the spool) and queues only the rest.
- The wait ends when no patient is pending (the cursor advances, the spool is dropped), at the timeout, on
  SIGINT/SIGTERM, or when patients are pending but no job of the sweep is waiting or running any more: their
  retries were exhausted (a FHIR server down for minutes) or their jobs deleted. Those patients are reported
  (``patient-transient``) and the cursor is held: the next run resumes the sweep and queues them again.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import fields

import sqlalchemy as sa

from fhir_pain.knowledge_version import knowledge_version
from fhir_pain.poller.cycle import PatientOutcome
from fhir_pain.population import spool
from fhir_pain.population.progress import SweepStats

EVALUATED = "evaluated"
POLL_S = 0.5                     # how often the coordinator looks at the spool and the queue, at least
MAX_POLL_S = 30.0
LOOK_SHARE = 20                  # ... and at most 1/20 of its time spent looking
STRANDED_AFTER_S = 5.0           # patients pending and no job of theirs active this long: their jobs failed
_COUNTS = [f.name for f in fields(PatientOutcome)]
MARK_CHARS = 32                  # bulk_done.outcome


def mark(outcome: PatientOutcome) -> str:
    """A done mark that carries the patient's counts ("evaluated 2,1,0,0,1": findings, created, updated, closed,
    unchanged), so that the coordinator sums what the workers wrote without a table of its own."""
    value = f"{EVALUATED} " + ",".join(str(getattr(outcome, name)) for name in _COUNTS)
    return value if len(value) <= MARK_CHARS else EVALUATED    # the column's width: counted, without its numbers


def _outcome(value: str) -> PatientOutcome | None:
    if not value.startswith(EVALUATED):
        return None
    parts = value[len(EVALUATED):].strip().split(",")
    try:
        return PatientOutcome(**dict(zip(_COUNTS, map(int, parts), strict=True)))
    except (ValueError, TypeError):
        return PatientOutcome()


def tally(store, sweep: str, stats: SweepStats, *, export_errors: Counter) -> None:
    """Set ``stats``' patient counters from the sweep's done marks (``export_errors``: what the export counted)."""
    done = spool.tables(store)["bulk_done"]
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(done.c.outcome, sa.func.count()).where(done.c.sweep == sweep)
                            .group_by(done.c.outcome)).all()
    fresh = SweepStats()
    for value, n in rows:
        outcome = _outcome(value)
        if outcome is not None:
            fresh.evaluated += n
            for name in _COUNTS:
                setattr(fresh, name, getattr(fresh, name) + n * getattr(outcome, name))
        elif value == "current":
            fresh.current += n
        else:
            fresh.error(value if value.startswith("patient-") else f"patient-{value}", n)
    for name in ("evaluated", "current", *_COUNTS):
        setattr(stats, name, getattr(fresh, name))
    stats.errors.clear()
    stats.errors.update(export_errors)
    stats.errors.update(fresh.errors)


def active_jobs(store, server: str, sweep: str) -> int:
    """This sweep's jobs waiting (a retry not due yet included) or running, on any worker."""
    from fhir_pain.population.queue import SWEEP_TASKS, queue_name

    query = sa.text("SELECT count(*) FROM procrastinate_jobs WHERE queue_name = :queue "
                    "AND task_name IN :tasks AND status IN ('todo', 'doing') AND args->>'sweep' = :sweep"
                    ).bindparams(sa.bindparam("tasks", expanding=True))
    with store.engine.connect() as conn:
        return int(conn.execute(query, {"queue": queue_name(server), "tasks": list(SWEEP_TASKS),
                                        "sweep": sweep}).scalar() or 0)


def queue_patients(sweeper, sweep: str, stats: SweepStats) -> None:
    """Queue the sweep's pending patients in jobs of ``sweeper.queue_batch``; in the reevaluate mode the current
    ones are marked done, not queued."""
    from fhir_pain.population.sweep import _is_current

    store = sweeper.store
    current = knowledge_version()
    size = max(1, sweeper.queue_batch)
    for ids in spool.patients(store, sweep, chunk=max(sweeper.chunk, size)):
        if stats.mode == "reevaluate":
            batch = spool.load_many(store, sweep, ids)
            skipped = {pid: "current" for pid in ids
                       if batch.get(pid) is not None and _is_current(pid, batch[pid], current)}
            spool.mark_done(store, sweep, skipped)
            ids = [pid for pid in ids if pid not in skipped]
        sweeper.queue.enqueue_batches(sweeper.server, sweep, (ids[i:i + size] for i in range(0, len(ids), size)))
        if sweeper.stop.is_set():
            return


def run(sweeper, sweep: str, stats: SweepStats) -> None:
    """Queue the sweep's patients and wait for the workers (see the module). ``sweeper``: the Sweep."""
    store = sweeper.store
    export_errors = Counter(stats.errors)
    stats.patients = spool.count_patients(store, sweep, pending_only=False)
    sweeper.progress(stats, force=True)
    queue_patients(sweeper, sweep, stats)
    waiting_since = time.monotonic()
    deadline = waiting_since + sweeper.queue_wait_s
    stranded_since: float | None = None
    stranded_pending = 0
    while True:
        # the jobs first, then the spool: a job marks its patient before it leaves 'doing', so "no job active"
        # seen first means every mark it made is visible to the count after it
        looked = time.monotonic()
        active = active_jobs(store, sweeper.server, sweep)
        pending = spool.count_patients(store, sweep)
        tally(store, sweep, stats, export_errors=export_errors)
        # a large population makes these counts slow: look less often rather than load the database, but never
        # pause longer than a quarter of the wait so far (a short sweep is not kept waiting for its last look)
        pause = max(POLL_S, min(MAX_POLL_S, LOOK_SHARE * (time.monotonic() - looked),
                                (time.monotonic() - waiting_since) / 4))
        sweeper.progress(stats)
        if pending == 0:
            return
        if sweeper.stop.is_set():
            stats.interrupted = True    # the jobs stay queued and the workers go on; the next run waits for them
            return
        if active == 0:
            # a worker whose heartbeat was late is taken for dead and its job cancelled or put back while it
            # still runs: only nothing active for STRANDED_AFTER_S, no patient marked meanwhile, is final
            if stranded_since is None or pending != stranded_pending:
                stranded_since, stranded_pending = time.monotonic(), pending
            elif time.monotonic() - stranded_since >= STRANDED_AFTER_S:
                stats.error("patient-transient-queue", pending)   # retries exhausted: the next run queues them
                return
        else:
            stranded_since = None
        if time.monotonic() > deadline:
            stats.error("patient-transient-queue-timeout", pending)
            return
        sweeper.stop.wait(pause)
