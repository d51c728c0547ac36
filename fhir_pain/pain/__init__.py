"""Pain phenotyping engine: FHIR Observations + Conditions + medications -> PainProfile.

Public API (other parts code against this):
    build_profile(observations, conditions, medications, now, *, code_map=None) -> PainProfile
    load_code_map(path) -> dict          a site's local codes -> instrument keys (configuration)
    instrument(key) -> Instrument        instrument definitions (codes, range, scoring, cut-offs with sources)
    ANALGESIC_CLASSES                    class key -> AnalgesicClass (ingredients, adequate trial, neuropathic line)
    analgesic_class(drug) -> AnalgesicClass | None
Knowledge lives in profiles/pain/*.json; this package only interprets it.
"""
from __future__ import annotations

from fhir_pain.facts import Drug
from fhir_pain.pain.codemap import load_code_map, validate_code_map
from fhir_pain.pain.engine import PHENOTYPE_ORDER, build_profile
from fhir_pain.pain.knowledge import AnalgesicClass, Instrument, Knowledge, analgesic_classes, instrument, knowledge
from fhir_pain.pain.model import (AxisResult, Intensity, ModulatorResult, PainProfile, Rejected, Score,
                                  TreatmentResponse)

ANALGESIC_CLASSES = analgesic_classes()


def analgesic_class(drug: Drug) -> AnalgesicClass | None:
    """The analgesic class of an ingredient (by RxNorm ingredient id, else by name), or None."""
    ing = knowledge().analgesic(drug)
    return ing.cls if ing is not None else None


__all__ = [
    "ANALGESIC_CLASSES", "PHENOTYPE_ORDER", "AnalgesicClass", "AxisResult", "Instrument", "Intensity", "Knowledge",
    "ModulatorResult", "PainProfile", "Rejected", "Score", "TreatmentResponse", "analgesic_class", "build_profile",
    "instrument", "load_code_map", "validate_code_map",
]
