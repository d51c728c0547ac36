"""CPIC's population for the tables that depend on one (the HLA anticonvulsants): "naive", or "use-over-3-months"
when the medication list and history show the drug used for longer than three months.

CPIC's "> 3 months" rows also require that no cutaneous adverse reaction occurred: fhir-pain does not read
allergies and reactions, so the card asks the prescriber to check. When the history is missing or does not show
three months of use, the naive rows apply: they are the cautious ones (an HLA risk-allele carrier is advised against
the drug).
"""
from __future__ import annotations

from datetime import datetime, timezone

from fhir_pain import fhirdates
from fhir_pain.facts import Drug, MedicationUse
from fhir_pain.gather import MEDICATION_HISTORY, MEDICATIONS
from fhir_pain.rules.context import RuleContext

NAIVE, LONG_TERM = "naive", "use-over-3-months"
LONG_TERM_DAYS = 90
# CPIC's phenytoin rows speak of "phenytoin/fosphenytoin": earlier use of either counts
SAME_DRUG = {"phenytoin": frozenset({"phenytoin", "fosphenytoin"}),
             "fosphenytoin": frozenset({"phenytoin", "fosphenytoin"})}
WORDS = {NAIVE: "naive (no use for longer than three months on record)",
         LONG_TERM: "used for longer than three months"}


def _aware(d: datetime | None) -> datetime | None:
    return d if d is None or d.tzinfo else d.replace(tzinfo=timezone.utc)


def _earliest(value: object) -> datetime | None:
    t = fhirdates.parse(value)
    return t.earliest if t is not None else None


def _period(med: MedicationUse, now: datetime) -> tuple[datetime, datetime] | None:
    """When the request covers: authoredOn (or its validity period's start) to now for an active request, else to
    the validity period's end (or the start, when nothing says how long it ran)."""
    resource = med.resource if isinstance(med.resource, dict) else {}
    validity = (resource.get("dispenseRequest") or {}).get("validityPeriod") \
        if isinstance(resource.get("dispenseRequest"), dict) else None
    validity = validity if isinstance(validity, dict) else {}
    start = _aware(med.authored_on) or _earliest(validity.get("start"))
    if start is None:
        return None
    if (med.status or "").lower() == "active":
        return start, now
    end = _earliest(validity.get("end"))
    return start, max(start, min(end, now)) if end else start


def population(ctx: RuleContext, drug: Drug) -> tuple[str, str]:
    """(population, why in words) for ``drug``: the span of its requests, active and earlier (never the drafts:
    an order being written is no use yet)."""
    names = SAME_DRUG.get(drug.name, frozenset({drug.name}))
    now = _aware(ctx.now)
    periods, refs = [], []
    for med in ctx.active + ctx.history:
        if med.is_draft or not names & {d.name for d in med.ingredients}:
            continue
        p = _period(med, now)
        if p is not None:
            periods.append(p)
            refs.append(med.ref)
    if periods:
        first, last = min(s for s, _ in periods), max(e for _, e in periods)
        days = (last - first).days
        if days > LONG_TERM_DAYS:
            return LONG_TERM, (f"{drug.name} on record for {days} days ({', '.join(refs)}, from "
                               f"{first.date().isoformat()}), longer than three months")
        return NAIVE, f"{drug.name} on record for {days} days only ({', '.join(refs)}): not longer than three months"
    unknown = [k for k in (MEDICATIONS, MEDICATION_HISTORY) if k in ctx.missing]
    if unknown:
        return NAIVE, (f"the medication {'list' if unknown == [MEDICATIONS] else 'history'} could not be read, so "
                       f"earlier use of {drug.name} is unknown")
    return NAIVE, f"no earlier {drug.name} in the medication list or history"

