"""Build the CDS Hooks request an EHR would send for one demo scenario.

patient Bundle + hook + draft order  ->  {"hook", "hookInstance", "context", "prefetch"}

Prefetch is filled exactly as the service's discovery entry asks: each template is rendered with the protocol
layer's own renderer and answered from the patient's resources, so the demo exercises the same prefetch the
services declare to real EHRs (a template the services change is picked up here without a code change).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

from cds_hooks.templates import UnfillableToken, render

from fhir_pain.demo import catalog
from fhir_pain.demo.bundle_search import UnsupportedQuery, search

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
DEMO_USER = "Practitioner/demo-clinician"
# the fixed service ids (architecture "Fixed contracts"); discovery is still consulted for the templates
SERVICE_FOR_HOOK = {
    "patient-view": "pain-pgx-patient-view",
    "order-select": "pain-pgx-order-select",
    "order-sign": "pain-pgx-order-sign",
}


@dataclass
class BuiltRequest:
    scenario: catalog.Scenario
    service_id: str
    body: dict
    warnings: list[str] = field(default_factory=list)   # prefetch keys left out, and why


def draft_order(scenario: catalog.Scenario, authored_on: date) -> dict:
    """The draft MedicationRequest the clinician is writing (valid R4; no id collision with stored data)."""
    order = scenario.order
    if order is None:
        raise ValueError(f"scenario {scenario.name} has no order")
    return {
        "resourceType": "MedicationRequest",
        "id": f"draft-{scenario.name}",
        "status": "draft",
        "intent": "order",
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category", "code": "community"}]}],
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": order.rxnorm, "display": order.display}],
            "text": order.display,
        },
        "subject": {"reference": f"Patient/{scenario.patient_id}"},
        "authoredOn": authored_on.isoformat(),
        "requester": {"reference": DEMO_USER},
        "dosageInstruction": [{"text": order.dosage}],
    }


def find_service(services: list[dict], hook: str) -> dict | None:
    """The discovery entry for ``hook``: the contract's id if present, else the only service for that hook."""
    wanted = SERVICE_FOR_HOOK.get(hook)
    for service in services:
        if service.get("id") == wanted:
            return service
    candidates = [s for s in services if s.get("hook") == hook]
    return candidates[0] if len(candidates) == 1 else None


def build_request(scenario: catalog.Scenario, services: list[dict], *, today: date | None = None) -> BuiltRequest:
    """The request for ``scenario`` against the discovered ``services``, with dates shifted to ``today``.

    Raises LookupError when discovery has no service for the scenario's hook.
    """
    today = today or datetime.now(timezone.utc).date()
    service = find_service(services, scenario.hook)
    if service is None:
        raise LookupError(f"no service for hook {scenario.hook!r} in discovery")
    days = catalog.shift_days(today)
    bundle = catalog.shift_dates(catalog.patient(scenario.patient_id).bundle(), days)
    pool = catalog.resources_of(bundle)

    context: dict = {"userId": DEMO_USER, "patientId": scenario.patient_id}
    if scenario.hook in ("order-select", "order-sign"):
        draft = draft_order(scenario, today)
        context["draftOrders"] = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": draft}]}
        if scenario.hook == "order-select":
            context["selections"] = [f"MedicationRequest/{draft['id']}"]

    prefetch: dict = {}
    warnings: list[str] = []
    for key, template in (service.get("prefetch") or {}).items():
        try:
            prefetch[key] = search(pool, render(template, context))
        except (UnfillableToken, UnsupportedQuery) as exc:
            warnings.append(f"prefetch {key!r} left out ({type(exc).__name__}: {exc})")
    body = {"hook": scenario.hook, "hookInstance": str(uuid.uuid4()), "context": context, "prefetch": prefetch}
    return BuiltRequest(scenario=scenario, service_id=service["id"], body=body, warnings=warnings)
