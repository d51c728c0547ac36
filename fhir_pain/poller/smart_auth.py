"""SMART Backend Services authorization (client_credentials grant with a private_key_jwt client assertion).

``SmartBackendAuth`` is a callable returning a current access token, which is the shape
``cds_hooks.fhir_client.FHIRClient(auth=...)`` accepts. The token endpoint comes from configuration or from
``<fhir base>/.well-known/smart-configuration``; the token is cached until shortly before it expires.
Tokens and assertions are never logged or put in exception messages.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import jwt
import requests

log = logging.getLogger(__name__)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ALGORITHMS = ("RS384", "ES384", "RS256", "ES256")
# What the poller does: read the patients' data, read and write DetectedIssues (SMART v1 scope syntax, which
# SMART v2 servers also accept).
DEFAULT_SCOPE = " ".join([
    "system/Patient.read", "system/Observation.read", "system/Condition.read", "system/Procedure.read",
    "system/MedicationRequest.read", "system/Medication.read", "system/DetectedIssue.read", "system/DetectedIssue.write",
])
ASSERTION_LIFETIME_S = 300  # SMART: exp no more than five minutes in the future
EXPIRY_MARGIN_S = 30        # renew this long before the token expires


class SmartAuthError(Exception):
    """The token could not be obtained. The message names the step, never a credential."""


class SmartBackendAuth:
    def __init__(self, *, client_id: str, private_key: str | bytes, fhir_base: str | None = None,
                 token_url: str | None = None, alg: str = "RS384", kid: str | None = None, jku: str | None = None,
                 scope: str = DEFAULT_SCOPE, timeout: tuple[float, float] = (3.05, 10.0),
                 session: requests.Session | None = None, clock: Callable[[], float] = time.time):
        if alg not in ALGORITHMS:
            raise ValueError(f"alg must be one of {', '.join(ALGORITHMS)}")
        if not token_url and not fhir_base:
            raise ValueError("token_url or fhir_base (for .well-known/smart-configuration) is required")
        self.client_id = client_id
        self._key = private_key
        self.fhir_base = fhir_base.rstrip("/") if fhir_base else None
        self._token_url = token_url
        self.alg = alg
        self.kid = kid
        self.jku = jku
        self.scope = scope
        self.timeout = timeout
        self._session = session or requests.Session()
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0

    @classmethod
    def from_key_file(cls, path: str | Path, **kwargs) -> SmartBackendAuth:
        return cls(private_key=Path(path).read_bytes(), **kwargs)

    # -- the FHIRClient auth callable ---------------------------------------------------------------------------
    def __call__(self) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._renew_at:
                self._token, self._renew_at = self._fetch_token()
            return self._token

    def invalidate(self) -> None:
        """Forget the cached token (e.g. after a 401): the next call fetches a new one."""
        with self._lock:
            self._token = None

    # -- steps ----------------------------------------------------------------------------------------------------
    @property
    def token_url(self) -> str:
        if not self._token_url:
            self._token_url = self._discover()
        return self._token_url

    def _discover(self) -> str:
        url = f"{self.fhir_base}/.well-known/smart-configuration"
        try:
            resp = self._session.get(url, headers={"Accept": "application/json"}, timeout=self.timeout)
        except requests.RequestException as exc:
            raise SmartAuthError(f"SMART configuration unreachable: {type(exc).__name__}") from None
        if resp.status_code != 200:
            raise SmartAuthError(f"SMART configuration: HTTP {resp.status_code}")
        try:
            endpoint = resp.json().get("token_endpoint")
        except (ValueError, AttributeError):
            endpoint = None
        if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
            raise SmartAuthError("SMART configuration has no usable token_endpoint")
        return endpoint

    def assertion(self) -> str:
        """The signed client assertion (RFC 7523) for one token request."""
        now = int(self._clock())
        claims = {"iss": self.client_id, "sub": self.client_id, "aud": self.token_url,
                  "iat": now, "exp": now + ASSERTION_LIFETIME_S, "jti": uuid.uuid4().hex}
        headers = {"typ": "JWT"}
        if self.kid:
            headers["kid"] = self.kid
        if self.jku:
            headers["jku"] = self.jku
        try:
            return jwt.encode(claims, self._key, algorithm=self.alg, headers=headers)
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            raise SmartAuthError(f"cannot sign the client assertion with {self.alg}: {type(exc).__name__}") from None

    def _fetch_token(self) -> tuple[str, float]:
        form = {"grant_type": "client_credentials", "scope": self.scope,
                "client_assertion_type": ASSERTION_TYPE, "client_assertion": self.assertion()}
        try:
            resp = self._session.post(self.token_url, data=form, headers={"Accept": "application/json"},
                                      timeout=self.timeout)
        except requests.RequestException as exc:
            raise SmartAuthError(f"token endpoint unreachable: {type(exc).__name__}") from None
        try:
            body = resp.json()
        except ValueError:
            body = {}
        if resp.status_code != 200 or not isinstance(body, dict):
            error = body.get("error") if isinstance(body, dict) else None
            raise SmartAuthError(f"token request refused: HTTP {resp.status_code}"
                                 + (f" ({error})" if isinstance(error, str) else ""))
        token = body.get("access_token")
        if not isinstance(token, str) or not token or str(body.get("token_type", "")).lower() != "bearer":
            raise SmartAuthError("token response has no bearer access_token")
        try:
            lifetime = float(body.get("expires_in", 300))
        except (TypeError, ValueError):
            lifetime = 300.0
        log.info("SMART access token obtained for client %s (expires in %ds)", self.client_id, int(lifetime))
        # renew a little early, but never sooner than half-way through a short-lived token
        return token, self._clock() + lifetime - min(EXPIRY_MARGIN_S, lifetime / 2)
