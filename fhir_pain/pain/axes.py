"""Mechanism axes (neuropathic, nociplastic, inflammatory) and psychosocial modulators.

Each axis is scored on its own from screening scores and diagnoses. Two safety rules apply everywhere:
- a cut-off the knowledge file does not mark ``verified`` never gives the strong level (likely -> possible,
  present -> possible);
- a score that cannot be placed in time (undated, or a partial date) is used only where order does not
  matter, and also gives at most the weaker level. Dated scores older than the look-back do not count now.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Mapping

from fhir_pain.pain.conditions import ConditionHit
from fhir_pain.pain.knowledge import Instrument, Knowledge, days
from fhir_pain.pain.model import AxisResult, FlagAnswer, Later, ModulatorResult, Score, ScoreIndex, lazy

WEAKER = {"likely": "possible", "features": "possible", "positive": "possible", "present": "possible"}


@lazy("why")
@dataclass(slots=True)   # read-only; not frozen: a frozen dataclass is much slower to build, and each score makes one
class Pick:
    score: Score
    weak: bool            # undated or partial date: cannot be ordered
    level: str | None     # the cut-off level met after downgrades, None when below every cut-off
    verified: bool        # the cut-off met was verified (True when no cut-off was met)
    why: str              # plain-words reason (written on first read)


def _fmt(v: float) -> str:
    return f"{v:g}"


def _date(s: Score) -> str:
    return s.time.isoformat() if s.time is not None else "undated"


def classify(inst: Instrument, s: Score, weak: bool) -> Pick:
    c = inst.cutoff_met(s.value)
    if c is None:
        return Pick(s, weak, None, True, Later(_why, inst, s, weak, None))
    level = c.level if c.verified and not weak else WEAKER.get(c.level, c.level)
    return Pick(s, weak, level, c.verified, Later(_why, inst, s, weak, c))


def _why(inst: Instrument, s: Score, weak: bool, c) -> str:
    """Pick.why: the score against the cut-off it meets (``c``), or against the lowest one."""
    where = f"{inst.name} {_fmt(s.value)} on {_date(s)}"
    if c is None:
        first = inst.cutoffs[-1] if inst.cutoffs else None
        return f"{where}: below {first.describe()}" if first else where
    level, qual = c.level, []
    if not c.verified:
        qual.append("cut-off not verified")
    if weak:
        qual.append("score cannot be placed in time")
    if qual:
        level = WEAKER.get(level, level)
    tail = f" ({'; '.join(qual)}: at most '{level}')" if qual else ""
    return f"{where} meets {c.describe()} ({c.meaning}){tail}"


def _text(x) -> str:
    """One reason, kept as its parts until read: a text, a Pick (its why), a diagnosis (ConditionHit), a
    :class:`Later`, or (item, suffix)."""
    t = type(x)
    if t is str:
        return x
    if t is Pick:
        return x.why
    if t is ConditionHit:
        return f"diagnosis: {x.describe()}"
    if t is Later:
        return x()
    item, suffix = x
    return _text(item) + suffix


def _words(items, empty: str | None = None) -> tuple[str, ...]:
    """The reasons from their parts (``empty``: the one reason when there are none)."""
    return tuple(map(_text, items)) or ((empty,) if empty is not None else ())


def select(inst: Instrument, index: ScoreIndex, now: datetime, lookback_days: int) -> tuple[Pick | None, Later | None]:
    """The score of one instrument that speaks for now: the latest dated one within the look-back; else the
    undated/partial-date ones if they all agree; else nothing (with a reason when something was seen)."""
    scores = index.all.get(inst.key)
    if not scores:
        return None, None
    since = now - days(lookback_days)
    dated = index.dated.get(inst.key)
    if dated and dated[-1].time.at >= since:
        return classify(inst, dated[-1], False), None
    weak = [s for s in scores if not s.orderable and (s.time is None or s.time.latest >= since)]
    if weak:
        picks = [classify(inst, s, True) for s in weak]
        if len({p.level for p in picks}) == 1:
            return max(picks, key=lambda p: p.score.value), None
        return None, Later(_disagree, inst, picks)
    if dated:
        return None, Later(_too_old, inst, dated[-1], lookback_days)
    return None, None


def _disagree(inst: Instrument, picks: list[Pick]) -> str:
    return f"{inst.name}: undated scores disagree ({', '.join(_fmt(p.score.value) for p in picks)}); not used"


def _too_old(inst: Instrument, last: Score, lookback_days: int) -> str:
    return f"{inst.name}: latest score {_fmt(last.value)} on {_date(last)} is older than {lookback_days} days"


def _picks(keys: list[str], by_inst: ScoreIndex, kn: Knowledge, now: datetime,
           lookback: int) -> tuple[list[Pick], list[Later]]:
    picks, notes = [], []
    scored = by_inst.all
    for key in keys:
        if key not in scored:   # select() would say nothing: most instruments are never used for a patient
            continue
        pick, note = select(kn.instruments[key], by_inst, now, lookback)
        if note:
            notes.append(note)
        if pick is not None:
            picks.append(pick)
    return picks, notes


def _refs(*groups) -> tuple[str, ...]:
    return tuple(dict.fromkeys(r for g in groups for r in g if r))


@dataclass(slots=True)
class _Tally:
    """One axis's screening scores and diagnoses, sorted by the level they support (as reasons to be written,
    see _text)."""
    strong_screens: list
    strong_diagnoses: list
    possible: list
    negative: list
    notes: list
    evidence: list[tuple[str, ...]]
    supporting: int = 0     # confirmed diagnoses of the axis's group, whatever their level

    def result(self, level: str, *lead: str) -> AxisResult:
        reasons = (*lead, *self.strong_screens, *self.strong_diagnoses, *self.possible, *self.negative, *self.notes)
        return AxisResult(level, Later(_words, reasons), _refs(*self.evidence))

    def below_strong(self, nothing: str) -> AxisResult:
        """The answer when no strong level applies: possible, unlikely, or unknown (``nothing`` says why)."""
        if self.possible:
            return self.result("possible")
        if self.negative:
            return self.result("unlikely")
        return self.result("unknown") if self.notes else AxisResult("unknown", (nothing,))


def _tally(axis: str, strong: str, by_inst: ScoreIndex, hits: list[ConditionHit], kn: Knowledge,
           now: datetime) -> _Tally:
    p = kn.params["axes"][axis]
    picks, notes = _picks(p["instruments"], by_inst, kn, now, p["lookbackDays"])
    t = _Tally([], [], [], [], notes, [])
    for pk in picks:
        (t.strong_screens if pk.level == strong else t.possible if pk.level else t.negative).append(pk)
        t.evidence.append(pk.score.evidence)
    for h in hits:
        if h.group == p.get("conditions"):
            (t.strong_diagnoses if h.confirmed and h.level == strong else t.possible).append(h)
            t.evidence.append((h.ref,))
            t.supporting += h.confirmed
    return t


def neuropathic(by_inst: ScoreIndex, hits: list[ConditionHit], kn: Knowledge, now: datetime) -> AxisResult:
    """NeuPSIG grading (Finnerup 2016): a positive screening questionnaire alone makes neuropathic pain only
    'possible'; 'likely' needs a confirmed diagnosis of the neuropathic group (a history of a relevant lesion in a
    plausible distribution), with or without a screening score. ``screeningAlone`` in phenotyping.json."""
    t = _tally("neuropathic", "likely", by_inst, hits, kn, now)
    if t.strong_screens or t.strong_diagnoses:
        if not t.strong_diagnoses and t.negative:
            return t.result("possible", "screening tools disagree: neuropathic pain possible, not likely")
        alone = kn.params["axes"]["neuropathic"].get("screeningAlone", "likely")
        if not t.strong_diagnoses and not t.supporting and alone != "likely":
            return t.result(alone, "screening score without a supporting diagnosis: neuropathic pain possible "
                                   "(NeuPSIG grading; 'likely' needs a diagnosis of a relevant lesion)")
        return t.result("likely")
    return t.below_strong("no neuropathic screening score or diagnosis")


def nociplastic(by_inst: ScoreIndex, hits: list[ConditionHit], chronic: bool, kn: Knowledge,
                now: datetime) -> AxisResult:
    t = _tally("nociplastic", "features", by_inst, hits, kn, now)
    if t.strong_screens or t.strong_diagnoses:
        if kn.params["axes"]["nociplastic"].get("requiresChronic") and not chronic:
            return t.result("possible", "nociplastic features need pain for more than 3 months, which is not "
                                        "documented")
        return t.result("features")
    return t.below_strong("no sensitization score or diagnosis")


def inflammatory(by_inst: ScoreIndex, hits: list[ConditionHit], kn: Knowledge, now: datetime) -> AxisResult:
    """A hint only: markers and diagnoses suggest, never establish, an inflammatory contribution."""
    p = kn.params["axes"]["inflammatory"]
    picks, reasons = _picks(p["instruments"], by_inst, kn, now, p["lookbackDays"])
    hint, other, evidence = [], [], []
    for pk in picks:
        if pk.weak:   # a marker without a usable date says nothing about now
            other.append((pk, ": not used, the result cannot be placed in time"))
        elif pk.level == "hint":
            hint.append(pk)
            evidence.append(pk.score.evidence)
        else:
            other.append(pk)
            evidence.append(pk.score.evidence)
    for h in hits:
        if h.group == "inflammatory":
            if h.confirmed:
                hint.append(h)
                evidence.append((h.ref,))
            else:
                other.append(Later(_unconfirmed, h))
    reasons = Later(_words, hint + other + reasons, "no recent inflammatory marker or diagnosis")
    if hint:
        return AxisResult("hint", reasons, _refs(*evidence))
    if any(not pk.weak for pk in picks):
        return AxisResult("none", reasons, _refs(*evidence))
    return AxisResult("unknown", reasons)


def _unconfirmed(h: ConditionHit) -> str:
    return f"diagnosis not confirmed, not used: {h.describe()}"


def modulator(name: str, by_inst: ScoreIndex, hits: list[ConditionHit], kn: Knowledge, now: datetime,
              item_flags: Mapping[str, FlagAnswer] | None = None,
              stale_flags: Mapping[str, FlagAnswer] | None = None) -> ModulatorResult:
    """``item_flags``: flag -> the answer deciding it, ``stale_flags``: flag -> a positive answer older than the
    look-back (fhir_pain.pain.flags.decide_flags). The modulator carries the raised flags of its instruments'
    items whatever its level."""
    p = kn.params["modulators"][name]
    order = p["instruments"]
    picks, notes = _picks(order, by_inst, kn, now, p["lookbackDays"])
    own = kn.modulator_flags[name]
    raised = {f: a for f, a in sorted(item_flags.items()) if f in own and a.raised} if item_flags else {}
    flags = tuple(raised)
    # the latest dated score speaks for now (a PHQ-9 beats the PHQ-2 of the same day); undated only if alone
    dated = [pk for pk in picks if not pk.weak]
    pool = dated or picks
    if len(pool) == 1:   # the common case: one instrument scored; no need to rank
        chosen = pool[0]
    else:
        chosen = max(pool, key=lambda pk: (pk.score.time.at if not pk.weak else now,
                                           -order.index(pk.score.instrument))) if pool else None
    reasons, evidence = [], []
    level = "unknown"
    if chosen is not None:
        s = chosen.score
        inst = kn.instruments[s.instrument]
        level = "absent" if chosen.level is None else "present" if chosen.level == "positive" else "possible"
        reasons.append(chosen)
        evidence.append(s.evidence)
        reasons += [(pk, " (older than the score used)") for pk in pool if pk is not chosen]
    group = p.get("conditions")
    diagnoses = [h for h in hits if h.group == group] if group else ()
    for h in diagnoses:
        reasons.append(h)
        evidence.append((h.ref,))
        level = "present" if h.confirmed else ("possible" if level in ("unknown", "absent") else level)
    flag_reasons, flag_evidence = [], []
    for f, a in raised.items():
        flag_reasons += [Later(_flag_raised, kn.item_flags[f], a), *a.notes]
        flag_evidence.append(a.evidence)
    for f, a in sorted((stale_flags or {}).items()):
        if f in own:
            notes.append(Later(_flag_stale, kn.item_flags[f], a))
    reasons = Later(_words, flag_reasons + reasons + notes, "no score or diagnosis")
    evidence += flag_evidence
    if chosen is None:
        return ModulatorResult(level, reasons=reasons, evidence=_refs(*evidence), flags=flags, flag_answers=raised)
    cut = inst.cutoffs[0] if inst.cutoffs else None
    return ModulatorResult(
        level, score=s.value, instrument=s.instrument, cutoff=cut.value if cut else None,
        cutoff_op=cut.op if cut else None,
        cutoff_verified=cut.verified if cut else None, date=s.date, reasons=reasons,
        evidence=_refs(*evidence), flags=flags, time=s.time, flag_answers=raised)


def _flag_raised(spec, a: FlagAnswer) -> str:
    when = f"on {a.time.isoformat()}" if a.time is not None else "(date not recorded)"
    return f"{spec.label} answered {a.value:g} {when}: {spec.advice}"


def _flag_stale(spec, a: FlagAnswer) -> str:
    return (f"{spec.label} answered {a.value:g} on {a.time.isoformat()}: older than {spec.lookback_days} days, "
            "no longer flagged")
