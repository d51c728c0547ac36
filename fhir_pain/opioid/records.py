"""The patient's records the opioid rules read: Conditions matched against the CDC value sets
(profiles/opioid/vocabulary.json "conditions"), and urine drug tests (LOINC codes of the CDC value set).

SNOMED CT codes match exactly (no terminology server: descendants are not matched); ICD-10-CM codes match a listed
code or any listed parent (dots ignored). Refuted, entered-in-error, inactive, resolved and abated Conditions are
skipped. Nothing here raises on bad input.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from functools import lru_cache

from fhir_pain import fhirdates
from fhir_pain.codesystems import ICD10, OBSERVATION_VOID, SNOMED
from fhir_pain.opioid.knowledge import rules, vocabulary
from fhir_pain.pain.conditions import ABATEMENT, IGNORED_VERIFICATION, INACTIVE
from fhir_pain.pain.conditions import status_code as _status
from fhir_pain.pain.knowledge import as_list

LOINC = "http://loinc.org"
_ABATEMENT = frozenset(ABATEMENT)   # most Conditions have none of these keys: one C-level check


def _icd(code: str) -> str:
    return code.replace(".", "").strip().upper()


@lru_cache(maxsize=None)
def _lists() -> dict[str, tuple[frozenset[str], frozenset[str], tuple[str, ...]]]:
    out = {}
    for name, entry in vocabulary()["conditions"].items():
        out[name] = (frozenset(entry.get("snomed", ())), frozenset(_icd(c) for c in entry.get("icd10", ())), ())
    od = rules()["overdoseConditions"]
    out["overdose"] = (frozenset(), frozenset(_icd(c) for c in od["icd10"]), tuple(od["text"]))
    return out


@lru_cache(maxsize=None)
def _index() -> tuple[dict[str, frozenset[str]], dict[str, frozenset[str]], tuple[tuple[str, tuple[str, ...]], ...],
                      tuple[str, ...]]:
    """The lists inverted, once: SNOMED code -> list names, ICD-10 code -> list names, (name, own words) of the
    lists that have words, and all those words. A Condition's coding then costs a look-up or two, not a pass over
    every list."""
    snomed: dict[str, set[str]] = {}
    icd: dict[str, set[str]] = {}
    for name, (codes, icd_codes, _) in _lists().items():
        for code in codes:
            snomed.setdefault(code, set()).add(name)
        for code in icd_codes:
            icd.setdefault(code, set()).add(name)
    own = tuple((name, words) for name, (_, _, words) in _lists().items() if words)
    return ({k: frozenset(v) for k, v in snomed.items()}, {k: frozenset(v) for k, v in icd.items()}, own,
            tuple(w for _, words in own for w in words))


def _lists_of(codeable: object, index: tuple, found: re.Pattern, words: re.Pattern) -> set[str]:
    """The lists a CodeableConcept belongs to ("text" for a match on ``words`` or a list's own words only).
    ``index``: _index(); ``found``: any word at all (the caller's and the lists' own); ``words``: the caller's."""
    if not isinstance(codeable, dict):
        return set()
    by_snomed, by_icd, own, _ = index
    out: set[str] = set()
    text = codeable.get("text")
    texts = [text.lower()] if isinstance(text, str) else []
    codings = codeable.get("coding")
    for c in codings if isinstance(codings, list) else ():
        code = c.get("code") if isinstance(c, dict) else None
        if not isinstance(code, str):
            continue
        display, system = c.get("display"), c.get("system")
        if isinstance(display, str):
            texts.append(display.lower())
        if system == SNOMED:
            hit = by_snomed.get(code.strip())
            if hit:
                out |= hit
        elif system in ICD10:
            k = _icd(code)
            for i in range(3, len(k) + 1):     # a listed code or any listed parent
                out |= by_icd.get(k[:i], frozenset())
    text = " ".join(texts)
    # one search tells whether any word at all is in the text (most problem-list entries have none)
    if text and found.search(text):
        out |= {name for name, listed in own if _any_of(listed).search(text)}
        if words.search(text):
            out.add("text")
    return out


@lru_cache(maxsize=32)
def _any_of(words: tuple[str, ...]) -> re.Pattern:
    """A pattern that finds any of ``words`` as a substring (what ``any(w in text for w in words)`` says), for the
    knowledge's word lists (few: bounded all the same)."""
    return re.compile("|".join(re.escape(w) for w in words)) if words else _NEVER


_NEVER = re.compile(r"(?!)")   # matches nothing: an empty word list


def matching_conditions(conditions: list[dict], words: tuple[str, ...] = ()) -> dict[str, list[dict]]:
    """list name -> the current Conditions in it (one pass over the problem list); "text" holds those whose words
    match ``words``."""
    out: dict[str, list[dict]] = {}
    index = _index()   # the patterns once per call, not once per Condition
    found, mine = _any_of(words + index[3]), _any_of(words)
    for c in conditions or ():
        if not isinstance(c, dict) or c.get("resourceType", "Condition") != "Condition":
            continue
        names = _lists_of(c.get("code"), index, found, mine)   # first: most Conditions are in no list
        if not names:
            continue
        if _status(c.get("verificationStatus")) in IGNORED_VERIFICATION or _status(c.get("clinicalStatus")) in INACTIVE:
            continue
        if not _ABATEMENT.isdisjoint(c) and any(c.get(k) not in (None, False) for k in ABATEMENT):
            continue
        for name in names:
            out.setdefault(name, []).append(c)
    return out


@lru_cache(maxsize=1)
def _udt_codes() -> frozenset[str]:
    return frozenset(vocabulary()["urineDrugTests"]["loinc"])


def latest_drug_test(observations: list[dict], now: datetime, lookback_days: int) -> dict | None:
    """The most recent urine drug test Observation within the look-back, None when there is none."""
    since, best, best_at = now - timedelta(days=lookback_days), None, None
    for o in observations or ():
        status = o.get("status") if isinstance(o, dict) else None
        # a status that cannot be read is not taken as a valid test: a test that does not count only adds caution
        if not isinstance(o, dict) or (status is not None and (not isinstance(status, str) or status in OBSERVATION_VOID)):
            continue
        code = o.get("code")
        codes = {c.get("code") for c in as_list(code.get("coding") if isinstance(code, dict) else None)
                 if isinstance(c, dict) and isinstance(c.get("code"), str) and c.get("system") in (LOINC, None)}
        if not codes & _udt_codes():
            continue
        when = fhirdates.effective(o)
        if when is None or when.at < since or when.earliest > now + timedelta(days=1):
            continue
        if best_at is None or when.at > best_at:
            best, best_at = o, when.at
    return best


def ref(resource: dict, rtype: str) -> str:
    rid = resource.get("id")
    return f"{rtype}/{rid}" if isinstance(rid, str) and rid else ""
