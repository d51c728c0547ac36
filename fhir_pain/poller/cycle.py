"""One poll cycle: what changed on the FHIR server -> which patients -> their data -> findings -> DetectedIssues.

    feed     MedicationRequest / Observation / Condition / Procedure / Patient with _lastUpdated >= cursor - overlap,
             keyset-paged (a Procedure feeds the FDA limits, a Patient's birth date the age limits)
    group    changed resources -> patient ids (each patient read once, oldest change first)
    gather   Patient, Observations, Conditions, active and earlier MedicationRequests (+ Medications), our
             DetectedIssues: one batch round trip per patient
    evaluate fhir_pain.evaluate.evaluate(data, "patient-view"): the services' rules, proactively
    write    actionable findings -> DetectedIssue: create, update when the finding changed, close when it is gone
    cursor   advanced once the cycle's writes are done, and never past a patient whose writes failed

Failures: a transient one for a patient (server down, 5xx, timeout, 401/429 after the client's own retries)
holds the cursor just before that patient's oldest change, so the next cycle sees it again; the writes are
idempotent, so re-doing the patients after it writes nothing twice. A permanent one (the rules raise on a
patient's data, the server refuses our resource with a 4xx) is logged and skipped: retrying cannot help.

The overlap window: a server stamps ``meta.lastUpdated`` when a transaction starts but shows the resource only
when it commits (HAPI does), so a change can appear with an instant older than a cursor already past it. Each
feed therefore starts ``overlap`` (default 120 s) before the cursor, and the cursor keeps the keys (id/versionId)
it took inside that window, so a late change is picked up and nothing already taken is evaluated twice. Only
keys newer than ``cursor - overlap`` are kept. Limit: a change that becomes visible with an instant older than
``cursor - overlap`` is never seen; make the window longer than the server's longest write transaction.
A first run's ``--since`` is a floor the window never reaches behind.
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

import orjson

from cds_hooks.fhir_client import FHIRError, FHIRServerError, FHIRTimeout, FHIRUnauthorized, next_link
from fhir_pain.facts import Finding, PatientData
from fhir_pain.gather import HISTORY_STATUSES, ref_of
from fhir_pain.poller import detected_issue as di
from fhir_pain.poller.smart_auth import SmartAuthError

log = logging.getLogger(__name__)

FEED_TYPES = ("MedicationRequest", "Observation", "Condition", "Procedure", "Patient")
# Feeds that joined after cursors were first stored: a stored cursor without them predates them (other types
# missing from a stored cursor had simply taken nothing yet, and start at the beginning).
ADDED_FEEDS = ("Procedure", "Patient")
DEFAULT_OVERLAP_S = 120.0  # how far each feed reaches back behind the cursor for late-committed changes
HOOK = "patient-view"   # proactive evaluation: the chart view's semantics (active medications, no drafts)

Evaluate = Callable[[PatientData, str], list[Finding]]


# ---- cursor ---------------------------------------------------------------------------------------------------

@dataclass
class TypeCursor:
    """Where one resource type's feed stands.

    ``ts``: the newest ``meta.lastUpdated`` taken. ``taken``: key -> lastUpdated of the changes taken at or after
    ``ts - overlap``, oldest first (the next feed starts at ``ts - overlap`` and skips them). ``floor``: an instant
    the feed never reaches behind (a first run's ``--since``), kept only while the window would cross it.
    """
    ts: str | None = None
    taken: dict[str, str] = field(default_factory=dict)
    floor: str | None = None


def load_cursor(raw: str | None) -> dict[str, TypeCursor]:
    """The stored cursor; one written before the overlap window (``{"ts", "seen"}``) loads with ``seen`` as the
    keys taken at ``ts``: its first feed then re-reads the window once, which re-evaluates (idempotently) and
    catches what the feed without a window may have missed."""
    cursor = {t: TypeCursor() for t in FEED_TYPES}
    if not raw:
        return cursor
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        log.warning("poller cursor is unreadable; starting from the beginning")
        return cursor
    for rtype in FEED_TYPES:
        entry = data.get(rtype) if isinstance(data, dict) else None
        if not (isinstance(entry, dict) and _parse_instant(entry.get("ts"))):
            continue
        ts = entry["ts"]
        taken = entry.get("taken")
        if isinstance(taken, dict):
            taken = {k: v for k, v in taken.items() if isinstance(k, str) and _parse_instant(v)}
        else:
            taken = {k: ts for k in entry.get("seen") or () if isinstance(k, str)}
        floor = entry.get("floor") if _parse_instant(entry.get("floor")) else None
        cursor[rtype] = TypeCursor(ts, taken, floor)
    # A feed added by an upgrade starts where the oldest known one stands,
    # not at the beginning of time: the upgrade must not re-read the whole server.
    known = [c.ts for c in cursor.values() if c.ts]
    if known and isinstance(data, dict):
        start = min(known, key=_parse_instant)
        for rtype in ADDED_FEEDS:
            if rtype not in data:
                cursor[rtype] = TypeCursor(start, floor=start)
    return cursor


def dump_cursor(cursor: dict[str, TypeCursor]) -> str:
    out = {}
    for rtype, c in cursor.items():
        # {} for a feed that has taken nothing yet: it is known, so a load does not treat it as newly added
        out[rtype] = {"ts": c.ts, "taken": c.taken, **({"floor": c.floor} if c.floor else {})} if c.ts else {}
    return orjson.dumps(out).decode()


def initial_cursor(since: datetime) -> dict[str, TypeCursor]:
    """A cursor that takes everything updated at or after ``since``, and nothing before it."""
    ts = _format_instant(since)
    return {t: TypeCursor(ts, floor=ts) for t in FEED_TYPES}


def _format_instant(dt: datetime, timespec: str = "auto") -> str:
    return dt.astimezone(timezone.utc).isoformat(timespec=timespec).replace("+00:00", "Z")


def _parse_instant(value) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


# ---- the change feed ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Change:
    rtype: str
    key: str                  # "id/versionId" ("id@lastUpdated" without one): this version of the resource
    ts: str                   # meta.lastUpdated as the server wrote it
    at: datetime
    patient_id: str | None    # None: the resource is not about a patient we can name


def patient_of(resource: dict) -> str | None:
    """The patient id a MedicationRequest/Observation/Condition/Procedure is about (relative or absolute
    reference); a Patient is about itself."""
    if resource.get("resourceType") == "Patient":
        rid = resource.get("id")
        return rid if isinstance(rid, str) and rid else None
    for element in ("subject", "patient"):
        ref = resource.get(element)
        ref = ref.get("reference") if isinstance(ref, dict) else None
        if not isinstance(ref, str):
            continue
        parts = ref.split("/_history/")[0].rstrip("/").split("/")
        if len(parts) >= 2 and parts[-2] == "Patient" and parts[-1]:
            return parts[-1]
    return None


def _change(rtype: str, resource: dict) -> Change | None:
    meta = resource.get("meta") if isinstance(resource.get("meta"), dict) else {}
    at = _parse_instant(meta.get("lastUpdated"))
    rid = resource.get("id")
    if at is None or not isinstance(rid, str):
        return None
    version = meta.get("versionId")
    # Without a versionId the instant tells the versions apart: two updates in one window must both be taken.
    key = f"{rid}/{version}" if isinstance(version, str) and version else f"{rid}@{meta['lastUpdated']}"
    return Change(rtype, key, meta["lastUpdated"], at, patient_of(resource))


def _entries(bundle: dict, rtype: str) -> list[dict]:
    out = []
    for entry in bundle.get("entry") or ():
        res = entry.get("resource") if isinstance(entry, dict) else None
        mode = (entry.get("search") or {}).get("mode", "match") if isinstance(entry, dict) else "match"
        if isinstance(res, dict) and res.get("resourceType") == rtype and mode == "match":
            out.append(res)
    return out


def _page(client, path_or_url: str) -> dict:
    """One search page, exactly as the server sent it (``read`` is a single GET; ``get_bundle`` would follow
    the offset links this feed avoids)."""
    bundle = client.read(path_or_url)
    if bundle.get("resourceType") != "Bundle":
        raise FHIRServerError("a search did not return a Bundle")
    return bundle


def feed_start(cursor: TypeCursor, overlap: timedelta) -> str | None:
    """The instant a feed searches from: ``overlap`` before the cursor, never behind its floor."""
    at = _parse_instant(cursor.ts)
    if at is None:
        return cursor.floor
    if not overlap:
        return cursor.ts
    floor = _parse_instant(cursor.floor)
    if floor is not None and floor >= at - overlap:
        return cursor.floor
    # milliseconds, as servers keep lastUpdated; truncating only moves the start earlier
    return _format_instant(at - overlap, timespec="milliseconds")


def read_feed(client, rtype: str, cursor: TypeCursor, *, page_size: int, limit: int,
              overlap: timedelta = timedelta(0)) -> list[Change]:
    """The changes of one type not yet taken, from ``overlap`` before ``cursor``, oldest first, at most about
    ``limit``.

    Keyset paging (``_lastUpdated=ge<newest on the page>``) rather than the server's offset links: an update made
    while we page moves a resource to the end instead of shifting an unseen one onto a page already read. When a
    whole page shares one instant, or the server ignores ``_sort``, the bundle's own next links are followed.
    """
    taken: dict[str, Change] = {}
    skip = cursor.taken
    since = feed_start(cursor, overlap)
    follow: str | None = None
    while len(taken) < limit:
        if follow:
            bundle = _page(client, follow)
        else:
            params = {"_sort": "_lastUpdated", "_count": str(page_size), "_elements": "subject"}
            if since:
                params["_lastUpdated"] = f"ge{since}"
            bundle = _page(client, f"{rtype}?{urlencode(params)}")
        page = [c for c in (_change(rtype, r) for r in _entries(bundle, rtype)) if c is not None]
        for c in page:
            if c.key not in skip and c.key not in taken:
                taken[c.key] = c
        nxt = next_link(bundle)
        if not page or (nxt is None and len(page) < page_size):
            break
        newest = max(page, key=lambda c: c.at)
        ordered = all(a.at <= b.at for a, b in zip(page, page[1:]))
        since_at = _parse_instant(since)
        if ordered and not follow and (since_at is None or newest.at > since_at):
            since = newest.ts     # what this page took at that instant is skipped when the next one repeats it
            continue
        follow = nxt              # stuck on one instant, or unsorted: walk the server's own paging
        if follow is None:
            break
    return sorted(taken.values(), key=lambda c: c.at)


def advance(cursor: TypeCursor, changes: list[Change], hold_from: datetime | None,
            overlap: timedelta = timedelta(0)) -> TypeCursor:
    """The cursor after this cycle: past every change older than ``hold_from`` (the oldest change of a patient
    that must be retried), and no further; remembering what it took within ``overlap`` of its new position."""
    done = [c for c in changes if hold_from is None or c.at < hold_from]
    if not done:
        return cursor
    last = max(done, key=lambda c: c.at)
    previous = _parse_instant(cursor.ts)
    ts, at = (cursor.ts, previous) if previous is not None and previous >= last.at else (last.ts, last.at)
    horizon = at - overlap
    # a late change older than the window's start was read anyway (a server's filter is its own): not kept
    taken = {k: v for k, v in cursor.taken.items() if _parse_instant(v) >= horizon}
    taken.update((c.key, c.ts) for c in done if c.at >= horizon)
    taken = dict(sorted(taken.items(), key=lambda kv: _parse_instant(kv[1])))
    floor_at = _parse_instant(cursor.floor)
    return TypeCursor(ts, taken, cursor.floor if floor_at is not None and floor_at > horizon else None)


# ---- one patient ----------------------------------------------------------------------------------------------

def _is_transient(exc: BaseException) -> bool:
    """Worth retrying next cycle: the server, the network or the credentials, not our data."""
    if isinstance(exc, (FHIRServerError, FHIRTimeout, FHIRUnauthorized, SmartAuthError)):
        return True
    return isinstance(exc, FHIRError) and exc.status in (408, 429)


def _q(rtype: str, **params: str) -> str:
    return f"{rtype}?{urlencode(params)}"


# A server that does not take batch Bundles at its base answers one of these: read one request at a time then.
# 403 too: some check a batch's scopes as a write to the whole server (sekmet-fhir wants system/*.c) although
# every entry is a read the token is allowed.
BATCH_UNSUPPORTED = frozenset({400, 403, 404, 405, 415, 422, 501})


def patient_queries(patient_id: str, page_size: int) -> list[str]:
    """The reads for one patient: Patient, Observations, Conditions, Procedures (the FDA tonsillectomy limit),
    active MedicationRequests (+ Medications),
    the earlier ones the services' ``medicationHistory`` prefetch asks for (completed, stopped, on-hold: the pain
    engine links a renewal to the trial it continues), and the DetectedIssues the poller wrote for them (found
    by tag: see detected_issue)."""
    count = str(page_size)
    return [
        f"Patient/{patient_id}",
        _q("Observation", patient=patient_id, _count=count),
        _q("Condition", patient=patient_id, _count=count),
        _q("Procedure", patient=patient_id, _count=count),
        _q("MedicationRequest", patient=patient_id, status="active", _include="MedicationRequest:medication",
           _count=count),
        _q("MedicationRequest", patient=patient_id, status=",".join(HISTORY_STATUSES),
           _include="MedicationRequest:medication", _count=count),
        _q("DetectedIssue", _tag=f"{di.PATIENT_TAG_SYSTEM}|{patient_id}", _count=count),
    ]


def _all_pages(client, bundle: dict) -> list[dict]:
    resources = [e["resource"] for e in bundle.get("entry") or () if isinstance(e, dict)
                 and isinstance(e.get("resource"), dict)]
    nxt = next_link(bundle)
    return resources + client.search_url(nxt) if nxt else resources


def read_patient(client, patient_id: str, page_size: int, *, batch: bool) -> tuple[dict, list[list[dict]]]:
    """The patient and the searches' resources: one batch round trip, or one request each."""
    paths = patient_queries(patient_id, page_size)
    if not batch:
        return client.read(paths[0]), [client.search(p) for p in paths[1:]]
    answers = client.batch_get(paths)
    for answer in answers:
        if isinstance(answer, FHIRError):
            raise answer
    return answers[0], [_all_pages(client, b) for b in answers[1:]]


def by_id(resources: Iterable[dict]) -> list[dict]:
    """Resources in the order of their ids. A server's search order is its own (and a bulk export's another),
    while the rules can depend on it where two resources say the same (of two paroxetine orders, the first is
    named as the CYP2D6 inhibitor): one order makes the DetectedIssues the same however the data was read."""
    return sorted(resources, key=lambda r: str(r.get("id") or ""))


def gather(client, patient_id: str, now: datetime, page_size: int, *,
           batch: bool = False) -> tuple[PatientData, list[dict]]:
    """The patient's data as the rules read it, plus the DetectedIssues the poller wrote for them before.

    Active and earlier MedicationRequests go into one list, as the services' prefetch does:
    fhir_pain.evaluate tells them apart by status (only the pain engine sees the earlier ones)."""
    patient, (observations, conditions, procedures, active, history, issues) = read_patient(
        client, patient_id, page_size, batch=batch)
    requests: dict[str, dict] = {}
    unnamed: list[dict] = []
    for r in (*active, *history):
        if r.get("resourceType") == "MedicationRequest":
            ref = ref_of(r)
            # a server that ignores the status filter returns a request in both searches: it counts once
            if ref is None:
                unnamed.append(r)
            else:
                requests.setdefault(ref, r)
    data = PatientData(
        patient_id=patient_id,
        now=now,
        patient=patient,
        observations=by_id(r for r in observations if r.get("resourceType") == "Observation"),
        conditions=by_id(r for r in conditions if r.get("resourceType") == "Condition"),
        procedures=by_id(r for r in procedures if r.get("resourceType") == "Procedure"),
        medication_requests=[*by_id(requests.values()), *unnamed],
        medications={f"Medication/{r['id']}": r for r in (*active, *history)
                     if r.get("resourceType") == "Medication" and isinstance(r.get("id"), str)},
    )
    # A server that ignores _tag would hand back every patient's issues: only this patient's are ours to touch.
    mine = [r for r in issues if r.get("resourceType") == "DetectedIssue" and di.issue_key(r)
            and (r.get("patient") or {}).get("reference") == f"Patient/{patient_id}"]
    return data, mine


@dataclass
class PatientOutcome:
    findings: int = 0
    created: int = 0
    updated: int = 0
    closed: int = 0
    unchanged: int = 0


def reconcile(client, patient_id: str, findings: Iterable[Finding], existing: list[dict],
              now: datetime) -> PatientOutcome:
    """Make the server's DetectedIssues for this patient say what the findings say, writing only differences."""
    out = PatientOutcome()
    wanted: dict[str, dict] = {}
    for finding in findings:
        if di.is_actionable(finding):
            out.findings += 1
            wanted.setdefault(di.finding_key(patient_id, finding), di.render(finding, patient_id, now))
    have = {di.issue_key(r): r for r in existing}
    for key, resource in wanted.items():
        current = have.get(key)
        if current is None:
            client.update(resource)          # PUT to the deterministic id: a retry cannot duplicate it
            out.created += 1
        elif current.get("status") in di.HANDS_OFF:
            out.unchanged += 1
        elif di.needs_write(current, resource):
            client.update(di.updated(current, resource))
            out.updated += 1
        else:
            out.unchanged += 1
    for key, current in have.items():
        if key not in wanted and di.is_open(current):
            client.update(di.closed(current, now))
            out.closed += 1
    return out


# ---- the cycle ------------------------------------------------------------------------------------------------

@dataclass
class CycleStats(PatientOutcome):
    """The patients' outcomes summed, and what happened to the cycle as a whole."""
    changes: int = 0
    patients: int = 0
    evaluated: int = 0
    failed: int = 0       # transient: retried next cycle (the cursor waits for them)
    skipped: int = 0      # permanent: logged, not retried
    cursor_advanced: bool = False
    seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def written(self) -> int:
        return self.created + self.updated + self.closed

    @property
    def patients_per_second(self) -> float:
        return self.evaluated / self.seconds if self.seconds > 0 else 0.0

    def add(self, outcome: PatientOutcome) -> None:
        with self._lock:
            self.evaluated += 1
            for counter in fields(PatientOutcome):
                setattr(self, counter.name, getattr(self, counter.name) + getattr(outcome, counter.name))

    def summary(self) -> str:
        return (f"poll: {self.changes} changes, {self.patients} patients, {self.evaluated} evaluated, "
                f"{self.findings} findings, {self.written} written ({self.created} created, {self.updated} "
                f"updated, {self.closed} closed, {self.unchanged} unchanged), {self.failed} failed, "
                f"{self.skipped} skipped, cursor {'advanced' if self.cursor_advanced else 'held'}, "
                f"{self.seconds:.1f}s ({self.patients_per_second:.1f} patients/s)")


def _opaque(patient_id: str) -> str:
    """A patient handle for logs: correlatable, not the identifier itself."""
    return hashlib.sha256(patient_id.encode()).hexdigest()[:12]


def default_evaluate() -> Evaluate:
    from fhir_pain.evaluate import evaluate  # the services' single entry point (rules live there, not here)
    return evaluate


class Poller:
    """Runs cycles against one FHIR server, keeping its cursor in the Store (``get_cursor``/``set_cursor``)."""

    def __init__(self, client, store, *, cursor_name: str, evaluate: Evaluate | None = None,
                 page_size: int = 100, max_changes: int = 50_000, workers: int = 4,
                 since: datetime | None = None, clock: Callable[[], datetime] | None = None,
                 progress: Callable[[CycleStats], None] | None = None, batch: bool = True,
                 reauthenticate: Callable[[], None] | None = None, overlap: float = DEFAULT_OVERLAP_S):
        self.client = client
        self.store = store
        self.cursor_name = cursor_name
        self.evaluate = evaluate or default_evaluate()
        self.page_size = page_size
        self.max_changes = max_changes
        self.workers = max(1, workers)
        self.since = since
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.progress = progress
        self.batch = batch and hasattr(client, "batch_get")
        self.reauthenticate = reauthenticate  # e.g. SmartBackendAuth.invalidate: a refused token is not reused
        self.overlap = timedelta(seconds=max(0.0, overlap))

    def _cursor(self) -> dict[str, TypeCursor]:
        raw = self.store.get_cursor(self.cursor_name)
        if raw is None and self.since is not None:
            return initial_cursor(self.since)
        return load_cursor(raw)

    def run_cycle(self) -> CycleStats:
        started = time.perf_counter()
        stats = CycleStats()
        now = self.clock()
        cursor = self._cursor()
        # The feed first, whole: if the server fails here the cycle ends with the cursor where it was.
        feed = {t: read_feed(self.client, t, cursor[t], page_size=self.page_size, limit=self.max_changes,
                             overlap=self.overlap) for t in FEED_TYPES}
        oldest: dict[str, datetime] = {}
        for changes in feed.values():
            stats.changes += len(changes)
            for c in changes:
                if c.patient_id and (c.patient_id not in oldest or c.at < oldest[c.patient_id]):
                    oldest[c.patient_id] = c.at
        patients = sorted(oldest, key=oldest.__getitem__)
        stats.patients = len(patients)
        self._report(stats)

        hold_from: datetime | None = None
        refused = False
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="poll") as pool:
            futures = {pool.submit(self._one, pid, now): pid for pid in patients}
            for future in as_completed(futures):
                pid = futures[future]
                try:
                    stats.add(future.result())
                except Exception as exc:  # noqa: BLE001 - one patient never stops the cycle
                    if _is_transient(exc):
                        stats.failed += 1
                        refused = refused or isinstance(exc, FHIRUnauthorized)
                        hold_from = oldest[pid] if hold_from is None else min(hold_from, oldest[pid])
                        log.warning("patient %s: FHIR server failure (%s), retried next cycle",
                                    _opaque(pid), _describe(exc))
                    else:
                        stats.skipped += 1
                        log.error("patient %s: skipped (%s)", _opaque(pid), _describe(exc),
                                  exc_info=log.isEnabledFor(logging.DEBUG))
                self._report(stats)

        if refused and self.reauthenticate is not None:
            self.reauthenticate()
        new = {t: advance(cursor[t], feed[t], hold_from, self.overlap) for t in FEED_TYPES}
        if new != cursor:
            self.store.set_cursor(self.cursor_name, dump_cursor(new))
            stats.cursor_advanced = True
        stats.seconds = time.perf_counter() - started
        return stats

    def _one(self, patient_id: str, now: datetime) -> PatientOutcome:
        try:
            data, existing = gather(self.client, patient_id, now, self.page_size, batch=self.batch)
        except FHIRError as exc:
            if not (self.batch and exc.status in BATCH_UNSUPPORTED and exc.url == _base_of(self.client)):
                raise
            log.info("the FHIR server does not take batch Bundles (HTTP %s): one request per read", exc.status)
            self.batch = False
            data, existing = gather(self.client, patient_id, now, self.page_size, batch=False)
        findings = self.evaluate(data, HOOK)
        return reconcile(self.client, patient_id, findings, existing, now)

    def _report(self, stats: CycleStats) -> None:
        if self.progress is not None:
            self.progress(stats)


def _base_of(client) -> str | None:
    """The URL a batch is posted to, as a FHIRError names it (errors of its entries name their own paths)."""
    return getattr(client, "base_url", None)


def _describe(exc: BaseException) -> str:
    """Exception class and HTTP status only: messages can carry patient data."""
    status = getattr(exc, "status", None)
    return type(exc).__name__ + (f" HTTP {status}" if status else "")
