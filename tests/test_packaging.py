"""`pip install .` (not editable) must give a working service: every data file ships inside the wheel."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _data_files_in_repo() -> set[str]:
    """The JSON the installed package reads, as paths inside the wheel."""
    wanted = {f"fhir_pain/profiles/{p.relative_to(ROOT / 'profiles')}" for p in (ROOT / "profiles").rglob("*.json")}
    for folder in ("cds_hooks", "fhir_pain"):
        wanted |= {str(p.relative_to(ROOT)) for p in (ROOT / folder).rglob("*.json")}
    dashboard = ROOT / "fhir_pain" / "dashboard"   # its templates and stylesheet
    wanted |= {str(p.relative_to(ROOT)) for p in [*(dashboard / "templates").rglob("*.html"),
                                                   *(dashboard / "static").iterdir()]}
    return wanted


def test_wheel_ships_every_knowledge_schema_and_demo_file(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), str(ROOT)],
                   check=True, cwd=tmp_path, timeout=300)
    [wheel] = tmp_path.glob("fhir_pain-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = _data_files_in_repo()
    assert {n for n in wanted if n.startswith("fhir_pain/profiles/pgx/")}, "no PGx knowledge found in the repo"
    assert not wanted - names, sorted(wanted - names)[:10]
    assert "fhir_pain/profiles/__init__.py" in names and "cds_hooks/__init__.py" in names
    assert not any(n.startswith("tests/") for n in names)
