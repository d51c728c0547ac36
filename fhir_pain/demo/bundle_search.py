"""Answer a rendered prefetch query ("Observation?patient=1&code=...") from a list of FHIR resources.

The demo fills prefetch the way an EHR would: from the service's own discovery templates, evaluated against the
patient's data. This is a deliberately small FHIR search: the parameters prefetch templates use on the resource
types the demo holds. A query it cannot answer exactly raises :class:`UnsupportedQuery`, and the request builder
then leaves that key out (the service fetches or degrades, as it would with a real EHR) instead of guessing.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from urllib.parse import parse_qsl

from fhir_pain.demo.catalog import _DATE

_REFERENCE_PARAMS = {"patient": "subject", "subject": "subject"}   # search parameter -> reference element
_IGNORED = {"_count", "_sort", "_total", "_summary", "_format"}


class UnsupportedQuery(ValueError):
    """The query uses a parameter, modifier or resource type this small search does not evaluate."""


def _codings(concepts) -> Iterable[dict]:
    if isinstance(concepts, dict):
        concepts = [concepts]
    for concept in concepts or ():
        if isinstance(concept, dict):
            yield from (c for c in concept.get("coding") or () if isinstance(c, dict))


def _token_values(resource: dict, param: str) -> list[dict | str] | None:
    """Codings (dicts) or plain codes (str) a token parameter matches on; None when the parameter is unknown."""
    rtype = resource.get("resourceType")
    if param == "code":
        if rtype == "MedicationRequest":
            return list(_codings(resource.get("medicationCodeableConcept")))
        return list(_codings(resource.get("code")))
    if param == "component-code":
        return [c for comp in resource.get("component") or () for c in _codings(comp.get("code"))]
    if param == "combo-code":
        return _token_values(resource, "code") + _token_values(resource, "component-code")
    if param == "category":
        return list(_codings(resource.get("category")))
    if param in ("clinical-status", "verification-status"):
        field = "clinicalStatus" if param == "clinical-status" else "verificationStatus"
        return list(_codings(resource.get(field)))
    if param in ("status", "intent", "gender"):
        value = resource.get(param)
        return [value] if isinstance(value, str) else []
    if param == "_id":
        return [resource.get("id")] if resource.get("id") else []
    return None


def _token_match(values: list[dict | str], wanted: str) -> bool:
    if "|" in wanted:
        system, code = wanted.split("|", 1)
    else:
        system, code = None, wanted
    for value in values:
        if isinstance(value, str):
            if system in (None, "") and value == code:
                return True
            continue
        if code and value.get("code") != code:
            continue
        if system is None or (system == "" and "system" not in value) or value.get("system") == system:
            return True
    return False


def _reference_match(resource: dict, field: str, wanted: str) -> bool:
    ref = (resource.get(field) or {}).get("reference", "")
    target = wanted if "/" in wanted else f"Patient/{wanted}"
    return ref == target or ref.endswith("/" + target)


_DATE_FIELDS = {
    "Observation": ("effectiveDateTime", "effectiveInstant", "issued"),
    "Condition": ("onsetDateTime", "recordedDate"),
    "MedicationRequest": ("authoredOn",),
}


def _when(value: str) -> datetime | None:
    match = _DATE.fullmatch(value)
    if not match:
        return None
    text = value if match.group(2) else value + "T00:00:00+00:00"
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _date_match(resource: dict, param: str, wanted: str) -> bool:
    prefix, value = (wanted[:2], wanted[2:]) if wanted[:2] in ("ge", "gt", "le", "lt", "eq") else ("eq", wanted)
    bound = _when(value)
    if bound is None:
        raise UnsupportedQuery(f"date value {wanted!r}")
    fields = {"date": _DATE_FIELDS.get(resource.get("resourceType"), ()),
              "authoredon": ("authoredOn",), "onset-date": ("onsetDateTime",)}[param]
    for field in fields:
        raw = resource.get(field)
        if isinstance(raw, str) and (when := _when(raw)) is not None:
            return {"ge": when >= bound, "gt": when > bound, "le": when <= bound,
                    "lt": when < bound, "eq": when == bound}[prefix]
    return False


def _matches(resource: dict, name: str, value: str) -> bool:
    if name in _REFERENCE_PARAMS:
        return any(_reference_match(resource, _REFERENCE_PARAMS[name], v) for v in value.split(","))
    if name in ("date", "authoredon", "onset-date"):
        return _date_match(resource, name, value)
    values = _token_values(resource, name)
    if values is None:
        raise UnsupportedQuery(f"search parameter {name!r}")
    return any(_token_match(values, v) for v in value.split(","))


def search(resources: Iterable[dict], query: str, *, base: str = "http://demo.fhir-pain.invalid/fhir") -> dict | None:
    """The FHIR response to ``query``: the resource for a read ("Patient/1"), a searchset Bundle for a search,
    None for a read of a resource that is not there. Raises UnsupportedQuery for what it cannot evaluate exactly."""
    path, _, qs = query.partition("?")
    parts = [p for p in path.strip("/").split("/") if p]
    pool = [r for r in resources if isinstance(r, dict)]
    if len(parts) == 2 and not qs:
        return next((r for r in pool if r.get("resourceType") == parts[0] and r.get("id") == parts[1]), None)
    if len(parts) != 1:
        raise UnsupportedQuery(f"query path {path!r}")
    params = parse_qsl(qs, keep_blank_values=True)
    for name, _ in params:
        if ":" in name or "." in name or name.startswith("_") and name not in _IGNORED | {"_id"}:
            raise UnsupportedQuery(f"search parameter {name!r}")
    hits = []
    for resource in pool:
        if resource.get("resourceType") != parts[0]:
            continue
        if all(name in _IGNORED or _matches(resource, name, value) for name, value in params):
            hits.append(resource)
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(hits),
        "link": [{"relation": "self", "url": f"{base}/{query}"}],
        "entry": [{"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}}
                  for r in hits],
    }
