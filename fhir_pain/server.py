"""``fhir-pain serve``: the CDS Hooks service under gunicorn (gthread workers), started programmatically.

gthread because the hook path does I/O (prefetch fallback to the EHR's FHIR server, JWKS fetches): threads
keep serving while one call waits. Each worker builds its own app with ``create_app``; state shared between
workers (feedback, the JWT replay cache) lives in the store.
"""
from __future__ import annotations

import argparse
import gc
import logging
import os
import ssl
from typing import Any

import orjson
from gunicorn import util as gunicorn_util
from gunicorn.app.base import BaseApplication
from gunicorn.http import errors as http_errors
from gunicorn.workers.gthread import ThreadWorker

from cds_hooks.errors import operation_outcome

from . import logging as service_logging

log = logging.getLogger("fhir_pain.server")

# What gunicorn refuses before the application sees the request -> (status, reason, issue code, diagnostics).
# The diagnostics never quote the request: gunicorn's own messages echo the offending line or header, which can
# hold a token or a patient id.
_REFUSALS: tuple[tuple[type[BaseException], int, str, str, str], ...] = (
    (http_errors.LimitRequestLine, 414, "URI Too Long", "too-costly", "the request line (method and URL) is too long"),
    (http_errors.LimitRequestHeaders, 431, "Request Header Fields Too Large", "too-costly",
     "the request has too many header fields or one that is too large"),
    (http_errors.ExpectationFailed, 417, "Expectation Failed", "not-supported", "the Expect header is not supported"),
    # RFC 9112 suggests 501 for a transfer coding the server lacks; the request is the client's doing: a 4xx
    (http_errors.UnsupportedTransferCoding, 400, "Bad Request", "not-supported",
     "the Transfer-Encoding is not supported (only chunked)"),
    (http_errors.ForbiddenProxyRequest, 403, "Forbidden", "forbidden", "request forbidden"),
    (http_errors.InvalidResponseHeader, 500, "Internal Server Error", "exception", "internal error"),
    (http_errors.InvalidResponseHeaderName, 500, "Internal Server Error", "exception", "internal error"),
    (http_errors.ConfigurationProblem, 500, "Internal Server Error", "exception", "internal error"),
    (http_errors.ParseException, 400, "Bad Request", "invalid", "malformed HTTP request"),
    (ssl.SSLError, 400, "Bad Request", "security", "TLS error"),
)


def refusal(exc: BaseException) -> tuple[int, str, str, str]:
    """(status, reason phrase, OperationOutcome issue code, diagnostics) for an error gunicorn handles itself."""
    for cls, status, reason, code, message in _REFUSALS:
        if isinstance(exc, cls):
            if code == "invalid":  # which rule the request broke (the class name), never its content
                message = f"{message} ({type(exc).__name__})"
            return status, reason, code, message
    return 500, "Internal Server Error", "exception", "internal error"


class OperationOutcomeWorker(ThreadWorker):
    """gunicorn's gthread worker whose own error answers (an over-long request line or header, a doubled
    Content-Type, a malformed chunk...) are JSON FHIR OperationOutcomes like every answer of the application,
    instead of gunicorn's HTML page."""

    def _cors(self, req) -> str:  # noqa: ANN001
        """The CORS header the application would have sent, so that a browser client (the CDS Hooks sandbox) can
        read the refusal too: '*' when every origin is allowed, else the request's Origin when it is listed (when
        gunicorn could parse the headers at all)."""
        allowed = getattr(getattr(self, "wsgi", None), "config", {}).get("CORS_ORIGINS")
        if allowed == "*":
            return "Access-Control-Allow-Origin: *\r\n"
        origin = next((v for k, v in getattr(req, "headers", None) or () if k == "ORIGIN"), None)
        if isinstance(allowed, (list, tuple)) and origin in allowed and origin.isascii() and "\r" not in origin \
                and "\n" not in origin:
            return f"Access-Control-Allow-Origin: {origin}\r\nVary: Origin\r\n"
        return ""

    def handle_error(self, req, client, addr, exc):  # noqa: ANN001 - gunicorn's signature
        status, reason, code, message = refusal(exc)
        if status >= 500:
            self.log.exception("error handling a request")
        else:
            self.log.warning("refused a malformed request (%s %s)", status, type(exc).__name__)
        body = orjson.dumps(operation_outcome(code, message))
        head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
                f"{self._cors(req)}Content-Length: {len(body)}\r\n\r\n").encode("ascii")
        try:
            gunicorn_util.write_nonblock(client, head + body)
        except Exception:  # the client may be gone already
            self.log.debug("failed to send an error answer")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    parser.add_argument("--auth", choices=("required", "off"), default=None,
                        help="JWT verification of CDS Clients (default: required, or FHIR_PAIN_AUTH); "
                             "'off' is for local development only")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker (default 8)")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))


class _Gunicorn(BaseApplication):
    def __init__(self, options: dict[str, Any], app_config: dict[str, Any]):
        self.options = options
        self.app_config = app_config
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):  # noqa: ANN201 - called in each worker after the fork
        from .app import create_app
        app = create_app(dict(self.app_config))
        settle_heap()
        return app


YOUNG_GC_THRESHOLD = 5000


def settle_heap() -> None:
    """Once per worker, after the app is built: the modules, the app and what it loaded live as long as the
    process, so they are moved out of the cyclic collector's reach (gc.freeze). Otherwise every full collection,
    which the garbage of a few calls triggers, walks those ~85,000 objects again (about 0.3 ms per call, measured
    on order-sign). Garbage made before is collected first, so nothing unreachable is kept for good."""
    gc.collect()
    gc.freeze()
    # A call allocates a few thousand containers (the parsed request, the facts, the cards) and frees nearly all of
    # them by reference counting. At the default threshold (700) the young generation is collected several times
    # per call, each time walking the call's still-live objects; at 5,000 about once (order-sign: 1.4 % fewer
    # instructions per call, callgrind). The cycles a call leaves wait a little longer for the same collection.
    gc.set_threshold(YOUNG_GC_THRESHOLD, *gc.get_threshold()[1:])


def gunicorn_options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "bind": f"{args.host}:{args.port}",
        "worker_class": f"{__name__}.OperationOutcomeWorker",   # gthread, with JSON error answers
        "workers": max(1, args.workers),
        "threads": max(1, args.threads),
        "timeout": 30,
        "graceful_timeout": 10,
        "accesslog": None,  # cds_hooks.access logs one structured line per call instead
        "errorlog": "-",
        "loglevel": args.log_level,
        "proc_name": "fhir-pain",
        # gunicorn's control socket has one default path per user: a second instance (tests, make run) would
        # fight over it, and nothing here uses it
        "control_socket_disable": True,
    }


def run(args: argparse.Namespace) -> int:
    service_logging.configure(args.log_level.upper())
    app_config: dict[str, Any] = {}
    if args.auth is not None:
        app_config["AUTH"] = args.auth
    auth = app_config.get("AUTH") or os.environ.get("FHIR_PAIN_AUTH", "required")
    if auth == "off":
        log.warning("starting with --auth off: JWTs are not checked and anyone who can reach %s:%s can call "
                    "the service. Local development only.", args.host, args.port)
    # build the app once before forking: a bad configuration fails here with its message, not as a loop of
    # workers that cannot boot
    from .app import create_app
    try:
        probe = create_app(dict(app_config))
    except ValueError as exc:
        log.error("configuration error: %s", exc)
        return 2
    probe.extensions["fhir_pain.store"].dispose()
    _Gunicorn(gunicorn_options(args), app_config).run()
    return 0
