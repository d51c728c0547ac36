"""patient-view summaries: the PGx summary (genes, phenotypes, what they mean for pain drugs) and the pain profile."""
from __future__ import annotations

from fhir_pain import pgx
from fhir_pain.pgx import guidance
from fhir_pain.facts import Finding
from fhir_pain.rules.context import RuleContext
from fhir_pain.rules.drug_gene import QUIET_ACTIONS, uncertainty
from fhir_pain.rules.knowledge import pain_rules
from fhir_pain.rules.pain_context import PHENOTYPE_WORDS
from fhir_pain.rules.population import population
from fhir_pain.rules.text import evidence_md, fit, gene_line, gene_phrase, instrument_label, join_and, md

_ACTION_WORDS = {
    "avoid": "Avoid", "use-alternative": "Use an alternative", "reduce-dose": "Lower starting dose",
    "increase-dose": "Higher dose (DPWG), or avoid",
    "monitor": "Usual dose, monitor", "standard-dose": "Standard dosing", "no-recommendation": "No CPIC recommendation",
}
_ACTION_ORDER = list(_ACTION_WORDS)
# The summary's "check" list, most pressing first.
_CHECK_ORDER = ("avoid", "use-alternative", "reduce-dose", "increase-dose", "monitor")
# The guideline source the summary names, per setting GUIDELINES.
_SOURCE_WORDS = {"cpic": "CPIC", "dpwg": "DPWG; CPIC where DPWG has none", "both": "CPIC and DPWG"}


def pgx_summary(ctx: RuleContext) -> Finding | None:
    profile = ctx.profile_for(None)
    if not profile.genes:
        if ctx.pgx_complete:
            return None
        return Finding(rule="fhir-pain/pgx-summary", kind="informational", indicator="info", action="informational",
                       summary="Pharmacogenomic results could not be retrieved",
                       detail="The PGx results could not be read from the EHR; drug-gene checks were not done.")
    genes = profile.genes
    by_action: dict[str, list[str]] = {}
    uncertain: list[str] = []
    knowledge = {}
    for name in pain_rules()["pgxSummaryDrugs"]:
        drug = pgx.drug_by_name(name)
        if drug is None or not guidance.covers(drug, ctx.guidelines):
            continue
        applied = population(ctx, drug)[0] if pgx.populations(drug) else None
        # a drug is not its own phenoconverter
        rec = ctx.recommend(drug, ctx.profile_for(None, drug), applied, mode=ctx.guidelines)
        if rec is None:
            continue
        # under uncertainty the advice safe under every possibility, marked so the chart says it is uncertain
        by_action.setdefault(rec.action, []).append(name)
        if uncertainty(rec.genes, rec):
            uncertain.append(name)
        knowledge = knowledge or ({"source": "CPIC", "version": (rec.knowledge or {}).get("version"),
                                   "url": (rec.knowledge or {}).get("url")} if ctx.guidelines == "cpic" else
                                  {"source": _SOURCE_WORDS[ctx.guidelines], "version": guidance.dpwg.version()})
    phrases = "; ".join(gene_phrase(g, gp) for g, gp in genes.items())
    # Every drug whose advice asks something of the prescriber (the same test that makes an order card appear),
    # so "check" never leaves out a drug that would warn when ordered.
    actionable = [n for a in sorted(by_action, key=_check_rank) for n in by_action[a]
                  if a not in QUIET_ACTIONS or n in uncertain]
    if actionable:
        count = f"{len(actionable)} pain medicine{'s' if len(actionable) > 1 else ''}"
        # as many names as fit, most pressing first, then how many more ("check codeine, tramadol and 7 more")
        named = [f"PGx: {phrases}; check {', '.join(actionable[:k])} and {len(actionable) - k} more (see details)"
                 for k in range(len(actionable) - 1, 0, -1)]
        summary = fit(f"PGx: {phrases}; check {', '.join(actionable)}", *named,
                      f"PGx: {phrases}; check {count} (see details)",
                      f"PGx results for {len(genes)} genes on file; check {count} (see details)")
    else:
        summary = fit(f"PGx: {phrases}", f"PGx results for {len(genes)} genes on file; see details")
    lines = ["**Genes:**\n" + "\n".join(f"- {gene_line(g, gp)}" for g, gp in genes.items())]
    if by_action:
        lines.append(f"**What it means for pain medicines ({_SOURCE_WORDS[ctx.guidelines]}):**\n" + "\n".join(
            f"- {_ACTION_WORDS.get(a, a)}: "
            + md(", ".join(n + (" (uncertain result: advice safe under every possibility; confirm)"
                                if n in uncertain else "") for n in by_action[a]))
            for a in sorted(by_action, key=lambda a: _ACTION_ORDER.index(a) if a in _ACTION_ORDER else 99)))
    notes = [n for gp in genes.values() for n in gp.notes] + list(getattr(profile, "notes", ()) or ())
    if notes:
        lines.append("**Notes:**\n" + "\n".join(f"- {md(n)}" for n in dict.fromkeys(notes)))
    evidence = tuple(dict.fromkeys(r for gp in genes.values() for r in gp.evidence))
    if evidence:
        lines.append(evidence_md(evidence))
    return Finding(rule="fhir-pain/pgx-summary", kind="informational", indicator="info", action="informational",
                   summary=summary, detail="\n\n".join(lines), genes=dict(genes), evidence=evidence,
                   knowledge={k: v for k, v in knowledge.items() if v})


def _check_rank(action: str) -> int:
    return _CHECK_ORDER.index(action) if action in _CHECK_ORDER else len(_CHECK_ORDER)


def pain_summary(ctx: RuleContext) -> Finding | None:
    p = ctx.pain
    if p is None:
        return None
    phenotypes = tuple(getattr(p, "phenotypes", ()) or ())
    intensity = getattr(p, "intensity", None)
    if not phenotypes and intensity is None:
        return None
    words = [PHENOTYPE_WORDS.get(x, x) for x in phenotypes
             if x not in ("treatment-response", "treatment-non-response")]
    score = getattr(intensity, "score", None) if intensity is not None else None
    trend = getattr(intensity, "trend", None) if intensity is not None else None
    now = ""
    if isinstance(score, (int, float)):
        now = f"; pain {score:g}/10" + (f" ({trend})" if trend else "")
    summary = fit("Pain profile: " + (", ".join(words) or "no phenotype flagged") + now,
                  "Pain profile: " + (", ".join(words[:3]) or "no phenotype flagged") + now,
                  "Pain profile: see details")
    lines = []
    if intensity is not None and isinstance(score, (int, float)):
        inst = getattr(intensity, "instrument", None)
        lines.append(f"**Intensity:** {score:g}/10" + (f" ({md(instrument_label(inst))})" if inst else "")
                     + (f", trend {md(trend)}" if trend else ""))
    if getattr(p, "chronic", False):
        lines.append("**Chronic pain:** documented for more than 3 months.")
    lines += _axis_lines(p) + _modulator_lines(p) + _response_lines(p)
    lines += _not_assessed(p)
    if not ctx.pain_complete:
        lines.append("**Caution:** some pain assessments or conditions could not be read.")
    evidence = tuple(dict.fromkeys(r for refs in (getattr(p, "evidence", {}) or {}).values() for r in refs))
    if evidence:
        lines.append(evidence_md(evidence))
    return Finding(rule="fhir-pain/pain-profile", kind="pain-phenotype", indicator="info", action="informational",
                   summary=summary, detail="\n\n".join(lines) or "No pain phenotype flagged.",
                   phenotypes=phenotypes, evidence=evidence,
                   knowledge={"source": "fhir-pain pain phenotyping", "version": "1.0.0"})


# Levels that say nothing about the patient: left out of the profile ("unknown" is listed under "Not assessed").
_QUIET_AXIS_LEVELS = frozenset({"none", "unlikely", "unknown"})
_RESPONSE_WORDS = {"no-data": "not assessed", "too-early": "too early to judge"}


def _axis_lines(p) -> list[str]:
    out = []
    for name, axis in (getattr(p, "axes", {}) or {}).items():
        level = getattr(axis, "level", None)
        if level and level not in _QUIET_AXIS_LEVELS:
            reasons = "; ".join(getattr(axis, "reasons", ()) or ())
            out.append(f"**{md(name.capitalize())}:** {md(level)}" + (f": {md(reasons)}" if reasons else ""))
    return out


def _modulator_lines(p) -> list[str]:
    out = []
    for name, mod in (getattr(p, "modulators", {}) or {}).items():
        sc, inst, cut = getattr(mod, "score", None), getattr(mod, "instrument", None), getattr(mod, "cutoff", None)
        level = getattr(mod, "level", None)
        if level == "unknown":
            continue
        if isinstance(sc, (int, float)):
            out.append(f"**{md(name.capitalize())}:** {md(instrument_label(inst))} {sc:g}"
                       + (f" (cut-off {md(cut)})" if cut else "") + (f", {md(level)}" if level else ""))
        elif level in ("present", "possible"):   # from a diagnosis alone
            reasons = "; ".join(r for r in getattr(mod, "reasons", ()) or () if r.startswith("diagnosis"))
            out.append(f"**{md(name.capitalize())}:** {md(level)}" + (f": {md(reasons)}" if reasons else ""))
    return out


def _response_lines(p) -> list[str]:
    out = []
    for resp in getattr(p, "responses", ()) or ():
        drug, status = getattr(resp, "drug", None), getattr(resp, "status", None)
        if drug is None or not status:
            continue
        if status in _RESPONSE_WORDS:
            reasons = "; ".join(getattr(resp, "reasons", ()) or ())
            out.append(f"**Response to {md(drug.name)}:** {_RESPONSE_WORDS[status]}"
                       + (f" ({md(reasons)})" if reasons else ""))
            continue
        change = getattr(resp, "change_pct", None)
        out.append(f"**Response to {md(drug.name)}:** {md(status)}"
                   + (f" (pain {-change:+.0f}% from baseline)" if isinstance(change, (int, float))
                      and round(change) != 0 else " (no change from baseline)" if change is not None else ""))
    return out


def _not_assessed(p) -> list[str]:
    """Axes and modulators the data could not speak to: those with nothing on file in one line, those with data
    that could not be used (too old, undated and disagreeing ...) with the engine's reason."""
    nothing, unusable = [], []
    for group in ("axes", "modulators"):
        for name, result in (getattr(p, group, {}) or {}).items():
            if getattr(result, "level", None) != "unknown":
                continue
            reasons = tuple(getattr(result, "reasons", ()) or ())
            if all(r.startswith("no ") for r in reasons):   # the engine's words for "nothing seen"
                nothing.append(name)
            else:
                unusable.append(f"{name} ({'; '.join(r for r in reasons if not r.startswith('no '))})")
    out = []
    if unusable:
        out.append("**Not assessed, data not usable:** " + md("; ".join(unusable)) + ".")
    if nothing:
        out.append("**Not assessed, no recent score or diagnosis:** " + md(join_and(nothing)) + ".")
    return out
