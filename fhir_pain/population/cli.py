"""``fhir-pain poll --bulk``: population sweeps with FHIR Bulk Data (the rest of ``poll``'s options apply).

    fhir-pain poll --fhir-server URL --bulk --once                 # first run: everyone; later: what changed
    fhir-pain poll --fhir-server URL --bulk --group high-risk --once
    fhir-pain poll --fhir-server URL --bulk --reevaluate --once    # after a knowledge (CPIC) update
    fhir-pain poll --fhir-server URL --bulk --full --once          # everyone again (e.g. weekly: deletions)
    fhir-pain poll --fhir-server URL --bulk --interval 3600        # an incremental sweep every hour
    fhir-pain poll --fhir-server URL --bulk --workers-queue --database-url postgresql://... --once
                                            # evaluated by N `fhir-pain worker`s (population/dispatch.py)

SIGINT/SIGTERM: a running export is cancelled (DELETE); an evaluation stops after the patient at hand, its
writes sent and recorded: the next run resumes where it stopped. Exit status: 0 all done, 1 errors (see the
summary line), 2 a configuration error, 130 interrupted.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading


def build_sweep(args: argparse.Namespace, stop: threading.Event, progress=None):
    """The Sweep the arguments describe (raises ValueError on a configuration error)."""
    from cds_hooks.fhir_client import URLNotAllowed, is_tls_or_loopback, normalize_base
    from fhir_pain.poller.cli import build_poller
    from fhir_pain.population.bulk import BulkClient
    from fhir_pain.population.sweep import Sweep

    if args.export_wait <= 0 or args.max_file_bytes < 1:
        raise ValueError("--export-wait and --max-file-bytes must be positive")
    origins = []
    for origin in args.bulk_file_origin:
        try:
            origins.append(normalize_base(origin))
            if not is_tls_or_loopback(origin):
                raise URLNotAllowed(f"--bulk-file-origin must be https (or loopback): {origin}")
        except URLNotAllowed as exc:
            raise ValueError(str(exc)) from None
    if args.queue_wait <= 0 or args.queue_batch < 1:
        raise ValueError("--queue-wait and --queue-batch must be positive")
    poller = build_poller(args)        # the same client, authentication and store as the poller's
    queue = None
    if args.workers_queue:
        from fhir_pain.population.queue import WorkQueue, is_postgresql
        if not is_postgresql(poller.store.url):
            raise ValueError("--workers-queue needs the PostgreSQL store (--database-url postgresql://... or "
                             "FHIR_PAIN_DATABASE_URL): the workers share its queue and spool")
        try:
            queue = WorkQueue(poller.store.url)
        except Exception as exc:  # noqa: BLE001 - psycopg's or procrastinate's: the database is not reachable
            raise ValueError(f"the work queue's database is not usable ({type(exc).__name__})") from None
    auth = poller.client._auth       # the static token or the SMART Backend Services token source
    bulk = BulkClient(poller.client.base_url, auth=auth, allowed_origins=origins,
                      timeout=(3.05, args.timeout), max_wait_s=args.export_wait, stop=stop)
    return Sweep(poller.client, bulk, poller.store, group=args.group, reevaluate=args.reevaluate, full=args.full,
                 progress=progress, stop=stop, max_file_bytes=args.max_file_bytes, queue=queue,
                 queue_wait_s=args.queue_wait, queue_batch=args.queue_batch)


def run_bulk(args: argparse.Namespace) -> int:
    from fhir_pain.population.progress import Progress

    stop = threading.Event()
    progress = Progress(sys.stderr, tty=args.progress == "always" or (args.progress == "auto"
                                                                      and sys.stderr.isatty()))
    try:
        sweep = build_sweep(args, stop, progress)
    except ModuleNotFoundError as exc:
        print(f"fhir-pain poll: not available in this build ({exc.name})", file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:
        print(f"fhir-pain poll: {exc}", file=sys.stderr)
        return 2
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            stats = sweep.run()
            progress.finish()
            print(stats.summary(), flush=True)
            status = 130 if stats.interrupted else (1 if stats.has_errors else 0)
            if args.once or stats.interrupted or stop.wait(args.interval):
                return status if args.once or stats.interrupted else 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if sweep.queue is not None:
            sweep.queue.close()
