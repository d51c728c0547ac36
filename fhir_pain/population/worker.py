"""``fhir-pain worker``: evaluate the patients queued for one FHIR server, from the shared PostgreSQL queue.

    fhir-pain worker --fhir-server https://fhir.example.org/r4 --database-url postgresql://... --concurrency 4
    fhir-pain worker --fhir-server URL --database-url URL --until-empty     # a batch run (Kubernetes Job)

Run as many as you like, on as many machines, against one database and one FHIR server: each job is taken by
one worker (``SELECT ... FOR UPDATE SKIP LOCKED``), one patient is never evaluated by two at once, and the jobs
of a worker that dies are put back in the queue by the others (see fhir_pain.population.queue). Authentication
to the FHIR server as ``fhir-pain poll`` (a static token from an environment variable, or SMART Backend
Services). SIGTERM/SIGINT: the worker finishes its running jobs and stops.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from fhir_pain.population import queue as q

log = logging.getLogger(__name__)

HEARTBEAT_S = 2.0        # how often a worker tells the database it is alive
STALLED_AFTER_S = 10.0   # a worker silent this long is dead: its running jobs go back to the queue
RECOVER_EVERY_S = 5.0    # how often each worker looks for such jobs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fhir-server", required=True, metavar="URL", help="FHIR base URL to read and write")
    parser.add_argument("--database-url", metavar="URL",
                        help="the PostgreSQL store holding the queue (default $FHIR_PAIN_DATABASE_URL)")
    parser.add_argument("--concurrency", type=int, default=4, metavar="N", help="patients evaluated at once (4)")
    parser.add_argument("--until-empty", action="store_true",
                        help="exit once this server's queue is empty and none of its jobs runs anywhere (a batch "
                             "run: a Kubernetes Job) instead of waiting for more work")
    parser.add_argument("--heartbeat", type=float, default=HEARTBEAT_S, metavar="S",
                        help=f"seconds between this worker's heartbeats ({HEARTBEAT_S:g})")
    parser.add_argument("--stalled-after", type=float, default=STALLED_AFTER_S, metavar="S",
                        help="a worker without a heartbeat for this long is taken as dead and its jobs are "
                             f"retried by the others; keep it well above --heartbeat ({STALLED_AFTER_S:g})")
    parser.add_argument("--recover-every", type=float, default=RECOVER_EVERY_S, metavar="S",
                        help=f"seconds between two looks for a dead worker's jobs ({RECOVER_EVERY_S:g})")
    parser.add_argument("--poll-every", type=float, default=5.0, metavar="S",
                        help="seconds between two looks for new jobs when no notification came (5)")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="S", help="read timeout per FHIR call (10)")
    parser.add_argument("--retries", type=int, default=3, metavar="N",
                        help="retries of one FHIR call on 429/5xx/timeouts, honouring Retry-After (3)")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    copy_auth_arguments(parser)


def copy_auth_arguments(parser: argparse.ArgumentParser) -> None:
    """The authentication options of ``fhir-pain poll``, taken from its parser so that they never drift apart."""
    from fhir_pain.poller import cli as poll_cli

    poll = argparse.ArgumentParser(add_help=False)
    poll_cli.add_arguments(poll)
    for group in poll._action_groups:
        if group.title and group.title.startswith("authentication"):
            mine = parser.add_argument_group(group.title)
            for action in group._group_actions:
                mine._add_action(action)


def build(args: argparse.Namespace) -> tuple[object, q.Runtime]:
    """The procrastinate app and the jobs' runtime the arguments describe (ValueError on a bad option)."""
    from cds_hooks.fhir_client import FHIRClient, URLNotAllowed, normalize_base
    from fhir_pain.poller import cli as poll_cli
    from fhir_pain.store import Store

    if args.concurrency < 1 or min(args.heartbeat, args.recover_every, args.poll_every, args.timeout) <= 0:
        raise ValueError("--concurrency, --heartbeat, --recover-every, --poll-every and --timeout must be positive")
    if args.stalled_after < 2 * args.heartbeat:
        raise ValueError("--stalled-after must be at least twice --heartbeat (a live worker is never dead)")
    url = q.worker_database_url(args.database_url)
    try:
        base = normalize_base(args.fhir_server)
    except URLNotAllowed as exc:
        raise ValueError(str(exc)) from None
    client = FHIRClient(base, auth=poll_cli._auth(args), timeout=(3.05, args.timeout),
                        retries=max(0, args.retries), backoff_s=0.5, max_pages=50)
    q.ensure_schema(url)
    return q.build_app(url, max_size=args.concurrency + 3), q.Runtime(server=base, client=client, store=Store(url))


async def recover_stalled(app, *, stalled_after: float, every: float) -> None:
    """Forever: put the running jobs of workers silent for ``stalled_after`` seconds back in the queue."""
    from procrastinate import exceptions

    while True:
        await asyncio.sleep(every)
        try:
            stalled = await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=stalled_after)
        except exceptions.ConnectorException as exc:   # the database is away: try again next round
            log.warning("looking for stalled jobs failed (%s)", type(exc).__name__)
            continue
        for job in stalled:
            try:
                await app.job_manager.retry_job(job)
                log.info("job %s of a dead worker put back in the queue", job.id)
            except exceptions.UniqueViolation:
                # the same patient is waiting already (coalesced): that job does this one's work
                await app.job_manager.finish_job(job, status=_status("cancelled"), delete_job=False)
            except exceptions.ConnectorException:
                pass   # another worker retried it first (its status is no longer 'doing')


async def unfinished(app, queue: str) -> bool:
    """Jobs of this queue waiting (a retry not due yet, a patient locked by another job) or running."""
    for status in ("doing", "todo"):
        if list(await app.job_manager.list_jobs_async(queue=queue, status=status)):
            return True
    return False


def _status(value: str):
    from procrastinate.jobs import Status
    return Status(value)


async def serve(app, runtime: q.Runtime, args: argparse.Namespace) -> None:
    async with app.open_async():
        recovery = asyncio.create_task(recover_stalled(app, stalled_after=args.stalled_after,
                                                       every=args.recover_every))
        queue = q.queue_name(runtime.server)
        try:
            while True:
                await app.run_worker_async(
                    queues=[queue], concurrency=args.concurrency, wait=not args.until_empty,
                    name="fhir-pain-worker", additional_context={"runtime": runtime},
                    update_heartbeat_interval=args.heartbeat, stalled_worker_timeout=args.stalled_after,
                    fetch_job_polling_interval=args.poll_every, install_signal_handlers=True)
                # a batch run ends when nothing is left: not while jobs run elsewhere (their worker may die and
                # they come back) or wait for a retry
                if not args.until_empty or not await unfinished(app, queue):
                    break
                await asyncio.sleep(args.recover_every)
        finally:
            recovery.cancel()


class JobLogFilter(logging.Filter):
    """procrastinate's log lines name a job's arguments (a patient id): keep its action, job id and the class of
    a failure only."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("procrastinate"):
            job = getattr(record, "job", None)
            job_id = job.get("id") if isinstance(job, dict) else None
            failure = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else None
            record.msg = (f"{getattr(record, 'action', 'procrastinate')}" + (f" job {job_id}" if job_id else "")
                          + (f" ({failure})" if failure else ""))
            record.args = ()
            record.job = {"id": job_id} if job_id else None
            record.exc_info = record.exc_text = None   # a traceback's message can hold the patient's data
        return True


def run(args: argparse.Namespace) -> int:
    from fhir_pain import logging as fp_logging

    fp_logging.configure(args.log_level)
    for handler in logging.getLogger().handlers:
        handler.addFilter(JobLogFilter())
    try:
        app, runtime = build(args)
    except ModuleNotFoundError as exc:
        print(f"fhir-pain worker: not available in this build ({exc.name}): pip install 'fhir-pain[workers]'",
              file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:
        print(f"fhir-pain worker: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(app, runtime, args))
    finally:
        runtime.client.close()
        runtime.store.dispose()
    return 0
