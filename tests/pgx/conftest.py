"""Shared by the PGx tests: the CPIC reference exports (present in development and CI, optional elsewhere)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

CPIC_DIR = Path(__file__).resolve().parents[3] / "shared" / "reference" / "cpic"
PGX_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pgx"


def cpic_json(name: str) -> dict:
    path = CPIC_DIR / name
    if not path.is_file():
        pytest.skip(f"CPIC reference export {path} is not available (it lives in ../shared/reference/cpic "
                    f"next to the repository; the full-table tests need it)")
    return json.loads(path.read_text(encoding="utf-8"))


def pgx_fixture(name: str):
    return json.loads((PGX_FIXTURES / name).read_text(encoding="utf-8"))
