"""Every knowledge file in profiles/ carries source/version/date and validates against its schema."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

PROFILES = Path(__file__).resolve().parent.parent / "profiles"
SCHEMAS = PROFILES / "schema"
FILES = sorted(p for p in PROFILES.rglob("*.json") if SCHEMAS not in p.parents)


def _validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def test_every_schema_is_valid_json_schema():
    for path in SCHEMAS.glob("*.schema.json"):
        Draft202012Validator.check_schema(json.loads(path.read_text()))


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(PROFILES)) for p in FILES])
def test_profile_validates_against_its_schema(path):
    data = json.loads(path.read_text())
    errors = list(_validator("meta").iter_errors(data))
    assert not errors, [e.message for e in errors]
    errors = sorted(_validator(data["schema"]).iter_errors(data), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]
