"""``fhir-pain poll``: evaluate the patients whose data changed on a FHIR server and write DetectedIssues.

    fhir-pain poll --fhir-server https://fhir.example.org/r4 --once
    FHIR_PAIN_POLL_TOKEN=... fhir-pain poll --fhir-server URL --interval 300
    fhir-pain poll --fhir-server URL --smart-client-id poller --smart-key key.pem --smart-kid k1
    fhir-pain poll --fhir-server URL --overlap 300     # a server whose write transactions can run for minutes
    fhir-pain poll --fhir-server URL --bulk --once     # Bulk Data sweeps instead: fhir_pain/population/cli.py

Credentials never go on the command line (where ``ps`` shows them): a static bearer token comes from an
environment variable, SMART Backend Services from a private key file.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from datetime import datetime, timezone
from typing import TextIO

from fhir_pain.poller.cycle import DEFAULT_OVERLAP_S, CycleStats

log = logging.getLogger(__name__)

TOKEN_ENV = "FHIR_PAIN_POLL_TOKEN"
DATABASE_ENV = "FHIR_PAIN_DATABASE_URL"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fhir-server", required=True, metavar="URL", help="FHIR base URL to poll and write to")
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--once", action="store_true", help="run one cycle and exit (exit 1 if a patient failed)")
    when.add_argument("--interval", type=float, default=60.0, metavar="S", help="seconds between cycles (60)")
    add_auth_arguments(parser)
    parser.add_argument("--database-url", metavar="URL",
                        help=f"store for the poll cursor (default ${DATABASE_ENV} or the service's database)")
    parser.add_argument("--since", metavar="INSTANT",
                        help="on the first run, take changes from this instant (default: everything)")
    parser.add_argument("--overlap", type=float, default=DEFAULT_OVERLAP_S, metavar="S",
                        help="seconds each cycle's change feed reaches back behind its cursor, for changes a server "
                             "makes visible after newer ones (stamped when a transaction starts, shown when it "
                             "commits); what was already taken in that window is not evaluated again. A change "
                             "showing up later than this is missed: keep it above the server's longest write "
                             f"transaction; 0 turns it off ({DEFAULT_OVERLAP_S:g})")
    parser.add_argument("--page-size", type=int, default=100, metavar="N", help="search page size (100)")
    parser.add_argument("--max-changes", type=int, default=50_000, metavar="N",
                        help="changes per resource type per cycle; the rest waits for the next cycle (50000)")
    parser.add_argument("--workers", type=int, default=4, metavar="N", help="patients evaluated at once (4)")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="S", help="read timeout per call (10)")
    parser.add_argument("--retries", type=int, default=3, metavar="N",
                        help="retries on 429/5xx/timeouts with backoff, honouring Retry-After (3)")
    parser.add_argument("--progress", choices=("auto", "always", "never"), default="auto",
                        help="live progress line on stderr (auto: when stderr is a terminal)")
    # -- bulk sweeps (issue 17): fhir_pain/population -------------------------------------------------------
    bulk = parser.add_argument_group("bulk sweeps (FHIR Bulk Data $export instead of per-patient searches)")
    bulk.add_argument("--bulk", action="store_true",
                      help="sweep with $export: everyone on the first run, then what changed since the last sweep")
    bulk.add_argument("--group", metavar="ID", help="export Group/ID's members only (default: Patient/$export)")
    bulk.add_argument("--full", action="store_true",
                      help="export and re-check everyone, whatever the cursor (deletions are seen only so)")
    bulk.add_argument("--reevaluate", action="store_true",
                      help="re-check every patient not yet evaluated under the current knowledge version")
    bulk.add_argument("--export-wait", type=float, default=6 * 3600.0, metavar="S",
                      help="longest wait for an export to finish; then it is cancelled (21600)")
    bulk.add_argument("--max-file-bytes", type=int, default=8 << 30, metavar="N",
                      help="largest NDJSON file read, decoded (8 GiB); a larger one fails the sweep")
    bulk.add_argument("--bulk-file-origin", action="append", default=[], metavar="URL",
                      help="another origin the manifest's files may come from (e.g. a storage bucket); "
                           "by default only the FHIR server's own")
    bulk.add_argument("--workers-queue", action="store_true",
                      help="hand the patients to `fhir-pain worker` processes through the PostgreSQL work queue "
                           "and wait for them, instead of evaluating them in this process (PostgreSQL store only)")
    bulk.add_argument("--queue-wait", type=float, default=24 * 3600.0, metavar="S",
                      help="with --workers-queue: longest wait for the workers; then the patients left are "
                           "reported and the cursor held (86400)")
    bulk.add_argument("--queue-batch", type=int, default=100, metavar="N",
                      help="with --workers-queue: patients per job; a job reads them from the spool in one query "
                           "and writes their DetectedIssues in transaction Bundles (100)")


def add_auth_arguments(parser: argparse.ArgumentParser) -> None:
    """The FHIR server credentials (also used by ``fhir-pain import``): read by ``_auth``."""
    auth = parser.add_argument_group("authentication (static bearer token, or SMART Backend Services)")
    auth.add_argument("--token-env", default=TOKEN_ENV, metavar="VAR",
                      help=f"environment variable holding a static bearer token (default {TOKEN_ENV})")
    auth.add_argument("--smart-client-id", metavar="ID", help="SMART Backend Services client id")
    auth.add_argument("--smart-key", metavar="PEM", help="private key file that signs the client assertion")
    auth.add_argument("--smart-alg", default="RS384", choices=("RS384", "ES384", "RS256", "ES256"))
    auth.add_argument("--smart-kid", metavar="KID", help="key id of the registered public key")
    auth.add_argument("--smart-jku", metavar="URL", help="JWKS URL to name in the assertion header")
    auth.add_argument("--smart-token-url", metavar="URL",
                      help="token endpoint (default: from <server>/.well-known/smart-configuration)")
    auth.add_argument("--smart-scope", metavar="SCOPES", help="scopes to request (default: what the poller uses)")


class Progress:
    """One self-rewriting status line on a terminal; silent elsewhere."""

    def __init__(self, stream: TextIO, enabled: bool, min_interval_s: float = 0.1):
        self.stream = stream
        self.enabled = enabled
        self.min_interval_s = min_interval_s
        self._last = 0.0
        self._shown = False

    def __call__(self, stats: CycleStats) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        done = stats.evaluated + stats.failed + stats.skipped
        if now - self._last < self.min_interval_s and done < stats.patients:
            return
        self._last = now
        self.stream.write(f"\rpoll: patients {done}/{stats.patients}  findings {stats.findings}  "
                          f"written {stats.written}  failed {stats.failed + stats.skipped}\x1b[K")
        self.stream.flush()
        self._shown = True

    def finish(self) -> None:
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False


def _parse_since(value: str | None) -> datetime | None:
    if not value:
        return None
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _auth(args: argparse.Namespace):
    if args.smart_client_id or args.smart_key:
        if not (args.smart_client_id and args.smart_key):
            raise ValueError("SMART Backend Services needs both --smart-client-id and --smart-key")
        from fhir_pain.poller.smart_auth import DEFAULT_SCOPE, SmartBackendAuth
        return SmartBackendAuth.from_key_file(
            args.smart_key, client_id=args.smart_client_id, fhir_base=args.fhir_server,
            token_url=args.smart_token_url, alg=args.smart_alg, kid=args.smart_kid, jku=args.smart_jku,
            scope=args.smart_scope or DEFAULT_SCOPE, timeout=(3.05, args.timeout))
    token = os.environ.get(args.token_env)
    return token or None


def _database_url(args: argparse.Namespace) -> str:
    """--database-url, else the service's own store (FHIR_PAIN_DATABASE_URL or its instance-folder SQLite):
    the cursor lives beside the feedback, as the service keeps it."""
    if args.database_url:
        return args.database_url
    from fhir_pain import config as config_mod

    url = config_mod.load()["DATABASE_URL"]
    if url:
        return url
    from flask import Flask

    instance = Flask("fhir_pain").instance_path  # the folder create_app() uses
    os.makedirs(instance, exist_ok=True)
    return config_mod.default_database_url(instance)


def build_poller(args: argparse.Namespace, progress=None):
    """The Poller the arguments describe (raises ValueError on a configuration error)."""
    from cds_hooks.fhir_client import FHIRClient, URLNotAllowed, normalize_base
    from fhir_pain.poller.cycle import Poller
    from fhir_pain.store import Store

    if min(args.page_size, args.workers, args.max_changes) < 1 or min(args.timeout, args.interval) <= 0:
        raise ValueError("--page-size, --workers, --max-changes, --timeout and --interval must be positive")
    if not 0 <= args.overlap < float("inf"):
        raise ValueError("--overlap must be a number of seconds, 0 or more")
    try:
        base = normalize_base(args.fhir_server)
    except URLNotAllowed as exc:
        raise ValueError(str(exc)) from None
    db_url = _database_url(args)
    from functools import partial

    from fhir_pain import config as config_mod
    from fhir_pain.evaluate import evaluate
    # the site's guideline source (FHIR_PAIN_GUIDELINES), as the services follow it
    guidelines = config_mod.load()["GUIDELINES"]
    auth = _auth(args)
    client = FHIRClient(base, auth=auth, timeout=(3.05, args.timeout), retries=max(0, args.retries),
                        backoff_s=0.5, max_pages=50)
    return Poller(client, Store(db_url), cursor_name=f"poller:{base}", page_size=args.page_size,
                  max_changes=args.max_changes, workers=args.workers, since=_parse_since(args.since),
                  progress=progress, reauthenticate=getattr(auth, "invalidate", None), overlap=args.overlap,
                  evaluate=partial(evaluate, guidelines=guidelines))


def run(args: argparse.Namespace) -> int:
    if args.bulk or args.group or args.reevaluate or args.full or args.workers_queue:
        if not args.bulk:
            print("fhir-pain poll: --group, --full and --reevaluate need --bulk" if not args.workers_queue
                  else "fhir-pain poll: --workers-queue needs --bulk", file=sys.stderr)
            return 2
        from fhir_pain.population.cli import run_bulk
        return run_bulk(args)
    progress = Progress(sys.stderr, args.progress == "always" or (args.progress == "auto" and sys.stderr.isatty()))
    try:
        poller = build_poller(args, progress)
    except ModuleNotFoundError as exc:
        print(f"fhir-pain poll: not available in this build ({exc.name})", file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:  # bad option, unreadable key file
        print(f"fhir-pain poll: {exc}", file=sys.stderr)
        return 2

    stop = threading.Event()
    if not args.once:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    status = 0
    while True:
        try:
            stats = poller.run_cycle()
        except Exception as exc:  # noqa: BLE001 - the feed could not be read: nothing written, cursor unchanged
            progress.finish()
            print(f"poll: cycle failed before evaluating anyone ({type(exc).__name__}"
                  f"{' HTTP ' + str(exc.status) if getattr(exc, 'status', None) else ''}); cursor unchanged",
                  file=sys.stderr)
            status = 1
        else:
            progress.finish()
            print(stats.summary(), flush=True)
            status = 1 if stats.failed or stats.skipped else 0
        if args.once or stop.wait(args.interval):
            return status if args.once else 0
