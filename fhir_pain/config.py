"""Configuration of the fhir-pain service: defaults, environment overrides, and checks.

Precedence: ``DEFAULTS`` < environment ``FHIR_PAIN_<KEY>`` < the dict given to ``create_app(config)``.
Environment values are parsed by the type of the default: booleans ``1/true/yes/on`` and ``0/false/no/off``,
numbers, and lists/objects as JSON (a list may also be comma-separated).

Keys:
  AUTH                    "required" (default) | "off". Off is for local development only: anyone can call.
  TRUSTED_ISSUERS         list of {"iss", "jku": url or [urls], "jwks": {JWK Set} or "jwks_file": path,
                          "tenants": [..]}: the CDS Clients (EHRs) whose JWTs are accepted. Keys come from
                          "jwks"/"jwks_file" (out of band) or from the listed "jku" URLs, which are the only key
                          URLs ever fetched. With "tenants", the JWT's tenant claim must be one of them.
  TRUST_SANDBOX_ISSUER    false (default). True trusts https://sandbox.cds-hooks.org with its public key shipped
                          in cds_hooks/data. Its private key is published: anyone can sign as the sandbox.
                          Local testing only.
  PUBLIC_BASE_URL         the URL clients call, e.g. "https://cds.example.org": the JWT's aud must be it plus the
                          path called. Unset: the request's own scheme and host, for loopback hosts only (a Host
                          header is the caller's to choose); any other host gets 401. Set it in every deployment.
  FHIR_SERVER_ALLOWLIST   FHIR base URLs that prefetch may be fetched from (a call's fhirServer must be one of
                          them, or below one). Default empty: nothing is ever fetched.
  DATABASE_URL            SQLAlchemy URL of the store (feedback, poller cursor, JWT replay cache). Default: a
                          SQLite file "fhir-pain.sqlite3" in the Flask instance folder.
  MAX_CONTENT_LENGTH      largest request body in bytes (default 10 MiB): 413 beyond.
  FHIR_TIMEOUT_S          per FHIR request: a number (read timeout; connect is min(1 s, it)) or [connect, read].
  FHIR_DEADLINE_S         all prefetch fetching of one call together, bodies included (default 2.5 s; EHRs give
                          up near 5 s): a server that answers slowly, or drips its answer, is cut off there.
  FHIR_MAX_PAGES          pages of one search that prefetch follows (default 10).
  FHIR_MAX_RESPONSE_BYTES decoded bytes of FHIR JSON that the fetching of one call may read, all keys and pages
                          together (default 16 MiB): a larger or endlessly inflating (gzip bomb) answer is cut off
                          there and its key is missing (412 if the service requires it). A worker thus holds at
                          most threads x this of fetched JSON, plus its parsed form.
  REGISTER_CLINICAL_SERVICES  true (default): register fhir_pain.services' services.
  JWT_LEEWAY_S            clock skew allowed on exp/iat (default 30).
  JWT_MAX_LIFETIME_S      tokens valid for longer than this from now are refused (default 3600).
  JWKS_TIMEOUT_S          fetching a jku (default 2).
  CORS_ORIGINS            "*" (default, as browser-based clients such as the sandbox need) or a list.
  VALIDATE_RESPONSES      false (default): the card model already cannot emit an invalid card; true adds a
                          JSON-Schema check of every response (tests, debugging).
  GUIDELINES              the pharmacogenomic guideline source the site follows: "cpic" (default), "dpwg"
                          (DPWG's advice for the pairs its data covers, CPIC's shown where DPWG has none) or
                          "both" (one advice where they agree in action, both where they differ); see
                          fhir_pain/pgx/guidance.py.

Patient-reported outcomes (fhir_pain/pro):
  PRO_FHIR_SERVER         FHIR base URL that scored answers are written to ($extract?write=true, the fill page).
                          Must be listed in FHIR_SERVER_ALLOWLIST. Default unset: nothing is written.
  PRO_FHIR_TOKEN          bearer token for those writes (set it from the environment: FHIR_PAIN_PRO_FHIR_TOKEN).

The dashboard (fhir_pain.dashboard, /dashboard/...):
  SMART_CLIENT_ID         the client id the EHR registered the dashboard under (unset: no SMART launch). The
                          FHIR servers it may launch from are FHIR_SERVER_ALLOWLIST.
  SMART_CLIENT_SECRET     for a confidential client (client_secret_basic); unset: a public client (PKCE only).
  DASHBOARD_SECRET_KEY    signs the session cookie and encrypts the server-side session store. Set it (the same
                          in every worker and instance); unset, a random key per process.
  DASHBOARD_LAUNCH_URL    absolute URL of /dashboard/launch as the EHR reaches it: set, the patient-view cards
                          carry a SMART link to it.
  DASHBOARD_SESSION_TTL_S lifetime of a dashboard session (default 3600; the token's own expiry also applies).
  DASHBOARD_COOKIE_SAMESITE  "Lax" (default) | "Strict" | "None" (an EHR that shows the app in a frame of
                          another site needs "None"; the cookie is always Secure and HttpOnly).
  DASHBOARD_FRAME_ANCESTORS  CSP frame-ancestors: the EHR origins allowed to frame the dashboard (default 'self').
  DASHBOARD_DEMO          false (default). True serves the demo patients at /dashboard/demo/ with no launch, only
                          with AUTH off and only to loopback clients (make run).
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from cds_hooks.fhir_client import is_allowed
from fhir_pain.pgx.guidance import check as guidance_check

ENV_PREFIX = "FHIR_PAIN_"

DEFAULTS: dict[str, Any] = {
    "AUTH": "required",
    "TRUSTED_ISSUERS": [],
    "TRUST_SANDBOX_ISSUER": False,
    "PUBLIC_BASE_URL": None,
    "FHIR_SERVER_ALLOWLIST": [],
    "DATABASE_URL": None,
    "MAX_CONTENT_LENGTH": 10 * 1024 * 1024,
    "FHIR_TIMEOUT_S": [1.0, 2.0],
    "FHIR_DEADLINE_S": 2.5,
    "FHIR_MAX_PAGES": 10,
    "FHIR_MAX_RESPONSE_BYTES": 16 * 1024 * 1024,
    "REGISTER_CLINICAL_SERVICES": True,
    "JWT_LEEWAY_S": 30,
    "JWT_MAX_LIFETIME_S": 3600,
    "JWKS_TIMEOUT_S": 2.0,
    "CORS_ORIGINS": "*",
    "VALIDATE_RESPONSES": False,
    "GUIDELINES": "cpic",
    # patient-reported outcomes (fhir_pain/pro)
    "PRO_FHIR_SERVER": None,
    "PRO_FHIR_TOKEN": None,
    # the dashboard (fhir_pain.dashboard)
    "SMART_CLIENT_ID": None,
    "SMART_CLIENT_SECRET": None,
    "DASHBOARD_SECRET_KEY": None,
    "DASHBOARD_LAUNCH_URL": None,
    "DASHBOARD_SESSION_TTL_S": 3600,
    "DASHBOARD_COOKIE_SAMESITE": "Lax",
    "DASHBOARD_FRAME_ANCESTORS": None,
    "DASHBOARD_DEMO": False,
}

SANDBOX_ISSUER = "https://sandbox.cds-hooks.org"
SANDBOX_JKU = "https://sandbox.cds-hooks.org/.well-known/jwks.json"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _parse(key: str, raw: str, default: Any) -> Any:
    raw = raw.strip()
    if isinstance(default, bool):
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise ValueError(f"{ENV_PREFIX}{key}: expected a boolean, got {raw!r}")
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        try:
            return type(default)(raw) if isinstance(default, int) and raw.isdigit() else float(raw)
        except ValueError:
            raise ValueError(f"{ENV_PREFIX}{key}: expected a number, got {raw!r}") from None
    if isinstance(default, (list, dict)) or key == "CORS_ORIGINS" and raw.startswith("["):
        if raw.startswith(("[", "{")):
            try:
                return json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{ENV_PREFIX}{key}: invalid JSON ({exc.msg})") from None
        if isinstance(default, list):
            return [item.strip() for item in raw.split(",") if item.strip()]
        raise ValueError(f"{ENV_PREFIX}{key}: expected JSON")
    return raw or None


def load(overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The effective configuration: defaults, then environment, then ``overrides``; checked."""
    environ = os.environ if environ is None else environ
    config = {k: (list(v) if isinstance(v, list) else v) for k, v in DEFAULTS.items()}
    for key, default in DEFAULTS.items():
        if ENV_PREFIX + key in environ:
            config[key] = _parse(key, environ[ENV_PREFIX + key], default)
    for key, value in (overrides or {}).items():
        config[key] = value
    check(config)
    return config


def check(config: Mapping[str, Any]) -> None:
    """Refuse a configuration that would run insecurely by accident or fail on the first call."""
    if config["AUTH"] not in ("required", "off"):
        raise ValueError("AUTH must be 'required' or 'off'")
    if not isinstance(config["TRUSTED_ISSUERS"], list):
        raise ValueError("TRUSTED_ISSUERS must be a list of {iss, jku|jwks}")
    if not isinstance(config["FHIR_SERVER_ALLOWLIST"], list):
        raise ValueError("FHIR_SERVER_ALLOWLIST must be a list of FHIR base URLs")
    if "*" in config["FHIR_SERVER_ALLOWLIST"]:
        raise ValueError("FHIR_SERVER_ALLOWLIST takes base URLs; '*' would send EHR tokens anywhere")
    for base in config["FHIR_SERVER_ALLOWLIST"]:
        # an entry the matcher cannot read would be skipped silently on every call: say so at startup
        if not isinstance(base, str) or not is_allowed(base, [base]):
            raise ValueError(f"FHIR_SERVER_ALLOWLIST: {base!r} is not an absolute http(s) base URL "
                             "(no credentials, spaces or dot segments)")
    timeout_pair(config["FHIR_TIMEOUT_S"])
    for key in ("FHIR_DEADLINE_S", "JWT_LEEWAY_S", "JWT_MAX_LIFETIME_S", "JWKS_TIMEOUT_S", "MAX_CONTENT_LENGTH"):
        if not isinstance(config[key], (int, float)) or config[key] < 0:
            raise ValueError(f"{key} must be a non-negative number")
    guidance_check(config.get("GUIDELINES", "cpic"))
    if config.get("DASHBOARD_COOKIE_SAMESITE", "Lax") not in ("Lax", "Strict", "None"):
        raise ValueError("DASHBOARD_COOKIE_SAMESITE must be Lax, Strict or None")
    launch = config.get("DASHBOARD_LAUNCH_URL")
    if launch is not None and not (isinstance(launch, str) and launch.startswith(("https://", "http://"))):
        raise ValueError("DASHBOARD_LAUNCH_URL must be an absolute http(s) URL")
    cap = config["FHIR_MAX_RESPONSE_BYTES"]
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
        raise ValueError("FHIR_MAX_RESPONSE_BYTES must be a positive whole number of bytes")


def timeout_pair(value: Any) -> tuple[float, float]:
    """FHIR_TIMEOUT_S as (connect, read)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return min(1.0, float(value)), float(value)
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(
            isinstance(v, (int, float)) and v > 0 for v in value):
        return float(value[0]), float(value[1])
    raise ValueError("FHIR_TIMEOUT_S must be a positive number or [connect, read]")


def default_database_url(instance_path: str) -> str:
    return "sqlite:///" + os.path.join(instance_path, "fhir-pain.sqlite3")
