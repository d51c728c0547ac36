"""The per-patient spool of a bulk sweep, in the local Store (SQLite or PostgreSQL): the population is never
held in memory. Resources from the export's files go in as they stream (batched inserts); the sweep then takes
the patients in keyset chunks and each patient's resources with one indexed query.

Tables (added to ``Store.metadata``):
    bulk_sweeps       one row per sweep: the FHIR server, mode, state, the export's transactionTime, a summary
    bulk_spool        (sweep, patient, type, resource JSON); a NULL resource only names a patient to read
                      whole. A patient is evaluated when its Patient resource (or a NULL row) is there: the
                      DetectedIssues of a system-level export name patients outside a Group too
    bulk_medications  (sweep, id, resource JSON): Medications the spooled requests reference (not in the
                      Patient compartment, so read separately); NULL until fetched
    bulk_done         (sweep, patient, outcome): evaluated and written; a resumed sweep skips them
"""
from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta, timezone

import orjson
import sqlalchemy as sa

from fhir_pain.poller.cycle import patient_of

INSERT_BATCH = 1000
STALE_AFTER = timedelta(hours=6)   # an exporting sweep silent this long has crashed (see ``abandoned``)
_ROOTS = ("Patient", "")     # the rows that make a patient part of the sweep
_TABLES_LOCK = threading.Lock()


def tables(store) -> dict[str, sa.Table]:
    """The spool's tables on ``store`` (created once per Store)."""
    existing = getattr(store, "_bulk_tables", None)
    if existing is not None:
        return existing
    with _TABLES_LOCK:      # a worker's first jobs start together: one thread defines the tables, whole
        return _define(store)


def _define(store) -> dict[str, sa.Table]:
    existing = getattr(store, "_bulk_tables", None)
    if existing is not None:
        return existing
    md = store.metadata
    if "bulk_sweeps" not in md.tables:
        sa.Table("bulk_sweeps", md,
                 sa.Column("sweep", sa.String(64), primary_key=True),
                 sa.Column("server", sa.Text, nullable=False),
                 sa.Column("mode", sa.String(16), nullable=False),        # full | incremental | reevaluate
                 sa.Column("state", sa.String(16), nullable=False),       # exporting | evaluating | complete
                 sa.Column("transaction_time", sa.String(64)),
                 sa.Column("knowledge", sa.String(128)),
                 sa.Column("summary", sa.Text),
                 sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
                 sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
                 sa.Index("ix_bulk_sweeps_server_state", "server", "state"))
        sa.Table("bulk_spool", md,
                 sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
                           autoincrement=True),
                 sa.Column("sweep", sa.String(64), nullable=False),
                 sa.Column("patient", sa.String(128), nullable=False),
                 sa.Column("rtype", sa.String(64), nullable=False),
                 sa.Column("resource", sa.LargeBinary),
                 sa.Index("ix_bulk_spool_sweep_patient", "sweep", "patient"),
                 sa.Index("ix_bulk_spool_sweep_rtype_patient", "sweep", "rtype", "patient"))
        sa.Table("bulk_medications", md,
                 sa.Column("sweep", sa.String(64), primary_key=True),
                 sa.Column("id", sa.String(128), primary_key=True),
                 sa.Column("resource", sa.LargeBinary))
        sa.Table("bulk_done", md,
                 sa.Column("sweep", sa.String(64), primary_key=True),
                 sa.Column("patient", sa.String(128), primary_key=True),
                 sa.Column("outcome", sa.String(32), nullable=False))
        store.create_all()
    found = {name: md.tables[name] for name in ("bulk_sweeps", "bulk_spool", "bulk_medications", "bulk_done")}
    store._bulk_tables = found
    return found


def _now() -> datetime:
    return datetime.now(timezone.utc)


# ---- sweeps ---------------------------------------------------------------------------------------------------

def new_sweep(store, server: str, mode: str, knowledge: str) -> str:
    t = tables(store)["bulk_sweeps"]
    sweep = uuid.uuid4().hex
    with store.engine.begin() as conn:
        conn.execute(t.insert().values(sweep=sweep, server=server, mode=mode, state="exporting",
                                       knowledge=knowledge, started_at=_now(), updated_at=_now()))
    return sweep


def set_state(store, sweep: str, state: str, **values) -> None:
    t = tables(store)["bulk_sweeps"]
    with store.engine.begin() as conn:
        conn.execute(t.update().where(t.c.sweep == sweep).values(state=state, updated_at=_now(), **values))


def unfinished(store, server: str) -> dict | None:
    """The oldest sweep of ``server`` whose spool is complete but not every patient evaluated (a crash)."""
    t = tables(store)["bulk_sweeps"]
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(t).where(t.c.server == server, t.c.state == "evaluating")
                           .order_by(t.c.started_at).limit(1)).first()
    return dict(row._mapping) if row else None


def abandoned(store, server: str, *, quiet_for: timedelta = STALE_AFTER) -> list[str]:
    """Sweeps of ``server`` that crashed while exporting (their spool is incomplete and is dropped): still
    exporting, and not a row spooled for ``quiet_for``. A sweep exporting now in another process touches its
    row with every batch it spools, so it is never taken for one."""
    t = tables(store)["bulk_sweeps"]
    with store.engine.connect() as conn:
        return list(conn.execute(sa.select(t.c.sweep).where(t.c.server == server, t.c.state == "exporting",
                                                            t.c.updated_at < _now() - quiet_for)).scalars())


def drop(store, sweep: str) -> None:
    """Remove a sweep's spooled resources and done marks (its row stays, with its summary)."""
    t = tables(store)
    with store.engine.begin() as conn:
        for name in ("bulk_spool", "bulk_medications", "bulk_done"):
            conn.execute(t[name].delete().where(t[name].c.sweep == sweep))


# ---- writing the spool ----------------------------------------------------------------------------------------

class Writer:
    """Batched inserts of one sweep's resources; ``close()`` flushes. Resources about no patient we can name
    (and not Medications) are counted in ``orphans`` and dropped."""

    def __init__(self, store, sweep: str, batch: int = INSERT_BATCH):
        self.store = store
        self.sweep = sweep
        self.batch = batch
        self.t = tables(store)
        self.rows: list[dict] = []
        self.meds: dict[str, bytes | None] = {}
        self.orphans = 0
        self.spooled = 0

    def add(self, resource: dict) -> None:
        rtype = resource.get("resourceType")
        if rtype == "Medication":
            if isinstance(resource.get("id"), str):
                self.meds[resource["id"]] = orjson.dumps(resource)
        else:
            pid = resource.get("id") if rtype == "Patient" else patient_of(resource)
            if rtype == "DetectedIssue":
                ref = (resource.get("patient") or {}).get("reference")
                pid = ref.split("/")[-1] if isinstance(ref, str) and ref.startswith("Patient/") else None
            if not isinstance(pid, str) or not pid:
                self.orphans += 1
                return
            self.rows.append({"sweep": self.sweep, "patient": pid, "rtype": rtype, "resource": orjson.dumps(resource)})
            self.spooled += 1
            ref = (resource.get("medicationReference") or {}).get("reference") if rtype == "MedicationRequest" \
                else None
            if isinstance(ref, str) and ref.startswith("Medication/"):
                self.meds.setdefault(ref.split("/", 1)[1], None)
        if len(self.rows) >= self.batch or len(self.meds) >= self.batch:
            self.flush()

    def add_patient(self, patient_id: str) -> None:
        """A patient to read whole (incremental sweeps): no resource."""
        self.rows.append({"sweep": self.sweep, "patient": patient_id, "rtype": "", "resource": None})
        if len(self.rows) >= self.batch:
            self.flush()

    def flush(self) -> None:
        if not (self.rows or self.meds):
            return
        meds = self.t["bulk_medications"]
        sweeps = self.t["bulk_sweeps"]
        with self.store.engine.begin() as conn:
            conn.execute(sweeps.update().where(sweeps.c.sweep == self.sweep).values(updated_at=_now()))
            if self.rows:
                conn.execute(self.t["bulk_spool"].insert(), self.rows)
            for mid, body in self.meds.items():
                exists = conn.execute(sa.select(meds.c.resource.is_(None)).where(
                    meds.c.sweep == self.sweep, meds.c.id == mid)).first()
                if exists is None:
                    conn.execute(meds.insert().values(sweep=self.sweep, id=mid, resource=body))
                elif body is not None and exists[0]:
                    conn.execute(meds.update().where(meds.c.sweep == self.sweep, meds.c.id == mid)
                                 .values(resource=body))
        self.rows.clear()
        self.meds.clear()

    close = flush


def missing_medications(store, sweep: str) -> list[str]:
    t = tables(store)["bulk_medications"]
    with store.engine.connect() as conn:
        return list(conn.execute(sa.select(t.c.id).where(t.c.sweep == sweep, t.c.resource.is_(None))
                                 .order_by(t.c.id)).scalars())


def put_medications(store, sweep: str, resources: Iterable[dict]) -> None:
    t = tables(store)["bulk_medications"]
    with store.engine.begin() as conn:
        for r in resources:
            if r.get("resourceType") == "Medication" and isinstance(r.get("id"), str):
                conn.execute(t.update().where(t.c.sweep == sweep, t.c.id == r["id"])
                             .values(resource=orjson.dumps(r)))


# ---- reading it back ------------------------------------------------------------------------------------------

def patients(store, sweep: str, *, chunk: int = 500) -> Iterator[list[str]]:
    """The sweep's patients not yet done, in chunks, by id (keyset: each chunk is one short query, so no read
    transaction stays open while the patients are evaluated and marked done)."""
    t = tables(store)
    spool, done = t["bulk_spool"], t["bulk_done"]
    after = ""
    while True:
        query = (sa.select(spool.c.patient).distinct()
                 .where(spool.c.sweep == sweep, spool.c.rtype.in_(_ROOTS), spool.c.patient > after)
                 .where(~sa.exists().where(done.c.sweep == sweep, done.c.patient == spool.c.patient))
                 .order_by(spool.c.patient).limit(chunk))
        with store.engine.connect() as conn:
            ids = list(conn.execute(query).scalars())
        if not ids:
            return
        yield ids
        after = ids[-1]


def count_patients(store, sweep: str, *, pending_only: bool = True) -> int:
    t = tables(store)
    spool, done = t["bulk_spool"], t["bulk_done"]
    query = sa.select(sa.func.count(sa.distinct(spool.c.patient))).where(spool.c.sweep == sweep,
                                                                        spool.c.rtype.in_(_ROOTS))
    if pending_only:
        query = query.where(~sa.exists().where(done.c.sweep == sweep, done.c.patient == spool.c.patient))
    with store.engine.connect() as conn:
        return int(conn.execute(query).scalar() or 0)


def unrooted(store, sweep: str) -> int:
    """Patients whose resources were exported without their Patient resource (not evaluated)."""
    spool = tables(store)["bulk_spool"]
    roots = sa.select(spool.c.patient).where(spool.c.sweep == sweep, spool.c.rtype.in_(_ROOTS))
    query = sa.select(sa.func.count(sa.distinct(spool.c.patient))).where(
        spool.c.sweep == sweep, spool.c.rtype != "DetectedIssue", spool.c.patient.not_in(roots))
    with store.engine.connect() as conn:
        return int(conn.execute(query).scalar() or 0)


def load_many(store, sweep: str, patient_ids: list[str]) -> dict[str, list[dict] | None]:
    """Each patient's spooled resources plus the Medications their requests reference; None for a patient
    spooled without resources (to be read whole from the server)."""
    t = tables(store)
    spool, meds = t["bulk_spool"], t["bulk_medications"]
    out: dict[str, list[dict] | None] = {}
    wanted: set[str] = set()
    with store.engine.connect() as conn:
        for pid, body in conn.execute(sa.select(spool.c.patient, spool.c.resource)
                                      .where(spool.c.sweep == sweep, spool.c.patient.in_(patient_ids))
                                      .order_by(spool.c.id)):
            if body is None:
                out.setdefault(pid, None)
                continue
            resource = orjson.loads(body)
            if out.get(pid) is None:
                out[pid] = []
            out[pid].append(resource)
            ref = (resource.get("medicationReference") or {}).get("reference") \
                if resource.get("resourceType") == "MedicationRequest" else None
            if isinstance(ref, str) and ref.startswith("Medication/"):
                wanted.add(ref.split("/", 1)[1])
        found: dict[str, dict] = {}
        if wanted:
            for mid, body in conn.execute(sa.select(meds.c.id, meds.c.resource).where(
                    meds.c.sweep == sweep, meds.c.id.in_(sorted(wanted)), meds.c.resource.is_not(None))):
                found[mid] = orjson.loads(body)
    for pid, resources in out.items():
        if resources:
            refs = {((r.get("medicationReference") or {}).get("reference") or "").split("/", 1)[-1]
                    for r in resources if r.get("resourceType") == "MedicationRequest"}
            resources.extend(found[m] for m in sorted(refs) if m in found)
    return out


def load(store, sweep: str, patient_id: str) -> list[dict]:
    """One patient's spooled resources (the work queue's entry point, population/queue.py). Empty when the
    sweep spooled none for them: an incremental sweep's patients are read whole, so they are queued with
    ``sweep=None``."""
    return load_many(store, sweep, [patient_id]).get(patient_id) or []


def not_done(store, sweep: str, patient_ids: list[str]) -> list[str]:
    """Those of ``patient_ids`` not marked done in the sweep (one query), in their order."""
    done = tables(store)["bulk_done"]
    with store.engine.connect() as conn:
        marked = set(conn.execute(sa.select(done.c.patient).where(done.c.sweep == sweep,
                                                                  done.c.patient.in_(patient_ids))).scalars())
    return [pid for pid in patient_ids if pid not in marked]


def mark_done(store, sweep: str, outcomes: dict[str, str]) -> None:
    """Record patients as evaluated (idempotent: a patient marked twice, by two sweeps resuming, stays once)."""
    if not outcomes:
        return
    t = tables(store)["bulk_done"]
    rows = [{"sweep": sweep, "patient": p, "outcome": o} for p, o in outcomes.items()]
    with store.engine.begin() as conn:
        insert = store._upsert(t)
        if insert is not None:
            conn.execute(insert.on_conflict_do_nothing(index_elements=["sweep", "patient"]), rows)
        else:
            for row in rows:
                if conn.execute(sa.select(t.c.patient).where(t.c.sweep == sweep, t.c.patient == row["patient"])
                                ).first() is None:
                    conn.execute(t.insert().values(**row))
