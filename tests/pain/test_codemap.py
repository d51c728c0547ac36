"""Site code maps: configuration files that map local Observation codes to our instruments."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from fhir_pain.pain import build_profile, load_code_map, validate_code_map
from tests.pain.fhir import NOW, ago, obs

EXAMPLE = Path(__file__).resolve().parents[2] / "profiles" / "pain" / "code-map.example.json"
EPIC = "urn:oid:1.2.840.114350.1.13.0.1.7.2.707679"


def test_the_shipped_example_loads_and_drives_the_engine():
    code_map = load_code_map(EXAMPLE)
    assert code_map[f"{EPIC}|3040104328"] == "nrs"
    p = build_profile([obs("3040104400", EPIC, when=ago(3), valueInteger=36)], [], [], NOW, code_map=code_map)
    assert p.modulators["catastrophizing"].level == "present" and "high-catastrophizing" in p.phenotypes


def test_system_spellings_are_normalised_like_codings():
    code_map = validate_code_map({"urn:oid:2.16.840.1.113883.6.1|X-1": "nrs"})
    assert code_map == {"http://loinc.org|X-1": "nrs"}
    p = build_profile([obs("X-1", "urn:oid:2.16.840.1.113883.6.1", when=ago(2), valueInteger=4)], [], [], NOW,
                      code_map=code_map)
    assert p.intensity.score == 4


def test_a_plain_mapping_file(tmp_path):
    f = tmp_path / "site.json"
    f.write_text(json.dumps({"http://site.example/codes|PAIN10": "nrs"}))
    assert load_code_map(f) == {"http://site.example/codes|PAIN10": "nrs"}


@pytest.mark.parametrize("bad", [
    {"http://site|X": "nope"}, {"no-bar": "nrs"}, {"http://site|X": "phq9#http://loinc.org|1234-5"},
    {"http://site|X": 7}, ["nrs"],
])
def test_bad_maps_fail_at_load_time(bad, tmp_path):
    with pytest.raises(ValueError):
        validate_code_map(bad)
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(bad))
    with pytest.raises(ValueError):
        load_code_map(f)
