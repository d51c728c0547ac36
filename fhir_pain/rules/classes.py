"""Analgesic classes of an ingredient, from the pain engine's class map (profiles/pain/analgesics.json)."""
from __future__ import annotations

from functools import lru_cache

from fhir_pain import pgx
from fhir_pain.facts import Drug
from fhir_pain.profiles import load


@lru_cache(maxsize=1)
def _index() -> tuple[dict[str, frozenset[str]], dict[str, frozenset[str]], dict[str, tuple[Drug, ...]]]:
    by_rxnorm: dict[str, set[str]] = {}
    by_name: dict[str, set[str]] = {}
    members: dict[str, tuple[Drug, ...]] = {}
    for key, cls in load("pain/analgesics.json")["classes"].items():
        drugs = []
        for ing in cls.get("ingredients", ()):
            by_rxnorm.setdefault(str(ing["rxnorm"]), set()).add(key)
            by_name.setdefault(ing["name"].lower(), set()).add(key)
            drugs.append(Drug(rxnorm=str(ing["rxnorm"]), name=ing["name"].lower()))
        members[key] = tuple(drugs)
    return ({k: frozenset(v) for k, v in by_rxnorm.items()}, {k: frozenset(v) for k, v in by_name.items()},
            members)


def classes_of(drug: Drug) -> frozenset[str]:
    """e.g. codeine -> {"opioid"}; an ingredient the class map does not list -> empty."""
    by_rxnorm, by_name, _ = _index()
    return by_rxnorm.get(drug.rxnorm) or by_name.get(drug.name.lower(), frozenset())


def members(class_key: str) -> tuple[Drug, ...]:
    """The ingredients of a class in the class map's order. RxNorm ids are taken from the CPIC engine when it
    knows the drug (CPIC-verified), else from the class map."""
    out = []
    for d in _index()[2].get(class_key, ()):
        known = pgx.drug_by_name(d.name)
        out.append(known or d)
    return tuple(out)
