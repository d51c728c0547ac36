"""Persistent state of the service, with SQLAlchemy Core: feedback, named cursors, the JWT replay cache.

SQLite by default (a file; WAL, a busy timeout and BEGIN IMMEDIATE so that concurrent writers from threads and
processes queue instead of failing), PostgreSQL for several instances (``pip install 'fhir-pain[postgres]'``,
psycopg 3; SQLAlchemy's default driver for ``postgresql://`` URLs). Both are tested against real servers. Other
parts may add their tables to ``Store.metadata`` before ``create_all()``.
"""
from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

SQLITE_BUSY_TIMEOUT_MS = 30_000
# pg_advisory_xact_lock key held while the schema is created: workers booting together on an empty PostgreSQL
# database would otherwise race to CREATE TABLE (SQLite's BEGIN IMMEDIATE serialises them already)
SCHEMA_LOCK_KEY = 0x66686972_7061696E  # "fhirpain"


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _parse_instant(value: Any) -> datetime | None:
    """An RFC 3339 timestamp (already schema-checked) as an aware datetime; None if unparsable."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        # stored in UTC: SQLite keeps no offset, so a local time would be misread later
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
    except (ValueError, OverflowError):   # OverflowError: "0001-01-01T00:00:00+14:00" is before year 1 in UTC
        return None
    try:
        # stored in UTC: SQLite keeps no offset, so a local time would be misread later
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is a valid RFC 3339 time before datetime.min in UTC
        return None


def _set_wal(cur: sqlite3.Cursor) -> None:
    """WAL mode (kept in the file). Switching is refused with SQLITE_BUSY at once, busy timeout or not, while
    another connection switches too: workers opening a new file together retry within the timeout."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def _sqlite_tuning(engine: Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # noqa: ANN001
        dbapi_conn.isolation_level = None  # let the "begin" hook below issue BEGIN itself
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        _set_wal(cur)
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn):  # noqa: ANN001
        # take the write lock up front: a deferred transaction that upgrades later fails with SQLITE_BUSY
        # at once instead of waiting for the busy timeout
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class Store:
    def __init__(self, url: str, *, create: bool = True, **engine_kwargs: Any):
        self.url = url
        if sa.engine.make_url(url).get_backend_name() == "sqlite" and sa.engine.make_url(url).database in (
                None, "", ":memory:"):
            # an in-memory database exists per connection: every thread must share the one connection
            engine_kwargs.setdefault("poolclass", sa.pool.StaticPool)
            engine_kwargs.setdefault("connect_args", {"check_same_thread": False})
        elif sa.engine.make_url(url).get_backend_name() == "postgresql":
            # a pooled connection dies with a database restart or failover: test it before use, not in a call
            engine_kwargs.setdefault("pool_pre_ping", True)
        self.engine: Engine = sa.create_engine(url, **engine_kwargs)
        if self.engine.dialect.name == "sqlite":
            _sqlite_tuning(self.engine)
        self.metadata = sa.MetaData()
        self.feedback = sa.Table(
            "cds_feedback", self.metadata,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("service_id", sa.String(128), nullable=False),
            sa.Column("card_uuid", sa.String(128), nullable=False),
            sa.Column("outcome", sa.String(16), nullable=False),
            sa.Column("accepted_suggestions", sa.Text),  # JSON list of suggestion uuids
            sa.Column("override_reason_system", sa.Text),
            sa.Column("override_reason_code", sa.Text),
            sa.Column("override_reason_display", sa.Text),
            sa.Column("override_comment", sa.Text),
            sa.Column("outcome_timestamp", sa.DateTime(timezone=True)),
            sa.Column("outcome_timestamp_raw", sa.String(64), nullable=False),
            sa.Column("issuer", sa.Text),
            sa.Column("tenant", sa.Text),
            sa.Index("ix_cds_feedback_card", "card_uuid"),
            sa.Index("ix_cds_feedback_service_received", "service_id", "received_at"),
        )
        self.cursors = sa.Table(
            "cursors", self.metadata,
            sa.Column("name", sa.Text, primary_key=True),  # poller:<FHIR base URL>, of any length
            sa.Column("value", sa.Text, nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        )
        self.jwt_ids = sa.Table(
            "jwt_replay", self.metadata,
            sa.Column("issuer", sa.String(512), primary_key=True),
            sa.Column("jti", sa.String(512), primary_key=True),
            sa.Column("expires_at", sa.Float, nullable=False, index=True),
        )
        if create:
            self.create_all()

    def create_all(self) -> None:
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(SCHEMA_LOCK_KEY)))
            self.metadata.create_all(conn)

    def ping(self) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(sa.text("SELECT 1")).scalar() == 1

    def dispose(self) -> None:
        self.engine.dispose()

    def _upsert(self, table: sa.Table) -> Any:
        """An INSERT that can take ON CONFLICT (SQLite and PostgreSQL), or None on another database."""
        return {"sqlite": sqlite.insert, "postgresql": postgresql.insert}.get(self.engine.dialect.name,
                                                                               lambda _t: None)(table)

    # -- feedback -----------------------------------------------------------------------------------------------
    def save_feedback(self, service_id: str, entries: Iterable[Mapping[str, Any]], issuer: str | None,
                      tenant: str | None) -> int:
        """Store every entry (one row each) in one transaction; returns how many."""
        now = _utcnow()
        rows = []
        for entry in entries:
            reason = entry.get("overrideReason") or {}
            coding = reason.get("reason") or {}
            accepted = [s.get("id") for s in entry.get("acceptedSuggestions") or () if isinstance(s, Mapping)]
            rows.append({
                "received_at": now, "service_id": service_id, "card_uuid": entry["card"],
                "outcome": entry["outcome"],
                "accepted_suggestions": orjson.dumps(accepted).decode() if accepted else None,
                "override_reason_system": coding.get("system"), "override_reason_code": coding.get("code"),
                "override_reason_display": coding.get("display"), "override_comment": reason.get("userComment"),
                "outcome_timestamp": _parse_instant(entry.get("outcomeTimestamp")),
                "outcome_timestamp_raw": str(entry.get("outcomeTimestamp", "")),
                "issuer": issuer, "tenant": tenant,
            })
        if rows:
            with self.engine.begin() as conn:
                conn.execute(self.feedback.insert(), rows)
        return len(rows)

    def list_feedback(self, *, service_id: str | None = None, card_uuid: str | None = None,
                      limit: int | None = 1000) -> list[dict[str, Any]]:
        """Stored feedback, oldest first, as dicts (accepted_suggestions as a list)."""
        query = sa.select(self.feedback).order_by(self.feedback.c.id)
        if service_id is not None:
            query = query.where(self.feedback.c.service_id == service_id)
        if card_uuid is not None:
            query = query.where(self.feedback.c.card_uuid == card_uuid)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        for row in rows:
            for key in ("received_at", "outcome_timestamp"):  # SQLite returns UTC values without tzinfo
                if row[key] is not None and row[key].tzinfo is None:
                    row[key] = row[key].replace(tzinfo=timezone.utc)
            raw = row["accepted_suggestions"]
            row["accepted_suggestions"] = orjson.loads(raw) if raw else []
        return rows

    # -- cursors (the poller keeps its position here) -----------------------------------------------------------
    def get_cursor(self, name: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(self.cursors.c.value).where(self.cursors.c.name == name)).scalar()

    def set_cursor(self, name: str, value: str) -> None:
        values = {"name": name, "value": value, "updated_at": _utcnow()}
        with self.engine.begin() as conn:
            if (insert := self._upsert(self.cursors)) is not None:
                conn.execute(insert.values(**values).on_conflict_do_update(
                    index_elements=["name"], set_={"value": value, "updated_at": values["updated_at"]}))
                return
            updated = conn.execute(self.cursors.update().where(self.cursors.c.name == name)
                                   .values(value=value, updated_at=values["updated_at"])).rowcount
            if not updated:
                conn.execute(self.cursors.insert().values(**values))

    # -- JWT replay cache, shared by every worker process (cds_hooks.auth.ReplayCache) --------------------------
    def claim(self, issuer: str, jti: str, expires_at: float) -> bool:
        now = _utcnow().timestamp()
        row = {"issuer": issuer, "jti": jti, "expires_at": expires_at}
        try:
            with self.engine.begin() as conn:
                conn.execute(self.jwt_ids.delete().where(self.jwt_ids.c.expires_at < now))
                if (insert := self._upsert(self.jwt_ids)) is not None:
                    # a replay is an expected outcome, not an error (PostgreSQL would log each one)
                    stmt = (insert.values(**row).on_conflict_do_nothing(index_elements=["issuer", "jti"])
                            .returning(self.jwt_ids.c.jti))
                    return conn.execute(stmt).first() is not None   # a row only when it was inserted
                conn.execute(self.jwt_ids.insert().values(**row))
        except IntegrityError:
            return False
        return True
