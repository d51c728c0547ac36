"""The CDS Hooks HTTP layer on Flask: endpoints, the one error handler, CORS and the per-call log line.

``CDSHooks(app, registry=..., verifier=..., ...)`` installs everything on an app that an application factory
has built; the object is then ``app.extensions["cds_hooks"]``. Nothing here is global: each app has its own
registry, verifier, fetch policy and executor.

Order of checks for a service call: JWT (401) -> content type (415) -> size (413) -> service (404) -> JSON and
schema (400) -> hook (400) -> prefetch (412) -> handler (200, or 500 with a log line). An unauthenticated caller
learns nothing about services or payloads.
"""
from __future__ import annotations

import logging
import re
import time
import traceback
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from typing import Any

import orjson
from flask import Blueprint, Flask, Response, current_app, g, request
from flask_cors import CORS
from werkzeug.exceptions import HTTPException

from . import openapi, schemas
from .auth import JWTVerifier
from .cards import CDSResponse
from .errors import (HTTP_ISSUE_CODES, BadRequest, CDSError, PayloadTooLarge, Unauthorized,
                     UnsupportedMediaType, operation_outcome)
from .fhir_client import LOOPBACK_HOSTS
from .prefetch import FetchPolicy, resolve
from .registry import ServiceRegistry
from .request import HookRequest

access_log = logging.getLogger("cds_hooks.access")
error_log = logging.getLogger("cds_hooks.error")

# service_id, feedback entries, verified issuer (None with auth off), tenant claim
FeedbackSink = Callable[[str, list, "str | None", "str | None"], Any]

# Counts no honest client comes near, checked before the schema: validating tens of thousands of prefetch keys
# or feedback entries (a 10 MB body holds that many) takes seconds of CPU. A client sends only the prefetch keys
# a service declares (a few), and feedback on the cards a user acted on.
MAX_PREFETCH_KEYS = 100
MAX_FEEDBACK_ENTRIES = 1000
# Nesting no honest body comes near (a CDS Hooks request with prefetched FHIR is about 15 deep), refused before
# validation: a recursive validator, or any reader, would overflow Python's stack on a few hundred levels, and
# orjson alone accepts 1024.
MAX_JSON_DEPTH = 64


def _is_loopback(host: str) -> bool:
    """Whether a Host header value (``name``, ``name:port``, ``[::1]:port``) names this machine's loopback."""
    name = host.lower()
    name = name[1:name.find("]")] if name.startswith("[") else name.rsplit(":", 1)[0]
    return name in LOOPBACK_HOSTS


_NOT_STRUCTURE = bytes(range(256)).translate(None, b'[]{}"')   # delete all but brackets and quotes
_STRING = re.compile(rb'"[^"]*"')
# valid JSON closes each bracket with its own kind, so both kinds can be one: a pass then needs a single replace
_ONE_KIND = bytes.maketrans(b"[]", b"{}")


def deeper_than(data: bytes, limit: int) -> bool:
    """Whether a valid JSON text nests arrays and objects more than ``limit`` levels deep.

    Read from the text, not the parsed value: walking the parsed value visits every leaf in Python (~0.3 ms for
    a 60 kB request, as much as parsing it); these are a few passes of C over the bytes, the first over the whole
    text and the rest over its brackets alone. The text must be valid JSON (orjson has parsed it): escapes are then
    only inside strings, and strings are then ``"[^"]*"``."""
    if b"\\" in data:      # drop escaped backslashes, then escaped quotes: left to right, as JSON pairs them
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    skeleton = data.translate(None, _NOT_STRUCTURE)
    if len(skeleton) <= limit:      # fewer brackets and quotes than levels: nothing to count (most small bodies)
        return False
    skeleton = _STRING.sub(b"", skeleton.replace(b'""', b"")).translate(_ONE_KIND)
    for _ in range(limit):
        # bytes.replace scans the text as it was: it drops exactly the innermost pairs, and a pair that the removal
        # uncovers ("{{}}" -> "{}") waits for the next pass, so each pass is one level
        skeleton = skeleton.replace(b"{}", b"")
        if not skeleton:
            return False
    return bool(skeleton)    # brackets left after ``limit`` levels (limit 0: any at all)


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status=status, headers=dict(headers or {}), mimetype="application/json")


class CollapseSlashes:
    """WSGI middleware: ``/cds-services//id`` -> ``/cds-services/id``.

    The CDS Hooks Sandbox produces ``//`` when its discovery URL ends with a slash; a redirect would break the
    browser's CORS preflight. The path as called is kept for the JWT ``aud`` check (the client signs it)."""

    def __init__(self, wsgi_app: Callable) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict, start_response: Callable) -> Any:
        path = environ.get("PATH_INFO", "")
        environ["cds_hooks.path_as_called"] = path
        if "//" in path:
            while "//" in path:
                path = path.replace("//", "/")
            environ["PATH_INFO"] = path
        return self.wsgi_app(environ, start_response)


class CDSHooks:
    def __init__(self, app: Flask | None = None, *, registry: ServiceRegistry | None = None,
                 verifier: JWTVerifier | None = None, fetch_policy: FetchPolicy | None = None,
                 feedback_sink: FeedbackSink | None = None, public_base_url: str | None = None,
                 executor: Executor | None = None, validate_responses: bool = False,
                 health_check: Callable[[], bool] | None = None, cors_origins: str | list[str] = "*",
                 title: str = "CDS Hooks service", version: str = "1.0.0"):
        self.registry = registry if registry is not None else ServiceRegistry()
        self.verifier = verifier  # None: auth off (local development only)
        self.fetch_policy = fetch_policy or FetchPolicy()
        self.feedback_sink = feedback_sink
        self.public_base_url = public_base_url.rstrip("/") if public_base_url else None
        self.executor = executor  # None: each call fetches in threads of its own (see cds_hooks.prefetch)
        self.validate_responses = validate_responses
        self.health_check = health_check
        self.cors_origins = cors_origins
        self.title, self.version = title, version
        if app is not None:
            self.init_app(app)

    # -- installation -------------------------------------------------------------------------------------------
    def init_app(self, app: Flask) -> None:
        app.extensions["cds_hooks"] = self
        app.wsgi_app = CollapseSlashes(app.wsgi_app)
        app.register_blueprint(self._blueprint())
        # the browser needs these on every response, errors included; preflight never reaches a view (no JWT)
        CORS(app, origins=self.cors_origins, methods=["GET", "POST", "OPTIONS"],
             allow_headers=["Authorization", "Content-Type", "Accept"], max_age=600)
        app.register_error_handler(Exception, self._handle_error)
        app.before_request(self._start_call)
        app.after_request(self._log_call)

    def _blueprint(self) -> Blueprint:
        bp = Blueprint("cds_hooks", __name__)
        bp.add_url_rule("/cds-services", "discovery", self.discovery, methods=["GET"], strict_slashes=False)
        bp.add_url_rule("/cds-services/<service_id>", "call", self.call, methods=["POST"], strict_slashes=False)
        bp.add_url_rule("/cds-services/<service_id>/feedback", "feedback", self.feedback, methods=["POST"],
                        strict_slashes=False)
        bp.add_url_rule("/healthz", "health", self.health, methods=["GET"])
        bp.add_url_rule("/openapi.json", "openapi", self.openapi, methods=["GET"])
        return bp

    # -- views --------------------------------------------------------------------------------------------------
    def discovery(self) -> Response:
        # Discovery is public: it carries no patient data, and an EHR (or a health probe) reads it before any
        # trust is set up. Service calls and feedback require the JWT.
        return json_response(self.registry.discovery())

    def call(self, service_id: str) -> Response:
        g.cds_service = service_id[:128]
        claims = self._authenticate()
        body = self._json_body()
        service = self.registry.get(service_id)
        prefetch = body.get("prefetch") if isinstance(body, dict) else None
        if isinstance(prefetch, dict) and len(prefetch) > MAX_PREFETCH_KEYS:
            raise PayloadTooLarge(f"at most {MAX_PREFETCH_KEYS} prefetch keys per call", expression="prefetch")
        self._validate("request", body)
        g.hook_instance = body["hookInstance"][:64]
        if body["hook"] != service.hook:
            raise BadRequest(f"service {service.id} answers hook {service.hook!r}, not {body['hook']!r}",
                             expression="hook")
        prefetch, missing = resolve(service, body, self.fetch_policy, self.executor)
        g.missing = len(missing)
        hook_request = HookRequest(
            hook=body["hook"], hook_instance=body["hookInstance"], service_id=service.id,
            context=body["context"], prefetch=prefetch, missing=missing, fhir_server=body.get("fhirServer"),
            raw=body, issuer=claims.get("iss"), tenant=claims.get("tenant"))
        result = CDSResponse.of(service.handler(hook_request)).to_dict()
        if self.validate_responses:
            error = schemas.first_error("response", result)
            if error:
                raise RuntimeError(f"service {service.id} produced an invalid response at {error[0]}")
        g.cards = len(result["cards"])
        return json_response(result)

    def feedback(self, service_id: str) -> Response:
        g.cds_service = service_id[:128]
        claims = self._authenticate()
        body = self._json_body()
        self.registry.get(service_id)
        entries = body.get("feedback") if isinstance(body, dict) else None
        if isinstance(entries, list) and len(entries) > MAX_FEEDBACK_ENTRIES:
            raise PayloadTooLarge(f"at most {MAX_FEEDBACK_ENTRIES} feedback entries per call",
                                  expression="feedback")
        self._validate("feedback", body)
        if self.feedback_sink is not None:
            self.feedback_sink(service_id, entries, claims.get("iss"), claims.get("tenant"))
        g.feedback = len(entries)
        return json_response({"stored": len(entries) if self.feedback_sink is not None else 0})

    def health(self) -> Response:
        ok = True
        if self.health_check is not None:
            try:
                ok = bool(self.health_check())
            except Exception:  # a probe reports, it does not crash
                error_log.warning("health check raised", exc_info=False)
                ok = False
        return json_response({"status": "pass" if ok else "fail"}, 200 if ok else 503)

    def openapi(self) -> Response:
        return json_response(openapi.build(self.registry, auth=self.verifier is not None, title=self.title,
                                           version=self.version))

    # -- request helpers ----------------------------------------------------------------------------------------
    def audience(self) -> str:
        """The URL the client called, as it must appear in the JWT's ``aud``: PUBLIC_BASE_URL, then the path
        exactly as called.

        Without PUBLIC_BASE_URL the request's own scheme and host are used, but only for a loopback host (local
        development, the sandbox on 127.0.0.1): the Host header is the caller's to choose, and a token that an
        EHR signed for *another* CDS service (aud ``https://other.example/cds-services/x``) would otherwise be
        accepted here when replayed with ``Host: other.example``."""
        path = request.environ.get("cds_hooks.path_as_called") or request.path
        if self.public_base_url:
            return self.public_base_url + path
        if not _is_loopback(request.host):
            raise Unauthorized("public-base-url-unset")
        return request.host_url.rstrip("/") + request.script_root + path

    def _authenticate(self) -> dict[str, Any]:
        if self.verifier is None:
            return {}
        claims = self.verifier.verify(request.headers.get("Authorization"), self.audience())
        g.iss, g.jti = claims.get("iss"), claims.get("jti")
        return claims

    def _json_body(self) -> Any:
        mimetype = request.mimetype or ""
        if not (mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))):
            raise UnsupportedMediaType("the body must be JSON (Content-Type: application/json)")
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        if limit is not None and request.content_length is not None and request.content_length > limit:
            raise PayloadTooLarge(f"the body is larger than {limit} bytes")
        try:
            data = request.get_data(cache=False)
        except HTTPException:
            raise
        except Exception:  # the server could not read it (a malformed chunk, a client gone): the client's fault
            raise BadRequest("the body could not be read") from None
        if limit is not None and request.content_length is None and len(data) >= limit:
            # a chunked body is cut at the limit by werkzeug, silently: refuse it rather than parse a prefix
            raise PayloadTooLarge(f"the body is larger than {limit} bytes")
        try:
            body = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise BadRequest("the body is not valid JSON") from None
        if deeper_than(data, MAX_JSON_DEPTH):
            raise BadRequest(f"the body nests arrays or objects more than {MAX_JSON_DEPTH} levels deep")
        return body

    @staticmethod
    def _validate(schema: str, body: Any) -> None:
        error = schemas.first_error(schema, body)
        if error:
            path, message = error
            raise BadRequest(f"{path}: {message}", expression=None if path == "(root)" else path)

    # -- the one error handler ----------------------------------------------------------------------------------
    def _handle_error(self, exc: Exception) -> Response:
        if isinstance(exc, CDSError):
            if exc.status == 401:
                g.auth_failure = getattr(exc, "reason", "unauthorized")
                return json_response(exc.outcome(), 401, {"WWW-Authenticate": "Bearer"})
            return json_response(exc.outcome(), exc.status)
        if isinstance(exc, HTTPException) and exc.code is not None:
            headers = {k: v for k, v in exc.get_headers() if k.lower() in ("allow", "retry-after")}
            code = HTTP_ISSUE_CODES.get(exc.code, "exception" if exc.code >= 500 else "invalid")
            return json_response(operation_outcome(code, exc.name), exc.code, headers)
        # a bug: full detail to the log (exception type and frames, not its message: it may hold data),
        # a bare OperationOutcome to the caller
        frames = "".join(traceback.format_tb(exc.__traceback__))
        error_log.error("unhandled %s in %s\n%s", type(exc).__name__, request.path, frames)
        return json_response(operation_outcome("exception", "internal error"), 500)

    # -- one structured log line per call -----------------------------------------------------------------------
    @staticmethod
    def _start_call() -> None:
        g.cds_started = time.perf_counter()

    @staticmethod
    def _log_call(response: Response) -> Response:
        if not access_log.isEnabledFor(logging.INFO):   # nobody reads it: no line to build
            return response
        call = g._get_current_object()  # once, not through the proxy for each of its fields
        started = call.get("cds_started")
        line = {
            "event": "cds_call", "method": request.method, "endpoint": request.endpoint,
            "service": call.get("cds_service"), "hookInstance": call.get("hook_instance"),
            "status": response.status_code,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2) if started else None,
            "cards": call.get("cards"), "missing": call.get("missing"), "feedback": call.get("feedback"),
            "iss": call.get("iss"), "jti": call.get("jti"), "auth_failure": call.get("auth_failure"),
        }
        access_log.info(orjson.dumps({k: v for k, v in line.items() if v is not None}).decode())
        return response
