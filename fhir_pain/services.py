"""The three clinical CDS services and the ``fhir-pain evaluate`` subcommand.

  pain-pgx-patient-view  (patient-view)  PGx summary, pain profile, alerts for active medications
  pain-pgx-order-select  (order-select)  advice on the selected draft orders
  pain-pgx-order-sign    (order-sign)    advice on every draft order

Each handler is the same three steps: gather (HookRequest -> PatientData), evaluate (-> findings, the same
function the poller uses), render (-> cards). ``create_app`` calls :func:`register_all`.

Configuration read here (besides fhir_pain.config's keys): ``NOW``, an ISO 8601 date-time that replaces the
clock, for reproducible evaluation (golden tests, ``fhir-pain evaluate --now``). Never set it in production.
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from cds_hooks import CDSResponse, HookRequest, Service, ServiceRegistry
from fhir_pain.cards import render, with_dashboard_link
from fhir_pain.evaluate import evaluate
from fhir_pain.gather import (OPIOID_TESTS, CONDITIONS, HISTORY_STATUSES, MEDICATION_HISTORY, MEDICATIONS, PAIN, PATIENT, PGX,
                              PGX_CODES, PROCEDURES, SAFETY_OBSERVATIONS, gather)
from fhir_pain.pgx import guidance
from fhir_pain.profiles import load
from fhir_pain.rules.knowledge import card_conventions
from fhir_pain.rules.fda_limits import observation_codes

SERVICE_IDS = {
    "patient-view": "pain-pgx-patient-view",
    "order-select": "pain-pgx-order-select",
    "order-sign": "pain-pgx-order-sign",
}

# Without the patient there is no one to advise, and a card saying "nothing could be read" is not advice: the
# call gets 412 (CDS Hooks 2.0.1 §Prefetch) naming the key. The PGx results stay optional: their absence has a
# card of its own ("check not done"), which a 412 would hide from the prescriber. Everything else only narrows
# the advice, and the cards say what was missing.
REQUIRED_PREFETCH = frozenset({PATIENT})

USAGE = ("Works with the prefetch alone or, when the EHR grants FHIR access, fetches what is missing. The patient "
         "key is required: if neither the prefetch nor the FHIR server gives it, the answer is 412. When other "
         "data cannot be had, cards still come and say what was missing. PGx results are read as Genomics "
         "Reporting IG Observations (LOINC 84413-4, 53040-2, therapeutic-implication).")

DESCRIPTIONS = {
    "patient-view": ("Pain PGx summary",
                     "Pharmacogenomic summary for pain medicines (CPIC), the patient's pain profile (mechanism, "
                     "psychosocial modulators, treatment response) and alerts for active medications that "
                     "conflict with the genotype."),
    "order-select": ("Pain PGx advice on selected orders",
                     "CPIC drug-gene advice and phenotype-aware pain prescribing advice for the selected draft "
                     "medication orders, with phenoconversion from active medications."),
    "order-sign": ("Pain PGx check before signing",
                   "CPIC drug-gene advice, pre-test alerts and phenotype-aware pain prescribing advice for every "
                   "draft medication order, with phenoconversion from active medications."),
}


def pain_codes() -> tuple[str, ...]:
    """Instrument and biomarker codes of the pain engine (totals and panels), and the items that raise a flag on
    their own (PHQ-9 item 9, 44260-8: sent as a standalone Observation it must still reach the safety alert).
    Other item-only Observations are not fetched by this template, to keep the URL short."""
    out: list[str] = []
    for inst in load("pain/instruments.json")["instruments"].values():
        for c in (*inst.get("codes", ()), *inst.get("items", {}).get("flags", {})):
            code = c.rsplit("|", 1)[-1]
            if code not in out:
                out.append(code)
    return tuple(out)


def prefetch_templates() -> dict[str, str]:
    patient = "{{context.patientId}}"
    return {
        PATIENT: f"Patient/{patient}",
        PGX: f"Observation?patient={patient}&code=" + ",".join(PGX_CODES),
        PAIN: f"Observation?patient={patient}&code=" + ",".join(pain_codes()),
        CONDITIONS: f"Condition?patient={patient}",
        MEDICATIONS: f"MedicationRequest?patient={patient}&status=active",
        # Earlier requests let the pain engine link a renewal to the trial it continues (treatment response);
        # a key of its own, so that an EHR that cannot fill it costs only that.
        MEDICATION_HISTORY: f"MedicationRequest?patient={patient}&status=" + ",".join(HISTORY_STATUSES),
        # The FDA limits of codeine and tramadol: tonsillectomy/adenoidectomy, BMI, breastfeeding status
        PROCEDURES: f"Procedure?patient={patient}",
        SAFETY_OBSERVATIONS: f"Observation?patient={patient}&code=" + ",".join(observation_codes()),
        # Opioid safety: urine drug tests (the CDC value set has 1669 LOINC codes, too many for a URL)
        OPIOID_TESTS: f"Observation?patient={patient}&category=laboratory",
    }


def clock_from(config: dict[str, Any] | None) -> Callable[[], datetime]:
    fixed = (config or {}).get("NOW")
    if fixed:
        when = fixed if isinstance(fixed, datetime) else datetime.fromisoformat(str(fixed).replace("Z", "+00:00"))
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return lambda: when
    return lambda: datetime.now(timezone.utc)


def handler_for(hook: str, clock: Callable[[], datetime],
                guidelines: str = "cpic", dashboard_url: str | None = None) -> Callable[[HookRequest], CDSResponse]:
    def handle(request: HookRequest) -> CDSResponse:
        data = gather(request, now=clock())
        cards = render(evaluate(data, hook, guidelines), data)
        if dashboard_url and hook == "patient-view":   # DASHBOARD_LAUNCH_URL: the summaries open the dashboard
            cards = with_dashboard_link(cards, dashboard_url, card_conventions()["findingsExtension"])
        return CDSResponse(cards=tuple(cards))
    handle.__name__ = f"handle_{hook.replace('-', '_')}"
    return handle


def dashboard_usage(launch_url: str) -> str:
    """What discovery tells an EHR about the SMART app the patient-view cards open (README: 'The dashboard')."""
    from fhir_pain.dashboard.smart import scopes   # late: the dashboard reads through these services

    base = launch_url.rsplit("/launch", 1)[0]
    return (f" The patient-view summary cards link to a SMART on FHIR app (SMART App Launch 2, EHR launch, public "
            f"client with PKCE): register it with launch URL {launch_url}, redirect URI {base}/callback and scopes "
            f"'{scopes(True, ehr_launch=True)}' (SMART v1: .read and .write).")


def build_services(config: dict[str, Any] | None = None) -> list[Service]:
    clock = clock_from(config)
    guidelines = guidance.check((config or {}).get("GUIDELINES", guidance.DEFAULT))
    templates = prefetch_templates()
    launch_url = (config or {}).get("DASHBOARD_LAUNCH_URL")
    usage = USAGE + dashboard_usage(launch_url) if launch_url else USAGE
    return [Service(id=SERVICE_IDS[hook], hook=hook, title=DESCRIPTIONS[hook][0], description=DESCRIPTIONS[hook][1],
                    handler=handler_for(hook, clock, guidelines, launch_url), prefetch=templates,
                    required_prefetch=REQUIRED_PREFETCH, usage_requirements=usage)
            for hook in SERVICE_IDS]


def register_all(registry: ServiceRegistry, config: dict[str, Any] | None = None) -> None:
    for service in build_services(config):
        registry.register(service)


# ---- fhir-pain evaluate ----------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("request", help="a CDS Hooks request JSON file ('-' for stdin)")
    parser.add_argument("--service", help="service id (default: the service for the request's hook)")
    parser.add_argument("--now", help="evaluate as of this ISO 8601 date-time (default: now)")


def run(args: argparse.Namespace) -> int:
    """Run one request through the real app (same validation as over HTTP), offline; print the response JSON."""
    from fhir_pain.app import create_app

    try:
        body = sys.stdin.buffer.read() if args.request == "-" else Path(args.request).read_bytes()
    except OSError as exc:
        print(f"fhir-pain evaluate: cannot read {args.request}: {exc.strerror}", file=sys.stderr)
        return 2
    service_id = args.service
    if not service_id:
        try:
            hook = orjson.loads(body).get("hook")
        except (orjson.JSONDecodeError, AttributeError):
            hook = None
        service_id = SERVICE_IDS.get(hook) if isinstance(hook, str) else None
        if service_id is None:
            print("fhir-pain evaluate: cannot tell the service from the request's hook; use --service",
                  file=sys.stderr)
            return 2
    if args.now:
        try:
            clock_from({"NOW": args.now})
        except ValueError:
            print(f"fhir-pain evaluate: --now is not an ISO 8601 date-time: {args.now}", file=sys.stderr)
            return 2
    logging.getLogger("fhir_pain.app").setLevel(logging.ERROR)  # the "AUTH is off" warning is expected here
    try:
        app = create_app({"AUTH": "off", "DATABASE_URL": "sqlite://", "FHIR_SERVER_ALLOWLIST": [],
                          "NOW": args.now})
    except ValueError as exc:   # a bad setting from the environment (FHIR_PAIN_GUIDELINES=...): say which
        print(f"fhir-pain evaluate: {exc}", file=sys.stderr)
        return 2
    response = app.test_client().post(f"/cds-services/{service_id}", data=body,
                                      headers={"Content-Type": "application/json"})
    sys.stdout.write(orjson.dumps(response.get_json(silent=True), option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0 if response.status_code == 200 else 1
