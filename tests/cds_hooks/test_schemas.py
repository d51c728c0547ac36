"""cds_hooks.schemas: the compiled validator (the fast path of every call) never passes what jsonschema, the
reference, refuses; first_error answers as jsonschema does, with its messages, and never raises."""
from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from cds_hooks import schemas

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
GOLDEN = Path(__file__).resolve().parents[1] / "golden"

REQUESTS = (["sandbox/patient-view-request.json", "sandbox/order-select-request-2.json",
             "sandbox/order-select-request-3.json", "cds-hooks/spec201-L0198-example.json",
             "cds-hooks/spec201-L1119-extensions.json"])
FEEDBACK = ["sandbox/feedback-order-select.json",
            "cds-hooks/spec201-L0926-example-overridden-guidance-with-overridereason.json",
            "cds-hooks/spec201-L0862-example-suggestion-accepted.json"]
# what a careless or hostile client puts in a field; "x" * 129 is past the card uuid's maxLength beside a $ref
ODD_VALUES = [None, "", " ", "x", "x" * 129, "Patient\n", "a\u0000b", "Practitioner/1", "not a uri", "2026-13-01",
              0, -1, 1.5, True, [], [{}], {}, {"resourceType": "Patient"}, {"resourceType": "bad type"}]


def _load(relative: str) -> dict:
    return json.loads((FIXTURES / relative).read_text(encoding="utf-8"))


def _variants(instance, depth: int = 5) -> Iterator:
    """``instance`` with one field (down to ``depth``) removed or replaced by each of ODD_VALUES."""
    def paths(node, path, level):
        if level > depth:
            return
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in items:
            yield path + (key,)
            yield from paths(child, path + (key,), level + 1)

    for path in list(paths(instance, (), 1)):
        for value in [...] + ODD_VALUES:       # Ellipsis: remove the field
            variant = copy.deepcopy(instance)
            parent = variant
            for key in path[:-1]:
                parent = parent[key]
            if value is ...:
                parent.pop(path[-1]) if isinstance(parent, dict) else parent.pop(path[-1])
            else:
                parent[path[-1]] = value
            yield variant


def _agree(name: str, instance) -> None:
    compiled_passes = True
    try:
        schemas._compiled(name)(instance)
    except Exception:
        compiled_passes = False
    reference_passes = schemas.validator(name).is_valid(instance)
    assert not (compiled_passes and not reference_passes), (name, instance)
    assert (schemas.first_error(name, instance) is None) == reference_passes, (name, instance)


def test_the_hot_paths_are_compiled_and_response_validation_is_not():
    assert schemas._compiled("request") is not None and schemas._compiled("feedback") is not None
    # response has minContains, which the compiled validator (draft-07) would ignore: jsonschema only
    assert schemas._compiled("response") is None


@pytest.mark.parametrize("keyword", [{"const": True}, {"enum": ["a", 1]}, {"uniqueItems": True},
                                     {"minContains": 2}, {"unevaluatedProperties": False},
                                     {"prefixItems": [{"type": "string"}]}, {"items": [{"type": "string"}]},
                                     {"properties": {"a": {"dependentSchemas": {}}}}])
def test_a_schema_the_compiled_validator_would_read_differently_is_not_compiled(keyword):
    with pytest.raises(schemas._NotCompilable):
        schemas._draft7({"type": "object", **keyword})


def test_draft07_reads_2020_12_keywords_as_they_mean_there():
    assert schemas._draft7({"$comment": "c", "$ref": "#/$defs/text", "maxLength": 128}) == {
        "$comment": "c", "allOf": [{"$ref": "#/$defs/text"}, {"maxLength": 128}]}
    assert schemas._draft7({"dependentRequired": {"a": ["b"]}}) == {"dependencies": {"a": ["b"]}}


def test_null_or_a_resource_is_compiled_as_anyof_with_the_resource_first():
    # the branches exclude each other, so anyOf means oneOf; the common case (a resource) is tried first
    ref = {"$ref": "common.schema.json#/$defs/resource"}
    assert schemas._draft7({"oneOf": [{"type": "null"}, ref]}) == {"anyOf": [ref, {"type": "null"}]}
    # a branch that also admits null (or one we cannot see into) keeps oneOf: both could pass
    for other in ({"type": ["string", "null"]}, {"$ref": "#/$defs/text"}, {"minLength": 1}):
        assert schemas._draft7({"oneOf": [{"type": "null"}, other]}) == {"oneOf": [{"type": "null"}, other]}


def test_format_checks_are_remembered_only_for_short_strings():
    schemas._remembered_conforms.cache_clear()
    assert schemas._conforms("https://ehr.example.org/fhir", "uri") is True
    assert schemas._conforms("https://ehr.example.org/fhir", "uri") is True
    assert schemas._remembered_conforms.cache_info().hits == 1
    assert schemas._conforms("not a uri", "uri") is False
    assert schemas._conforms("https://ehr.example.org/" + "a" * 600, "uri") is True
    assert schemas._remembered_conforms.cache_info().currsize == 2


@pytest.mark.parametrize("fixture", REQUESTS)
def test_the_compiled_request_validator_passes_nothing_jsonschema_refuses(fixture):
    request = _load(fixture)
    if fixture == "cds-hooks/spec201-L1119-extensions.json":
        request["context"]["patientId"] = "1288992"
    assert schemas.first_error("request", request) is None
    for variant in _variants(request):
        _agree("request", variant)


@pytest.mark.parametrize("fixture", FEEDBACK)
def test_the_compiled_feedback_validator_passes_nothing_jsonschema_refuses(fixture):
    feedback = _load(fixture)
    assert schemas.first_error("feedback", feedback) is None
    for variant in _variants(feedback, depth=6):
        _agree("feedback", variant)


def test_a_request_of_a_hundred_prefetch_resources_is_checked_by_its_envelope():
    request = json.loads((GOLDEN / "sandbox-order-select-2" / "request.json").read_text(encoding="utf-8"))
    request["prefetch"] = {"bundle": {"resourceType": "Bundle", "type": "searchset", "entry": [
        {"resource": {"resourceType": "Observation", "id": str(i), "valueQuantity": {"value": "not a number"},
                      "status": 7}} for i in range(100)]}}
    assert schemas.first_error("request", request) is None     # resources are left to the lenient readers
    request["prefetch"]["bundle"]["resourceType"] = "bundle"
    path, message = schemas.first_error("request", request)
    assert (path, message) == ("prefetch.bundle.resourceType", "'bundle' does not match '^[A-Z][A-Za-z]+$'")


def test_messages_name_the_missing_field_as_before():
    request = _load("cds-hooks/spec201-L0198-example.json")
    del request["fhirServer"]                                   # fhirAuthorization needs it (dependentRequired)
    assert schemas.first_error("request", request) == (
        "fhirServer", "'fhirServer' is a dependency of 'fhirAuthorization'")
    request = _load("cds-hooks/spec201-L0198-example.json")
    del request["context"]["patientId"]
    assert schemas.first_error("request", request) == ("context.patientId", "'patientId' is a required property")


@pytest.mark.parametrize("depth", [990, 1020, 5000])
def test_deep_nesting_is_an_answer_not_a_recursion_error(depth):
    # orjson parses up to 1024 levels; jsonschema's messages repr the value, past Python's recursion limit
    nested = orjson.loads(b"[" * min(depth, 1020) + b"]" * min(depth, 1020))
    for _ in range(depth - min(depth, 1020)):
        nested = [nested]
    request = {"hook": "patient-view", "hookInstance": "d", "context": {"userId": "Practitioner/1",
                                                                          "patientId": "p"},
               "prefetch": {"patient": nested}}
    path, message = schemas.first_error("request", request)
    assert path in ("prefetch.patient", "(root)") and message
    feedback = {"feedback": [{"card": "c", "outcome": "accepted", "outcomeTimestamp": "2026-01-01T00:00:00Z",
                              "acceptedSuggestions": nested}]}
    assert schemas.first_error("feedback", feedback)
