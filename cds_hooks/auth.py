"""Trusting CDS Clients: verification of the EHR's bearer JWT (CDS Hooks 2.0.1 §Trusting CDS Clients).

Only configured issuers are trusted. Each has its public keys either out of band (a static JWK Set) or at
``jku`` URLs listed in configuration; a ``jku`` header that is not listed is refused before anything is
fetched (otherwise any signer could point us at its own keys, and any URL at all could be requested: SSRF).
Only ES384 and RS384 are accepted, never ``none`` or HMAC. ``aud`` must be the URL that was called,
``exp``/``iat`` are checked with a small leeway, ``iss aud exp iat jti`` are required, and a ``jti`` is accepted
once (the replay cache may be shared by every worker, see ``ReplayCache``).

Every failure raises ``Unauthorized(reason)``: the caller gets a bare 401, the reason goes to the log, the
token goes nowhere.
"""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import jwt
from jwt import PyJWK, PyJWKClient, PyJWKSet

from .errors import Unauthorized
from .fhir_client import is_tls_or_loopback

ALGORITHMS = ("ES384", "RS384")
KEY_TYPES = {"ES384": "EC", "RS384": "RSA"}
# RFC 7515 §4.1.9: a typ is a media type, compared case-insensitively, "application/" optional
JWT_TYPES = ("jwt", "application/jwt")
MAX_JTI_LENGTH = 255  # a nonce, not a document: the replay cache stores it (jwt_replay.jti is VARCHAR(512))


@dataclass(frozen=True)
class TrustedIssuer:
    """One CDS Client we accept calls from."""

    iss: str
    jku: tuple[str, ...] = ()  # JWK Set URLs this issuer may name (and we may fetch)
    jwks: Mapping[str, Any] | None = None  # keys given out of band ("jwks", or "jwks_file" in configuration)
    tenants: tuple[str, ...] | None = None  # if set, the ``tenant`` claim must be one of these

    @classmethod
    def from_config(cls, entry: Mapping[str, Any]) -> TrustedIssuer:
        iss = entry.get("iss")
        if not isinstance(iss, str) or not iss:
            raise ValueError("a trusted issuer needs 'iss'")
        jku = entry.get("jku") or ()
        jku = (jku,) if isinstance(jku, str) else tuple(jku)
        for url in jku:
            if not is_tls_or_loopback(url):
                # keys read over plain HTTP can be swapped by anyone on the path: that would trust every signer
                raise ValueError(f"trusted issuer {iss!r}: jku {url!r} must be https (http only on loopback)")
        jwks = entry.get("jwks")
        if jwks is None and entry.get("jwks_file"):  # a JWK Set kept in a file (easier than JSON in env)
            with open(entry["jwks_file"], encoding="utf-8") as fh:
                jwks = json.load(fh)
        if jwks is not None:
            PyJWKSet.from_dict(dict(jwks))  # fail at startup, not on the first call
        if not jku and not jwks:
            raise ValueError(f"trusted issuer {iss!r} needs 'jku' or 'jwks' (or 'jwks_file')")
        tenants = entry.get("tenants")
        return cls(iss=iss, jku=jku, jwks=jwks, tenants=tuple(tenants) if tenants else None)


class ReplayCache(Protocol):
    def claim(self, issuer: str, jti: str, expires_at: float) -> bool:
        """Record ``jti``; False if this issuer's ``jti`` was seen before (and has not yet expired)."""


class MemoryReplayCache:
    """A per-process replay cache. With several worker processes, use a shared one (fhir_pain.store)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._next_purge = 0.0

    def claim(self, issuer: str, jti: str, expires_at: float) -> bool:
        now = time.time()
        with self._lock:
            if now >= self._next_purge:
                self._seen = {k: exp for k, exp in self._seen.items() if exp > now}
                self._next_purge = now + 60
            key = (issuer, jti)
            if key in self._seen and self._seen[key] > now:
                return False
            self._seen[key] = expires_at
            return True


def _norm_iss(iss: str) -> str:
    return iss.rstrip("/")


class JWTVerifier:
    def __init__(self, issuers: Iterable[TrustedIssuer], *, replay_cache: ReplayCache | None = None,
                 leeway_s: float = 30, max_lifetime_s: float = 3600, jwks_timeout_s: float = 2.0,
                 jwks_lifespan_s: float = 300, jwks_cooldown_s: float = 30):
        self.issuers = {_norm_iss(i.iss): i for i in issuers}
        self.replay_cache = replay_cache or MemoryReplayCache()
        self.leeway_s = leeway_s
        self.max_lifetime_s = max_lifetime_s
        self._static = {k: PyJWKSet.from_dict(dict(i.jwks)) for k, i in self.issuers.items() if i.jwks}
        # one fetching client per allowlisted jku URL, made here so that nothing else can create one
        self._jku_clients = {url: PyJWKClient(url, lifespan=jwks_lifespan_s, timeout=jwks_timeout_s,
                                              cooldown_duration=jwks_cooldown_s)
                             for i in self.issuers.values() for url in i.jku}

    def verify(self, authorization: str | None, audience: str) -> dict[str, Any]:
        """The verified claims of the ``Authorization: Bearer`` header's JWT, for a call to ``audience``."""
        token = _bearer_token(authorization)
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except Exception:  # noqa: BLE001 - whatever an unauthenticated caller sends is a 401, never a 500
            raise Unauthorized("malformed-token") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise Unauthorized("algorithm-not-allowed")
        typ = header.get("typ")
        # 2.0.1 makes typ REQUIRED: it keeps other JWTs of the same issuer (access or ID tokens) from passing
        if not isinstance(typ, str) or typ.lower() not in JWT_TYPES:
            raise Unauthorized("bad-typ")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthorized("missing-kid")
        iss = unverified.get("iss")
        issuer = self.issuers.get(_norm_iss(iss)) if isinstance(iss, str) else None
        if issuer is None:
            raise Unauthorized("unknown-issuer")
        key = self._key(issuer, header, kid)
        # the key decides the algorithm, not the token: an RS384 token must not be checked with an EC key's
        # material and vice versa, a JWK that names its alg allows only that one (RFC 7517 §4.4; PyJWK reports
        # "RS256" for an RSA key without alg, so read the JWK itself), and an encryption key signs nothing
        jwk_alg = getattr(key, "_jwk_data", {}).get("alg")
        if key.key_type != KEY_TYPES[alg] or key.algorithm_name not in (alg, "RS256") or jwk_alg not in (None, alg):
            raise Unauthorized("key-algorithm-mismatch")
        if key.public_key_use not in (None, "sig"):
            raise Unauthorized("key-not-for-signing")
        try:
            claims = jwt.decode(token, key.key, algorithms=[alg], audience=audience, issuer=iss,
                                leeway=self.leeway_s, options={"require": ["iss", "aud", "exp", "iat", "jti"]})
        except jwt.InvalidAudienceError:
            raise Unauthorized("wrong-audience") from None
        except jwt.ExpiredSignatureError:
            raise Unauthorized("expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthorized("not-yet-valid") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthorized(f"missing-claim-{exc.claim}") from None
        except jwt.InvalidSignatureError:
            raise Unauthorized("bad-signature") from None
        except (jwt.PyJWTError, ValueError, TypeError, ArithmeticError):
            raise Unauthorized("invalid-token") from None
        try:
            exp = float(claims["exp"])  # an int past float range (exp: 1e400 written out) is not a time
        except (OverflowError, ValueError, TypeError):
            raise Unauthorized("invalid-token") from None
        if exp - time.time() > self.max_lifetime_s:  # bounds how long the replay cache must remember
            raise Unauthorized("lifetime-too-long")
        jti = claims["jti"]
        # a nonce has no control characters (NUL: no database stores it) nor lone surrogates (not UTF-8)
        if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH or not jti.isprintable():
            raise Unauthorized("bad-jti")
        tenant = claims.get("tenant")
        if issuer.tenants is not None and tenant not in issuer.tenants:
            raise Unauthorized("tenant-not-allowed")
        if not self.replay_cache.claim(issuer.iss, jti, exp + self.leeway_s):
            raise Unauthorized("replayed-jti")
        return claims

    def _key(self, issuer: TrustedIssuer, header: Mapping[str, Any], kid: str) -> PyJWK:
        jku = header.get("jku")
        if jku is not None and jku not in issuer.jku:
            raise Unauthorized("jku-not-allowed")
        static = self._static.get(_norm_iss(issuer.iss))
        if static is not None:
            try:
                return static[kid]
            except KeyError:
                pass
        url = jku if jku is not None else (issuer.jku[0] if len(issuer.jku) == 1 else None)
        if url is None:
            raise Unauthorized("unknown-kid")
        try:
            return self._jku_clients[url].get_signing_key(kid)
        except jwt.PyJWKClientConnectionError:
            raise Unauthorized("jwks-unavailable") from None
        except (jwt.PyJWKClientError, jwt.PyJWKSetError, jwt.PyJWTError):
            raise Unauthorized("unknown-kid") from None


def _bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized("no-token")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("not-bearer")
    return token.strip()
