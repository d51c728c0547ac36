"""Observations -> instrument scores.

The EHR's total is used when it sends one; otherwise the total is computed from the items, whether they come
as components of a panel, as member Observations of a panel (``hasMember``), or as loose item Observations
with the same effective time. Values that cannot be used (out of range, malformed, incomplete, conflicting)
are returned as :class:`Rejected`, never silently dropped. Observations we do not recognise (PGx results,
vital signs) cost one dict look-up per coding.

Answers to flagged items (PHQ-9 item 9) are also returned one by one, whether or not their administration could
be scored: a standalone item 9 Observation raises its flag although one item gives no PHQ-9 total
(fhir_pain.pain.flags decides which answer stands).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache
from operator import attrgetter
from typing import Iterable, Mapping, NamedTuple

from fhir_pain.fhirdates import FhirTime, effective, parse
from fhir_pain.pain.knowledge import Instrument, Knowledge, Role, norm_system
from fhir_pain.pain.model import FlagAnswer, Rejected, Score
from fhir_pain.pain.values import has_value, item_value, total_value

UNUSABLE_STATUS = frozenset({"entered-in-error", "cancelled", "registered"})


class _Answer(NamedTuple):
    item: str
    value: float | None
    why: str | None
    ref: str


@dataclass(slots=True)
class _Group:
    """Item answers that belong to one administration of an instrument."""
    inst: Instrument
    ref: str
    time: FhirTime | None
    answers: list[_Answer] = field(default_factory=list)
    members: tuple[str, ...] = ()


def roles_of(codeable: object, kn: Knowledge, code_map: Mapping[str, str] | None) -> tuple[Role, ...]:
    """What a CodeableConcept means to us: the first coding we recognise decides (site map first)."""
    if not isinstance(codeable, dict):
        return ()
    codings = codeable.get("coding")
    if not isinstance(codings, list):
        return ()
    by_system = kn.by_system
    for coding in codings:
        if not isinstance(coding, dict):
            continue
        code = coding.get("code")
        system = coding.get("system", "")
        if not isinstance(code, str) or not isinstance(system, str):
            continue
        if code_map:
            mapped = code_map.get(f"{norm_system(system)}|{code}")
            if mapped is not None:
                role = mapped_role(mapped, kn)
                if role is not None:
                    return (role,)
        roles = by_system.get(system, _NO_CODES).get(code)
        if roles:
            return roles
    return ()


_NO_CODES: dict[str, tuple[Role, ...]] = {}   # a system we know no code of (never written to)


def mapped_role(value: object, kn: Knowledge) -> Role | None:
    """A site map value: "phq9" (total/panel) or "dn4#system|code" (one of the instrument's items)."""
    if not isinstance(value, str):
        return None
    key, _, item = value.partition("#")
    inst = kn.instruments.get(key)
    if inst is None:
        return None
    if not item:
        return Role(key)
    return Role(key, item) if inst.items is not None and item in inst.items.codes else None


class Reading(NamedTuple):
    scores: list[Score]               # time order, undated last
    rejected: list[Rejected]
    flagged: list[FlagAnswer]         # every usable answer to a flagged item, in no particular order


def read_scores(observations: Iterable[dict], kn: Knowledge,
                code_map: Mapping[str, str] | None = None) -> tuple[list[Score], list[Rejected]]:
    reading = read_observations(observations, kn, code_map)
    return reading.scores, reading.rejected


def read_observations(observations: Iterable[dict], kn: Knowledge,
                      code_map: Mapping[str, str] | None = None) -> Reading:
    scores: list[Score] = []
    flagged: list[FlagAnswer] = []
    rejected: list[Rejected] = []
    groups: list[_Group] = []                              # panels with components or members
    item_obs: dict[str, list[tuple[Role, _Answer, FhirTime | None]]] = {}   # ref -> item answers (loose)
    loose: list[tuple[Role, _Answer, FhirTime | None]] = []
    instruments, by_system = kn.instruments, kn.by_system
    for obs in observations:
        if not isinstance(obs, dict):
            continue
        code = obs.get("code")
        # roles_of inline for the common shape, one well-formed coding and no site map: no call per Observation
        codings = code.get("coding") if type(code) is dict and not code_map else None
        if type(codings) is list and len(codings) == 1 and type(c0 := codings[0]) is dict \
                and type(c := c0.get("code")) is str and type(system := c0.get("system", "")) is str:
            roles = by_system.get(system, _NO_CODES).get(c)
        else:
            roles = roles_of(code, kn, code_map)
        if not roles or obs.get("resourceType", "Observation") != "Observation":
            continue
        oid = obs.get("id")
        ref = f"Observation/{oid}" if isinstance(oid, str) and oid else ""
        status = obs.get("status")
        if isinstance(status, str) and status in UNUSABLE_STATUS:
            rejected.append(Rejected(ref, roles[0].instrument, f"status {status}"))
            continue
        when = obs.get("effectiveDateTime")
        time = _date_time(when) if type(when) is str and len(when) <= 64 else effective(obs)
        panel = roles[0]
        if panel.item is not None:   # an item Observation on its own (codes are either items or totals)
            for role in roles:
                v, why = item_value(obs, kn.instruments[role.instrument])
                entry = (role, _Answer(role.item, v, why, ref), time)
                loose.append(entry)
                if ref:
                    item_obs.setdefault(ref, []).append(entry)
            continue
        inst = instruments[panel.instrument]
        if "component" in obs or "hasMember" in obs:
            _read_panel(obs, inst, ref, time, kn, code_map, scores, rejected, groups)
            continue
        n = obs.get("valueInteger")
        if type(n) is int and "valueQuantity" not in obs and not inst.unit_required:
            v = float(n)   # nearly every total: a whole number on the scale (total_value's first test, no call)
            if inst.lo <= v <= inst.hi:
                scores.append(Score(inst.key, v, ref, time, "total", (ref,) if ref else ()))
                continue
        elif n is None and not has_value(obs):
            _read_panel(obs, inst, ref, time, kn, code_map, scores, rejected, groups)
            continue
        v, why = total_value(obs, inst, kn)   # a plain total (as _add_total, one call less)
        if v is None:
            rejected.append(Rejected(ref, inst.key, why))
        else:
            scores.append(Score(inst.key, v, ref, time, "total", (ref,) if ref else ()))

    consumed: set[int] = set()
    for g in groups:
        for mref in g.members:
            for entry in item_obs.get(mref, ()):
                if entry[0].instrument == g.inst.key:
                    g.answers.append(entry[1])
                    consumed.add(id(entry))
                    _flag(flagged, g.inst, entry[1], g.time or entry[2], g.ref)
    by_time: dict[tuple, _Group] = {}
    for entry in loose:
        if id(entry) in consumed:
            continue
        role, answer, time = entry
        if time is None:
            rejected.append(Rejected(answer.ref, role.instrument, "undated item Observation: cannot be grouped"))
            _flag(flagged, kn.instruments[role.instrument], answer, None, "")
            continue
        g = by_time.get((role.instrument, time.at))
        if g is None:
            g = by_time[(role.instrument, time.at)] = _Group(kn.instruments[role.instrument], answer.ref, time)
        g.answers.append(answer)
        _flag(flagged, g.inst, answer, time, "")
    for g in groups:       # components of panels (members were taken above)
        for a in g.answers:
            if a.ref == g.ref:
                _flag(flagged, g.inst, a, g.time, g.ref)
    to_score = [g for g in (*groups, *by_time.values()) if g.answers]
    if to_score:   # most charts send totals only: then there is nothing to match them with
        # the EHR's own totals, by administration: they win over totals computed from the same items
        totals: dict[tuple, int] = {}
        for i, sc in enumerate(scores):
            if sc.ref:
                totals[(sc.instrument, sc.ref)] = i
            if sc.time is not None:
                totals.setdefault((sc.instrument, sc.time.at), i)
        for g in to_score:
            _score_group(g, scores, rejected, totals)
    scores, rejected = _dedupe(scores, rejected)
    return Reading(scores, rejected, _with_totals(flagged, scores))


@lru_cache(maxsize=4096)
def _date_time(value: str) -> FhirTime | None:
    """``effective(obs)`` of an Observation dated by effectiveDateTime (nearly all are): the same answer, one
    memo look-up instead of two calls (short texts only, as fhirdates keeps them)."""
    return parse(value, element="effectiveDateTime")


def _flag(out: list[FlagAnswer], inst: Instrument, a: _Answer, time: FhirTime | None, panel: str) -> None:
    """Keep a usable answer to a flagged item (an unusable one is already among the rejected)."""
    flag = inst.items.flags.get(a.item) if inst.items is not None else None
    if flag is not None and a.value is not None:
        evidence = tuple(dict.fromkeys(r for r in (a.ref, panel) if r))
        out.append(FlagAnswer(flag, inst.key, a.item, a.value, a.ref, time, evidence=evidence))


def _with_totals(flagged: list[FlagAnswer], scores: list[Score]) -> list[FlagAnswer]:
    """Each answer with the total of the administration it belongs to (the score whose evidence names it)."""
    if not flagged:
        return flagged
    total = {(s.instrument, ref): s.value for s in scores for ref in s.evidence}
    return [replace(a, total=total.get((a.instrument, a.ref))) if (a.instrument, a.ref) in total else a
            for a in flagged]


def _read_panel(obs: dict, inst: Instrument, ref: str, time: FhirTime | None, kn: Knowledge,
                code_map: Mapping[str, str] | None, scores: list[Score], rejected: list[Rejected],
                groups: list[_Group]) -> None:
    """An Observation coded as the instrument itself: a total, a panel of item components, or both."""
    components, members = obs.get("component"), obs.get("hasMember")
    total_el = obs if has_value(obs) else None
    if not components and not members and total_el is not None:   # the common case: a plain total
        _add_total(obs, inst, ref, time, kn, scores, rejected)
        return
    group = _Group(inst, ref, time)
    for comp in components if isinstance(components, list) else ():
        if not isinstance(comp, dict):
            continue
        for role in roles_of(comp.get("code"), kn, code_map):
            if role.instrument != inst.key:
                continue
            if role.item is None:
                total_el = total_el or comp
            else:
                v, why = item_value(comp, inst)
                group.answers.append(_Answer(role.item, v, why, ref))
            break
    if isinstance(members, list):
        group.members = tuple(_local_ref(m["reference"]) for m in members
                              if isinstance(m, dict) and isinstance(m.get("reference"), str))
    if total_el is not None:
        _add_total(total_el, inst, ref, time, kn, scores, rejected)
    elif not group.answers and not group.members:
        rejected.append(Rejected(ref, inst.key, "no value, items or members" if "dataAbsentReason" not in obs
                                 else "no value (dataAbsentReason)"))
    if group.answers or group.members:
        groups.append(group)


def _add_total(el: dict, inst: Instrument, ref: str, time: FhirTime | None, kn: Knowledge, scores: list[Score],
               rejected: list[Rejected]) -> None:
    v, why = total_value(el, inst, kn)
    if v is None:
        rejected.append(Rejected(ref, inst.key, why))
    else:
        scores.append(Score(inst.key, v, ref, time, "total", (ref,) if ref else ()))


def _local_ref(ref: str) -> str:
    """ "http://ehr/fhir/Observation/7/_history/2" -> "Observation/7" (members are matched by type/id)."""
    parts = ref.partition("/_history")[0].rstrip("/").split("/")
    return "/".join(parts[-2:])


def _score_group(g: _Group, scores: list[Score], rejected: list[Rejected], totals: dict[tuple, int]) -> None:
    inst, items = g.inst, g.inst.items
    values: dict[str, float] = {}
    refs: list[str] = [g.ref] if g.ref else []
    for a in g.answers:
        if a.value is None:
            rejected.append(Rejected(a.ref, inst.key, f"item {a.item.partition('|')[2]}: {a.why}"))
            continue
        prev = values.get(a.item)
        if prev is not None and prev != a.value:
            rejected.append(Rejected(g.ref or a.ref, inst.key,
                                     f"item {a.item.partition('|')[2]} answered twice with different values"))
            return
        values[a.item] = a.value
        if a.ref and a.ref not in refs:
            refs.append(a.ref)
    flags = tuple(sorted({items.flags[c] for c, v in values.items() if v > 0 and c in items.flags}))
    n = len(values)
    computed = None
    if n >= items.min:
        total = sum(values.values())
        computed = total if items.method == "sum" else round(total / n, 2)
    same = totals.get((inst.key, g.ref)) if g.ref else None
    if same is None and g.time is not None:
        same = totals.get((inst.key, g.time.at))
    if same is not None:
        s = scores[same]
        notes = s.notes
        tolerance = 0.5 if items.method == "mean" else 0.0   # LOINC: PEG mean is rounded to a whole number
        if computed is not None and abs(computed - s.value) > tolerance + 1e-9:
            notes += (f"items give {computed:g} but the sent total is {s.value:g}; the sent total is used",)
        evidence = s.evidence + tuple(r for r in refs if r not in s.evidence)
        scores[same] = replace(s, flags=tuple(sorted(set(s.flags) | set(flags))), notes=notes, evidence=evidence)
        return
    if computed is None:
        rejected.append(Rejected(g.ref, inst.key,
                                 f"only {n} of {len(items.codes)} items answered; {items.min} needed to score"))
        return
    scores.append(Score(inst.key, computed, g.ref, g.time, "items", tuple(refs), flags))


def _dedupe(scores: list[Score], rejected: list[Rejected]) -> tuple[list[Score], list[Rejected]]:
    """One score per instrument and moment: identical copies merge; different values at the same moment are
    conflicting data and neither is used."""
    dated = [s for s in scores if s.time is not None]
    if len(dated) == len(scores) and len(set(map(_moment, dated))) == len(dated):
        dated.sort(key=_at)   # the common case: every score dated, no two of one instrument at one moment
        return dated, rejected
    first: dict[tuple, Score] = {}
    copies: dict[tuple, list[Score]] = {}
    undated: list[Score] = []
    for s in scores:
        t = s.time
        if t is None:
            undated.append(s)
            continue
        key = (s.instrument, t.at)
        head = first.setdefault(key, s)
        if head is not s:
            copies.setdefault(key, [head]).append(s)
    for key, same in copies.items():
        head = same[0]
        if all(s.value == head.value for s in same):
            first[key] = replace(head, evidence=tuple(dict.fromkeys(r for s in same for r in s.evidence)),
                                 flags=tuple(sorted({f for s in same for f in s.flags})),
                                 notes=tuple(dict.fromkeys(n for s in same for n in s.notes)))
        else:
            del first[key]
            values = ", ".join(f"{s.value:g}" for s in same)
            rejected.extend(Rejected(s.ref, s.instrument, f"conflicting values at the same time ({values})")
                            for s in same)
    dated = sorted(first.values(), key=_at)
    dated.extend(undated)
    return dated, rejected


_at = attrgetter("time.at")   # sort key of a dated score
_moment = attrgetter("instrument", "time.at")   # (instrument, time.at): what makes two scores the same
