"""The patient's coded records that the safety rules read: Procedures, Conditions and status Observations,
matched against the code lists of profiles/rules/age-limits.json ("codeLists").

Lenient in, as the pain engine's condition reader: ICD-10 codes match by prefix (dots ignored, "exclude" wins),
SNOMED CT, CPT and ICD-10-PCS codes exactly (no terminology server: descendants are not matched), and a list's
"text" words match code.text or a coding's display when no code did (local codes, "status post tonsillectomy").
Only current records count: refuted, entered-in-error, inactive, resolved or abated Conditions and Procedures not
done are skipped. Nothing here raises on bad input.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from fhir_pain import fhirdates
from fhir_pain.codesystems import CPT, ICD10, ICD10PCS, OBSERVATION_VOID, SNOMED
from fhir_pain.fhirdates import FhirTime
from fhir_pain.pain.conditions import ABATEMENT, IGNORED_VERIFICATION, INACTIVE, UNCONFIRMED, status_code
from fhir_pain.pain.knowledge import as_list, norm_system
from fhir_pain.rules.knowledge import age_limits

_EXACT = {"snomed": (SNOMED,), "cpt": (CPT, "urn:oid:2.16.840.1.113883.6.12"),
          "icd10pcs": (ICD10PCS, "http://www.icd10data.com/icd10pcs", "urn:oid:2.16.840.1.113883.6.4")}
PROCEDURE_NOT_DONE = frozenset({"not-done", "entered-in-error"})
_ABATEMENT = frozenset(ABATEMENT)   # most Conditions have none of these keys: one C-level check


@dataclass(frozen=True, slots=True)
class Record:
    """One Procedure or Condition that matched a code list."""
    ref: str                   # "Procedure/123" ("" when it has no id)
    kind: str                  # "Procedure" | "Condition"
    label: str                 # what the record says (its text or display), for the card
    by_text: bool              # matched on its words, not on a code
    when: FhirTime | None      # performed[x] / onset[x] (recordedDate), None when undated
    confirmed: bool = True     # False for a provisional/differential Condition or an unknown-status Procedure

    def describe(self) -> str:
        bits = [self.ref or f"{self.kind} without id"]
        if self.when is not None:
            t = self.when
            bits.append((t.local or t.at).date().isoformat() if t.precision == "time" else t.isoformat())
        if not self.confirmed:
            bits.append("unconfirmed")
        if self.by_text:
            bits.append("matched on its text")
        return f"{self.label} ({', '.join(bits)})"


def _icd(code: str) -> str:
    return code.replace(".", "").strip().upper()


@lru_cache(maxsize=None)
def _compiled(list_name: str, resource: str) -> tuple[dict[str, frozenset[str]], tuple[str, ...], tuple[str, ...],
                                                      tuple[str, ...]]:
    """(system -> exact codes, ICD-10 prefixes, ICD-10 exclusions, text words) of one code list for one resource."""
    entry = age_limits()["codeLists"][list_name]
    codes = entry.get(resource.lower(), {}) or {}
    exact: dict[str, set[str]] = {}
    for key, systems in _EXACT.items():
        for system in systems:
            exact.setdefault(system, set()).update(c.upper() for c in codes.get(key, ()))
    return ({s: frozenset(c) for s, c in exact.items() if c}, tuple(_icd(c) for c in codes.get("icd10", ())),
            tuple(_icd(c) for c in codes.get("exclude", ())), tuple(entry.get("text", ())))


def _matches(codeable: object, compiled: tuple) -> tuple[bool, bool]:
    """(matched, by text) for a CodeableConcept; ``compiled``: _compiled() of the list (looked up once per pass)."""
    if not isinstance(codeable, dict):
        return False, False
    exact, prefixes, excluded, words = compiled
    displays = [codeable.get("text")]
    for coding in as_list(codeable.get("coding")):
        if not isinstance(coding, dict):
            continue
        displays.append(coding.get("display"))
        code, system = coding.get("code"), norm_system(coding.get("system"))
        if not isinstance(code, str) or not code.strip():
            continue
        if code.strip().upper() in exact.get(system, ()):
            return True, False
        if prefixes and system in ICD10:
            c = _icd(code)
            if any(c.startswith(p) for p in prefixes) and not any(c.startswith(x) for x in excluded):
                return True, False
    if not words:   # most lists have no words: no text to build
        return False, False
    text = " ".join(d.lower() for d in displays if isinstance(d, str))
    return (True, True) if any(w in text for w in words) else (False, False)


def _label(codeable: dict) -> str:
    if isinstance(codeable.get("text"), str) and codeable["text"].strip():
        return codeable["text"].strip()
    for coding in as_list(codeable.get("coding")):
        if isinstance(coding, dict) and isinstance(coding.get("display"), str) and coding["display"].strip():
            return coding["display"].strip()
        if isinstance(coding, dict) and isinstance(coding.get("code"), str):
            return coding["code"]
    return "(no text)"


def _ref(resource: dict, rtype: str) -> str:
    rid = resource.get("id")
    return f"{rtype}/{rid}" if isinstance(rid, str) and rid else ""


def performed(procedure: dict) -> FhirTime | None:
    """When a Procedure was (or is to be) done: performedDateTime, else performedPeriod (its end when it has one)."""
    t = fhirdates.parse(procedure.get("performedDateTime"), element="performedDateTime")
    if t is not None:
        return t
    period = procedure.get("performedPeriod")
    if isinstance(period, dict):
        end = fhirdates.parse(period.get("end"), element="performedPeriod.end")
        return end or fhirdates.parse(period.get("start"), element="performedPeriod.start")
    return None


def procedures_in(procedures, list_name: str) -> list[Record]:
    out, compiled = [], _compiled(list_name, "procedure")
    for p in procedures or ():
        if not isinstance(p, dict) or p.get("resourceType", "Procedure") != "Procedure":
            continue
        status = p.get("status")
        if not isinstance(status, str):   # lenient in: a status of the wrong JSON type is no status
            status = None
        if status in PROCEDURE_NOT_DONE:
            continue
        hit, by_text = _matches(p.get("code"), compiled)
        if hit:
            out.append(Record(_ref(p, "Procedure"), "Procedure", _label(p["code"]), by_text,
                              performed(p), confirmed=status != "unknown"))
    return out


def conditions_in(conditions, list_name: str) -> list[Record]:
    out, compiled = [], _compiled(list_name, "condition")
    for c in conditions or ():
        if not isinstance(c, dict) or c.get("resourceType", "Condition") != "Condition":
            continue
        hit, by_text = _matches(c.get("code"), compiled)   # first: most Conditions are in no list
        if not hit:
            continue
        verification, clinical = status_code(c.get("verificationStatus")), status_code(c.get("clinicalStatus"))
        if verification in IGNORED_VERIFICATION or clinical in INACTIVE:
            continue
        if not _ABATEMENT.isdisjoint(c) and any(c.get(k) not in (None, False) for k in ABATEMENT):
            continue
        out.append(Record(_ref(c, "Condition"), "Condition", _label(c["code"]), by_text,
                          fhirdates.onset(c), confirmed=verification not in UNCONFIRMED))
    return out


def within(when: FhirTime | None, now: datetime, before_days: int, after_days: int = 0) -> bool | None:
    """True when ``when`` may fall in [now - before_days, now + after_days]; None when undated."""
    if when is None:
        return None
    return when.latest > now - timedelta(days=before_days) and when.earliest <= now + timedelta(days=after_days)


# ---- Observations ----------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Reading:
    """The latest usable Observation of one code: its value (a number, or a coded/boolean answer)."""
    ref: str
    when: FhirTime
    value: float | None = None
    unit: str = ""
    answers: frozenset[str] = frozenset()   # "system|code" of a coded answer; "boolean|true" for valueBoolean


def _codes_of(codeable: object) -> set[str]:
    out = set()
    if isinstance(codeable, dict):
        for coding in as_list(codeable.get("coding")):
            if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                out.add(f"{norm_system(coding.get('system'))}|{coding['code'].strip()}")
    return out


def latest(observations, codes: set[str] | frozenset[str], now: datetime, lookback_days: int) -> Reading | None:
    """The most recent dated Observation with one of ``codes`` ("system|code") within the look-back (not after
    now + 1 day: a value dated in the future is an error). Undated ones never stand for now."""
    best: Reading | None = None
    since, horizon = now - timedelta(days=lookback_days), now + timedelta(days=1)
    bare = frozenset(c.partition("|")[2] for c in codes)   # knowledge systems hold no "|"
    for o in observations or ():
        # the code first, in line (no call per Observation): most Observations are of other codes, and each of their
        # codings costs one look-up in ``bare``
        codeable = o.get("code") if isinstance(o, dict) else None
        codings = codeable.get("coding") if isinstance(codeable, dict) else None
        if not isinstance(codings, list):
            continue
        for coding in codings:
            code = coding.get("code") if isinstance(coding, dict) else None
            if isinstance(code, str) and (code := code.strip()) in bare \
                    and f"{norm_system(coding.get('system'))}|{code}" in codes:
                break
        else:
            continue
        status = o.get("status")
        if isinstance(status, str) and status in OBSERVATION_VOID:
            continue
        when = fhirdates.effective(o)
        if when is None or when.at < since or when.earliest > horizon:
            continue
        reading = _reading(o, when)
        if reading is not None and (best is None or when.at > best.when.at):
            best = reading
    return best


def _reading(o: dict, when: FhirTime) -> Reading | None:
    ref = _ref(o, "Observation")
    q = o.get("valueQuantity")
    if isinstance(q, dict) and isinstance(q.get("value"), (int, float)) and not isinstance(q.get("value"), bool):
        return Reading(ref, when, value=float(q["value"]), unit=str(q.get("code") or q.get("unit") or ""))
    if isinstance(o.get("valueBoolean"), bool):
        return Reading(ref, when, answers=frozenset({f"boolean|{str(o['valueBoolean']).lower()}"}))
    answers = _codes_of(o.get("valueCodeableConcept"))
    return Reading(ref, when, answers=frozenset(answers)) if answers else None
