"""build_profile: a patient's Observations, Conditions and medications -> PainProfile.

One pass over the Observations (fhir_pain.pain.scoring), then each conclusion from the scores and diagnoses.
Pure domain code: no Flask, no HTTP, no logging of patient data.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Iterable, Mapping

from fhir_pain.facts import MedicationUse
from fhir_pain.fhirdates import utc
from fhir_pain.pain import axes
from fhir_pain.pain.conditions import match_conditions
from fhir_pain.pain.flags import decide_flags
from fhir_pain.pain.intensity import chronicity, latest_intensity
from fhir_pain.pain.knowledge import Knowledge, knowledge as shipped_knowledge
from fhir_pain.pain.model import PainProfile, Rejected, ScoreIndex
from fhir_pain.pain.response import treatment_responses
from fhir_pain.pain.scoring import read_observations

FUTURE_TOLERANCE = timedelta(days=1)   # clocks and time zones differ; more than a day ahead is an error


def build_profile(observations: Iterable[dict], conditions: Iterable[dict], medications: Iterable[MedicationUse],
                  now: datetime, *, code_map: Mapping[str, str] | None = None,
                  knowledge: Knowledge | None = None) -> PainProfile:
    """The pain profile. ``code_map``: a site's local codes "system|code" -> instrument key (or
    "key#system|code" for an item), see :func:`fhir_pain.pain.load_code_map`. ``knowledge`` replaces the
    shipped profiles/pain files (tests, what-if evaluation)."""
    kn = knowledge or shipped_knowledge()
    now = utc(now)
    scores, rejected, flagged = read_observations(observations or (), kn, code_map)
    horizon = now + FUTURE_TOLERANCE
    usable = [s for s in scores if s.time is None or s.time.earliest <= horizon]
    if len(usable) < len(scores):   # rare: the ones dated in the future are rejected, in reading order
        rejected += [Rejected(s.ref, s.instrument, f"dated in the future ({s.time.isoformat()})")
                     for s in scores if s.time is not None and s.time.earliest > horizon]
    by_inst = ScoreIndex(usable)
    hits = match_conditions(conditions or (), kn)

    chronic, chronic_reasons, chronic_refs = chronicity(by_inst, hits, kn, now)
    axis = {
        "neuropathic": axes.neuropathic(by_inst, hits, kn, now),
        "nociplastic": axes.nociplastic(by_inst, hits, chronic, kn, now),
        "inflammatory": axes.inflammatory(by_inst, hits, kn, now),
    }
    item_flags, stale_flags = decide_flags(flagged, kn, now, horizon)
    modulators = {name: axes.modulator(name, by_inst, hits, kn, now, item_flags, stale_flags)
                  for name in kn.params["modulators"]}
    responses = treatment_responses(medications or (), by_inst, kn, now)

    evidence: dict[str, tuple[str, ...]] = {}
    if chronic:
        evidence["chronic-pain"] = chronic_refs
    neuro = axis["neuropathic"]
    if neuro.level in ("likely", "possible"):
        evidence[f"neuropathic-{neuro.level}"] = neuro.evidence
    if axis["nociplastic"].level == "features":
        evidence["nociplastic-features"] = axis["nociplastic"].evidence
    if axis["inflammatory"].level == "hint":
        evidence["inflammatory-contribution"] = axis["inflammatory"].evidence
    for name, m in modulators.items():
        if m.level == "present":
            evidence[kn.params["modulators"][name]["phenotype"]] = m.evidence
    for code, statuses in (("treatment-non-response", ("non-response",)),
                           ("treatment-response", ("response", "substantial-response"))):
        refs = tuple(dict.fromkeys(r for t in responses if t.status in statuses for r in t.evidence))
        if refs:
            evidence[code] = refs
    phenotypes = tuple(code for code in PHENOTYPE_ORDER if code in evidence)
    return PainProfile(
        phenotypes=phenotypes, evidence={c: evidence[c] for c in phenotypes},
        intensity=latest_intensity(by_inst, kn, now),
        chronic=chronic, chronic_reasons=chronic_reasons, axes=axis, modulators=modulators, responses=responses,
        scores=tuple(usable), rejected=tuple(rejected), knowledge=dict(kn.versions))


PHENOTYPE_ORDER = (
    "chronic-pain", "neuropathic-likely", "neuropathic-possible", "nociplastic-features",
    "inflammatory-contribution", "high-catastrophizing", "depression", "anxiety",
    "treatment-non-response", "treatment-response",
)
