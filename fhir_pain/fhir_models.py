"""The one place that imports ``fhir.resources`` (FHIR R4B models, structurally R4 for what we emit).

We validate only what we *produce* (suggested MedicationRequest/ServiceRequest, DetectedIssue) and test fixtures,
never every incoming resource on the hot path: the models cost ~0.4 ms per resource and reject real-world EHR JSON.
The import is lazy so that the service's start-up and hot path never pay for it.
"""
from __future__ import annotations

import importlib
from functools import lru_cache


class InvalidResource(ValueError):
    """A resource we built does not validate as FHIR R4 (a bug on our side)."""


@lru_cache(maxsize=None)
def model_for(resource_type: str):
    """The R4B model class for a resourceType, e.g. ``model_for("ServiceRequest")``."""
    if not resource_type.isalpha():
        raise InvalidResource(f"not a resourceType: {resource_type!r}")
    module = importlib.import_module(f"fhir.resources.R4B.{resource_type.lower()}")
    return getattr(module, resource_type)


def validate(resource: dict) -> None:
    """Raise :class:`InvalidResource` unless ``resource`` is a valid FHIR R4 resource."""
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        raise InvalidResource("a FHIR resource must be a JSON object with a resourceType")
    try:
        model = model_for(resource["resourceType"])
    except (ImportError, AttributeError) as exc:
        raise InvalidResource(f"unknown resourceType {resource['resourceType']!r}") from exc
    try:
        model.model_validate(resource)
    except Exception as exc:  # pydantic.ValidationError and fhir_core errors; we only need the message
        raise InvalidResource(f"{resource['resourceType']} is not valid R4: {exc}") from exc


def check_cds_response(body: object) -> list[str]:
    """Every problem with a CDS Hooks response we produced: the cds_hooks response schema, the card invariants
    of CDS Hooks 2.0.1 (cds-resp-1..6), the findings contract on every card, and R4 validity of every resource
    a suggestion creates. Empty list = fine. For tests, the demo and the benchmark; not the hot path."""
    from cds_hooks.schemas import first_error

    problems: list[str] = []
    error = first_error("response", body)
    if error is not None:
        problems.append(f"schema: {error[0]}: {error[1]}")
    cards = body.get("cards") if isinstance(body, dict) else None
    for i, card in enumerate(cards if isinstance(cards, list) else ()):
        where = f"cards[{i}]"
        summary = card.get("summary", "")
        if not summary or len(summary) > 140:
            problems.append(f"{where}: summary must be 1-140 characters ({len(summary)})")
        if card.get("indicator") not in ("info", "warning", "critical"):
            problems.append(f"{where}: indicator {card.get('indicator')!r}")
        if not card.get("uuid"):
            problems.append(f"{where}: no uuid")
        findings = (card.get("extension") or {}).get("io.fhir-pain.findings")
        if not isinstance(findings, list) or not findings:
            problems.append(f"{where}: no io.fhir-pain.findings extension")
        suggestions = card.get("suggestions") or []
        if suggestions and card.get("selectionBehavior") not in ("at-most-one", "any"):
            problems.append(f"{where}: suggestions without selectionBehavior")
        if card.get("selectionBehavior") == "at-most-one" and sum(bool(s.get("isRecommended")) for s in suggestions) > 1:
            problems.append(f"{where}: at-most-one with several recommended suggestions")
        for r in card.get("overrideReasons") or ():
            if not r.get("display"):
                problems.append(f"{where}: override reason without display")
        for link in card.get("links") or ():
            if "appContext" in link and link.get("type") != "smart":
                problems.append(f"{where}: appContext on a non-smart link")
        for j, s in enumerate(suggestions):
            if not s.get("uuid"):
                problems.append(f"{where}.suggestions[{j}]: no uuid")
            for k, action in enumerate(s.get("actions") or ()):
                at = f"{where}.suggestions[{j}].actions[{k}]"
                if not action.get("description"):
                    problems.append(f"{at}: no description")
                if action.get("type") == "delete":
                    if not action.get("resourceId") or "resource" in action:
                        problems.append(f"{at}: delete needs resourceId and no resource")
                elif action.get("type") in ("create", "update"):
                    try:
                        validate(action.get("resource"))
                    except InvalidResource as exc:
                        problems.append(f"{at}: {exc}")
    return problems
