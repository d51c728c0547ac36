"""Conditions -> pain-relevant groups: code systems, prefixes, exclusions, clinical and verification status."""
from __future__ import annotations

import pytest

from fhir_pain.pain.conditions import match_conditions
from fhir_pain.pain.knowledge import knowledge
from tests.pain.fhir import ICD10CM, SNOMED, cond

KN = knowledge()
ICD11 = "http://id.who.int/icd/release/11/mms"


def groups(*conditions):
    return [(h.group, h.level, h.confirmed) for h in match_conditions(list(conditions), KN)]


@pytest.mark.parametrize("code, system, group, level", [
    ("E11.42", ICD10CM, "neuropathic", "likely"), ("E1142", ICD10CM, "neuropathic", "likely"),
    ("B02.29", ICD10CM, "neuropathic", "likely"), ("M54.16", ICD10CM, "neuropathic", "likely"),
    ("M51.16", ICD10CM, "neuropathic", "likely"), ("G56.01", ICD10CM, "neuropathic", "likely"),
    ("M54.31", ICD10CM, "neuropathic", "possible"), ("230572002", SNOMED, "neuropathic", "likely"),
    ("2177002", SNOMED, "neuropathic", "likely"), ("M79.7", ICD10CM, "nociplastic", "features"),
    ("M79.7", "http://hl7.org/fhir/sid/icd-10", "nociplastic", "features"),
    ("203082005", SNOMED, "nociplastic", "features"), ("K58.0", ICD10CM, "nociplastic", "possible"),
    ("G90.512", ICD10CM, "nociplastic", "features"), ("MG30.01", ICD11, "nociplastic", "features"),
    ("M05.79", ICD10CM, "inflammatory", "hint"), ("69896004", SNOMED, "inflammatory", "hint"),
    ("G89.29", ICD10CM, "chronic-pain", "chronic"), ("82423001", SNOMED, "chronic-pain", "chronic"),
    ("M17.11", ICD10CM, "pain", "pain"), ("M54.50", ICD10CM, "pain", "pain"),
    ("F33.1", ICD10CM, "depression", "present"), ("F41.1", ICD10CM, "anxiety", "present"),
])
def test_code_lists(code, system, group, level):
    assert (group, level, True) in groups(cond("c1", code, system))


@pytest.mark.parametrize("code, system", [
    ("E11.43", ICD10CM),      # diabetic autonomic neuropathy: not a pain mechanism on the list
    ("E11.9", ICD10CM), ("F32.5", ICD10CM),      # depression in full remission is excluded
    ("F33.42", ICD10CM), ("230572002", "http://example.org/local"), ("M79", ICD10CM), ("", ICD10CM),
])
def test_codes_that_do_not_match(code, system):
    assert groups(cond("c1", code, system)) == []


def test_mechanism_and_chronicity_from_one_condition():
    got = groups(cond("c1", "G89.29", ICD10CM))
    assert got == [("chronic-pain", "chronic", True)]
    assert {g for g, _, _ in groups(cond("c2", "MG30.01", ICD11))} == {"nociplastic", "chronic-pain"}


@pytest.mark.parametrize("extra", [
    {"clinical": "resolved"}, {"clinical": "inactive"}, {"clinical": "remission"},
    {"verification": "refuted"}, {"verification": "entered-in-error"},
    {"abatementDateTime": "2023-01-01"}, {"abatementBoolean": True},
])
def test_non_current_conditions_are_ignored(extra):
    assert groups(cond("c1", "E11.42", **extra)) == []


def test_unconfirmed_and_status_less_conditions():
    assert groups(cond("c1", "E11.42", verification="provisional")) == [("neuropathic", "likely", False)]
    hit = match_conditions([cond("c1", "E11.42", clinical=None, verification=None)], KN)[0]
    assert hit.confirmed and hit.note == "clinical status not stated"
    stu3 = cond("c2", "E11.42", clinical=None) | {"clinicalStatus": "active"}
    assert groups(stu3) == [("neuropathic", "likely", True)]


def test_onset_and_reference():
    hit = match_conditions([cond("dpn", "E11.42", onset="2020-03")], KN)[0]
    assert hit.ref == "Condition/dpn" and hit.onset.precision == "month"
    hit = match_conditions([cond("dpn", "E11.42", recorded="2021-01-05")], KN)[0]
    assert hit.onset.element == "recordedDate"


def test_malformed_conditions_do_not_crash():
    assert match_conditions([None, "x", {"resourceType": "Observation"}, {"code": "E11.42"},
                             {"code": {"coding": [None, {"code": None}, {"system": ICD10CM, "code": 5}]}},
                             {"code": {"coding": True}}, {"code": {"coding": {"code": "E11.42"}}}], KN) == []
    broken_status = cond("c", "E11.42") | {"clinicalStatus": {"coding": True}, "verificationStatus": 5}
    assert [h.note for h in match_conditions([broken_status], KN)] == ["clinical status not stated"]
