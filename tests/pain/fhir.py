"""Small builders for FHIR R4 JSON as EHRs send it (LOINC codings, UCUM quantities, survey categories)."""
from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

from fhir_pain.facts import Drug, MedicationUse

LOINC = "http://loinc.org"
PROJECT = "https://fhir-pain.io/CodeSystem/pain-instruments"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)
_ids = itertools.count(1)


def ago(days: float, *, tz: str = "Z") -> str:
    """An effectiveDateTime ``days`` before NOW, written with the given zone suffix."""
    t = NOW - timedelta(days=days)
    if tz == "Z":
        return t.strftime("%Y-%m-%dT%H:%M:%SZ")
    sign = 1 if tz[0] == "+" else -1
    offset = timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6]))
    return (t.astimezone(timezone(sign * offset))).isoformat()


def day(days: float) -> str:
    return (NOW - timedelta(days=days)).date().isoformat()


def coding(code: str, system: str = LOINC, display: str | None = None) -> dict:
    c = {"system": system, "code": code}
    if display:
        c["display"] = display
    return c


def qty(value, unit: str = "{score}", code: str | None = None) -> dict:
    return {"valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": code or unit}}


def obs(code: str, system: str = LOINC, *, when: str | None = None, oid: str | None = None,
        category: str = "survey", status: str = "final", components: list | None = None,
        members: list[str] | None = None, **value) -> dict:
    """An Observation. ``value`` is the value[x] element(s), e.g. valueInteger=7 or **qty(7)."""
    r = {"resourceType": "Observation", "id": oid or f"obs-{next(_ids)}", "status": status,
         "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                   "code": category}]}],
         "code": {"coding": [coding(code, system)]}, "subject": {"reference": "Patient/pat-1"}}
    if when is not None:
        r["effectiveDateTime"] = when
    r.update(value)
    if components is not None:
        r["component"] = components
    if members is not None:
        r["hasMember"] = [{"reference": m} for m in members]
    return r


def comp(code: str, system: str = LOINC, **value) -> dict:
    return {"code": {"coding": [coding(code, system)]}, **value}


def answer(la_code: str, display: str = "") -> dict:
    return {"valueCodeableConcept": {"coding": [coding(la_code, LOINC, display or None)]}}


def cond(cid: str, code: str, system: str = ICD10CM, *, onset: str | None = None, recorded: str | None = None,
         clinical: str | None = "active", verification: str | None = "confirmed", **extra) -> dict:
    r = {"resourceType": "Condition", "id": cid, "subject": {"reference": "Patient/pat-1"},
         "code": {"coding": [coding(code, system)]}}
    if clinical:
        r["clinicalStatus"] = {"coding": [coding(clinical, "http://terminology.hl7.org/CodeSystem/condition-clinical")]}
    if verification:
        r["verificationStatus"] = {"coding": [coding(verification,
                                                     "http://terminology.hl7.org/CodeSystem/condition-ver-status")]}
    if onset:
        r["onsetDateTime"] = onset
    if recorded:
        r["recordedDate"] = recorded
    r.update(extra)
    return r


def med(ref: str, *drugs: tuple[str, str], started_days_ago: float | None, status: str = "active",
        draft: bool = False) -> MedicationUse:
    return MedicationUse(ref=ref, status=status, intent="order", ingredients=tuple(Drug(r, n) for r, n in drugs),
                         text=" / ".join(n for _, n in drugs),
                         authored_on=None if started_days_ago is None else NOW - timedelta(days=started_days_ago),
                         is_draft=draft)


GABAPENTIN = ("25480", "gabapentin")
DULOXETINE = ("72625", "duloxetine")
OXYCODONE = ("7804", "oxycodone")
ACETAMINOPHEN = ("161", "acetaminophen")
IBUPROFEN = ("5640", "ibuprofen")
PREGABALIN = ("187832", "pregabalin")


def nrs(value, days: float, **kw) -> dict:
    return obs("72514-3", when=ago(days), valueInteger=value, **kw)


def peg(days: float, value: int, **kw) -> dict:
    """A PEG panel with its three items (pain, enjoyment of life, general activity) all at ``value``."""
    return obs("91148-7", when=ago(days), components=[comp(c, valueInteger=value)
                                                      for c in ("75893-8", "91145-3", "91146-1")], **kw)
