"""fhir_models: R4 validation of what we produce, and the response checker used across the tests."""
from __future__ import annotations

import pytest

from fhir_pain.fhir_models import InvalidResource, check_cds_response, validate


def test_valid_and_invalid_resources():
    validate({"resourceType": "ServiceRequest", "status": "draft", "intent": "order",
              "subject": {"reference": "Patient/1"}, "code": {"text": "CYP2D6 genotype"}})
    with pytest.raises(InvalidResource):
        validate({"resourceType": "ServiceRequest", "status": "draft"})       # intent and subject missing
    with pytest.raises(InvalidResource):
        validate({"resourceType": "NoSuchThing"})
    with pytest.raises(InvalidResource):
        validate(["not", "a", "resource"])


def test_check_cds_response_finds_each_kind_of_problem():
    assert check_cds_response({"cards": []}) == []
    bad = {"cards": [{"summary": "x" * 141, "indicator": "loud", "source": {"label": "s"},
                      "suggestions": [{"label": "l", "actions": [
                          {"type": "delete", "description": "d"},
                          {"type": "create", "description": "c",
                           "resource": {"resourceType": "MedicationRequest", "status": "draft"}}]}],
                      "overrideReasons": [{"code": "c", "system": "http://x"}]}]}
    problems = "\n".join(check_cds_response(bad))
    for expected in ("schema", "summary must be", "indicator", "no uuid", "io.fhir-pain.findings",
                     "selectionBehavior", "display", "resourceId", "not valid R4"):
        assert expected in problems
