"""Analgesic class of an ingredient, from the pain engine's class map (profiles/pain/analgesics.json)."""
from __future__ import annotations

import re
from functools import lru_cache

from fhir_pain import pgx
from fhir_pain.facts import Drug, MedicationUse
from fhir_pain.pain import ANALGESIC_CLASSES, analgesic_class


def classes_of(drug: Drug) -> frozenset[str]:
    """e.g. codeine -> {"opioid"}, tramadol -> {"tramadol"}; an ingredient the class map does not list -> empty."""
    cls = analgesic_class(drug)
    return frozenset({cls.key}) if cls is not None else frozenset()


def members(class_key: str) -> tuple[Drug, ...]:
    """The ingredients of a class in the class map's order. The RxNorm id comes from the CPIC engine when it
    knows the drug (CPIC-verified ids), else from the class map."""
    cls = ANALGESIC_CLASSES.get(class_key)
    return tuple(pgx.drug_by_name(d.name) or d for d in (cls.ingredients if cls else ()))


_WORD = re.compile(r"[a-z]+")


@lru_cache(maxsize=1)
def _ingredient_index() -> tuple[dict[str, Drug], dict[str, Drug]]:
    by_rxnorm = {d.rxnorm: d for cls in ANALGESIC_CLASSES.values() for d in cls.ingredients}
    return by_rxnorm, {d.name.lower(): d for d in by_rxnorm.values()}


def analgesic_ingredients(med: MedicationUse) -> tuple[Drug, ...]:
    """Analgesic ingredients of a medication by the class map: an ingredient RxCUI in its codings, else an
    ingredient name in its text. Redundant since profiles/pgx/drugs.json 2: ``fhir_pain.pgx.identify`` itself
    resolves every class-map ingredient (gabapentin, pregabalin, acetaminophen ...; tests/pgx/test_drugs.py), so
    the fallback in fhir_pain/evaluate.py has nothing left to add (only codes of non-RxNorm systems, wrongly):
    remove the call there and this function together."""
    by_rxnorm, by_name = _ingredient_index()
    concept = (med.resource or {}).get("medicationCodeableConcept")
    codings = concept.get("coding") if isinstance(concept, dict) else None
    found = [by_rxnorm[c["code"]] for c in (codings if isinstance(codings, list) else ())
             if isinstance(c, dict) and c.get("code") in by_rxnorm]
    if not found:
        found = [by_name[w] for w in _WORD.findall((med.text or "").lower()) if w in by_name]
    return tuple(dict.fromkeys(found))
