"""Read one numeric score from an Observation or a component, as EHRs send it.

Accepted: valueQuantity (UCUM ``code`` or free-text ``unit``), valueInteger, valueDecimal (not R4, but sent),
a numeric valueString ("7", "7/10"), valueBoolean (yes/no items), and valueCodeableConcept carrying a LOINC
answer code of the instrument's answer list or an ordinal-value extension. Everything else is a reason string:
the caller records it as rejected. Nothing here raises on bad input.
"""
from __future__ import annotations

import math
import re

from fhir_pain.pain.knowledge import UCUM, Instrument, Knowledge, as_list as _list, norm_unit

# Extensions that carry the score of an answer coding: R4 ordinalValue, R5 itemWeight, the older ISO 21090 one.
ORDINAL_EXTENSIONS = frozenset({
    "http://hl7.org/fhir/StructureDefinition/ordinalValue",
    "http://hl7.org/fhir/StructureDefinition/itemWeight",
    "http://hl7.org/fhir/StructureDefinition/iso21090-CO-value",
})
_NUMBER = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?)\s*(?:/\s*10)?\s*$")

Result = tuple[float | None, str | None]   # (value, None) or (None, reason)


VALUE_KEYS = frozenset({
    "valueQuantity", "valueCodeableConcept", "valueString", "valueBoolean", "valueInteger", "valueRange",
    "valueRatio", "valueSampledData", "valueTime", "valueDateTime", "valuePeriod", "valueDecimal",
})


def has_value(el: dict) -> bool:
    # the two value types scores come in are looked up first: cheaper than the set test over every key
    return "valueInteger" in el or "valueQuantity" in el or not el.keys().isdisjoint(VALUE_KEYS)


def _number(v: object) -> float | None:
    if type(v) is int:      # the common case; an int converts to a finite float (or raises, as below)
        return float(v)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def _answer(cc: object, answers) -> Result:
    if not isinstance(cc, dict):
        return None, "malformed valueCodeableConcept"
    codings = _list(cc.get("coding"))
    for coding in codings:          # an answer code of the instrument's answer list
        if isinstance(coding, dict):
            system, code = coding.get("system"), coding.get("code")
            if isinstance(system, str) and isinstance(code, str):
                n = answers.get(system, {}).get(code)
                if n is not None:
                    return n, None
    for coding in codings:          # a local answer code that carries its score
        if isinstance(coding, dict):
            for ext in _list(coding.get("extension")):
                if isinstance(ext, dict) and isinstance(ext.get("url"), str) and ext["url"] in ORDINAL_EXTENSIONS:
                    n = _number(ext.get("valueDecimal", ext.get("valueInteger")))
                    if n is not None:
                        return n, None
    return None, "answer code not recognised"


def raw_value(el: dict, answers=None) -> Result:
    """The number an element carries before any unit or range check (answers: system -> answer code -> value,
    see :attr:`Items.answers`)."""
    if "valueQuantity" not in el:
        n = el.get("valueInteger")
        if type(n) is int:   # the common case first: an int converts to a whole float (or raises, as _number)
            return float(n), None
    else:
        q = el["valueQuantity"]
        if not isinstance(q, dict):
            return None, "malformed valueQuantity"
        if q.get("comparator"):
            return None, f"value with comparator {q.get('comparator')!s} is not an exact score"
        n = _number(q.get("value"))
        return (n, None) if n is not None else (None, "valueQuantity without a numeric value")
    for k in ("valueInteger", "valueDecimal"):
        if k in el:
            n = _number(el[k])
            if n is None:
                return None, f"{k} is not a number"
            if k == "valueInteger" and n != int(n):
                return None, "valueInteger is not an integer"
            return n, None
    if "valueString" in el:
        m = _NUMBER.match(el["valueString"]) if isinstance(el["valueString"], str) else None
        return (float(m.group(1)), None) if m else (None, "valueString is not a number")
    if "valueBoolean" in el:
        b = el["valueBoolean"]
        return (1.0 if b else 0.0, None) if isinstance(b, bool) else (None, "valueBoolean is not a boolean")
    if "valueCodeableConcept" in el:
        return _answer(el["valueCodeableConcept"], answers or {})
    if "dataAbsentReason" in el:
        return None, "no value (dataAbsentReason)"
    for k in el:
        if k in VALUE_KEYS:
            return None, f"unsupported {k}"
    return None, "no value"


def unit_factor(el: dict, inst: Instrument, kn: Knowledge) -> tuple[float | None, str | None]:
    """Factor from the sent unit to the instrument's scale, or a reason. Only valueQuantity carries units."""
    q = el.get("valueQuantity")
    if not isinstance(q, dict):
        return (None, "a unit is required for this measurement") if inst.unit_required else (1.0, None)
    code = q.get("code") if q.get("system") == UCUM else None
    unit = norm_unit(code if code else q.get("unit"))
    factor = inst.units.get(unit)
    if factor is not None:
        return factor, None
    if inst.unit_required:
        return None, f"unit {unit or 'missing'!r} not accepted for {inst.name}"
    if unit in kn.score_units:
        return 1.0, None
    return None, f"unit {unit!r} is not a score unit"


def total_value(el: dict, inst: Instrument, kn: Knowledge) -> Result:
    """A total score on the instrument's scale, range- and type-checked."""
    n = el.get("valueInteger") if "valueQuantity" not in el else None
    if type(n) is int and not inst.unit_required:   # the common case: a whole number, on the scale already
        v = float(n)
        if inst.lo <= v <= inst.hi:
            return v, None
    v, why = raw_value(el)
    if v is None:
        return None, why
    if inst.unit_required or "valueQuantity" in el:   # a bare number is on the instrument's scale already
        factor, why = unit_factor(el, inst, kn)
        if factor is None:
            return None, why
        v = v * factor
    if not inst.lo <= v <= inst.hi:
        return None, f"{v:g} is outside {inst.lo:g}-{inst.hi:g}"
    if inst.integer and v != int(v):
        return None, f"{v:g} is not a whole-number score"
    return v, None


def item_value(el: dict, inst: Instrument) -> Result:
    """One item's score, range-checked against the instrument's item range."""
    items = inst.items
    v, why = raw_value(el, items.answers)
    if v is None:
        return None, why
    if not items.lo <= v <= items.hi:
        return None, f"item value {v:g} is outside {items.lo:g}-{items.hi:g}"
    return v, None
