"""Analgesic class of an ingredient, from the pain engine's class map (profiles/pain/analgesics.json)."""
from __future__ import annotations

from functools import lru_cache

from fhir_pain import pgx
from fhir_pain.facts import Drug
from fhir_pain.pain import ANALGESIC_CLASSES, analgesic_class


# Pure functions of the shipped knowledge, asked for every candidate of every class for every draft: kept. The keys
# are Drugs the vocabulary built (identify only makes Drugs of known ingredients) and class keys: bounded anyway.
@lru_cache(maxsize=2048)
def classes_of(drug: Drug) -> frozenset[str]:
    """e.g. codeine -> {"opioid"}, tramadol -> {"tramadol"}; an ingredient the class map does not list -> empty."""
    cls = analgesic_class(drug)
    return frozenset({cls.key}) if cls is not None else frozenset()


@lru_cache(maxsize=256)
def members(class_key: str) -> tuple[Drug, ...]:
    """The ingredients of a class in the class map's order. The RxNorm id comes from the CPIC engine when it
    knows the drug (CPIC-verified ids), else from the class map."""
    cls = ANALGESIC_CLASSES.get(class_key)
    return tuple(pgx.drug_by_name(d.name) or d for d in (cls.ingredients if cls else ()))

