"""Pain intensity now (latest dated NRS/PEG/...) with its trend, and chronicity (> 3 months).

Only scores dated to the day or better are ordered: undated or month/year-dated scores never make a trend or
a "latest". Durations (chronicity) use a partial date only by its conservative bound.
"""
from __future__ import annotations

from datetime import datetime
from operator import attrgetter

from fhir_pain.pain.conditions import ConditionHit
from fhir_pain.pain.knowledge import Knowledge, days
from fhir_pain.pain.model import Intensity, Later, Score, ScoreIndex, written

PAIN_KINDS = ("intensity", "severity")
PAIN_GROUPS = ("neuropathic", "nociplastic", "pain")   # diagnoses that document pain itself
_latest, _earliest = attrgetter("time.latest"), attrgetter("time.earliest")


def latest_intensity(by_inst: ScoreIndex, kn: Knowledge, now: datetime) -> Intensity | None:
    """The latest dated intensity score, if it is recent enough to stand for now (lookbackDays)."""
    p = kn.params["intensity"]
    order = p["instruments"]
    lasts = [(lst[-1], -rank) for rank, key in enumerate(order) if (lst := by_inst.dated.get(key))]
    if not lasts:
        return None
    latest = max(lasts, key=lambda x: (x[0].time.at, x[1]))[0]
    if "lookbackDays" in p and latest.time.at < now - days(p["lookbackDays"]):
        return None
    trend, reasons, refs = _trend(latest, by_inst.dated[latest.instrument], kn)
    inst = kn.instruments[latest.instrument]
    evidence = tuple(dict.fromkeys((*latest.evidence, *refs)))
    return Intensity(latest.value, latest.instrument, latest.time.at, latest.time, trend, inst.band(latest.value),
                     evidence, reasons, inst.bands_verified)


def _trend(latest: Score, same: list[Score], kn: Knowledge) -> tuple[str | None, Later, tuple[str, ...]]:
    """Latest against the mean of the same instrument's earlier scores in the window (``same`` is in time
    order, ``latest`` last). A change counts when it is >= minAbsolute points, or >= minRelative of the
    reference and >= minAbsoluteWithRelative points."""
    p = kn.params["trend"]
    since = latest.time.at - days(p["windowDays"])
    prior = []
    for s in reversed(same[:-1]):
        if s.time.at < since:
            break
        prior.append(s)
    if not prior:
        return None, Later(_no_earlier, latest, p), ()
    ref = sum(s.value for s in prior) / len(prior)
    delta = latest.value - ref
    size = abs(delta)
    meaningful = size >= p["minAbsolute"] or (
        ref > 0 and size / ref >= p["minRelative"] and size >= p["minAbsoluteWithRelative"])
    trend = "stable" if not meaningful else "improving" if delta < 0 else "worsening"
    return trend, Later(_against, latest, ref, len(prior), p, trend), tuple(r for s in prior for r in s.evidence)


def _no_earlier(latest: Score, p: dict) -> tuple[str]:
    return (f"no earlier {latest.instrument} score in the {p['windowDays']} days before the latest",)


def _against(latest: Score, ref: float, n: int, p: dict, trend: str) -> tuple[str]:
    return (f"{latest.value:g} against a mean of {ref:.1f} over {n} earlier score(s) in {p['windowDays']} days: "
            f"{trend}",)


def chronicity(by_inst: ScoreIndex, hits: list[ConditionHit], kn: Knowledge,
               now: datetime) -> tuple[bool, Later, tuple[str, ...]]:
    """Pain documented for more than minDays: a chronic-pain diagnosis; a painful condition present since
    before that (onset, or recordedDate as its upper bound); or pain scores > 0 that many days apart, the
    last within recentDays. Partial dates count only by their conservative bound. The reasons are written when
    read (PainProfile.chronic_reasons)."""
    p = kn.params["chronic"]
    min_days = days(p["minDays"])
    reasons: list = []
    evidence: list[str] = []
    chronic = False
    for h in hits:
        if not h.confirmed:
            continue
        if h.group == "chronic-pain":
            reasons.append(Later(_diagnosis, h))
        elif h.group in PAIN_GROUPS and h.onset is not None and now - h.onset.latest >= min_days:
            reasons.append(Later(_documented_since, h))
        else:
            continue
        chronic = True
        evidence.append(h.ref)
    pain = [s for key in kn.keys_of_kind(PAIN_KINDS) for s in by_inst.all.get(key, ())
            if s.value > 0 and s.time is not None]
    if pain:
        first = min(pain, key=_latest)
        last = max(pain, key=_earliest)
        span = last.time.earliest - first.time.latest
        recent = now - last.time.at <= days(p["recentDays"])
        if span >= min_days and recent:
            chronic = True
            reasons.append(Later(_scores_from, first, last, span))
            evidence += [*first.evidence, *last.evidence]
        elif span >= min_days:
            reasons.append(Later(_scores_old, last, span, p))
    return chronic, Later(written, reasons), tuple(dict.fromkeys(r for r in evidence if r))


def _diagnosis(h: ConditionHit) -> str:
    return f"diagnosis: {h.describe()}"


def _documented_since(h: ConditionHit) -> str:
    return f"{h.describe()} documented since {h.onset.isoformat()} ({h.onset.element})"


def _scores_from(first: Score, last: Score, span) -> str:
    return f"pain scores above 0 from {first.time.isoformat()} to {last.time.isoformat()} ({span.days} days)"


def _scores_old(last: Score, span, p: dict) -> str:
    return (f"pain scores span {span.days} days but the last one ({last.time.isoformat()}) is older than "
            f"{p['recentDays']} days: not counted")
