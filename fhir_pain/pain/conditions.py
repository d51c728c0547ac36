"""Conditions -> the pain-relevant groups they belong to (profiles/pain/conditions.json).

Only current diagnoses count: inactive/resolved/remission or abated conditions are skipped, refuted and
entered-in-error ones too. A provisional/differential diagnosis is kept but marked unconfirmed, so that it can
only give the weaker level.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from fhir_pain.fhirdates import FhirTime, onset
from fhir_pain.pain.knowledge import ConditionEntry, Knowledge, as_list as _list, norm_system

INACTIVE = frozenset({"inactive", "remission", "resolved"})
IGNORED_VERIFICATION = frozenset({"refuted", "entered-in-error"})
UNCONFIRMED = frozenset({"provisional", "differential", "unconfirmed"})
ABATEMENT = ("abatementDateTime", "abatementAge", "abatementPeriod", "abatementRange", "abatementString",
             "abatementBoolean")
_ABATEMENT_KEYS = frozenset(ABATEMENT)


@dataclass(slots=True)   # read-only; not frozen: a frozen dataclass is much slower to build
class ConditionHit:
    ref: str
    group: str              # "neuropathic", "nociplastic", "inflammatory", "chronic-pain", "pain", "depression", ...
    label: str
    level: str              # the entry's level: "likely", "possible", "features", "hint", "chronic", "pain", "present"
    confirmed: bool
    onset: FhirTime | None  # onset[x], else recordedDate
    note: str | None = None

    def describe(self) -> str:
        return f"{self.label} ({self.ref or 'Condition without id'}{'' if self.confirmed else ', unconfirmed'})"


def status_code(value: object) -> str | None:
    """clinicalStatus / verificationStatus: a CodeableConcept in R4, a bare code in DSTU2/STU3 exports."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        codings = value.get("coding")
        if isinstance(codings, list):
            for coding in codings:
                if isinstance(coding, dict):
                    code = coding.get("code")
                    if isinstance(code, str):
                        return code
    return None


def match_conditions(conditions: Iterable[dict], kn: Knowledge) -> list[ConditionHit]:
    hits: list[ConditionHit] = []
    for c in conditions:
        if not isinstance(c, dict) or c.get("resourceType", "Condition") != "Condition":
            continue
        # the code first: most of a patient's diagnoses are not pain-relevant, and every check below is pure
        code = c.get("code")
        if not isinstance(code, dict):
            continue
        entries = _entries(code.get("coding"), kn)
        if not entries:
            continue
        verification = status_code(c.get("verificationStatus"))
        clinical = status_code(c.get("clinicalStatus"))
        if verification in IGNORED_VERIFICATION or clinical in INACTIVE:
            continue
        if not c.keys().isdisjoint(_ABATEMENT_KEYS) and any(c.get(k) not in (None, False) for k in ABATEMENT):
            continue
        cid = c.get("id")
        ref = f"Condition/{cid}" if isinstance(cid, str) and cid else ""
        when = onset(c)
        note = None if clinical is not None else "clinical status not stated"
        confirmed = verification not in UNCONFIRMED
        hits.extend(ConditionHit(ref, e.group, e.label, e.level, confirmed, when, note) for e in entries)
    return hits


def _entries(codings: object, kn: Knowledge) -> list[ConditionEntry]:
    """The knowledge entries of a Condition's codings, in coding order, each (group, label) once."""
    found: list[ConditionEntry] = []
    snomed_systems = kn.snomed_systems
    for coding in _list(codings):
        if isinstance(coding, dict):
            code = coding.get("code")
            if isinstance(code, str):
                system = coding.get("system")
                if type(system) is str and system in snomed_systems:   # most diagnoses: a direct look-up
                    found.extend(kn.snomed.get(code, ()))
                else:
                    found.extend(kn.condition_entries(norm_system(system), code))
    if len(found) < 2:   # nothing to merge (most Conditions carry one relevant code)
        return found
    seen: set[tuple[str, str]] = set()
    entries = []
    for e in found:
        if (e.group, e.label) not in seen:
            seen.add((e.group, e.label))
            entries.append(e)
    return entries
