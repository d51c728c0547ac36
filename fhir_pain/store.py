"""Persistent state of the service, with SQLAlchemy Core: feedback, named cursors, the JWT replay cache.

SQLite by default (a file; WAL, a busy timeout and BEGIN IMMEDIATE so that concurrent writers from threads and
processes queue instead of failing), any SQLAlchemy URL (PostgreSQL) by configuration. Other parts may add
their tables to ``Store.metadata`` before ``create_all()``.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

SQLITE_BUSY_TIMEOUT_MS = 30_000


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


def _sqlite_tuning(engine: Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # noqa: ANN001
        dbapi_conn.isolation_level = None  # let the "begin" hook below issue BEGIN itself
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode=WAL")
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
            sa.Column("name", sa.String(200), primary_key=True),
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
        self.metadata.create_all(self.engine)

    def ping(self) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(sa.text("SELECT 1")).scalar() == 1

    def dispose(self) -> None:
        self.engine.dispose()

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
        dialect = self.engine.dialect.name
        with self.engine.begin() as conn:
            if dialect in ("sqlite", "postgresql"):
                insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
                stmt = insert(self.cursors).values(**values)
                conn.execute(stmt.on_conflict_do_update(index_elements=["name"],
                                                        set_={"value": value, "updated_at": values["updated_at"]}))
                return
            updated = conn.execute(self.cursors.update().where(self.cursors.c.name == name)
                                   .values(value=value, updated_at=values["updated_at"])).rowcount
            if not updated:
                conn.execute(self.cursors.insert().values(**values))

    # -- JWT replay cache, shared by every worker process (cds_hooks.auth.ReplayCache) --------------------------
    def claim(self, issuer: str, jti: str, expires_at: float) -> bool:
        now = _utcnow().timestamp()
        try:
            with self.engine.begin() as conn:
                conn.execute(self.jwt_ids.delete().where(self.jwt_ids.c.expires_at < now))
                conn.execute(self.jwt_ids.insert().values(issuer=issuer, jti=jti, expires_at=expires_at))
        except IntegrityError:
            return False
        return True
