"""SMART App Launch 2 (authorization code + PKCE S256) with Authlib's OAuth 2 client.

EHR launch: ``iss`` + ``launch`` from the EHR; standalone: ``iss`` only (scope ``launch/patient``). The FHIR
server must be on FHIR_SERVER_ALLOWLIST; its ``.well-known/smart-configuration`` names the endpoints, which
must be https (or loopback, for tests). Scopes are v2 (``patient/Observation.rs``) unless the server says it
offers only v1 (``permission-v1`` without ``permission-v2``), then ``patient/Observation.read``. Writing a filled
questionnaire asks ``patient/Observation.c`` and ``patient/QuestionnaireResponse.c`` (v1 ``.write``); the EHR
may grant less, and the dashboard then scores without saving.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session

from cds_hooks.fhir_client import is_allowed, is_tls_or_loopback, normalize_base

# the resource types the patient-view prefetch reads (fhir_pain.services.prefetch_templates)
RESOURCES = ("Patient", "Observation", "Condition", "MedicationRequest", "Medication", "Procedure")
# what a filled questionnaire writes (fhir_pain.pro.extract: the response and its scored Observations)
WRITES = ("Observation", "QuestionnaireResponse")
_V2_PERMS = re.compile(r"c?r?u?d?s?")
DISCOVERY_MAX_BYTES = 256 * 1024
TIMEOUT = (2.0, 5.0)


class LaunchError(Exception):
    """A launch that cannot go on; ``title``/``message`` are for the user's page (never tokens or data)."""

    def __init__(self, title: str, message: str, status: int = 400):
        super().__init__(message)
        self.title, self.message, self.status = title, message, status


@dataclass(frozen=True)
class Endpoints:
    authorize: str
    token: str
    v2: bool


def allowed_iss(iss: object, allowlist: list[str]) -> str:
    if not isinstance(iss, str) or not iss or not is_allowed(iss, allowlist):
        raise LaunchError("FHIR server not allowed",
                          "This FHIR server is not configured for the dashboard. Ask your administrator to add it "
                          "to FHIR_PAIN_FHIR_SERVER_ALLOWLIST.")
    return normalize_base(iss)


def discover(iss: str) -> Endpoints:
    url = iss.rstrip("/") + "/.well-known/smart-configuration"
    try:
        with requests.get(url, headers={"Accept": "application/json"}, timeout=TIMEOUT, stream=True,
                          allow_redirects=False) as resp:
            body = resp.raw.read(DISCOVERY_MAX_BYTES + 1, decode_content=True)
            status = resp.status_code
    except requests.RequestException:
        raise LaunchError("FHIR server unreachable",
                          "The FHIR server's SMART configuration could not be read: the server did not answer. "
                          "Try again later.", 502) from None
    if status != 200 or len(body) > DISCOVERY_MAX_BYTES:
        raise LaunchError("SMART configuration not available",
                          f"The FHIR server answered {status} for its SMART configuration.", 502)
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise LaunchError("SMART configuration not usable", "The FHIR server's SMART configuration is not JSON.", 502)
    authorize, token = doc.get("authorization_endpoint"), doc.get("token_endpoint")
    for endpoint in (authorize, token):
        if not isinstance(endpoint, str) or not is_tls_or_loopback(endpoint):
            raise LaunchError("SMART configuration not usable",
                              "The FHIR server's SMART configuration names no https authorization and token "
                              "endpoints.", 502)
    caps = doc.get("capabilities") if isinstance(doc.get("capabilities"), list) else []
    v2 = not ("permission-v1" in caps and "permission-v2" not in caps)
    return Endpoints(authorize=authorize, token=token, v2=v2)


def scopes(v2: bool, *, ehr_launch: bool) -> str:
    perm, create = ("rs", "c") if v2 else ("read", "write")
    return " ".join(["launch" if ehr_launch else "launch/patient", *(f"patient/{r}.{perm}" for r in RESOURCES),
                     *(f"patient/{r}.{create}" for r in WRITES)])


def can_write(granted: str, resource: str) -> bool:
    """Whether a granted scope string lets the app create ``resource``: v2 ``patient/Observation.c`` (or
    ``.cruds``, ``patient/*.c``...), v1 ``patient/Observation.write`` or ``.*``; ``user/`` scopes too."""
    for scope in granted.split():
        context, _, rest = scope.partition("/")
        kind, _, perm = rest.partition("?")[0].partition(".")
        if context not in ("patient", "user") or kind not in (resource, "*"):
            continue
        if perm in ("write", "*") or (_V2_PERMS.fullmatch(perm) and "c" in perm):
            return True
    return False


def client(client_id: str, client_secret: str | None, redirect_uri: str, scope: str | None = None) -> OAuth2Session:
    session = OAuth2Session(client_id, client_secret, scope=scope, redirect_uri=redirect_uri,
                            code_challenge_method="S256",
                            token_endpoint_auth_method="client_secret_basic" if client_secret else "none",
                            default_timeout=TIMEOUT)
    session.trust_env = False    # no proxy from the environment between us and the EHR
    return session


def authorization_url(oauth: OAuth2Session, ep: Endpoints, iss: str, launch: str | None) -> tuple[str, str, str]:
    """(url, state, code_verifier) for the browser's redirect to the EHR's authorization endpoint."""
    verifier = generate_token(64)
    state = generate_token(32)
    extra = {"aud": iss}
    if launch:
        extra["launch"] = launch
    url, _ = oauth.create_authorization_url(ep.authorize, state=state, code_verifier=verifier, **extra)
    return url, state, verifier


def exchange(oauth: OAuth2Session, token_endpoint: str, code: str, verifier: str) -> dict:
    try:
        token = oauth.fetch_token(token_endpoint, grant_type="authorization_code", code=code, code_verifier=verifier)
    except OAuthError as exc:
        raise LaunchError("Sign-in failed", f"The EHR refused the authorization code ({exc.error}).", 400) from None
    except requests.RequestException:
        raise LaunchError("Sign-in failed", "The EHR's token endpoint did not answer. Try again later.", 502) from None
    except ValueError:
        raise LaunchError("Sign-in failed", "The EHR's token endpoint did not answer with a token.", 502) from None
    if not isinstance(token.get("access_token"), str) or not isinstance(token.get("patient"), str):
        raise LaunchError("No patient in context",
                          "The EHR granted access without a patient in context: open the dashboard from a "
                          "patient's chart.", 400)
    return dict(token)
