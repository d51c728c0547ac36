"""Build the CDS Hooks request an EHR would send: a patient Bundle (a demo patient or any other) at a hook.

patient Bundle + hook + draft order  ->  {"hook", "hookInstance", "context", "prefetch"}

Prefetch is filled exactly as the service's discovery entry asks: each template is rendered with the protocol
layer's own renderer and answered from the patient's resources, so the demo exercises the same prefetch the
services declare to real EHRs (a template the services change is picked up here without a code change).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date

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
    service_id: str
    body: dict
    warnings: list[str] = field(default_factory=list)   # prefetch keys left out, and why


def draft_order(order: catalog.Order, patient_id: str, *, draft_id: str, authored_on: date) -> dict:
    """The draft MedicationRequest the clinician is writing (valid R4; its id collides with no stored data)."""
    return {
        "resourceType": "MedicationRequest",
        "id": draft_id,
        "status": "draft",
        "intent": "order",
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category", "code": "community"}]}],
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": order.rxnorm, "display": order.display}],
            "text": order.display,
        },
        "subject": {"reference": f"Patient/{patient_id}"},
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


def hook_request(bundle: dict, hook: str, services: list[dict], *, order: catalog.Order | None = None,
                 draft_id: str = "draft-order", authored_on: date | None = None) -> BuiltRequest:
    """The request an EHR would send for the patient in ``bundle`` (any Bundle holding one Patient and their
    resources) at ``hook``, with ``order`` as the draft on the order hooks and prefetch filled from the
    discovered ``services``' templates. Raises LookupError when discovery has no service for ``hook`` and
    ValueError when the bundle has no Patient or an order hook has no order."""
    service = find_service(services, hook)
    if service is None:
        raise LookupError(f"no service for hook {hook!r} in discovery")
    patient = catalog.patient_resource(bundle)
    if patient is None or not patient.get("id"):
        raise ValueError("the bundle holds no Patient with an id")
    pool = catalog.resources_of(bundle)

    context: dict = {"userId": DEMO_USER, "patientId": patient["id"]}
    if hook in ("order-select", "order-sign"):
        if order is None:
            raise ValueError(f"{hook} needs a draft order")
        draft = draft_order(order, patient["id"], draft_id=draft_id,
                            authored_on=authored_on or catalog.now_on().date())
        context["draftOrders"] = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": draft}]}
        if hook == "order-select":
            context["selections"] = [f"MedicationRequest/{draft_id}"]

    prefetch: dict = {}
    warnings: list[str] = []
    for key, template in (service.get("prefetch") or {}).items():
        try:
            prefetch[key] = search(pool, render(template, context))
        except (UnfillableToken, UnsupportedQuery) as exc:
            warnings.append(f"prefetch {key!r} left out ({type(exc).__name__}: {exc})")
    body = {"hook": hook, "hookInstance": str(uuid.uuid4()), "context": context, "prefetch": prefetch}
    return BuiltRequest(service_id=service["id"], body=body, warnings=warnings)


def build_request(scenario: catalog.Scenario, services: list[dict], *, today: date | None = None) -> BuiltRequest:
    """The request for a demo scenario, its patient's dates moved so that the demo now is ``today`` (by default
    the latest day on which the demo hour has passed, :func:`catalog.shift_days`)."""
    today = today or catalog.now_on().date()
    bundle = catalog.shift_dates(catalog.patient(scenario.patient_id).bundle(), catalog.shift_days(today))
    return hook_request(bundle, scenario.hook, services, order=scenario.order, draft_id=f"draft-{scenario.name}",
                        authored_on=today)
