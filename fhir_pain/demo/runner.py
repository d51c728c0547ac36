"""Run demo scenarios through the real app, in-process, over the same HTTP path an EHR uses.

``create_app(...).test_client()``: discovery, then one POST per scenario with the request an EHR would send.
Nothing listens on a port and nothing is written outside memory. The services' clock is pinned (config ``NOW``)
to the demo now moved to the run day, the same day the data's dates are moved to: the answers are reproducible.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

import orjson

from fhir_pain.demo import catalog
from fhir_pain.demo.hook_requests import build_request

FINDINGS_EXTENSION = "io.fhir-pain.findings"
# auth off: in-process only, no network; feedback store in memory so a demo run leaves no file behind
DEMO_CONFIG = {"AUTH": "off", "REGISTER_CLINICAL_SERVICES": True, "DATABASE_URL": "sqlite://"}


@dataclass
class ScenarioResult:
    scenario: catalog.Scenario
    patient_name: str
    service_id: str | None = None
    status: int | None = None
    cards: list[dict] = field(default_factory=list)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None

    def to_dict(self) -> dict:
        order = self.scenario.order
        return {
            "scenario": self.scenario.name,
            "patient": self.scenario.patient_id,
            "name": self.patient_name,
            "hook": self.scenario.hook,
            "service": self.service_id,
            "order": {"rxnorm": order.rxnorm, "display": order.display} if order else None,
            "point": self.scenario.point,
            "status": self.status,
            "cards": self.cards,
            "warnings": self.warnings,
            "error": self.error,
        }


def card_rules(card: dict) -> list[str]:
    """The rule ids in a card's findings extension."""
    findings = (card.get("extension") or {}).get(FINDINGS_EXTENSION) or []
    return [f["rule"] for f in findings if isinstance(f, dict) and isinstance(f.get("rule"), str)]


def make_app(config: dict | None = None):
    from fhir_pain.app import create_app  # imported late: the app pulls in every service module

    return create_app({**DEMO_CONFIG, **(config or {})})


def discover(client) -> list[dict]:
    response = client.get("/cds-services")
    if response.status_code != 200:
        raise RuntimeError(f"discovery answered {response.status_code}")
    return response.get_json().get("services", [])


def run_scenarios(scenarios: Iterable[catalog.Scenario] | None = None, *, app=None,
                  today: date | None = None) -> list[ScenarioResult]:
    """Every scenario (or the given ones) through the app; one result each, in the order given.

    ``today``: the day the data is moved to (default: today, UTC); a given ``app`` should pin its clock to
    ``catalog.now_on(today)``."""
    app = app or make_app({"NOW": catalog.now_on(today).isoformat()})
    client = app.test_client()
    services = discover(client)
    if not services:
        raise RuntimeError("discovery lists no services: the clinical services are not available in this build")
    names = {p.id: p.name() for p in catalog.patients()}
    results = []
    for scenario in scenarios if scenarios is not None else catalog.scenarios():
        result = ScenarioResult(scenario=scenario, patient_name=names[scenario.patient_id])
        try:
            built = build_request(scenario, services, today=today)
        except (LookupError, ValueError) as exc:
            result.error = str(exc)
            results.append(result)
            continue
        result.service_id, result.warnings = built.service_id, built.warnings
        response = client.post(f"/cds-services/{built.service_id}", data=orjson.dumps(built.body),
                               content_type="application/json")
        result.status = response.status_code
        body = response.get_json(silent=True) or {}
        if response.status_code == 200:
            result.cards = body.get("cards") or []
        else:
            issues = body.get("issue") or [{}]
            result.error = issues[0].get("diagnostics") or f"HTTP {response.status_code}"
        results.append(result)
    return results
