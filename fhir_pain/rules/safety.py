"""Patient-safety alerts from the pain assessments: PHQ-9 item 9 (thoughts of death or self-harm) endorsed.

The pain engine flags the depression modulator with "suicidality" when item 9 was answered above 0 (within the
flag's look-back). Then:
- patient-view: an alert whatever the depression level or PHQ-9 total (the item is a screening question in its
  own right), saying when it was answered and asking for a same-day risk assessment. It makes no diagnosis.
- order-select / order-sign of a tricyclic antidepressant or an opioid: a warning that names the overdose risk and
  asks for a risk assessment and a limited supply (:func:`overdose_risk_finding`);
- and no card offers a tricyclic as a one-click replacement draft (:func:`tca_replacement_blocked`,
  :func:`withhold_tca_replacements`).
Triggers, drug groups, wording strength and sources: profiles/rules/pain-rules.json ("phq9-item9",
"phq9-item9-order").
"""
from __future__ import annotations

from functools import lru_cache

from fhir_pain.facts import Drug, Finding, MedicationUse
from fhir_pain.rules.classes import classes_of
from fhir_pain.rules.context import RuleContext
from fhir_pain.rules.knowledge import rule, source_knowledge
from fhir_pain.rules.text import evidence_md, fit, instrument_label, join_and, md, sources_md


def _flag(ctx: RuleContext, r: dict):
    """(modulator, the item answer that raised the flag or None, that answer or else the latest flagged score) when
    the rule's flag is raised now, else None."""
    modulator = (getattr(ctx.pain, "modulators", {}) or {}).get(r["modulator"])
    if r["flag"] not in (getattr(modulator, "flags", ()) or ()):
        return None
    # the engine's answer that raised the flag (panel component or standalone item); older engines: the score
    answer = (getattr(modulator, "flag_answers", {}) or {}).get(r["flag"])
    return modulator, answer, answer if answer is not None else _latest_flagged(ctx.pain, r["flag"])


def _answered(r: dict, score) -> tuple[str, str | None, str]:
    """(instrument label, day answered or None, "on <day>" words) for the item-9 answer that raised the flag."""
    when = _day(score) if score is not None else None
    return instrument_label(r["instrument"]), when, f"on {when}" if when else "(date not recorded)"


def suicidality_finding(ctx: RuleContext) -> Finding | None:
    r = rule("phq9-item9")
    raised = _flag(ctx, r)
    if raised is None:
        return None
    modulator, answer, score = raised
    label, when, on = _answered(r, score)
    summary = fit(f"{label} item 9 (thoughts of death or self-harm) endorsed {on}: same-day suicide risk "
                  "assessment advised",
                  f"{label} item 9 endorsed {on}: same-day suicide risk assessment advised")
    total = answer.total if answer is not None else getattr(score, "value", None)
    lines = [
        f"**Why:** on the {label} {md(f'of {when}' if when else '(date not recorded)')} the patient answered "
        "item 9 (thoughts that they would be better off dead, or of hurting themselves) with more than \"not at all\"."
        + (f" The {label} total that day was {total:g}." if isinstance(total, (int, float)) else ""),
        "**Advised:** a suicide risk assessment the same day by a clinician competent to make it, whatever the "
        f"{label} total or depression level. Item 9 is a screening question: a positive answer is not a diagnosis, "
        "and a low total does not rule out risk.",
    ]
    evidence = tuple(getattr(score, "evidence", ()) or ()) or tuple(getattr(modulator, "evidence", ()) or ())
    if evidence:
        lines.append(evidence_md(evidence))
    lines.append(sources_md(r["sources"]))
    return Finding(rule=r["id"], kind=r["kind"], indicator=r["indicator"], action=r["action"], summary=summary,
                   detail="\n\n".join(lines), evidence=evidence, knowledge=source_knowledge(r["sources"]))


def _latest_flagged(profile, flag: str):
    """The most recent score carrying ``flag`` (undated ones only when no dated one carries it)."""
    flagged = [s for s in getattr(profile, "scores", ()) or () if flag in (getattr(s, "flags", ()) or ())]
    dated = [s for s in flagged if getattr(s, "time", None) is not None]
    if dated:
        return max(dated, key=lambda s: s.time.at)
    return flagged[0] if flagged else None


def _day(score) -> str | None:
    """The day the answer was given, as the EHR sent it (its own offset), or the partial date it has."""
    t = getattr(score, "time", None)
    if t is None:
        return None
    if t.precision == "time":
        return (t.local or t.at).date().isoformat()
    return t.isoformat()


# ---- order hooks: tricyclics and opioids while item 9 is endorsed --------------------------------------------------

@lru_cache(maxsize=2048)   # a pure function of the knowledge (keys: Drugs of the vocabulary)
def drug_group(drug: Drug) -> str | None:
    """The phq9-item9-order drug group of an ingredient ("tca", "opioid"), by analgesic class or listed name."""
    for key, g in rule("phq9-item9-order")["drugGroups"].items():
        if drug.name in g["ingredients"] or set(g["classes"]) & classes_of(drug):
            return key
    return None


def tca_replacement_blocked(ctx: RuleContext) -> bool:
    """True while PHQ-9 item 9 is endorsed: no card may offer a tricyclic as a one-click replacement draft.
    Rules that choose replacement drafts call it (fhir_pain.rules.pain_context.first_line_options); the drug-gene
    alternatives are filtered after the fact by :func:`withhold_tca_replacements`."""
    blocked = ctx._profiles.get("tca-blocked")    # asked for every candidate: once per evaluation
    if blocked is None:
        blocked = ctx._profiles["tca-blocked"] = _flag(ctx, rule("phq9-item9-order")) is not None
    return blocked


def blocked_replacement(ctx: RuleContext, drug: Drug) -> str | None:
    """Why ``drug`` may not be offered as a replacement draft for this patient now, or None when it may."""
    r = rule("phq9-item9-order")
    if drug_group(drug) not in r["blockReplacementGroups"] or not tca_replacement_blocked(ctx):
        return None
    return f"{drug.name} (PHQ-9 item 9 endorsed: tricyclics are highly toxic in overdose)"


def withhold_tca_replacements(ctx: RuleContext, findings: list[Finding]) -> None:
    """Remove tricyclics from every finding's replacement alternatives while item 9 is endorsed, and say so in the
    finding's detail (the clinician may still order one by hand, with a limited supply)."""
    if not any(f.alternatives for f in findings) or not tca_replacement_blocked(ctx):
        return
    from fhir_pain.rules.drug_gene import handling   # here: drug_gene may import this module's predicate
    for f in findings:
        held = [a for a in f.alternatives if blocked_replacement(ctx, a)]
        if not held:
            continue
        before, f.alternatives = f.alternatives, tuple(a for a in f.alternatives if a not in held)
        if f.medication is not None and f.detail:
            # the "how to act" sentence the rule wrote for the drafts it meant to offer
            old, new = handling(f.medication, before), handling(f.medication, f.alternatives)
            if old and old != new and old in f.detail:
                f.detail = f.detail.replace(old, new).replace(" \n", "\n")
        note = (f"**No draft offered for {md(join_and([a.name for a in held], 'or'))}:** PHQ-9 item 9 (thoughts of "
                "death or self-harm) is endorsed, and tricyclic antidepressants are highly toxic in overdose. If one "
                "is chosen all the same, order it by hand after a risk assessment, with a limited supply.")
        f.detail = f"{f.detail}\n\n{note}" if f.detail else note


def overdose_risk_finding(ctx: RuleContext, med: MedicationUse, drug: Drug) -> Finding | None:
    """A tricyclic or an opioid ordered while PHQ-9 item 9 is endorsed: name the overdose risk, ask for a risk
    assessment and a limited supply. One card per ordered drug, its own (not merged into the drug's PGx card)."""
    r = rule("phq9-item9-order")
    group = drug_group(drug)
    if group is None:
        return None
    raised = _flag(ctx, r)
    if raised is None:
        return None
    modulator, _, score = raised
    g = r["drugGroups"][group]
    label, when, on = _answered(r, score)
    summary = fit(f"{label} item 9 endorsed {on}: {drug.name} ({g['label']}) carries overdose risk; assess suicide "
                  "risk, limit the supply",
                  f"{label} item 9 endorsed: {drug.name} overdose risk; assess suicide risk, limit the supply")
    if group == "tca":
        advised = (f"assess suicide risk today before prescribing; prefer a first-line option that is safer in "
                   f"overdose (gabapentinoid or SNRI for neuropathic pain); if {md(drug.name)} is still chosen, "
                   "dispense a limited supply (the smallest quantity consistent with good care), review before any "
                   "repeat and consider who keeps the medicine.")
    else:
        advised = (f"assess suicide risk today before prescribing; if {md(drug.name)} is still needed, dispense a "
                   "limited supply (no more than needed, CDC 2022 Recommendation 6), review before any repeat and "
                   "offer naloxone (CDC 2022 Recommendation 8).")
    lines = [
        f"**Why:** on the {label} {md(f'of {when}' if when else '(date not recorded)')} the patient answered item 9 "
        "(thoughts that they would be better off dead, or of hurting themselves) with more than \"not at all\". "
        f"{md(g['risk'])}.",
        f"**Advised:** {advised} Item 9 is a screening question: a positive answer is not a diagnosis.",
    ]
    evidence = tuple(getattr(score, "evidence", ()) or ()) or tuple(getattr(modulator, "evidence", ()) or ())
    refs = tuple(dict.fromkeys((*evidence, *([med.ref] if med.ref and not med.ref.startswith("urn:") else []))))
    if refs:
        lines.append(evidence_md(refs))
    lines.append(sources_md(g["sources"] + r["sources"]))
    return Finding(rule=f"{r['id']}/{drug.name}", kind=r["kind"], indicator=r["indicator"], action=r["action"],
                   summary=summary, detail="\n\n".join(lines), drug=drug, medication=med, evidence=refs,
                   knowledge=source_knowledge(g["sources"]), extra={"relevantMissing": ()})
