"""The committed profiles/dpwg/recommendations.json is exactly what scripts/build_dpwg_profiles.py makes of
reference/dpwg, and the build refuses sources the engine would misread."""
from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "reference" / "dpwg"


def _builder():
    spec = importlib.util.spec_from_file_location("build_dpwg_profiles", REPO / "scripts" / "build_dpwg_profiles.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def builder():
    return _builder()


def test_make_profiles_from_the_repository_alone_is_byte_identical_to_what_is_committed(tmp_path):
    subprocess.run([sys.executable, str(REPO / "scripts" / "build_dpwg_profiles.py"), "--out", str(tmp_path)],
                   check=True, capture_output=True, timeout=120, cwd=tmp_path)
    assert (tmp_path / "recommendations.json").read_bytes() == \
        (REPO / "profiles" / "dpwg" / "recommendations.json").read_bytes(), "run `make profiles` and commit the result"


def test_every_row_of_every_file_is_in_the_profile(builder):
    built = builder.build()
    rows = sum(len(g["rows"]) for d in built["drugs"].values() for g in d["guidelines"])
    in_files = sum(len(json.loads(p.read_text("utf-8"))["annotationGroups"]) for p in SRC.glob("*_and_*.json"))
    assert rows == in_files == 64
    assert built["meta"]["version"].startswith("pharmgkb-2023-06-05-00-25")


def _copy(tmp_path: Path) -> Path:
    src = tmp_path / "dpwg"
    shutil.copytree(SRC, src)
    return src


def test_a_changed_dpwg_text_stops_the_build_until_the_wording_is_reread(builder, tmp_path):
    src = _copy(tmp_path)
    path = src / "codeine_and_CYP2D6.json"
    doc = json.loads(path.read_text("utf-8"))
    pm = next(g for g in doc["annotationGroups"] if g["name"] == "Poor Metabolizer")
    pm["recommendation"]["html"] = "<p>Use codeine as usual.</p>"
    path.write_text(json.dumps(doc), "utf-8")
    with pytest.raises(builder.BuildError, match="codeine/CYP2D6 PM changed"):
        builder.build(src)


def test_an_allele_with_two_functions_in_one_gene_stops_the_build(builder, tmp_path):
    src = _copy(tmp_path)
    path = src / "tramadol_and_CYP2D6.json"
    doc = json.loads(path.read_text("utf-8"))
    allele = next(a for a in doc["guideline"]["guidelineGenes"][0]["alleles"] if a["_label"] == "*10")
    allele["function"]["term"] = "Normal function"
    path.write_text(json.dumps(doc), "utf-8")
    with pytest.raises(builder.BuildError, match=r"CYP2D6 \*10"):
        builder.build(src)


def test_a_function_pair_in_two_rows_stops_the_build(builder, tmp_path):
    src = _copy(tmp_path)
    path = src / "sertraline_and_CYP2C19.json"
    doc = json.loads(path.read_text("utf-8"))
    pm = next(g for g in doc["annotationGroups"] if g["name"] == "PM")
    pm["genePhenotypes"].append("CYP2C19:Normal function/Normal function")
    path.write_text(json.dumps(doc), "utf-8")
    with pytest.raises(builder.BuildError, match="Normal function/Normal function"):
        builder.build(src)
