"""Write an extracted Bundle to the configured FHIR server, in one transaction, through the project's FHIR client.

The /pro routes write only to ``PRO_FHIR_SERVER`` (``write``); the dashboard writes to its session's FHIR
server with the session's access token (``write_to``). Either way only where ``FHIR_SERVER_ALLOWLIST`` allows it
(PRO_FHIR_SERVER checked at start-up, every URL by the client). The Bundle's entries are conditional creates on derived identities
(fhir_pain.pro.extract), so writing the same response again creates nothing: the server answers ``200`` for
each entry instead of ``201``. The token (``PRO_FHIR_TOKEN``) is never logged.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from cds_hooks.errors import BadRequest, CDSError
from cds_hooks.fhir_client import FHIRClient, FHIRError, FHIRTimeout, URLNotAllowed, is_allowed, normalize_base
from fhir_pain.config import timeout_pair


class WriteFailed(CDSError):
    """The FHIR server did not take the transaction (502), or did not answer in time (504)."""

    status, code = 502, "transient"
    upstream_status: int | None = None     # the FHIR server's HTTP status, when it answered one


@dataclass(frozen=True, slots=True)
class Written:
    server: str
    created: tuple[str, ...]        # Type/id of the resources this write created
    existing: tuple[str, ...]       # Type/id of those already there (the same response written before)


def check_config(cfg: Mapping[str, Any]) -> str | None:
    """The server PRO answers are written to, or None; ValueError when it is set but not on the allowlist."""
    base = cfg.get("PRO_FHIR_SERVER")
    if not base:
        return None
    if not isinstance(base, str) or not is_allowed(base, list(cfg["FHIR_SERVER_ALLOWLIST"])):
        raise ValueError("PRO_FHIR_SERVER must be a FHIR base URL listed in FHIR_SERVER_ALLOWLIST")
    return normalize_base(base)


def write(bundle: dict, cfg: Mapping[str, Any]) -> Written:
    """To PRO_FHIR_SERVER with PRO_FHIR_TOKEN (the /pro routes)."""
    base = check_config(cfg)
    if base is None:
        raise BadRequest("no FHIR server is configured to write to (PRO_FHIR_SERVER)")
    return write_to(bundle, base, cfg.get("PRO_FHIR_TOKEN") or None, cfg)


def write_to(bundle: dict, base: str, token: str | None, cfg: Mapping[str, Any]) -> Written:
    """To ``base`` with ``token`` (a dashboard session's FHIR server and access token); the client still refuses
    a base or entry URL that FHIR_SERVER_ALLOWLIST does not allow (WriteFailed, nothing sent)."""
    try:
        client = FHIRClient(base, auth=token, allowed_bases=list(cfg["FHIR_SERVER_ALLOWLIST"]),
                            timeout=timeout_pair(cfg["FHIR_TIMEOUT_S"]), retries=1)
    except URLNotAllowed:
        raise WriteFailed("this FHIR server is not configured (FHIR_SERVER_ALLOWLIST): nothing was written") from None
    try:
        answer = client.transaction(bundle)
    except FHIRTimeout:
        err = WriteFailed("the FHIR server did not answer in time; the answers were not confirmed written")
        err.status = 504
        raise err from None
    except FHIRError as exc:
        status = f" ({exc.status})" if exc.status else ""
        err = WriteFailed(f"the FHIR server did not take the answers{status}: nothing was written")
        err.upstream_status = exc.status
        if exc.status in (400, 409, 412, 422):      # it refused the content, which came from the caller
            err.status, err.code = 422, "processing"
        raise err from None
    finally:
        client.close()
    created, existing = [], []
    for entry in answer.get("entry", []):
        response = entry.get("response") or {}
        ref = "/".join(str(response.get("location", "")).split("/_history/")[0].rstrip("/").split("/")[-2:])
        (created if str(response.get("status", "")).startswith("201") else existing).append(ref)
    return Written(base, tuple(created), tuple(existing))
