"""The committed profiles/pgx/products.json is exactly what scripts/build_rxnorm_products.py makes of reference/."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "profiles" / "pgx" / "products.json"


@pytest.fixture(scope="module")
def builder():
    spec = importlib.util.spec_from_file_location("build_rxnorm_products",
                                                  REPO / "scripts" / "build_rxnorm_products.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sources(builder):
    return (*(json.loads(p.read_text(encoding="utf-8")) for p in (builder.DRUGS, builder.PRODUCTS, builder.OMTK)),
            builder.value_sets())


def test_make_profiles_from_the_repository_alone_is_byte_identical_to_what_is_committed(tmp_path):
    subprocess.run([sys.executable, str(REPO / "scripts" / "build_rxnorm_products.py"), "--out", str(tmp_path)],
                   check=True, capture_output=True, timeout=120, cwd=tmp_path)
    assert (tmp_path / "products.json").read_bytes() == COMMITTED.read_bytes(), (
        "products.json: run `make profiles` and commit the result")


def test_a_product_table_that_disagrees_with_omtk_stops_the_build(builder):
    drugs, products, omtk, value_sets = _sources(builder)
    products["products"]["993781"]["opioidIngredients"][0]["strength"] = "60 MG"
    with pytest.raises(SystemExit, match="993781: the product table disagrees with OMTK"):
        builder.build(drugs, products, omtk, value_sets)


def test_a_value_set_that_reads_a_product_otherwise_than_omtk_stops_the_build(builder):
    drugs, products, omtk, value_sets = _sources(builder)
    shared = next(c for vs in value_sets for c in vs["expansion"]["contains"] if c["code"] in products["products"])
    shared["display"] = "acetaminophen 300 MG / ibuprofen 200 MG Oral Tablet"
    with pytest.raises(SystemExit, match=f"{shared['code']}: value set .* and OMTK disagree"):
        builder.build(drugs, products, omtk, value_sets)


def test_an_ingredient_code_that_drugs_json_names_otherwise_stops_the_build(builder):
    drugs, products, omtk, value_sets = _sources(builder)
    next(i for i in drugs["ingredients"] if i["name"] == "codeine")["rxnorm"] = "5489"   # hydrocodone's RxCUI
    next(i for i in drugs["ingredients"] if i["name"] == "hydrocodone")["rxnorm"] = "1"
    with pytest.raises(SystemExit, match="RxCUI 5489 is hydrocodone in the table, codeine in drugs.json"):
        builder.build(drugs, products, omtk, value_sets)


@pytest.mark.parametrize("name, ours, others", [
    ("acetaminophen 300 MG / codeine phosphate 30 MG Oral Tablet [Tylenol with Codeine]",
     ["acetaminophen", "codeine"], []),
    ("Abuse-Deterrent 12 HR oxycodone hydrochloride 10 MG Extended Release Oral Tablet [Oxycontin]", ["oxycodone"], []),
    ("Matrix Delivery 24 HR tramadol hydrochloride 100 MG Extended Release Oral Tablet", ["tramadol"], []),
    ("{2 (fentanyl 0.6 MG/ACTUAT Mucosal Spray [Subsys]) } Pack [Subsys 1200 MCG]", ["fentanyl"], []),
    ("amitriptyline hydrochloride 12.5 MG / chlordiazepoxide 5 MG Oral Tablet", ["amitriptyline"],
     ["chlordiazepoxide"]),
    ("acetaminophen 325 MG / benzhydrocodone 4.08 MG Oral Tablet [Apadaz]", ["acetaminophen"], ["benzhydrocodone"]),
    ("0.4 ML naloxone hydrochloride 5 MG/ML Auto-Injector", ["naloxone"], []),
])
def test_the_rxnorm_name_reader(builder, name, ours, others):
    reader = builder.Ingredients(json.loads(builder.DRUGS.read_text(encoding="utf-8")))
    assert reader.in_rxnorm_name(name) == (ours, others)


@pytest.mark.parametrize("name, tty, brand", [
    ("acetaminophen 300 MG / codeine phosphate 30 MG Oral Tablet", "SCD", None),
    ("acetaminophen 300 MG / codeine phosphate 30 MG Oral Tablet [Tylenol with Codeine]", "SBD",
     "Tylenol with Codeine"),
    ("{2 (fentanyl 0.6 MG/ACTUAT Mucosal Spray) } Pack", "GPCK", None),
    ("{2 (fentanyl 0.6 MG/ACTUAT Mucosal Spray [Subsys]) } Pack [Subsys 1200 MCG]", "BPCK", None),
    ("aspirin 325 MG / oxycodone hydrochloride 4.84 MG Oral Tablet [Endodan Reformulated May 2009]", "SBD",
     "Endodan"),
])
def test_term_type_and_brand_follow_rxnorm_naming(builder, name, tty, brand):
    assert builder.tty_of(name) == tty and builder.brand_of(name) == brand


def test_coverage_counts_the_products_of_each_ingredient():
    data = json.loads(COMMITTED.read_text(encoding="utf-8"))
    for name, cov in data["coverage"].items():
        listed = [p["tty"] for p in data["products"].values() if name in p["ingredients"]]
        assert cov["total"] == len(listed) == sum(cov[t] for t in ("SCD", "SBD", "GPCK", "BPCK")), name
        assert all(cov[t] == listed.count(t) for t in ("SCD", "SBD", "GPCK", "BPCK")), name
    # the salt-named other ingredients of combinations are ours too: acetaminophen, naltrexone hydrochloride
    assert data["products"]["993781"]["ingredients"] == ["codeine", "acetaminophen"]
    assert data["coverage"]["acetaminophen"]["total"] > 100 and data["coverage"]["naltrexone"]["total"] > 0
    # codes only the CDC value sets list (newer than OMTK): celecoxib/tramadol (Seglentis), naloxone nasal spray
    assert data["products"]["2588484"] == {"tty": "SBD", "ingredients": ["celecoxib", "tramadol"]}
    assert data["products"]["1725064"] == {"tty": "SBD", "ingredients": ["naloxone"]}


def test_the_product_table_stays_compact():
    # about 50 bytes a product; the RxNorm names stay in reference/rxnorm
    assert COMMITTED.stat().st_size < 80_000
