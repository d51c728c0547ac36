"""``fhir-pain serve``: the CDS Hooks service under gunicorn (gthread workers), started programmatically.

gthread because the hook path does I/O (prefetch fallback to the EHR's FHIR server, JWKS fetches): threads
keep serving while one call waits. Each worker builds its own app with ``create_app``; state shared between
workers (feedback, the JWT replay cache) lives in the store.
"""
from __future__ import annotations

import argparse
import logging
import os
from typing import Any

from gunicorn.app.base import BaseApplication

from . import logging as service_logging

log = logging.getLogger("fhir_pain.server")


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
        return create_app(dict(self.app_config))


def gunicorn_options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "bind": f"{args.host}:{args.port}",
        "worker_class": "gthread",
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
