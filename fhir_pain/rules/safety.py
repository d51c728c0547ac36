"""Patient-safety alerts from the pain assessments: PHQ-9 item 9 (thoughts of death or self-harm) endorsed.

The pain engine flags the depression modulator with "suicidality" when item 9 was answered above 0. The alert
shows whatever the depression level or PHQ-9 total (the item is a screening question in its own right), says
when it was answered and asks for a same-day risk assessment. It makes no diagnosis. Trigger, wording strength
and sources: profiles/rules/pain-rules.json ("phq9-item9").
"""
from __future__ import annotations

from fhir_pain.facts import Finding
from fhir_pain.rules.context import RuleContext
from fhir_pain.rules.knowledge import rule, source_knowledge
from fhir_pain.rules.text import fit, instrument_label, md, sources_md


def suicidality_finding(ctx: RuleContext) -> Finding | None:
    r = rule("phq9-item9")
    modulator = (getattr(ctx.pain, "modulators", {}) or {}).get(r["modulator"])
    if r["flag"] not in (getattr(modulator, "flags", ()) or ()):
        return None
    # the engine's answer that raised the flag (panel component or standalone item); older engines: the score
    answer = (getattr(modulator, "flag_answers", {}) or {}).get(r["flag"])
    score = answer if answer is not None else _latest_flagged(ctx.pain, r["flag"])
    label = instrument_label(r["instrument"])
    when = _day(score) if score is not None else None
    on = f"on {when}" if when else "(date not recorded)"
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
        lines.append("**Evidence:** " + ", ".join(md(e) for e in evidence))
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
