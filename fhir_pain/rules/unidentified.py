"""Orders the service could not identify are never presented as checked.

An order whose medication names no ingredient fhir-pain knows (no known ingredient or product code, no known
name, brand or shorthand in its texts, no identifiable contained or referenced Medication) was not checked
against anything. Such an order alone gives no card (it is not advice, and most unknown orders are drugs outside
the service's scope); but when the call returns cards, they must not read as "everything ordered was checked":
the finding ``fhir-pain/unidentified-orders`` is carried on the first card, naming those orders.
"""
from __future__ import annotations

from fhir_pain import profiles
from fhir_pain.facts import Finding, MedicationUse
from fhir_pain.opioid.classify import classify
from fhir_pain.rules.text import md

RULE = "fhir-pain/unidentified-orders"


def unidentified(targets: list[MedicationUse]) -> list[MedicationUse]:
    """Orders no engine identified: no known ingredient, and no opioid-safety class (a benzodiazepine such as
    alprazolam is checked by the opioid rules although the PGx drug table does not list it)."""
    return [m for m in targets if not m.ingredients and not classify(m).classes]


def _label(med: MedicationUse) -> str:
    if med.text:
        return med.text
    resource = med.resource or {}
    coding = _codings(resource)
    if coding:
        return ", ".join(f"{c.get('system', 'no system')}|{c.get('code')}" for c in coding[:3])
    ref = resource.get("medicationReference")
    if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
        return f"{ref['reference']} (a Medication not sent with the request)"
    return "no medication named"


def _codings(resource: dict) -> list[dict]:
    concept = resource.get("medicationCodeableConcept")
    codings = concept.get("coding") if isinstance(concept, dict) else None
    return [c for c in codings if isinstance(c, dict) and c.get("code")] if isinstance(codings, list) else []


def _knowledge() -> dict:
    versions = ", ".join(f"{name} {profiles.load(f'pgx/{name}')['meta']['version']}"
                         for name in ("drugs.json", "products.json", "abbreviations.json"))
    return {"source": "fhir-pain rules (drug identification: RxNorm ingredients, products, names)",
            "version": versions}


def unidentified_orders_finding(targets: list[MedicationUse]) -> Finding | None:
    """One finding for every order of this call that names no ingredient we know; None when there is none."""
    missed = unidentified(targets)
    if not missed:
        return None
    n = len(missed)
    what = "1 order" if n == 1 else f"{n} orders"
    listed = "\n".join(f"- {md(_label(m))}" for m in missed)
    return Finding(
        rule=RULE, kind="informational", indicator="info", action="informational",
        summary=f"Not checked: {what} not identified",
        detail=(f"fhir-pain could not tell which drug {'this order contains' if n == 1 else 'these orders contain'}"
                f", so {'it was' if n == 1 else 'they were'} not checked for drug-gene or pain-prescribing "
                f"advice:\n\n{listed}\n\nIdentification reads RxNorm ingredient and product codes, drug names, "
                "brands and common abbreviations; an NDC or local code alone is not enough."),
        evidence=tuple(m.ref for m in missed if m.ref.startswith("MedicationRequest/")),
        knowledge=_knowledge(),
        extra={"attach": "first-card", "relevantMissing": []},
    )
