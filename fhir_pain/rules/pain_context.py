"""Phenotype-aware rules that no single guideline table gives: pain phenotype x ordered drug class x PGx.

Each rule's trigger, wording strength and sources live in profiles/rules/pain-rules.json; drug classes in
profiles/pain/analgesics.json. The PGx filter goes through the CPIC engine, so "no TCA for a CYP2D6 poor
metabolizer" is CPIC's advice applied, not a second copy of it.
"""
from __future__ import annotations

from fhir_pain import pgx
from fhir_pain.facts import Drug, Finding, MedicationUse
from fhir_pain.rules.classes import classes_of, members
from fhir_pain.rules.context import RuleContext
from fhir_pain.rules.dose import daily_dose_mg
from fhir_pain.rules.drug_gene import REPLACE_ACTIONS, uncertainty
from fhir_pain.rules.knowledge import referrals, rule, source_knowledge
from fhir_pain.rules.safety import blocked_replacement
from fhir_pain.rules.text import fit, gene_phrase, instrument_label, join_and, md, sources_md

PHENOTYPE_WORDS = {
    "neuropathic-likely": "likely neuropathic pain", "neuropathic-possible": "possible neuropathic pain",
    "nociplastic-features": "nociplastic features", "inflammatory-contribution": "inflammatory contribution",
    "high-catastrophizing": "high pain catastrophizing", "depression": "depression", "anxiety": "anxiety",
    "chronic-pain": "chronic pain", "treatment-non-response": "non-response to treatment",
    "treatment-response": "response to treatment",
}


def _phenotype_evidence(ctx: RuleContext, phenotypes) -> tuple[str, ...]:
    ev = getattr(ctx.pain, "evidence", {}) or {}
    return tuple(dict.fromkeys(r for p in phenotypes for r in ev.get(p, ())))


def first_line_options(ctx: RuleContext, med: MedicationUse | None, exclude_classes=()) -> dict:
    """The first-line neuropathic classes for this patient: each class with the candidates their genotype allows,
    the candidates dropped (and why) and what the patient already takes."""
    r = rule("opioid-neuropathic")
    profile = ctx.profile_for(med)
    out = {"classes": [], "replacements": [], "genes": {}}
    for fl in r["firstLine"]:
        if fl["class"] in exclude_classes:
            continue
        kept, dropped, taking = [], [], []
        for drug in members(fl["class"]):
            current = ctx.on_drug(drug, exclude=med)
            if current is not None:
                taking.append(drug.name)
                continue
            no = _not_offered(ctx, r, drug, profile)
            if no is not None:
                dropped.append(no[0])
                out["genes"].update(no[1])
                continue
            kept.append(drug)
        out["classes"].append({"class": fl["class"], "label": fl["label"], "kept": kept, "dropped": dropped,
                               "taking": taking})
        if kept and len(out["replacements"]) < r["maxSuggestions"] and not taking:
            out["replacements"].append(kept[0])
    return out


def _not_offered(ctx: RuleContext, r: dict, drug: Drug, profile) -> tuple[str, dict] | None:
    """(why, the genes that say so) when ``drug`` may not be a first-line option with ``profile``, None when it
    may: once per drug and profile in this evaluation (both pain rules of an order ask about the same drugs)."""
    # the drug by its fields (a tuple of strings hashes in C, a dataclass through Python); the profile is kept in
    # ctx._profiles: its id stays its own
    key = ("first-line", drug.rxnorm, drug.name, id(profile))
    if key in ctx._profiles:
        return ctx._profiles[key]
    no = None
    blocked = blocked_replacement(ctx, drug)
    if blocked:
        no = (blocked, {})
    elif pgx.guideline_for(drug) is not None:
        rec = ctx.recommend(drug, profile)
        if rec is not None and (rec.action in r["excludeCandidateWhenActions"] or uncertainty(rec.genes, rec)):
            why = " + ".join(gene_phrase(g, gp) for g, gp in rec.genes.items())
            no = (f"{drug.name} ({why}: CPIC {rec.action})", rec.genes)
    ctx._profiles[key] = no
    return no


def _options_md(options: dict) -> str:
    lines = []
    for c in options["classes"]:
        parts = []
        if c["kept"]:
            parts.append(md(join_and([d.name for d in c["kept"]], "or")))
        if c["taking"]:
            parts.append("already taking " + md(join_and(c["taking"])))
        if c["dropped"]:
            parts.append("not suggested for this genotype: " + md("; ".join(c["dropped"])))
        lines.append(f"- **{c['label'][:1].upper()}{c['label'][1:]}**: " + ("; ".join(parts) or "none available"))
    return "\n".join(lines)


def _drafts_allowed(r: dict, trig: tuple[str, ...]) -> bool:
    """Replacement drafts only on a phenotype graded well enough (NeuPSIG: a screening score alone is 'possible')."""
    return bool(set(trig) & set(r.get("replacementPhenotypes", r["triggerPhenotypes"])))


def opioid_for_neuropathic(ctx: RuleContext, med: MedicationUse, drug: Drug) -> Finding | None:
    """An opioid (or tramadol) ordered for likely neuropathic pain: not first line; name the first-line classes
    this patient's genotype allows and offer them as drafts. For possible neuropathic pain (a screening score
    alone): advice to confirm it by examination before choosing, with the same options and no drafts."""
    r = rule("opioid-neuropathic")
    if not set(r["orderedClasses"]) & classes_of(drug):
        return None
    trig = tuple(p for p in r["triggerPhenotypes"] if p in ctx.pain_phenotypes)
    if not trig:
        return None
    options = first_line_options(ctx, med)
    if not _drafts_allowed(r, trig):
        return _opioid_for_possible_neuropathic(ctx, r, med, drug, trig, options)
    labels = [c["label"] for c in options["classes"] if c["kept"] and not c["taking"]]
    line = "second line" if "tramadol" in classes_of(drug) else "not first line"
    summary = fit(
        f"Likely neuropathic pain: {drug.name} is {line}; consider {join_and(labels, 'or')}" if labels else
        f"Likely neuropathic pain: {drug.name} is {line}; first-line options need review",
        f"Likely neuropathic pain: {drug.name} is {line} (NeuPSIG)")
    detail = "\n\n".join([
        f"**Why:** the pain profile indicates {md(PHENOTYPE_WORDS[trig[0]])}. For neuropathic pain, gabapentinoids, "
        "SNRIs and tricyclic antidepressants are first line; tramadol is second line and strong opioids third line "
        "(NeuPSIG 2015; NICE CG173).",
        "**First-line options for this patient** (each checked against the patient's genotype with CPIC):\n"
        + _options_md(options),
        "The suggested drafts carry no dose: complete them. Keeping the opioid is reasonable for acute pain or "
        "when first-line options have failed (choose an override reason).",
        sources_md(r["sources"]),
    ])
    return Finding(
        rule=r["id"], kind="pain-phenotype", indicator=r["indicator"], action=r["action"], summary=summary,
        detail=detail, drug=drug, medication=med, phenotypes=trig, genes=options["genes"],
        evidence=_phenotype_evidence(ctx, trig), knowledge=source_knowledge(r["sources"]),
        alternatives=tuple(options["replacements"]), extra={"replace": True},
    )


def _opioid_for_possible_neuropathic(ctx: RuleContext, r: dict, med: MedicationUse, drug: Drug,
                                     trig: tuple[str, ...], options: dict) -> Finding:
    line = "second line" if "tramadol" in classes_of(drug) else "third line"
    summary = fit(f"Possible neuropathic pain (screening score): confirm by examination; if confirmed, {drug.name} "
                  f"is {line}",
                  f"Possible neuropathic pain: confirm by examination; {drug.name} is {line} if confirmed")
    detail = "\n\n".join([
        f"**Why:** the pain profile indicates {md(PHENOTYPE_WORDS[trig[0]])}: a screening questionnaire is positive, "
        "but no diagnosis on record supports a lesion of the nervous system. NeuPSIG grades neuropathic pain "
        "'possible' on such findings; 'probable' needs a pain distribution that fits a lesion, a history that "
        "suggests one and sensory signs on examination.",
        "**Advised:** examine (distribution of the pain, sensory signs) before choosing the treatment. If neuropathic "
        "pain is confirmed, gabapentinoids, SNRIs and tricyclic antidepressants are first line, tramadol second "
        "line and strong opioids third line (NeuPSIG 2015; NICE CG173). No replacement draft is offered on a "
        "screening score alone.",
        "**First-line options for this patient** (each checked against the patient's genotype with CPIC):\n"
        + _options_md(options),
        sources_md(r["sources"]),
    ])
    return Finding(
        rule=r["id"], kind="pain-phenotype", indicator=r.get("possibleIndicator", "info"),
        action=r.get("possibleAction", "monitor"), summary=summary, detail=detail, drug=drug, medication=med,
        phenotypes=trig, genes=options["genes"], evidence=_phenotype_evidence(ctx, trig),
        knowledge=source_knowledge(r["sources"]),
    )


def tca_for_neuropathic(ctx: RuleContext, med: MedicationUse, drug: Drug, cpic: Finding | None) -> Finding | None:
    """A tricyclic at a known low dose for neuropathic pain in a CYP2D6 poor/intermediate or CYP2C19 poor
    metabolizer. CPIC's dosing tables apply to depression doses; at neuropathic-pain doses CPIC advises no change
    but close monitoring. Unless the dose is read from the order and is at or below the cut-off, the CPIC finding
    stands alone (returns None)."""
    r = rule("tca-neuropathic-cyp2d6")
    if not set(r["orderedClasses"]) & classes_of(drug):
        return None
    trig = tuple(p for p in r["triggerPhenotypes"] if p in ctx.pain_phenotypes)
    # a low dose must be read from the order: an unreadable dose is not a low dose, and a TCA without a cut-off
    # has no low-dose exception (CPIC's table applies unchanged)
    dose = daily_dose_mg(med.resource)
    low = r.get("lowDoseMgPerDay", {}).get(drug.name)
    if not trig or dose is None or low is None or dose > low:
        return None
    profile = ctx.profile_for(med, drug)
    genes = {g: profile.genes[g] for g in r["genes"] if g in profile.genes}
    if any(gp.ambiguous or gp.conflicting for gp in genes.values()):
        return None     # uncertain: the CPIC finding gives the advice safe under every possibility
    hits = {g: gp for g, gp in genes.items() if gp.phenotype in r["genes"][g]}
    if not hits:
        return None
    dose_text = f"Ordered dose: {dose:g} mg/day (low-dose range up to {low:g} mg/day)"
    if cpic is not None:
        # CPIC's advice is for depression doses: at this dose no card offers to remove the draft
        cpic.extra.pop("offerRemoval", None)
        if cpic.indicator == "critical":   # CPIC's Strong "avoid" is a caution here, not a stop
            cpic.indicator = "warning"
            cpic.extra["context"] = "neuropathic-pain dose"
    options = first_line_options(ctx, med, exclude_classes=("tca",))
    drafts = _drafts_allowed(r, trig)
    phrase = " + ".join(gene_phrase(g, gp) for g, gp in hits.items())
    named = "+".join(hits)
    summary = fit(f"{phrase}: {drug.name} for neuropathic pain at low dose only; monitor side effects",
                  f"{phrase}: low-dose {drug.name} only; monitor side effects",
                  f"{named}: low-dose {drug.name} only; monitor side effects")
    detail = "\n\n".join([
        f"**Why:** {md(phrase)}; the pain profile indicates {md(PHENOTYPE_WORDS[trig[0]])}. CPIC's advice to avoid "
        "or reduce tricyclics in CYP2D6 poor or intermediate and CYP2C19 poor metabolizers applies to the higher "
        "doses used for depression. At the lower doses used for neuropathic pain CPIC recommends no dose change but "
        "close monitoring for side effects (anticholinergic effects, sedation, QT). If higher doses are needed, "
        "follow the CPIC table (avoid, or 50% of the starting dose with therapeutic drug monitoring).",
        f"**Dose:** {md(dose_text)}.",
        "**Other first-line options for this patient** (each checked against the patient's genotype with "
        "CPIC):\n" + _options_md(options)
        + ("" if drafts else "\n\nNo replacement draft is offered: neuropathic pain is only possible (a screening "
           "score alone); confirm it by examination."),
        sources_md(r["sources"]),
    ])
    return Finding(
        rule=f"{r['id']}/{named}", kind="pain-phenotype", indicator=r["indicator"], action=r["action"],
        summary=summary, detail=detail, drug=drug, medication=med, phenotypes=trig, genes=dict(hits),
        classification=cpic.classification if cpic else None,
        evidence=_phenotype_evidence(ctx, trig) + tuple(dict.fromkeys(e for gp in hits.values() for e in gp.evidence)),
        knowledge=source_knowledge(r["sources"]), alternatives=tuple(options["replacements"]) if drafts else (),
        extra={"replace": True, "primary": True, "joins": "drug"},
    )


def non_response(ctx: RuleContext, med: MedicationUse | None = None) -> list[Finding]:
    """No meaningful response to a current analgesic after an adequate trial. With ``med`` (order hooks): only
    when that order continues or renews a drug the patient is not responding to."""
    r = rule("non-response")
    out = []
    for resp in getattr(ctx.pain, "responses", ()) or ():
        if getattr(resp, "status", None) not in r["responseStatuses"]:
            continue
        drug = getattr(resp, "drug", None)
        if drug is None:
            continue
        if med is not None and all(i.rxnorm != drug.rxnorm for i in med.ingredients):
            continue
        target = med or next((m for m in ctx.active if m.ref == _resp_ref(resp)), None)
        out.append(_non_response_finding(ctx, r, resp, drug, target))
    return out


def _resp_ref(resp) -> str | None:
    return getattr(resp, "medication", None)


def _non_response_finding(ctx, r, resp, drug: Drug, med: MedicationUse | None) -> Finding:
    baseline, latest = getattr(resp, "baseline", None), getattr(resp, "latest", None)
    change = getattr(resp, "change_pct", None)
    days = getattr(resp, "trial_days", None)
    weeks = f" after {round(days / 7)} weeks" if isinstance(days, (int, float)) else ""
    scores = ""
    b, l = _score_value(baseline), _score_value(latest)
    if b is not None and l is not None:
        # change_pct is the reduction from baseline; shown as the change in pain (-14% = 14% less pain)
        pct = ""
        if isinstance(change, (int, float)):
            pct = ", no change" if round(change) == 0 else f", {-change:+.0f}%"
        scores = f" (pain {b:g} → {l:g}{pct})"
    summary = fit(f"No meaningful response to {drug.name}{weeks}{scores}: reassess, consider another class",
                  f"No meaningful response to {drug.name}{weeks}: reassess", f"No response to {drug.name}")
    lines = [f"**Response:** pain scores fell by less than 30% since {md(drug.name)} was started"
             f"{weeks and ' ' + md(weeks)}{scores and ' ' + md(scores)}; a reduction of at least 30% is the threshold for a moderately important "
             "improvement (IMMPACT). The trial has lasted at least the adequate duration for this drug class."]
    genes = {}
    if pgx.guideline_for(drug) is not None:
        rec = ctx.recommend(drug, ctx.profile_for(med))
        if rec is not None and rec.action in REPLACE_ACTIONS | {"monitor", "reduce-dose"} and not rec.ambiguous:
            genes = rec.genes
            lines.append("**Pharmacogenomics may explain it:** "
                         + md(" + ".join(gene_phrase(g, gp) for g, gp in rec.genes.items()))
                         + f" (CPIC for {md(drug.name)}: {md(rec.recommendation)})")
    if "opioid" in classes_of(drug) or "tramadol" in classes_of(drug):
        lines.append("For opioids: reassess benefits and harms, optimise non-opioid and non-drug therapy and, "
                     "if benefits do not outweigh harms, taper gradually (CDC 2022, Recommendation 7). Do not "
                     "escalate the dose of an ineffective opioid.")
    else:
        lines.append("Consider switching to a different class rather than continuing an ineffective drug.")
    if getattr(resp, "confounded", False):
        lines.append("**Note:** another analgesic was started during this trial, so the lack of response cannot be "
                     "attributed to this drug with certainty.")
    lines.append(sources_md(r["sources"]))
    evidence = tuple(getattr(resp, "evidence", ()) or ())
    if med is not None and med.ref and not med.ref.startswith("urn:"):
        evidence += (med.ref,)
    return Finding(
        rule=r["id"], kind="treatment-response", indicator=r["indicator"], action=r["action"], summary=summary,
        detail="\n\n".join(lines), drug=drug, medication=med, phenotypes=("treatment-non-response",),
        genes=genes, evidence=tuple(dict.fromkeys(evidence)), knowledge=source_knowledge(r["sources"]),
    )


def _score_value(score) -> float | None:
    if isinstance(score, (int, float)):
        return float(score)
    value = getattr(score, "value", None)
    return float(value) if isinstance(value, (int, float)) else None


def referral_findings(ctx: RuleContext) -> list[Finding]:
    """Referrals the pain profile calls for (CBT/pain psychology for catastrophizing or depression;
    physiotherapy for nociplastic features)."""
    out = []
    modulators = getattr(ctx.pain, "modulators", {}) or {}
    for ref in referrals():
        trig = tuple(p for p in ref["triggerPhenotypes"] if p in ctx.pain_phenotypes)
        if not trig:
            continue
        why = join_and([_modulator_text(p, modulators) for p in trig])
        out.append(Finding(
            rule=ref["id"], kind="pain-phenotype", indicator=ref["indicator"], action="refer",
            summary=fit(f"{why[:1].upper()}{why[1:]}: {ref['label'][0].lower()}{ref['label'][1:]}",
                        f"{ref['label']} ({join_and(PHENOTYPE_WORDS.get(p, p) for p in trig)})"),
            detail=f"**{md(ref['code']['display'])}:** the pain profile shows {md(why)}. "
                   + sources_md(ref["sources"]),
            phenotypes=trig, evidence=_phenotype_evidence(ctx, trig), knowledge=source_knowledge(ref["sources"]),
            extra={"referral": ref, "reason": why},
        ))
    return out


_MODULATOR_OF = {"high-catastrophizing": "catastrophizing", "depression": "depression", "anxiety": "anxiety"}


def _modulator_text(phenotype: str, modulators: dict) -> str:
    words = PHENOTYPE_WORDS.get(phenotype, phenotype)
    m = modulators.get(_MODULATOR_OF.get(phenotype, ""))
    score, instrument = getattr(m, "score", None), getattr(m, "instrument", None)
    if isinstance(score, (int, float)) and instrument:
        return f"{words} ({instrument_label(instrument)} {score:g})"
    return words
