"""profiles/opioid/*.json, read once (read-only)."""
from __future__ import annotations

from functools import lru_cache

from fhir_pain.profiles import load


def rules() -> dict:
    return load("opioid/rules.json")


def vocabulary() -> dict:
    return load("opioid/vocabulary.json")


@lru_cache(maxsize=None)
def class_products() -> dict[str, frozenset[str]]:
    """class name -> RxNorm product codes of its CDC value set."""
    return {k: frozenset(v["products"]) for k, v in vocabulary()["classes"].items()}
