"""Shared by the PGx tests: the CPIC exports the knowledge is generated from (reference/cpic, in the repository)."""
from __future__ import annotations

import json
from pathlib import Path


CPIC_DIR = Path(__file__).resolve().parents[2] / "reference" / "cpic"
PGX_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pgx"


def cpic_json(name: str) -> dict:
    return json.loads((CPIC_DIR / name).read_text(encoding="utf-8"))


def pgx_fixture(name: str):
    return json.loads((PGX_FIXTURES / name).read_text(encoding="utf-8"))


def order(coding: dict | None = None, text: str | None = None) -> dict:
    """A MedicationRequest whose medicationCodeableConcept holds ``coding`` and/or ``text`` only."""
    concept: dict = {}
    if coding:
        concept["coding"] = [coding]
    if text:
        concept["text"] = text
    return {"resourceType": "MedicationRequest", "id": "mr1", "status": "active", "intent": "order",
            "subject": {"reference": "Patient/p1"}, "medicationCodeableConcept": concept}
