"""The pain profile and its parts: what fhir_pain.pain.build_profile returns to the rules.

Every conclusion carries the FHIR references it rests on (``evidence``) and its reasons in plain words.
``to_dict`` gives JSON-serialisable dicts (camelCase keys, ISO dates at the precision the EHR sent).
"""
from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from operator import attrgetter
from types import MemberDescriptorType

from fhir_pain.facts import Drug
from fhir_pain.fhirdates import FhirTime

ORDERABLE = ("time", "day")   # precisions good enough to order scores and to compute trends


def _iso(t: FhirTime | None) -> str | None:
    return t.isoformat() if t is not None else None


def _clean(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None and v != () and v != [] and v != {}}


# Words written on first read: ``Later(fn, *args)`` keeps the parts and ``fn(*args)`` runs when the field holding it
# is read. Order-sign never reads the reasons (the patient view and the dashboard do), and their f-strings and
# isoformat() calls were a large share of the engine's work. A partial is built and called in C; ``fn`` is a
# module-level function, so a profile stays picklable.
Later = partial


class _Lazy:
    """A dataclass field that may be given a :class:`Later`: its value is computed on first read and kept. Every
    read goes through the attribute, so equality, hashing, repr and ``to_dict`` see the words as before."""
    __slots__ = ("name", "slot")

    def __init__(self, cls: type, name: str):
        self.name = name
        own = cls.__dict__.get(name)
        self.slot = own if isinstance(own, MemberDescriptorType) else None   # slots class: where the value lives

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        v = self.slot.__get__(obj) if self.slot is not None else obj.__dict__[self.name]
        if type(v) is Later:
            v = v()
            self.__set__(obj, v)
        return v

    def __set__(self, obj, value) -> None:
        if self.slot is not None:
            self.slot.__set__(obj, value)
        else:
            obj.__dict__[self.name] = value


def written(parts) -> tuple[str, ...]:
    """Reasons from parts that are texts or :class:`Later` s."""
    return tuple(x if type(x) is str else x() for x in parts)


def lazy(*names: str):
    """Class decorator (outside @dataclass): the named fields accept a :class:`Later`."""
    def wrap(cls: type) -> type:
        for name in names:
            own = cls.__dict__.get(name)
            # a slots class: a property whose setter is the slot's own (C, no Python call per object built)
            setattr(cls, name, property(_slot_reader(own), own.__set__) if isinstance(own, MemberDescriptorType)
                    else _Lazy(cls, name))
        return cls
    return wrap


def _slot_reader(slot: MemberDescriptorType):
    def read(obj):
        v = slot.__get__(obj)
        if type(v) is Later:
            v = v()
            slot.__set__(obj, v)
        return v
    return read


@dataclass(slots=True)
class Score:
    """One usable instrument score. Treat as read-only (not frozen: one is built per Observation, and a frozen
    dataclass costs ~1 µs more to build)."""
    instrument: str                   # instrument key from profiles/pain/instruments.json
    value: float
    ref: str                          # the Observation carrying (or grouping) the score; "" when it has no id
    time: FhirTime | None
    method: str = "total"             # "total" (sent by the EHR) | "items" (computed from item answers)
    evidence: tuple[str, ...] = ()    # ref + item Observations used
    flags: tuple[str, ...] = ()       # e.g. "suicidality": PHQ-9 item 9 answered above 0
    notes: tuple[str, ...] = ()

    @property
    def orderable(self) -> bool:
        return self.time is not None and self.time.precision in ORDERABLE

    @property
    def date(self) -> datetime | None:
        return self.time.at if self.time is not None else None

    def to_dict(self) -> dict:
        return _clean({"instrument": self.instrument, "value": self.value, "ref": self.ref or None,
                       "date": _iso(self.time), "method": self.method, "evidence": list(self.evidence),
                       "flags": list(self.flags), "notes": list(self.notes)})


class ScoreIndex:
    """Usable scores per instrument, built once per profile: ``all`` in time order (undated last) and ``dated``
    (day precision or better) in time order, so that "latest" is the last element."""
    __slots__ = ("all", "dated")

    def __init__(self, scores: list[Score]):      # scores in time order, undated last (scoring.read_scores)
        self.all: dict[str, list[Score]] = {}     # a plain dict: a look-up never adds a key
        self.dated: dict[str, list[Score]] = {}
        by_key, dated = self.all, self.dated
        for s in scores:   # add(), inlined: one call per profile rather than one per score
            key = s.instrument
            found = by_key.get(key)
            if found is None:
                by_key[key] = [s]
            else:
                found.append(s)
            t = s.time
            if t is not None and t.precision in ORDERABLE:
                same = dated.get(key)
                if same is None:
                    dated[key] = [s]
                else:
                    same.append(s)

    def add(self, s: Score) -> None:
        """File one more score (in time order, undated last), so that a caller walking the scores anyway
        builds the index in the same pass."""
        key = s.instrument
        found = self.all.get(key)
        if found is None:
            self.all[key] = [s]
        else:
            found.append(s)
        t = s.time
        if t is not None and t.precision in ORDERABLE:
            dated = self.dated.get(key)
            if dated is None:
                self.dated[key] = [s]
            else:
                dated.append(s)

    def last_at_or_before(self, key: str, t: datetime) -> Score | None:
        """The latest dated score of the instrument whose ``time.at`` is ``t`` or earlier."""
        dated = self.dated.get(key)
        if not dated:
            return None
        i = bisect_right(dated, t, key=_at)
        return dated[i - 1] if i else None

    def last_ended_by(self, key: str, t: datetime) -> Score | None:
        """The latest dated score (in time order) whose interval ends by ``t`` (``time.latest <= t``)."""
        dated = self.dated.get(key)
        if not dated:
            return None
        # a score that starts after t ends after it too: only those before the cut need looking at, from the last
        for i in range(bisect_right(dated, t, key=_at) - 1, -1, -1):
            if dated[i].time.latest <= t:
                return dated[i]
        return None


_at = attrgetter("time.at")


@dataclass(slots=True)
class Rejected:
    """A recognised pain/psychosocial value that was not used, and why (out of range, malformed, ...)."""
    ref: str
    instrument: str | None
    reason: str

    def to_dict(self) -> dict:
        return _clean({"ref": self.ref or None, "instrument": self.instrument, "reason": self.reason})


@lazy("reasons")
@dataclass(frozen=True)
class Intensity:
    score: float                      # 0-10
    instrument: str
    date: datetime
    time: FhirTime
    trend: str | None                 # "improving" | "worsening" | "stable" | None (not enough dated scores)
    band: str | None                  # "mild" ... when the instrument has bands
    evidence: tuple[str, ...]
    reasons: tuple[str, ...] = ()
    band_verified: bool = False       # False: the banding was not re-read in its source (label only)

    def to_dict(self) -> dict:
        return _clean({"score": self.score, "instrument": self.instrument, "date": _iso(self.time),
                       "trend": self.trend, "band": self.band,
                       "bandVerified": self.band_verified if self.band else None, "evidence": list(self.evidence),
                       "reasons": list(self.reasons)})


@lazy("reasons")
@dataclass(frozen=True)
class AxisResult:
    """One mechanism axis, scored on its own (mixed pain is common).

    level: neuropathic "likely" | "possible" | "unlikely" | "unknown";
           nociplastic "features" | "possible" | "unlikely" | "unknown";
           inflammatory "hint" | "none" | "unknown".
    """
    level: str
    reasons: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return _clean({"level": self.level, "reasons": list(self.reasons), "evidence": list(self.evidence)})


@dataclass(frozen=True)
class FlagAnswer:
    """The answer that decides a flag (PHQ-9 item 9 -> "suicidality"): the most recent answer to the flagged item
    within the flag's look-back, from a panel component, a panel member or a standalone item Observation. The
    flag is raised when ``value`` > 0; a later answer of 0 clears it; a total sent without items changes nothing.
    """
    flag: str
    instrument: str                   # instrument key, "phq9"
    item: str                         # the item's "system|code"
    value: float                      # the answer's score (the highest when answers at one moment disagree)
    ref: str                          # the Observation carrying the answer ("" when it has no id)
    time: FhirTime | None             # None or partial: the answer cannot be placed in time
    total: float | None = None        # the instrument total of the same administration, when one was scored
    evidence: tuple[str, ...] = ()    # the answer's Observation(s), and the panel it belongs to
    notes: tuple[str, ...] = ()

    @property
    def raised(self) -> bool:
        return self.value > 0

    @property
    def date(self) -> datetime | None:
        return self.time.at if self.time is not None else None

    def to_dict(self) -> dict:
        return _clean({"flag": self.flag, "instrument": self.instrument, "item": self.item, "value": self.value,
                       "ref": self.ref or None, "date": _iso(self.time), "total": self.total,
                       "evidence": list(self.evidence), "notes": list(self.notes)})


@lazy("reasons")
@dataclass(slots=True)   # read-only; not frozen: a frozen dataclass is much slower to build
class ModulatorResult:
    """A psychosocial modulator. level: "present" (verified cut-off met on a dated score, or a confirmed
    diagnosis) | "possible" (unverified cut-off, undated score, or unconfirmed diagnosis) | "absent" | "unknown"."""
    level: str
    score: float | None = None
    instrument: str | None = None
    cutoff: float | None = None       # the instrument's cut-off value, e.g. 10 ...
    cutoff_op: str | None = None      # ... and its comparison, ">=" or ">"
    cutoff_verified: bool | None = None
    date: datetime | None = None
    reasons: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()       # "suicidality": act on it whatever the level
    time: FhirTime | None = field(default=None, repr=False)
    flag_answers: dict[str, FlagAnswer] = field(default_factory=dict)  # flag -> the answer raising it (in flags)

    def to_dict(self) -> dict:
        return _clean({"level": self.level, "score": self.score, "instrument": self.instrument,
                       "cutoff": self.cutoff, "cutoffOp": self.cutoff_op, "cutoffVerified": self.cutoff_verified,
                       "date": _iso(self.time),
                       "reasons": list(self.reasons), "evidence": list(self.evidence), "flags": list(self.flags),
                       "flagAnswers": {f: a.to_dict() for f, a in self.flag_answers.items()}})


@lazy("reasons")
@dataclass(slots=True)   # read-only; not frozen: a frozen dataclass is much slower to build
class TreatmentResponse:
    """Response to one current analgesic: baseline before it started against the latest score after an
    adequate trial. status: "substantial-response" (>=50 %) | "response" (>=30 %) | "non-response" |
    "too-early" | "no-data"."""
    medication: str                   # "MedicationRequest/123"
    drug: Drug
    analgesic_class: str              # class key from profiles/pain/analgesics.json
    status: str
    instrument: str | None = None
    baseline: float | None = None
    latest: float | None = None
    change_pct: float | None = None   # reduction from baseline, in percent (negative: worse)
    trial_days: int | None = None     # days since the medication started
    adequate_trial_days: int | None = None
    adequate_trial_verified: bool = False
    confounded: bool = False          # another analgesic started during the trial: attribution uncertain
    reasons: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()
    baseline_time: FhirTime | None = field(default=None, repr=False)
    latest_time: FhirTime | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        return _clean({"medication": self.medication, "drug": self.drug.to_dict(),
                       "analgesicClass": self.analgesic_class, "status": self.status,
                       "instrument": self.instrument, "baseline": self.baseline,
                       "baselineDate": _iso(self.baseline_time), "latest": self.latest,
                       "latestDate": _iso(self.latest_time), "changePct": self.change_pct,
                       "trialDays": self.trial_days, "adequateTrialDays": self.adequate_trial_days,
                       "adequateTrialVerified": self.adequate_trial_verified if self.adequate_trial_days else None,
                       "confounded": self.confounded or None, "reasons": list(self.reasons),
                       "evidence": list(self.evidence)})


@lazy("chronic_reasons")
@dataclass(frozen=True)
class PainProfile:
    phenotypes: tuple[str, ...]                 # contract codes (docs/architecture.md)
    evidence: dict[str, tuple[str, ...]]        # phenotype code -> FHIR references
    intensity: Intensity | None
    chronic: bool
    axes: dict[str, AxisResult]                 # "neuropathic" | "nociplastic" | "inflammatory"
    modulators: dict[str, ModulatorResult]      # "catastrophizing" | "depression" | "anxiety"
    responses: tuple[TreatmentResponse, ...]
    scores: tuple[Score, ...]
    rejected: tuple[Rejected, ...]
    chronic_reasons: tuple[str, ...] = ()
    knowledge: dict[str, str] = field(default_factory=dict)   # knowledge file schema -> version

    def to_dict(self) -> dict:
        return {
            "phenotypes": list(self.phenotypes),
            "evidence": {k: list(v) for k, v in self.evidence.items()},
            "intensity": self.intensity.to_dict() if self.intensity else None,
            "chronic": self.chronic,
            "chronicReasons": list(self.chronic_reasons),
            "axes": {k: a.to_dict() for k, a in self.axes.items()},
            "modulators": {k: m.to_dict() for k, m in self.modulators.items()},
            "responses": [r.to_dict() for r in self.responses],
            "scores": [s.to_dict() for s in self.scores],
            "rejected": [r.to_dict() for r in self.rejected],
            "knowledge": dict(self.knowledge),
        }
