"""Treatment response for each current analgesic (IMMPACT: >=30 % reduction moderate, >=50 % substantial).

Baseline: the latest dated intensity score in the window before the drug started. Follow-up: the latest score
at least an adequate trial (profiles/pain/analgesics.json) after the start. Without both, or before the trial is
adequate, the answer is "no-data" or "too-early", never a guess. A renewal is not a new start: requests of the
same ingredient that follow each other within ``renewalGapDays`` form one trial.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from operator import itemgetter
from typing import Iterable

from fhir_pain.facts import Drug, MedicationUse
from fhir_pain.fhirdates import utc
from fhir_pain.pain.knowledge import AnalgesicIngredient, Knowledge, days
from fhir_pain.pain.model import Later, Score, ScoreIndex, TreatmentResponse, written

CONTINUING = frozenset({"active", "completed", "on-hold"})


def _analgesics(m: MedicationUse, kn: Knowledge) -> list[AnalgesicIngredient]:
    found = []
    for d in m.ingredients:
        a = kn.analgesic(d)
        if a is not None and a.cls.track_response:
            found.append(a)
    return found


def _contains(m: MedicationUse, drug: Drug, name: str) -> bool:
    """``m`` has the ingredient ``drug`` (same RxNorm id, or same name; ``name``: drug.name.lower())."""
    for d in m.ingredients:
        if (d.rxnorm != "" and d.rxnorm == drug.rxnorm) or d.name.lower() == name:
            return True
    return False


def _trial_start(m: MedicationUse, start: datetime, ing: AnalgesicIngredient,
                 history: list[tuple[datetime, MedicationUse]], gap: timedelta) -> tuple[datetime, list[str]]:
    """Walk back from ``m`` (authored at ``start``, UTC) through earlier requests of the same ingredient
    (``history``: newest first) while each follows the previous closely."""
    refs = [m.ref]
    drug = ing.drug
    name = drug.name.lower()
    for when, other in history:          # newest first
        if other is m or when >= start:
            continue
        if start - when > gap:   # every request further back is older still: none can continue the trial
            break
        if not _contains(other, drug, name):
            continue
        start = when
        refs.append(other.ref)
    return start, refs


def _prior_prescription(m: MedicationUse) -> str | None:
    """MedicationRequest.priorPrescription as "MedicationRequest/id" (the request this one renews)."""
    prior = m.resource.get("priorPrescription") if isinstance(m.resource, dict) else None
    ref = prior.get("reference") if isinstance(prior, dict) else None
    if not isinstance(ref, str) or not ref:
        return None
    parts = ref.partition("/_history")[0].rstrip("/").split("/")
    return "/".join(parts[-2:])


def treatment_responses(medications: Iterable[MedicationUse], by_inst: ScoreIndex, kn: Knowledge,
                        now: datetime) -> tuple[TreatmentResponse, ...]:
    meds = [m for m in medications if isinstance(m, MedicationUse)]
    authored = {id(m): utc(m.authored_on) for m in meds if m.authored_on is not None}   # once per request
    # newest first, once for every trial's walk back (a request without an identified ingredient continues none)
    history = sorted(((authored[id(m)], m) for m in meds
                      if m.ingredients and m.authored_on is not None and m.status in CONTINUING),
                     key=itemgetter(0), reverse=True)
    current = [(m, a) for m in meds if m.status == "active" and not m.is_draft for a in [_analgesics(m, kn)] if a]
    starts = {m.ref: authored[id(m)] for m, _ in current if m.authored_on is not None}
    if not current:
        return ()
    p = kn.params["response"]
    # each intensity instrument's latest score up to now is every drug's follow-up candidate: looked up once
    latest = [(key, by_inst.last_at_or_before(key, now)) for key in kn.params["intensity"]["instruments"]
              if key in by_inst.dated]
    return tuple(_one(m, ings, history, authored, starts, by_inst, latest, now, p) for m, ings in current)


def _pair(found: list[tuple]) -> tuple:
    """The first instrument with both a baseline and a follow-up, else the first with a baseline, else the first."""
    for x in found:
        if x[1] and x[2]:
            return x
    for x in found:
        if x[1]:
            return x
    return found[0] if found else (None, None, None)


def _one(m: MedicationUse, ings: list[AnalgesicIngredient], history, authored: dict[int, datetime],
         starts: dict[str, datetime],
         by_inst: ScoreIndex, latest: list[tuple[str, Score | None]], now: datetime, p: dict) -> TreatmentResponse:
    if len(ings) == 1:   # the common case: one ingredient names the product and sets the trial
        primary = ings[0]
        longest = primary if primary.adequate_trial_days is not None else None
    else:
        primary = min(ings, key=lambda a: a.cls.priority)   # a combination product is named by its first class
        timed = [a for a in ings if a.adequate_trial_days is not None]
        longest = max(timed, key=lambda a: a.adequate_trial_days) if timed else None
    # filled in as the trial is read, and returned at the first conclusion (cheaper than keyword dicts)
    r = TreatmentResponse(m.ref, primary.drug, primary.cls.key, "no-data")
    if longest is None:
        return _done(r, (m.ref,), Later(_no_duration, primary))
    adequate = longest.adequate_trial_days
    r.adequate_trial_days, r.adequate_trial_verified = adequate, longest.trial_verified
    if m.authored_on is None:
        return _done(r, (m.ref,), "start date unknown (no authoredOn)")
    start, med_refs = _trial_start(m, authored[id(m)], primary, history, days(p["renewalGapDays"]))
    prior = _prior_prescription(m)
    if prior is not None and prior not in med_refs:
        return _done(r, (m.ref,), Later(_renews, prior))
    reasons = [Later(_trial, primary, start, med_refs, longest)]
    trial_days = r.trial_days = (now - start).days
    after = start + days(adequate)
    since = start - days(p["baselineWindowDays"])
    found = []   # (instrument, baseline, latest) in priority order
    for key, last in latest:
        b = by_inst.last_ended_by(key, start)
        if b is not None and b.time.at < since:
            b = None
        f = last if last is not None and last.time.earliest >= after else None
        if b or f:
            found.append((key, b, f))
    key, b, f = _pair(found)
    r.instrument = key
    r.evidence = tuple(dict.fromkeys([*med_refs, *(b.evidence if b else ()), *(f.evidence if f else ())]))
    if b is not None:
        r.baseline, r.baseline_time = b.value, b.time
    if trial_days < adequate:
        r.status = "too-early"
        return _done(r, None, *reasons, Later(_too_early, trial_days))
    if b is None:
        return _done(r, None, *reasons, Later(_no_baseline, p))
    if f is None:
        return _done(r, None, *reasons, Later(_no_follow_up, key, after))
    r.latest, r.latest_time = f.value, f.time
    if b.value <= 0:
        return _done(r, None, *reasons, "baseline score is 0: a reduction cannot be measured")
    pct = round((b.value - f.value) / b.value * 100, 1)
    status = ("substantial-response" if pct >= p["substantialPct"] else "response" if pct >= p["responsePct"]
              else "non-response")
    reasons.append(Later(_change, key, b, f, pct, status, p))
    others = [ref for ref, t in starts.items() if ref not in med_refs and b.time.at < t <= f.time.at]
    if others:
        reasons.append(Later(_confounded, others))
    r.status, r.change_pct, r.confounded = status, pct, bool(others)
    return _done(r, None, *reasons)


def _done(r: TreatmentResponse, evidence: tuple[str, ...] | None, *reasons: Later) -> TreatmentResponse:
    if evidence is not None:
        r.evidence = evidence
    r.reasons = Later(written, reasons)   # written when read (order-sign never does)
    return r


# the reasons, in words (see _one)
def _no_duration(primary: AnalgesicIngredient) -> str:
    return f"no adequate-trial duration on file for {primary.cls.name}: response is not assessed"


def _renews(prior: str) -> str:
    return f"renews {prior}, which is not in the data: the start of the trial is unknown"


def _trial(primary: AnalgesicIngredient, start: datetime, med_refs: list[str], longest: AnalgesicIngredient) -> str:
    return (f"{primary.drug.name} since {start.date().isoformat()}"
            + (f" (continued from {', '.join(med_refs[1:])})" if len(med_refs) > 1 else "")
            + f"; adequate trial {longest.adequate_trial_days} days ({longest.trial_source}"
            + ("" if longest.trial_verified else "; duration not verified") + ")")


def _too_early(trial_days: int) -> str:
    return f"on it for {trial_days} days: too early to judge"


def _no_baseline(p: dict) -> str:
    return f"no dated pain score in the {p['baselineWindowDays']} days before the start: no baseline"


def _no_follow_up(key: str, after: datetime) -> str:
    return f"no {key} score from {after.date().isoformat()} on (after an adequate trial)"


def _change(key: str, b: Score, f: Score, pct: float, status: str, p: dict) -> str:
    return (f"{key} {b.value:g} on {b.time.isoformat()} -> {f.value:g} on {f.time.isoformat()}: "
            f"{pct:g}% reduction ({status}; >= {p['responsePct']:g}% response, >= {p['substantialPct']:g}% "
            f"substantial)")


def _confounded(others: list[str]) -> str:
    return (f"another analgesic started during the trial ({', '.join(others)}): the change cannot be attributed "
            "to this drug alone")
