"""Server-side dashboard sessions: the browser's cookie holds only an opaque random id; the launch state (OAuth
state, PKCE verifier, the FHIR server) and then the access token live here, in the service's store (shared by
gunicorn workers and instances), encrypted with a key derived from the dashboard's secret (Fernet: AES-128-CBC
with HMAC-SHA256), keyed by a SHA-256 of the id. Expired rows are deleted as new sessions are written.
"""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from typing import Any

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken

from fhir_pain.store import Store

TABLE = "dashboard_sessions"


class SessionStore:
    def __init__(self, store: Store, secret: str, *, ttl_s: float):
        self.engine = store.engine
        self.ttl_s = float(ttl_s)
        if TABLE in store.metadata.tables:
            self.table = store.metadata.tables[TABLE]
        else:
            self.table = sa.Table(
                TABLE, store.metadata,
                sa.Column("key", sa.String(64), primary_key=True),     # sha256 hex of the cookie's id
                sa.Column("data", sa.Text, nullable=False),            # Fernet token of the JSON state
                sa.Column("expires_at", sa.Float, nullable=False, index=True),
            )
            store.create_all()
        key = hashlib.sha256(b"fhir-pain dashboard sessions\0" + secret.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    @staticmethod
    def _key(sid: str) -> str:
        return hashlib.sha256(sid.encode()).hexdigest()

    def create(self, data: dict[str, Any]) -> str:
        sid = secrets.token_urlsafe(32)
        now = time.time()
        row = {"key": self._key(sid), "data": self._seal(data), "expires_at": now + self.ttl_s}
        with self.engine.begin() as conn:
            conn.execute(sa.delete(self.table).where(self.table.c.expires_at < now))
            conn.execute(sa.insert(self.table).values(**row))
        return sid

    def get(self, sid: object) -> dict[str, Any] | None:
        if not isinstance(sid, str) or not sid:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(self.table.c.data, self.table.c.expires_at)
                               .where(self.table.c.key == self._key(sid))).first()
        if row is None or row.expires_at < time.time():
            return None
        try:
            return json.loads(self._fernet.decrypt(row.data.encode()))
        except (InvalidToken, ValueError):   # another secret (rotated): the session is simply gone
            return None

    def delete(self, sid: object) -> None:
        if isinstance(sid, str) and sid:
            with self.engine.begin() as conn:
                conn.execute(sa.delete(self.table).where(self.table.c.key == self._key(sid)))

    def _seal(self, data: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(data).encode()).decode()
