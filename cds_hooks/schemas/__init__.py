"""The JSON Schemas of the CDS Hooks 2.0.1 wire format, shipped in the package, and validators over them.

``request``, ``feedback`` (what clients send, lenient where real clients are imperfect), ``response`` and
``discovery`` (what we send, strict). ``common`` holds the shared definitions they reference.

``first_error`` runs on every call, so a valid body is passed by a compiled validator (fastjsonschema): about
twenty times faster than jsonschema, which walks a request of a hundred prefetch resources in 2 ms. jsonschema
stays the reference: only it builds the message of an invalid body, and where the two disagree it decides. The
compiled validator implements draft-07, so the schemas are translated for it (``dependentRequired`` is
draft-07's ``dependencies``; ``$ref`` beside other keywords, ignored in draft-07, goes into an ``allOf``) and a
schema with a keyword it does not implement (``minContains``, in ``response``) is not compiled at all: it could
only pass what jsonschema refuses.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache, lru_cache, partial
from importlib import resources
from typing import Any

import fastjsonschema
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


# keywords the compiled (draft-07) validator checks as jsonschema checks them under 2020-12, or more strictly
# (a pattern's $ is \Z there; 1.0 is no integer), by what they hold. Not here: uniqueItems and multipleOf, whose
# equality and float arithmetic differ; enum and const only with strings (Python's 1 == True, not JSON's).
_ANNOTATIONS = frozenset({"$schema", "$id", "$comment", "title", "description", "examples", "deprecated",
                          "readOnly", "writeOnly"})
_ASSERTIONS = frozenset({"type", "minLength", "maxLength", "pattern", "format", "minimum", "maximum",
                         "exclusiveMinimum", "exclusiveMaximum", "minItems", "maxItems", "minProperties",
                         "maxProperties", "required"})
_ONE_SCHEMA = frozenset({"not", "if", "then", "else", "items", "contains", "additionalProperties",
                         "propertyNames"})
_SCHEMA_LISTS = frozenset({"allOf", "anyOf", "oneOf"})
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs"})


class _NotCompilable(ValueError):
    """The schema uses a keyword the compiled validator does not implement as 2020-12 does."""


_NULL = {"type": "null"}


def _refuses_null(node: Any) -> bool:
    """Whether schema ``node`` (or what its ``$ref`` to one of our documents' $defs names) has a type without null."""
    if isinstance(node, dict) and set(node) == {"$ref"}:
        document, _, pointer = node["$ref"].partition("#/$defs/")
        name = document.removesuffix(".schema.json")
        if name not in NAMES or "/" in pointer:
            return False
        node = load(name).get("$defs", {}).get(pointer)
    kind = node.get("type") if isinstance(node, dict) else None
    return isinstance(kind, str) and kind != "null" or isinstance(kind, list) and "null" not in kind


def _null_or_other(branches: Any) -> bool:
    return (isinstance(branches, list) and len(branches) == 2 and _NULL in branches
            and _refuses_null(branches[1 - branches.index(_NULL)]))


def _draft7(node: Any) -> Any:
    """Schema ``node`` as draft-07 with the meaning it has under 2020-12, or _NotCompilable."""
    if isinstance(node, bool):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _SCHEMA_MAPS:
            out[key] = {k: _draft7(v) for k, v in value.items()}
        elif key == "oneOf" and _null_or_other(value):
            # "null, or X" (X refusing null): the branches cannot both pass, so anyOf means the same, and with X
            # first a value that is not null (a prefetched resource: every one of them) raises no exception
            other = value[1 - value.index(_NULL)]
            out["anyOf"] = [_draft7(other), _NULL]
        elif key in _SCHEMA_LISTS:
            out[key] = [_draft7(v) for v in value]
        elif key in _ONE_SCHEMA and (key != "items" or not isinstance(value, list)):
            out[key] = _draft7(value)
        elif key == "dependentRequired":
            out["dependencies"] = value
        elif key in ("enum", "const") and all(isinstance(v, str) for v in (value if key == "enum" else [value])):
            out[key] = value
        elif key in _ASSERTIONS or key in _ANNOTATIONS or key == "$ref":
            out[key] = value
        else:
            raise _NotCompilable(key)
    if "$ref" in out and set(out) - _ANNOTATIONS - {"$ref"}:
        kept = {k: out.pop(k) for k in list(out) if k in _ANNOTATIONS}
        out = {**kept, "allOf": [{"$ref": out.pop("$ref")}, out]}
    return out


# The values formats are checked on repeat from call to call (an EHR's fhirServer URL), and the uri check (an
# RFC 3987 grammar) costs a third of validating a whole request: short values are remembered, a bounded number.
_MEMO_CHARS = 512


@lru_cache(maxsize=1024)
def _remembered_conforms(value: str, format: str) -> bool:
    return Draft202012Validator.FORMAT_CHECKER.conforms(value, format)


def _conforms(value: Any, format: str) -> bool:
    if type(value) is str and len(value) <= _MEMO_CHARS:
        return _remembered_conforms(value, format)
    return Draft202012Validator.FORMAT_CHECKER.conforms(value, format)


@cache
def _compiled(name: str) -> Callable[[Any], Any] | None:
    """The compiled validator of schema ``name`` (raises on an invalid instance), or None if it has a keyword
    the compiled validator does not implement."""
    def document(uri: str) -> dict[str, Any]:  # references resolve to our documents, never fetched
        if not uri.startswith(BASE) or not uri.endswith(".schema.json"):
            raise KeyError(uri)
        return _draft7(load(uri[len(BASE):-len(".schema.json")]))

    # formats: jsonschema's own checks (fastjsonschema's regexes differ)
    formats = {f: partial(_conforms, format=f) for f in Draft202012Validator.FORMAT_CHECKER.checkers}
    try:
        return fastjsonschema.compile(_draft7(load(name)), handlers={"https": document}, formats=formats,
                                      use_default=False)
    except _NotCompilable:
        return None


def first_error(name: str, instance: Any) -> tuple[str, str] | None:
    """(JSON path of the offending field, message) for the most relevant violation, or None if valid."""
    compiled = _compiled(name)
    if compiled is not None:
        try:
            compiled(instance)
            return None
        except (fastjsonschema.JsonSchemaValueException, RecursionError):
            pass  # jsonschema says why (and decides, should the two disagree)
    try:
        return _explain(name, instance)
    except RecursionError:
        # a JSON parser's depth limit may exceed Python's: never a 500 for a body nested past it
        return "(root)", "the JSON is nested too deeply to be checked"


def _explain(name: str, instance: Any) -> tuple[str, str] | None:
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
