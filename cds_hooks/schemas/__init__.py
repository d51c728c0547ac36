"""The JSON Schemas of the CDS Hooks 2.0.1 wire format, shipped in the package, and validators over them.

``request``, ``feedback`` (what clients send, lenient where real clients are imperfect), ``response`` and
``discovery`` (what we send, strict). ``common`` holds the shared definitions they reference.
"""
from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource

NAMES = ("common", "request", "feedback", "response", "discovery")
BASE = "https://fhir-pain.io/schemas/cds-hooks/"


@cache
def load(name: str) -> dict[str, Any]:
    """The schema document ``name`` (one of NAMES)."""
    if name not in NAMES:
        raise KeyError(name)
    text = resources.files(__package__).joinpath(f"{name}.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


@cache
def _registry() -> Registry:
    return Registry().with_resources((BASE + f"{n}.schema.json", Resource.from_contents(load(n))) for n in NAMES)


@cache
def validator(name: str) -> Draft202012Validator:
    """A validator for schema ``name`` that checks ``format`` (uri, date-time, uuid) too."""
    return Draft202012Validator(load(name), registry=_registry(),
                                format_checker=Draft202012Validator.FORMAT_CHECKER)


def first_error(name: str, instance: Any) -> tuple[str, str] | None:
    """(JSON path of the offending field, message) for the most relevant violation, or None if valid."""
    error = best_match(validator(name).iter_errors(instance))
    if error is None:
        return None
    parts = [str(p) for p in error.absolute_path]
    if error.validator in ("required", "dependentRequired") and isinstance(error.instance, dict):
        # name the field that is missing, not the object that lacks it
        wanted = error.validator_value
        if error.validator == "dependentRequired":
            wanted = [d for k, deps in wanted.items() if k in error.instance for d in deps]
        missing = [name for name in wanted if name not in error.instance]
        if missing:
            parts.append(missing[0])
    path = ".".join(parts) or "(root)"
    message = error.message
    if len(message) > 300:  # jsonschema quotes the offending value; keep the answer short
        message = message[:300] + "..."
    return path, message


def bundled() -> dict[str, Any]:
    """Every schema with references made local (``#/$defs/<schema>/...``), for embedding in OpenAPI."""
    return {n: load(n) for n in NAMES}
