"""Daily dose in mg from a MedicationRequest's dosageInstruction, only when it can be read exactly.

Used to tell a low (neuropathic-pain) tricyclic dose from a depression dose. Anything not exact (tablets of
unknown strength, ranges, several instructions, odd units) gives None, and the rule then says the dose is
unknown instead of guessing.
"""
from __future__ import annotations

from typing import Any

_PER_DAY = {"h": 24.0, "d": 1.0, "wk": 1 / 7, "mo": 1 / 30, "min": 1440.0}
_MG = {"mg": 1.0, "g": 1000.0, "ug": 0.001, "mcg": 0.001}


def _as_list(value: Any) -> list:
    if isinstance(value, list):
        return value
    return [value] if isinstance(value, dict) else []   # the sandbox sends single objects for arrays


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0 else None


def daily_dose_mg(resource: dict | None) -> float | None:
    if not isinstance(resource, dict):
        return None
    instructions = _as_list(resource.get("dosageInstruction"))
    if len(instructions) != 1:
        return None
    dosage = instructions[0]
    if not isinstance(dosage, dict):
        return None
    rates = _as_list(dosage.get("doseAndRate"))
    if len(rates) != 1 or not isinstance(rates[0], dict) or not isinstance(rates[0].get("doseQuantity"), dict):
        return None
    qty = rates[0]["doseQuantity"]
    unit = qty.get("code") or qty.get("unit")
    value = _number(qty.get("value"))
    if value is None or not isinstance(unit, str) or unit.lower() not in _MG:
        return None
    timing = dosage.get("timing") or {}
    repeat = (timing.get("repeat") or {}) if isinstance(timing, dict) else None
    if not isinstance(repeat, dict):
        return None
    frequency = _number(repeat.get("frequencyMax", repeat.get("frequency", 1)))
    period = _number(repeat.get("period", 1))
    unit_of_period = repeat.get("periodUnit", "d")
    per_unit = _PER_DAY.get(unit_of_period) if isinstance(unit_of_period, str) else None
    if not frequency or not period or per_unit is None:
        return None
    return round(value * _MG[unit.lower()] * frequency / period * per_unit, 3)
