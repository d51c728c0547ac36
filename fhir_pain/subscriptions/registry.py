"""The Subscriptions fhir-pain registered, in the store: which FHIR server, and a hash of each one's secret.

Each Subscription has a key of its own (in the notification URL: ``/subscriptions/notify/<key>``) and a random
secret the FHIR server sends back as ``Authorization: Bearer <secret>`` on every notification. Only the secret's
SHA-256 is stored; it is compared in constant time. The FHIR server a notification's patients are read from is
the one stored with its key, never one named in the notification.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

import sqlalchemy as sa

TABLE = "fhir_subscriptions"
KEY_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_NO_MATCH = hashlib.sha256(b"no such subscription").hexdigest()   # unknown keys cost the same compare


@dataclass(frozen=True)
class Registration:
    key: str
    server: str
    criteria: str
    kind: str             # "r4" (criteria a search) or "backport" (criteria a topic's canonical URL)
    remote_id: str | None


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


class SubscriptionRegistry:
    def __init__(self, store):
        self.store = store
        if TABLE not in store.metadata.tables:
            sa.Table(
                TABLE, store.metadata,
                sa.Column("key", sa.String(64), primary_key=True),
                sa.Column("server", sa.Text, nullable=False),
                sa.Column("secret_sha256", sa.String(64), nullable=False),
                sa.Column("criteria", sa.Text, nullable=False),
                sa.Column("kind", sa.String(16), nullable=False),
                sa.Column("remote_id", sa.Text),
                sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            )
            store.create_all()   # creates only what is missing, under the store's schema lock
        self.table = store.metadata.tables[TABLE]

    def add(self, *, server: str, criteria: str, kind: str) -> tuple[str, str]:
        """A new registration; returns (key, secret). The secret is not kept: give it to the FHIR server."""
        key, secret = secrets.token_urlsafe(24), secrets.token_urlsafe(32)
        with self.store.engine.begin() as conn:
            conn.execute(self.table.insert().values(key=key, server=server, secret_sha256=_hash(secret),
                                                    criteria=criteria, kind=kind,
                                                    created_at=datetime.now(timezone.utc)))
        return key, secret

    def set_remote_id(self, key: str, remote_id: str | None) -> None:
        with self.store.engine.begin() as conn:
            conn.execute(self.table.update().where(self.table.c.key == key).values(remote_id=remote_id))

    def remove(self, key: str) -> None:
        with self.store.engine.begin() as conn:
            conn.execute(self.table.delete().where(self.table.c.key == key))

    def for_server(self, server: str) -> list[Registration]:
        with self.store.engine.connect() as conn:
            rows = conn.execute(sa.select(self.table).where(self.table.c.server == server)).all()
        return [self._registration(r) for r in rows]

    def verify(self, key: str, authorization: str | None) -> Registration | None:
        """The registration whose key and secret these are (``Authorization: Bearer <secret>``), else None."""
        row = None
        if isinstance(key, str) and KEY_PATTERN.match(key):
            with self.store.engine.connect() as conn:
                row = conn.execute(sa.select(self.table).where(self.table.c.key == key)).first()
        scheme, _, secret = (authorization or "").partition(" ")
        presented = _hash(secret.strip()) if scheme.lower() == "bearer" and secret.strip() else ""
        expected = row.secret_sha256 if row is not None else _NO_MATCH
        if not hmac.compare_digest(presented.encode(), expected.encode()) or row is None:
            return None
        return self._registration(row)

    @staticmethod
    def _registration(row) -> Registration:
        return Registration(row.key, row.server, row.criteria, row.kind, row.remote_id)
