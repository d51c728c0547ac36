"""A bulk sweep: export -> spool -> evaluate patient by patient -> DetectedIssues in transaction Bundles.

    full         no cursor yet (or --reevaluate): Patient/Group $export of every type the rules read plus our
                 DetectedIssues; each patient evaluated from the spool (patient_job, resources given)
    incremental  a cursor (the last sweep's transactionTime): $export with ``_since`` of the types that change
                 a finding; it tells who changed, and those patients are read whole, as the poller reads them
                 (a ``_since`` export holds only the changed resources, not a patient's whole record)
    reevaluate   a full export; a patient is re-checked unless they were evaluated under the current knowledge
                 already (an issue carries the current knowledge version and no open one an older version).
                 A patient without any issue is re-checked: nothing records the knowledge they were judged by

A deletion is not in an export (nor in the poller's searches): ``full`` (``--full``) ignores the cursor and
re-checks everyone, which closes the issues whose evidence was deleted.

Durability: the sweep's state, spool and done patients are in the Store. A crash while exporting drops that
spool (the next run exports again); a crash while evaluating is resumed by the next run, which evaluates only
the patients not yet done. The cursor advances when every patient of the sweep is done without a transient
failure; a patient whose reads or writes failed transiently stays pending for the next run. Writes are PUTs to
deterministic ids (the poller's), so two sweeps at once, or a patient written twice after a crash between the
write and its done mark, never duplicate a DetectedIssue.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone

from cds_hooks.fhir_client import FHIRError
from fhir_pain.knowledge_version import knowledge_version
from fhir_pain.poller import detected_issue as di
from fhir_pain.poller.cycle import BATCH_UNSUPPORTED, PatientOutcome, _describe, _is_transient, _opaque, patient_of
from fhir_pain.population import dispatch, ndjson, spool
from fhir_pain.population.bulk import ISSUE_TYPES, RULE_TYPES, BulkClient, ExportError, ExportInterrupted
from fhir_pain.population.patient_job import PatientMissing, evaluate_patient
from fhir_pain.population.progress import SweepStats

log = logging.getLogger(__name__)

WRITE_BATCH = 100          # DetectedIssues per transaction Bundle
QUEUE_BATCH = 100          # patients per job of a sweep in queue mode
MEDICATION_IDS_PER_SEARCH = 50


def cursor_name(server: str) -> str:
    return f"bulk:{server}"


class Sweep:
    def __init__(self, client, bulk: BulkClient, store, *, group: str | None = None, reevaluate: bool = False,
                 full: bool = False,
                 evaluate=None, clock: Callable[[], datetime] | None = None,
                 progress: Callable[..., None] | None = None, stop: threading.Event | None = None,
                 max_file_bytes: int = ndjson.DEFAULT_MAX_FILE_BYTES,
                 max_file_seconds: float = ndjson.DEFAULT_MAX_FILE_SECONDS, chunk: int = 500,
                 write_batch: int = WRITE_BATCH, queue=None, queue_wait_s: float = 24 * 3600.0,
                 queue_batch: int = QUEUE_BATCH):
        """``queue``: a WorkQueue (population/queue.py) to hand the patients to ``fhir-pain worker``s instead of
        evaluating them here, waiting at most ``queue_wait_s`` seconds for them (population/dispatch.py), in jobs of at
        most ``queue_batch`` patients."""
        self.client = client
        self.bulk = bulk
        self.store = store
        self.server = client.base_url
        self.group = group
        self.reevaluate = reevaluate
        self.full = full
        self.evaluate = evaluate
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.progress = progress or (lambda *_a, **_k: None)
        self.stop = stop or bulk.stop
        self.max_file_bytes = max_file_bytes
        self.max_file_seconds = max_file_seconds
        self.chunk = chunk
        self.write_batch = write_batch
        self.writer = IssueWriter(client)
        self.queue = queue
        self.queue_batch = queue_batch
        self.queue_wait_s = queue_wait_s
        spool.tables(store)

    # -- the run ------------------------------------------------------------------------------------------------
    def run(self) -> SweepStats:
        started = time.perf_counter()
        stats = SweepStats()
        try:
            resume = None if self.reevaluate or self.full else spool.unfinished(self.store, self.server)
            for crashed in spool.abandoned(self.store, self.server):
                spool.drop(self.store, crashed)
                spool.set_state(self.store, crashed, "abandoned")
            if resume is not None:
                sweep, stats.mode, stats.transaction_time = resume["sweep"], resume["mode"], \
                    resume["transaction_time"]
                stats.resumed = True
            else:
                sweep = self._export(stats)
                if sweep is None:
                    return stats
            if self.queue is not None:
                dispatch.run(self, sweep, stats)
            else:
                self._evaluate(sweep, stats)
            if not stats.interrupted and not any(k.startswith(("patient-transient", "write-")) for k in stats.errors):
                self.store.set_cursor(cursor_name(self.server), stats.transaction_time)
                stats.cursor_advanced = True
                spool.set_state(self.store, sweep, "complete", summary=stats.summary())
                spool.drop(self.store, sweep)
            return stats
        finally:
            stats.seconds = time.perf_counter() - started
            self.progress(stats, force=True)

    # -- export and spool ---------------------------------------------------------------------------------------
    def _export(self, stats: SweepStats) -> str | None:
        """Kick off, wait, stream every file into the spool; the sweep id, or None when the export failed
        (the cause is in ``stats.errors``; nothing is evaluated and the cursor stays)."""
        t0 = time.perf_counter()
        since = None if self.reevaluate or self.full else self.store.get_cursor(cursor_name(self.server))
        stats.mode = "reevaluate" if self.reevaluate else ("incremental" if since else "full")
        sweep = spool.new_sweep(self.store, self.server, stats.mode, knowledge_version())
        jobs: list[str] = []
        try:
            # the patients' data; on a full run also our DetectedIssues to reconcile against (system level)
            jobs.append(self.bulk.kickoff(types=RULE_TYPES, since=since, group=self.group))
            if not since:
                jobs.append(self.bulk.kickoff(types=ISSUE_TYPES, system=True))
            manifests = [self.bulk.wait(url) for url in jobs]
            stats.transaction_time = manifests[0].transaction_time
            writer = spool.Writer(self.store, sweep)
            for manifest in manifests:
                headers = self.bulk.headers() if manifest.requires_token else {}
                for item in manifest.output:
                    self._download(item, headers, writer, incremental=bool(since), stats=stats)
                for _item in manifest.error:
                    stats.error("export-reported-errors")   # the server's OperationOutcome files: counted
            writer.close()
            stats.orphans = writer.orphans + spool.unrooted(self.store, sweep)
            self._fetch_medications(sweep, stats)
        except (ExportError, ndjson.NDJSONError, FHIRError) as exc:
            cause = getattr(exc, "cause", None) or {
                ndjson.OffOrigin: "file-off-origin", ndjson.FileTooLarge: "file-too-large",
                ndjson.DownloadFailed: "file-download-failed"}.get(type(exc), "medication-read-failed")
            stats.error(cause)
            stats.interrupted = isinstance(exc, ExportInterrupted)
            log.error("bulk export: %s", exc if not isinstance(exc, FHIRError) else _describe(exc))
            for url in jobs:      # a job wait() gave up on is deleted already; a second DELETE is harmless
                self.bulk.cancel(url)
            spool.drop(self.store, sweep)
            spool.set_state(self.store, sweep, "failed", summary=str(exc)[:500])
            stats.export_seconds = time.perf_counter() - t0
            return None
        for url in jobs:        # files are read: the server may drop them
            self.bulk.cancel(url)
        spool.set_state(self.store, sweep, "evaluating", transaction_time=stats.transaction_time)
        stats.export_seconds = time.perf_counter() - t0
        return sweep

    def _download(self, item: dict, headers: dict, writer: spool.Writer, *, incremental: bool,
                  stats: SweepStats) -> None:
        stats.files += 1
        tally = ndjson.Tally()
        try:
            for n, resource in enumerate(ndjson.download(
                    self.bulk.session, item["url"], tally, allowed=self.bulk.allowed, headers=headers,
                    timeout=self.bulk.timeout, max_bytes=self.max_file_bytes,
                    max_seconds=self.max_file_seconds)):
                if n % 1000 == 0 and self.stop.is_set():
                    raise ExportInterrupted("interrupted while downloading")
                if not incremental:
                    writer.add(resource)
                    continue
                pid = resource.get("id") if resource.get("resourceType") == "Patient" else patient_of(resource)
                if isinstance(pid, str) and pid:
                    writer.add_patient(pid)
                else:
                    writer.orphans += 1
        finally:
            stats.resources += tally.resources
            stats.bytes += tally.bytes
            stats.malformed_lines += tally.malformed
            if tally.malformed:
                log.warning("%s: %d malformed NDJSON lines skipped (lines %s)", item.get("type"),
                            tally.malformed, tally.malformed_lines)

    def _fetch_medications(self, sweep: str, stats: SweepStats) -> None:
        """Medications are outside the Patient compartment: read the ones the requests reference."""
        missing = spool.missing_medications(self.store, sweep)
        for i in range(0, len(missing), MEDICATION_IDS_PER_SEARCH):
            ids = ",".join(missing[i:i + MEDICATION_IDS_PER_SEARCH])
            spool.put_medications(self.store, sweep, self.client.search(f"Medication?_id={ids}"))

    # -- evaluation ---------------------------------------------------------------------------------------------
    def _evaluate(self, sweep: str, stats: SweepStats) -> None:
        stats.patients = spool.count_patients(self.store, sweep)
        self.progress(stats, force=True)
        now = self.clock()
        current = knowledge_version() if stats.mode == "reevaluate" else None
        for ids in spool.patients(self.store, sweep, chunk=self.chunk):
            batch = spool.load_many(self.store, sweep, ids)
            evaluate_spooled(self.client, self.writer, self.store, sweep, ids, batch, stats, now=now,
                             evaluate=self.evaluate, write_batch=self.write_batch, current=current, stop=self.stop,
                             progress=self.progress)
            if stats.interrupted:
                return


class IssueWriter:
    """Sends DetectedIssue PUTs: one transaction Bundle per call, or one PUT each where the server takes no
    transactions (learnt once, kept). Shared by the inline sweep and the queue's batch jobs (population/queue.py)."""

    def __init__(self, client):
        self.client = client
        self.transactions = True

    def write(self, resources: list[dict]) -> bool:
        """True when the writes failed."""
        if self.transactions:
            bundle = {"resourceType": "Bundle", "type": "transaction",
                      "entry": [{"resource": r, "request": {"method": "PUT", "url": f"DetectedIssue/{r['id']}"}}
                                for r in resources]}
            try:
                self.client.transaction(bundle)
                return False
            except FHIRError as exc:
                if exc.status in BATCH_UNSUPPORTED:
                    log.info("the FHIR server does not take transaction Bundles (HTTP %s): one PUT each",
                             exc.status)
                    self.transactions = False
                else:
                    log.warning("transaction failed (%s): one PUT each", _describe(exc))
        try:
            for r in resources:     # PUT to deterministic ids: sending one again after a failure is harmless
                self.client.update(r)
        except FHIRError as exc:
            log.error("DetectedIssue writes failed (%s); their patients stay pending", _describe(exc))
            return True
        return False


def evaluate_spooled(client, writer: IssueWriter, store, sweep: str, ids: list[str],
                     batch: dict[str, list[dict] | None], stats: SweepStats, *, now: datetime, evaluate=None,
                     write_batch: int = WRITE_BATCH, current: str | None = None,
                     stop: threading.Event | None = None, progress: Callable[..., None] | None = None) -> list[str]:
    """Evaluate spooled patients (``batch``: ``spool.load_many``'s answer for ``ids``), send their DetectedIssues in
    transaction Bundles of ``write_batch``, then mark each patient done in the spool with its outcome and count it in
    ``stats``. The inline sweep runs it per chunk, a queue worker per batch job (population/queue.py).

    A permanent failure of one patient is counted and marked with its cause (``patient-missing``,
    ``patient-rules-error``, ``patient-read-refused``); the others go on. ``current``: the knowledge version of
    a reevaluate sweep, whose current patients are marked ``current`` without evaluation. ``stop`` set: the
    patients evaluated so far are written and marked, ``stats.interrupted`` is set. Returns the patients left
    pending by a transient failure (a read, or the writes: ``patient-transient-read``, ``write-failed``)."""
    pending: list[dict] = []
    waiting: dict[str, str] = {}                  # patient -> done mark, set once its writes are sent
    outcomes: list[PatientOutcome] = []           # counted once their writes are sent
    left: list[str] = []
    for pid in ids:
        if stop is not None and stop.is_set():
            stats.interrupted = True
            break
        resources = batch.get(pid)
        if current is not None and resources is not None and _is_current(pid, resources, current):
            stats.current += 1
            waiting[pid] = "current"
            continue
        mine: list[dict] = []
        try:
            outcome = evaluate_patient(client, store, patient_id=pid, resources=resources, now=now,
                                       evaluate=evaluate, writes=mine)
        except PatientMissing:
            stats.error("patient-missing")
            waiting[pid] = "patient-missing"
        except Exception as exc:  # noqa: BLE001 - one patient never stops the others
            if _is_transient(exc):
                stats.error("patient-transient-read")   # stays pending: retried (the next run, the queue)
                left.append(pid)
                log.warning("patient %s: FHIR server failure (%s), retried later", _opaque(pid), _describe(exc))
            else:
                cause = "patient-read-refused" if isinstance(exc, FHIRError) else "patient-rules-error"
                stats.error(cause)
                waiting[pid] = cause
                log.error("patient %s: skipped (%s)", _opaque(pid), _describe(exc),
                          exc_info=log.isEnabledFor(logging.DEBUG))
        else:
            outcomes.append(outcome)
            pending.extend(mine)
            waiting[pid] = dispatch.mark(outcome)
        if len(pending) >= write_batch:
            left += _flush(writer, store, sweep, pending, waiting, outcomes, stats)
        if progress is not None:
            progress(stats)
    left += _flush(writer, store, sweep, pending, waiting, outcomes, stats)
    return left


def _flush(writer: IssueWriter, store, sweep: str, pending: list[dict], waiting: dict[str, str],
           outcomes: list[PatientOutcome], stats: SweepStats) -> list[str]:
    """Send the writes, then count and mark their patients done. A failed write leaves its patients pending (they
    are returned), counted under ``write-failed``."""
    left: list[str] = []
    if pending and writer.write(pending):
        stats.error("write-failed", len(outcomes))
        left = [pid for pid, value in waiting.items() if value.startswith(dispatch.EVALUATED)]
        spool.mark_done(store, sweep, {pid: value for pid, value in waiting.items() if pid not in left})
    else:
        for outcome in outcomes:
            stats.add(outcome)
        spool.mark_done(store, sweep, waiting)
    pending.clear()
    waiting.clear()
    outcomes.clear()
    return left


def _is_current(patient_id: str, resources: list[dict], current: str) -> bool:
    issues = [r for r in resources if r.get("resourceType") == "DetectedIssue" and di.issue_key(r)
              and (r.get("patient") or {}).get("reference") == f"Patient/{patient_id}"]
    if not any(di.knowledge_of(r) == current for r in issues):
        return False
    return all(di.knowledge_of(r) == current for r in issues if di.is_open(r))
