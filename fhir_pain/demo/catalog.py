"""The demo patients and their scenarios, as shipped in the package (``patients/*.json``, ``scenarios.json``).

Every date in the bundles is written relative to one fixed demo "now" (``scenarios.json`` ``demoNow``, also each
``Bundle.timestamp``). :func:`shift_dates` moves all of them by whole days so that the demo "now" becomes the
latest instant at its time of day that is not in the future: today if that hour has passed, else yesterday
(``demoNow`` is 09:00 UTC, so before 09:00 UTC the data is as of yesterday 09:00). Whole days keep the time of day of
every resource as written; never shifting into the future keeps every date the demo writes at or before the
moment it is written, whatever the hour and the local time zone (all of it is computed in UTC). Intervals (trial length, chronicity, "latest" score) stay exactly as written and the data is current when loaded
into a FHIR server for the CDS Hooks Sandbox. In-process demo runs also pin the services' clock to the moved demo
now (:func:`now_on`, config ``NOW``), so their cards do not depend on the day or the time of day of the run.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

from fhir_pain.profiles import read_package_json

# FHIR date / dateTime / instant with at least a full day (partial dates such as "2018" are left alone)
_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})(T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2}))?")


@dataclass(frozen=True)
class Order:
    """The draft medication a scenario orders (the clinician's choice on the order screen)."""
    rxnorm: str
    display: str
    dosage: str


@dataclass(frozen=True)
class Scenario:
    name: str            # unique, used by ``fhir-pain demo --request NAME``
    patient_id: str
    hook: str            # patient-view | order-select | order-sign
    point: str           # what the scenario shows, in one or two sentences
    order: Order | None = None


@dataclass(frozen=True)
class DemoPatient:
    id: str
    file: str
    about: str
    scenarios: tuple[Scenario, ...]

    def bundle(self) -> dict:
        """A fresh copy of the patient's transaction Bundle, dates as written (relative to the demo now)."""
        return copy.deepcopy(_read_json(self.file))

    def name(self) -> str:
        patient = patient_resource(self.bundle())
        names = (patient or {}).get("name") or [{}]
        return names[0].get("text") or " ".join(names[0].get("given", []) + [names[0].get("family", "")]).strip()


@lru_cache(maxsize=None)
def _read_json(relpath: str) -> Any:
    return read_package_json(__package__, relpath)


@lru_cache(maxsize=1)
def _catalog() -> tuple[datetime, tuple[DemoPatient, ...]]:
    raw = _read_json("scenarios.json")
    demo_now = datetime.fromisoformat(raw["demoNow"].replace("Z", "+00:00"))
    patients = []
    for p in raw["patients"]:
        scenarios = tuple(
            Scenario(name=s["name"], patient_id=p["id"], hook=s["hook"], point=s["point"],
                     order=Order(**s["order"]) if s.get("order") else None)
            for s in p["scenarios"]
        )
        patients.append(DemoPatient(id=p["id"], file=p["file"], about=p["about"], scenarios=scenarios))
    return demo_now, tuple(patients)


def demo_now() -> datetime:
    return _catalog()[0]


def patients() -> tuple[DemoPatient, ...]:
    return _catalog()[1]


def scenarios() -> tuple[Scenario, ...]:
    return tuple(s for p in patients() for s in p.scenarios)


def patient(patient_id: str) -> DemoPatient:
    for p in patients():
        if p.id == patient_id:
            return p
    raise KeyError(patient_id)


def scenario(name: str) -> Scenario:
    for s in scenarios():
        if s.name == name:
            return s
    raise KeyError(name)


def patient_resource(bundle: dict) -> dict | None:
    for entry in bundle.get("entry", []):
        resource = entry.get("resource") or {}
        if resource.get("resourceType") == "Patient":
            return resource
    return None


def resources_of(bundle: dict) -> list[dict]:
    return [e["resource"] for e in bundle.get("entry", []) if isinstance(e.get("resource"), dict)]


def utcnow() -> datetime:
    """The wall clock, in one place so that tests can pin it."""
    return datetime.now(timezone.utc)


def shift_days(today: date | None = None) -> int:
    """Whole days that move the demo now onto ``today`` (a day the user chose), or by default onto the latest
    instant at its time of day that is not later than now (today, or yesterday before the demo hour)."""
    if today is not None:
        return (today - demo_now().date()).days
    now = utcnow().astimezone(timezone.utc)
    days = (now.date() - demo_now().date()).days
    if demo_now() + timedelta(days=days) > now:
        days -= 1
    return days


def now_on(today: date | None = None) -> datetime:
    """The demo now moved to ``today``: the instant the shifted data is "as of"."""
    return demo_now() + timedelta(days=shift_days(today))


def shift_dates(node: Any, days: int) -> Any:
    """A copy of ``node`` with every full FHIR date/dateTime/instant string moved by ``days`` days.

    Strings are shifted only when the whole value is a date, so codes, ids and diplotypes are never touched.
    Time of day and time-zone offset are kept as written.
    """
    if isinstance(node, dict):
        return {k: shift_dates(v, days) for k, v in node.items()}
    if isinstance(node, list):
        return [shift_dates(v, days) for v in node]
    if isinstance(node, str) and days:
        match = _DATE.fullmatch(node)
        if match:
            moved = date.fromisoformat(match.group(1)) + timedelta(days=days)
            return moved.isoformat() + (match.group(2) or "")
    return node
