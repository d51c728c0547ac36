"""profiles/rules/posttest-alerts.json is exactly what scripts/build_cpic_alerts.py makes of CPIC's workbooks, and
the build stops on a workbook it would misread."""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import openpyxl
import pytest

REPO = Path(__file__).resolve().parents[2]
WORKBOOKS = REPO / "reference" / "cpic" / "alerts"
CODEINE = "opioids_codeine_Pre_and_Post_Test_Alerts_and_Flow_Chart.xlsx"


@pytest.fixture(scope="module")
def builder():
    spec = importlib.util.spec_from_file_location("build_cpic_alerts", REPO / "scripts" / "build_cpic_alerts.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module      # its dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_make_profiles_from_the_repository_alone_is_byte_identical_to_what_is_committed(tmp_path):
    subprocess.run([sys.executable, str(REPO / "scripts" / "build_cpic_alerts.py"), "--out", str(tmp_path)],
                   check=True, capture_output=True, timeout=120, cwd=tmp_path)
    assert (tmp_path / "posttest-alerts.json").read_bytes() == \
        (REPO / "profiles" / "rules" / "posttest-alerts.json").read_bytes(), "run `make profiles` and commit the result"


def test_every_workbook_the_build_reads_is_in_the_repository_with_its_provenance(builder):
    readme = (WORKBOOKS / "README.md").read_text(encoding="utf-8")
    for book in builder.WORKBOOKS.values():
        assert (WORKBOOKS / book.local).is_file(), book.local
        assert f"| `{book.local}` | {(WORKBOOKS / book.local).stat().st_size} |" in readme, book.local


def _edited_copy(tmp_path: Path, edit) -> Path:
    """The workbook folder with the codeine workbook changed by ``edit(sheet)``."""
    folder = tmp_path / "alerts"
    shutil.copytree(WORKBOOKS, folder)
    wb = openpyxl.load_workbook(folder / CODEINE)
    edit(wb["population general"])
    wb.save(folder / CODEINE)
    return folder


def test_an_alert_row_below_the_rows_read_stops_the_build(builder, tmp_path):
    def add_row(ws):
        ws["A15"], ws["B15"], ws["C15"], ws["D15"], ws["E15"] = (
            "Codeine", "CYP2D6 poor metabolizer", 0, "Post-Test", "A new alert.")
    with pytest.raises(SystemExit, match="row 15: a CDS row this script does not read"):
        builder.build(_edited_copy(tmp_path, add_row))


def test_a_moved_column_stops_the_build(builder, tmp_path):
    def rename(ws):
        ws["C1"] = "Phenotype Score"
    with pytest.raises(SystemExit, match="header C1"):
        builder.build(_edited_copy(tmp_path, rename))


def test_a_score_whose_cpic_phenotype_is_not_the_rows_stops_the_build(builder, tmp_path):
    def renumber(ws):
        ws["C9"] = 2            # the row says intermediate metabolizer; 2.0 is a normal metabolizer's score
    with pytest.raises(SystemExit, match="row 9: activity score '2'"):
        builder.build(_edited_copy(tmp_path, renumber))


def test_a_context_that_is_neither_an_alert_nor_no_cds_stops_the_build(builder, tmp_path):
    def vague(ws):
        ws["D4"] = "Optional"
    with pytest.raises(SystemExit, match="row 4: context 'Optional'"):
        builder.build(_edited_copy(tmp_path, vague))


def test_two_rows_for_one_result_stop_the_build(builder, tmp_path):
    def duplicate(ws):
        ws["B5"], ws["C5"] = "CYP2D6 normal metabolizer", 2.25
    with pytest.raises(SystemExit, match=r"row 5: \('2.25',\) already given by row 4"):
        builder.build(_edited_copy(tmp_path, duplicate))


def test_a_trigger_without_a_phenotype_stops_the_build(builder):
    with pytest.raises(SystemExit, match="no phenotype"):
        builder.phenotypes("CYP2D6 slow metabolizer", "CYP2D6", "test")
    with pytest.raises(SystemExit, match="names"):
        builder.phenotypes("CYP2C19 Poor Metabolizer and celecoxib ordered", "CYP2C9", "test")


def test_triggers_read_as_cpic_phenotypes(builder):
    assert builder.phenotypes("CYP2D6 NM, IM  or PM and ondansetron ordered", "CYP2D6", "t") == [
        "Normal Metabolizer", "Intermediate Metabolizer", "Poor Metabolizer"]
    assert builder.phenotypes("Likely CYP2C19 Intermediate Metabolizer", "CYP2C19", "t") == [
        "Likely Intermediate Metabolizer"]
    assert builder.phenotypes("No CYP2C19 result on file", "CYP2C19", "t") == ["No Result"]
    assert builder.phenotypes("CYP2C19 Ultrarapid Metabolizer, Rapid Metabolizer, Intermediate Metabolizer, Likely "
                              "Intermediate Metabolizer, Likely Poor Metabilizer or Poor Metabolizer", "CYP2C19", "t")[
        -2:] == ["Likely Poor Metabolizer", "Poor Metabolizer"]
