"""The application factory: ``create_app(config) -> Flask``.

Builds everything a running service needs and hands it over explicitly (no module-level clients or state):
the store, the JWT verifier with its trusted issuers and shared replay cache, the prefetch fetch policy, the
service registry (``app.extensions["cds_hooks"].registry``) and the clinical services.
"""
from __future__ import annotations

import importlib
import json
import logging
import os
from importlib import resources
from typing import Any

from flask import Flask

from cds_hooks import ServiceRegistry
from cds_hooks.auth import JWTVerifier, TrustedIssuer
from cds_hooks.endpoints import CDSHooks
from cds_hooks.fhir_client import is_tls_or_loopback
from cds_hooks.prefetch import FetchPolicy

from . import config as config_mod
from .store import Store

log = logging.getLogger("fhir_pain.app")

CLINICAL_SERVICES_MODULE = "fhir_pain.services"


def sandbox_issuer() -> dict[str, Any]:
    """The CDS Hooks Sandbox as a trusted issuer, with its public keys shipped in cds_hooks/data."""
    text = resources.files("cds_hooks").joinpath("data/sandbox-jwks.json").read_text(encoding="utf-8")
    return {"iss": config_mod.SANDBOX_ISSUER, "jku": [config_mod.SANDBOX_JKU], "jwks": json.loads(text)}


def _verifier(cfg: dict[str, Any], store: Store) -> JWTVerifier | None:
    if cfg["AUTH"] == "off":
        log.warning("AUTH is off: every caller is trusted. Local development only; never expose this service.")
        return None
    entries = list(cfg["TRUSTED_ISSUERS"])
    if cfg["TRUST_SANDBOX_ISSUER"]:
        log.warning("trusting %s: its private key is public, so anyone can sign as it. Local testing only.",
                    config_mod.SANDBOX_ISSUER)
        entries.append(sandbox_issuer())
    if not entries:
        log.warning("AUTH is required but no TRUSTED_ISSUERS are configured: every service call will get 401")
    if not cfg["PUBLIC_BASE_URL"]:
        log.warning("PUBLIC_BASE_URL is unset: only calls to a loopback host (localhost, 127.0.0.1, [::1]) can "
                    "authenticate; set it to the URL EHRs call")
    return JWTVerifier([TrustedIssuer.from_config(e) for e in entries], replay_cache=store,
                       leeway_s=cfg["JWT_LEEWAY_S"], max_lifetime_s=cfg["JWT_MAX_LIFETIME_S"],
                       jwks_timeout_s=cfg["JWKS_TIMEOUT_S"])


def _register_clinical_services(registry: ServiceRegistry, cfg: dict[str, Any]) -> None:
    try:
        services = importlib.import_module(CLINICAL_SERVICES_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != CLINICAL_SERVICES_MODULE:  # a missing dependency *inside* it is a real error
            raise
        log.warning("%s is not available: no clinical services registered", CLINICAL_SERVICES_MODULE)
        return
    services.register_all(registry, cfg)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    cfg = config_mod.load(config)
    app = Flask("fhir_pain")
    app.config.update(cfg)
    app.config["MAX_CONTENT_LENGTH"] = int(cfg["MAX_CONTENT_LENGTH"])
    app.json.sort_keys = False

    url = cfg["DATABASE_URL"]
    if not url:
        os.makedirs(app.instance_path, exist_ok=True)
        url = config_mod.default_database_url(app.instance_path)
    store = Store(url)
    app.extensions["fhir_pain.store"] = store

    for base in cfg["FHIR_SERVER_ALLOWLIST"]:
        if not is_tls_or_loopback(base):
            log.warning("FHIR_SERVER_ALLOWLIST has plain-http %s: EHR access tokens would cross the network "
                        "unencrypted (CDS Hooks requires https). Testing only.", base)
    registry = ServiceRegistry()
    policy = FetchPolicy(allowed_bases=tuple(cfg["FHIR_SERVER_ALLOWLIST"]),
                         timeout=config_mod.timeout_pair(cfg["FHIR_TIMEOUT_S"]),
                         deadline_s=float(cfg["FHIR_DEADLINE_S"]), max_pages=int(cfg["FHIR_MAX_PAGES"]),
                         max_response_bytes=int(cfg["FHIR_MAX_RESPONSE_BYTES"]))
    CDSHooks(app, registry=registry, verifier=_verifier(cfg, store), fetch_policy=policy,
             feedback_sink=store.save_feedback, public_base_url=cfg["PUBLIC_BASE_URL"],
             validate_responses=bool(cfg["VALIDATE_RESPONSES"]), health_check=store.ping,
             cors_origins=cfg["CORS_ORIGINS"], title="fhir-pain CDS Hooks service", version=_version())
    if cfg["REGISTER_CLINICAL_SERVICES"]:
        _register_clinical_services(registry, cfg)
        # the dashboard reads through the patient-view service's prefetch: it comes with the clinical services
        from fhir_pain import dashboard
        dashboard.register(app, cfg)
    # patient-reported outcomes: /pro (Questionnaires, $extract, the fill page)
    from .pro.views import register as register_pro
    register_pro(app)
    # Subscriptions: the rest-hook receiver answers only the keys `fhir-pain subscribe` registered
    from .subscriptions import receiver as subscriptions_receiver
    subscriptions_receiver.init_app(app, store)
    return app


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("fhir-pain")
    except Exception:  # not installed (running from a bare checkout)
        return "0.0.0"
