"""The guideline source a site follows (setting GUIDELINES): ``cpic`` (default), ``dpwg`` or ``both``.

- cpic: CPIC's recommendation, exactly as fhir_pain.pgx.recommend gives it.
- dpwg: DPWG's (fhir_pain.pgx.dpwg) for the pairs DPWG's data covers. Where it has no guidance for the drug, or
  no row for the result, CPIC's is shown and the card says so; where CPIC's table also weighs a gene DPWG has no
  guidance for (amitriptyline with a CYP2C19 result), CPIC's advice is shown beside DPWG's.
- both: CPIC's and DPWG's. Where they agree in action, one advice (CPIC's words) citing both; where they differ,
  the most cautious leads and the other is shown beside it. The card's indicator is the more cautious one.

Either way the recommendation carries ``sources``, the findings' ``recommendations`` entries, one per source.
"""
from __future__ import annotations

from dataclasses import replace

from fhir_pain.facts import Drug, Recommendation
from fhir_pain.pgx import dpwg
from fhir_pain.pgx.profile import PgxProfile
from fhir_pain.pgx.recommend import guideline_for
from fhir_pain.pgx.recommend import recommend as cpic_recommend

MODES = ("cpic", "dpwg", "both")
DEFAULT = "cpic"


def check(value: object) -> str:
    """The setting's value, or a ValueError that says what is allowed (raised at start-up)."""
    if value not in MODES:
        raise ValueError(f"GUIDELINES must be one of {', '.join(MODES)} (FHIR_PAIN_GUIDELINES), got {value!r}")
    return value  # type: ignore[return-value]


def covers(drug: Drug, mode: str = DEFAULT) -> bool:
    """A guideline the site follows (or CPIC, shown in DPWG's place) speaks about this ingredient."""
    return guideline_for(drug) is not None or (mode != "cpic" and bool(dpwg.guidelines_for(drug)))


def cpic_entry(rec: Recommendation) -> dict:
    k = rec.knowledge or {}
    return {k2: v for k2, v in (("source", k.get("source", "CPIC")), ("version", k.get("version")),
                                ("url", k.get("url")), ("genes", list(rec.genes)),
                                ("classification", rec.classification), ("action", rec.action)) if v}


def _entries(rec: Recommendation) -> tuple[dict, ...]:
    return rec.sources or (cpic_entry(rec),)


def _rank(rec: Recommendation) -> int:
    return dpwg.CAUTION.index(rec.action) if rec.action in dpwg.CAUTION else dpwg.CAUTION.index("no-recommendation")


def _genes(rec: Recommendation, only=None) -> str:
    return " and ".join(g for g in rec.genes if only is None or g in only)


def _beside(lead: Recommendation, other: Recommendation, note: str = "") -> Recommendation:
    """``lead`` and ``other`` on one card: one advice where they agree in action, else the most cautious leads."""
    primary, second = (lead, other) if lead.action == other.action or _rank(lead) <= _rank(other) else (other, lead)
    return replace(primary, rule=lead.rule, sources=_entries(lead) + _entries(other), others=(second,), note=note)


def _alone(rec: Recommendation, note: str = "") -> Recommendation:
    return replace(rec, sources=_entries(rec), note=note)


def recommend(drug: Drug, profile: PgxProfile, population: str | None = None,
              mode: str = DEFAULT) -> Recommendation | None:
    """The recommendation for ``drug`` under the site's guideline choice (module docstring)."""
    cpic = cpic_recommend(drug, profile, population)
    if mode == "cpic":
        return cpic
    d = dpwg.recommend(drug, profile)
    if d is not None and d.action == "no-recommendation" and cpic is not None:
        return _alone(cpic, f"DPWG has no row for this {_genes(d)} result; CPIC's advice is shown.")
    if d is None:
        if cpic is None:
            return None
        return _alone(cpic, f"DPWG guidance for {drug.name} and {_genes(cpic)} is not in fhir-pain's DPWG data; "
                            "CPIC's advice is shown.")
    if cpic is None:
        return _alone(d)
    if mode == "dpwg":
        uncovered = [g for g in cpic.genes if g not in d.genes]
        if not uncovered:
            return _alone(d)
        return _beside(d, cpic, f"DPWG has no guidance for {drug.name} and {' and '.join(uncovered)}: CPIC's "
                                f"advice, which weighs {' and '.join(uncovered)} too, is shown beside DPWG's.")
    return _beside(cpic, d)
