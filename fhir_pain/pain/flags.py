"""Item flags (PHQ-9 item 9 -> "suicidality"): which answer decides each flag now.

A flag follows the most recent answer to its item within the flag's look-back (profiles/pain/phenotyping.json
"itemFlags"), not the latest total: a PHQ-9 sent later as a total only says nothing about item 9 and must not
hide an earlier positive answer, and item 9 sent as a standalone Observation counts like a panel component.
A later answer of 0 clears the flag. Answers that cannot be placed in time (undated, or a month/year only) are
used only when no dated answer falls in the look-back, as for scores (fhir_pain.pain.axes.select); then any
positive one raises the flag, because the order of answers cannot be told and a missed alert costs more.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Iterable

from fhir_pain.pain.knowledge import Knowledge, days
from fhir_pain.pain.model import ORDERABLE, FlagAnswer


def decide_flags(answers: Iterable[FlagAnswer], kn: Knowledge, now: datetime,
                 horizon: datetime) -> tuple[dict[str, FlagAnswer], dict[str, FlagAnswer]]:
    """(flag -> the answer that decides it, raised or cleared; flag -> the latest answer when it is positive but
    older than the look-back, so that the reasons can say why it no longer counts). ``horizon``: answers dated
    after it are errors (the engine's future tolerance) and are left out."""
    by_flag: dict[str, list[FlagAnswer]] = {}
    for a in answers:
        if a.time is not None and a.time.earliest > horizon:
            continue    # the score of the same Observation is rejected as dated in the future already
        by_flag.setdefault(a.flag, []).append(a)
    decided: dict[str, FlagAnswer] = {}
    stale: dict[str, FlagAnswer] = {}
    for flag, found in by_flag.items():
        spec = kn.item_flags[flag]
        since = now - days(spec.lookback_days)
        dated = [a for a in found if a.time is not None and a.time.precision in ORDERABLE]
        recent = [a for a in dated if a.time.at >= since]
        if recent:
            last = max(a.time.at for a in recent)
            decided[flag] = _merge([a for a in recent if a.time.at == last])
            continue
        weak = [a for a in found if (a.time is None or a.time.precision not in ORDERABLE)
                and (a.time is None or a.time.latest >= since)]
        if weak:
            decided[flag] = _merge(weak, placed=False)
            continue
        if not dated:   # only answers dated to the month or year, all before the look-back: nothing to say
            continue
        old = _merge([a for a in dated if a.time.at == max(b.time.at for b in dated)])
        if old.raised:
            stale[flag] = old
    return decided, stale


def _merge(same: list[FlagAnswer], *, placed: bool = True) -> FlagAnswer:
    """One answer for one moment (or for answers that cannot be ordered): the highest value, because a positive
    answer among them cannot be ruled out; disagreement is said."""
    best = max(same, key=lambda a: (a.value, a.total is not None, a.ref))
    values = sorted({a.value for a in same})
    notes = []
    if len(values) > 1:
        where = "at the same time" if placed else "without a usable date"
        notes.append(f"answered {', '.join(f'{v:g}' for v in values)} {where}; the highest is used")
    evidence = tuple(dict.fromkeys(r for a in sorted(same, key=lambda a: a is not best) for r in a.evidence))
    return replace(best, evidence=evidence, notes=tuple(notes))
