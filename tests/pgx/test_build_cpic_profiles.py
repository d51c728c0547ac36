"""The committed CPIC-derived files are exactly what scripts/build_cpic_profiles.py makes of the CPIC exports."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import CPIC_DIR

REPO = Path(__file__).resolve().parents[2]


def _builder():
    spec = importlib.util.spec_from_file_location("build_cpic_profiles", REPO / "scripts" / "build_cpic_profiles.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def builder():
    return _builder()


@pytest.mark.parametrize("gene, file", [("CYP2D6", "cyp2d6.json"), ("CYP2C9", "cyp2c9.json")])
def test_activity_score_genes_are_up_to_date(builder, gene, file):
    committed = json.loads((REPO / "profiles" / "pgx" / file).read_text(encoding="utf-8"))
    assert builder.build_activity_gene(gene, CPIC_DIR) == committed, "run `make profiles` and commit the result"


def test_cyp2c19_cyp2b6_and_recommendations_are_up_to_date(builder):
    pgx = REPO / "profiles" / "pgx"
    assert builder.build_function_gene("CYP2C19", CPIC_DIR) == json.loads((pgx / "cyp2c19.json").read_text("utf-8"))
    assert builder.build_function_gene("CYP2B6", CPIC_DIR) == json.loads((pgx / "cyp2b6.json").read_text("utf-8"))
    assert builder.build_recommendations(CPIC_DIR) == json.loads((pgx / "recommendations.json").read_text("utf-8"))


GENERATED = ("cyp2d6.json", "cyp2c9.json", "cyp2c19.json", "cyp2b6.json", "recommendations.json")


def test_make_profiles_from_the_repository_alone_is_byte_identical_to_what_is_committed(tmp_path):
    # the script as `make profiles` runs it, from the exports in reference/cpic, into a scratch folder
    subprocess.run([sys.executable, str(REPO / "scripts" / "build_cpic_profiles.py"), "--out", str(tmp_path)],
                   check=True, capture_output=True, timeout=120, cwd=tmp_path)
    for name in GENERATED:
        assert (tmp_path / name).read_bytes() == (REPO / "profiles" / "pgx" / name).read_bytes(), (
            f"{name}: run `make profiles` and commit the result")


def test_an_unknown_cpic_population_stops_the_build(builder):
    export = json.loads((CPIC_DIR / "recommendations_cpic_oxcarbazepine.json").read_text(encoding="utf-8"))
    export["recommendations"][0]["population"] = "OXC pregnant"
    wording = json.loads((REPO / "profiles" / "pgx" / "wording.json").read_text(encoding="utf-8"))["texts"]
    with pytest.raises(SystemExit, match="unknown CPIC population"):
        builder.build_drug("oxcarbazepine", ["HLA-B"], export, wording)


def test_population_tables_keep_every_population_and_look_up_naive_by_default(builder):
    export = json.loads((CPIC_DIR / "recommendations_cpic_carbamazepine.json").read_text(encoding="utf-8"))
    wording = json.loads((REPO / "profiles" / "pgx" / "wording.json").read_text(encoding="utf-8"))["texts"]
    d = builder.build_drug("carbamazepine", ["HLA-B", "HLA-A"], export, wording)
    assert set(d["populations"]) == {"naive", "use-over-3-months", "naive-no-alternatives"}
    assert d["lookup"] == d["populations"]["naive"]
    assert sum(len(v) for v in d["populations"].values()) == len(export["recommendations"]) == 24
    assert d["keyTypes"] == {"HLA-B": "alleleStatus", "HLA-A": "alleleStatus"}


def test_a_cpic_text_without_our_wording_stops_the_build(builder):
    export = json.loads((CPIC_DIR / "recommendations_cpic_codeine.json").read_text(encoding="utf-8"))
    export["recommendations"][0]["drugrecommendation"] = "A new CPIC sentence."
    with pytest.raises(SystemExit, match="no wording"):
        builder.build_drug("codeine", ["CYP2D6"], export, {})


def test_a_diplotype_that_breaks_the_rules_stops_the_build(builder, tmp_path):
    table = json.loads((CPIC_DIR / "phenotype_CYP2C9.json").read_text(encoding="utf-8"))
    table["diplotypes"][0]["phenotype"] = "Poor Metabolizer"       # *1/*1 is Normal under the stored bands
    (tmp_path / "phenotype_CYP2C9.json").write_text(json.dumps(table), encoding="utf-8")
    with pytest.raises(SystemExit, match=r"\*1/\*1"):
        builder.build_activity_gene("CYP2C9", tmp_path)


def test_the_generated_files_stay_compact():
    # products.json (the RxNorm product table, scripts/build_rxnorm_products.py) has its own bound
    sizes = {p.name: p.stat().st_size for p in (REPO / "profiles" / "pgx").glob("*.json") if p.name != "products.json"}
    # 2026-12: the HLA anticonvulsant and 2023 SSRI tables (sertraline's CYP2C19 x CYP2B6 grid alone ~22 kB) added
    # ~70 kB to recommendations.json
    assert sum(sizes.values()) < 330_000, sizes
