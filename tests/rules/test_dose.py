"""Daily dose in mg, only when exact."""
from __future__ import annotations

import pytest

from fhir_pain.rules.dose import daily_dose_mg


def _mr(dose=None, unit="mg", code="mg", frequency=1, period=1, period_unit="d", rate_as_object=False):
    qty = {"value": dose, "unit": unit, "system": "http://unitsofmeasure.org", "code": code}
    rate = {"doseQuantity": qty}
    return {"resourceType": "MedicationRequest", "dosageInstruction": [{
        "timing": {"repeat": {"frequency": frequency, "period": period, "periodUnit": period_unit}},
        "doseAndRate": rate if rate_as_object else [rate]}]}


@pytest.mark.parametrize("kwargs, expected", [
    ({"dose": 10}, 10.0),
    ({"dose": 25, "frequency": 2}, 50.0),
    ({"dose": 5, "frequency": 1, "period": 8, "period_unit": "h"}, 15.0),
    ({"dose": 0.5, "unit": "g", "code": "g"}, 500.0),
    ({"dose": 10, "rate_as_object": True}, 10.0),          # the sandbox's single-object shape
])
def test_exact_doses(kwargs, expected):
    assert daily_dose_mg(_mr(**kwargs)) == expected


@pytest.mark.parametrize("resource", [
    None, {}, _mr(dose=1, unit="tablet", code="{tbl}"), _mr(dose=None), _mr(dose=-5), _mr(dose=10, period_unit="x"),
    {"dosageInstruction": [{"doseAndRate": [{"doseRange": {"low": {"value": 10}}}]}]},
    {"dosageInstruction": [_mr(dose=10)["dosageInstruction"][0]] * 2},   # two instructions: not exact
    {"dosageInstruction": "10 mg daily"},
])
def test_anything_inexact_is_none(resource):
    assert daily_dose_mg(resource) is None


@pytest.mark.parametrize("dosage", [
    ["10 mg daily"], [{"doseAndRate": ["x"]}], [{"doseAndRate": [{"doseQuantity": {"value": 10, "code": "mg"}}],
                                                  "timing": "daily"}],
    [{"doseAndRate": [{"doseQuantity": {"value": 10, "code": "mg"}}], "timing": {"repeat": {"periodUnit": ["d"]}}}],
])
def test_daily_dose_mg_with_wrong_json_types_is_unknown(dosage):
    # was AttributeError / TypeError in daily_dose_mg: a 500 for an order with such a dosage
    assert daily_dose_mg({"resourceType": "MedicationRequest", "dosageInstruction": dosage}) is None
