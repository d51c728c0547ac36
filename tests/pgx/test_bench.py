"""The engine benchmark's workload runs and gives the advice it is meant to measure."""
from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "pgx_engine.py"


def test_benchmark_round_recommends_for_every_covered_ingredient():
    spec = importlib.util.spec_from_file_location("pgx_engine_bench", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.one_round() == 14
    result = bench.main(["5"])
    assert result["recommendations"] == 14 and result["median_us"] > 0
