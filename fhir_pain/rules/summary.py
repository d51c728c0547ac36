"""patient-view summaries: the PGx summary (genes, phenotypes, what they mean for pain drugs) and the pain profile."""
from __future__ import annotations

from fhir_pain import pgx
from fhir_pain.facts import Finding
from fhir_pain.rules.context import RuleContext
from fhir_pain.rules.drug_gene import uncertainty
from fhir_pain.rules.knowledge import pain_rules
from fhir_pain.rules.pain_context import PHENOTYPE_WORDS
from fhir_pain.rules.text import fit, gene_line, gene_phrase, instrument_label, md

_ACTION_WORDS = {
    "avoid": "Avoid", "use-alternative": "Use an alternative", "reduce-dose": "Lower starting dose",
    "monitor": "Usual dose, monitor", "standard-dose": "Standard dosing", "no-recommendation": "No CPIC recommendation",
    "order-test": "Uncertain result: confirm first",
}
_ACTION_ORDER = list(_ACTION_WORDS)


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
    knowledge = {}
    for name in pain_rules()["pgxSummaryDrugs"]:
        drug = pgx.drug_by_name(name)
        if drug is None or pgx.guideline_for(drug) is None:
            continue
        rec = pgx.recommend(drug, profile)
        if rec is None:
            continue
        action = "order-test" if uncertainty(rec.genes, rec) else rec.action
        by_action.setdefault(action, []).append(name)
        knowledge = knowledge or {"source": "CPIC", "version": (rec.knowledge or {}).get("version"),
                                  "url": (rec.knowledge or {}).get("url")}
    phrases = [gene_phrase(g, gp) for g, gp in genes.items()]
    actionable = [n for a in ("avoid", "use-alternative", "reduce-dose", "order-test") for n in by_action.get(a, [])]
    tail = f"; check {', '.join(actionable)}" if actionable else ""
    summary = fit("PGx: " + "; ".join(phrases) + tail, "PGx: " + "; ".join(phrases),
                  f"PGx results for {len(genes)} genes on file; see details")
    lines = ["**Genes:**\n" + "\n".join(f"- {gene_line(g, gp)}" for g, gp in genes.items())]
    if by_action:
        lines.append("**What it means for pain medicines (CPIC):**\n" + "\n".join(
            f"- {_ACTION_WORDS.get(a, a)}: {md(', '.join(by_action[a]))}"
            for a in sorted(by_action, key=lambda a: _ACTION_ORDER.index(a) if a in _ACTION_ORDER else 99)))
    notes = [n for gp in genes.values() for n in gp.notes] + list(getattr(profile, "notes", ()) or ())
    if notes:
        lines.append("**Notes:**\n" + "\n".join(f"- {md(n)}" for n in dict.fromkeys(notes)))
    evidence = tuple(dict.fromkeys(r for gp in genes.values() for r in gp.evidence))
    if evidence:
        lines.append("**Evidence:** " + ", ".join(md(e) for e in evidence))
    return Finding(rule="fhir-pain/pgx-summary", kind="informational", indicator="info", action="informational",
                   summary=summary, detail="\n\n".join(lines), genes=dict(genes), evidence=evidence,
                   knowledge={k: v for k, v in knowledge.items() if v})


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
    for name, axis in (getattr(p, "axes", {}) or {}).items():
        level = getattr(axis, "level", None)
        if level and level not in ("none", "unlikely", "unknown"):
            reasons = "; ".join(getattr(axis, "reasons", ()) or ())
            lines.append(f"**{md(name.capitalize())}:** {md(level)}" + (f": {md(reasons)}" if reasons else ""))
    for name, mod in (getattr(p, "modulators", {}) or {}).items():
        sc, inst, cut = getattr(mod, "score", None), getattr(mod, "instrument", None), getattr(mod, "cutoff", None)
        level = getattr(mod, "level", None)
        if isinstance(sc, (int, float)):
            lines.append(f"**{md(name.capitalize())}:** {md(instrument_label(inst))} {sc:g}"
                         + (f" (cut-off {md(cut)})" if cut else "") + (f", {md(level)}" if level else ""))
    for resp in getattr(p, "responses", ()) or ():
        drug = getattr(resp, "drug", None)
        status = getattr(resp, "status", None)
        if drug is not None and status:
            change = getattr(resp, "change_pct", None)
            lines.append(f"**Response to {md(drug.name)}:** {md(status)}"
                         + (f" (pain {-change:+.0f}% from baseline)" if isinstance(change, (int, float))
                            and round(change) != 0 else " (no change from baseline)" if change is not None else ""))
    if not ctx.pain_complete:
        lines.append("**Caution:** some pain assessments or conditions could not be read.")
    evidence = tuple(dict.fromkeys(r for refs in (getattr(p, "evidence", {}) or {}).values() for r in refs))
    if evidence:
        lines.append("**Evidence:** " + ", ".join(md(e) for e in evidence))
    return Finding(rule="fhir-pain/pain-profile", kind="pain-phenotype", indicator="info", action="informational",
                   summary=summary, detail="\n\n".join(lines) or "No pain phenotype flagged.",
                   phenotypes=phenotypes, evidence=evidence,
                   knowledge={"source": "fhir-pain pain phenotyping", "version": "1.0.0"})
