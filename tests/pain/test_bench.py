"""The engine benchmark's workload is what it claims (200 pain Observations, all usable) and exercises every
part of the profile it is meant to time."""
from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "pain_engine.py"


def test_benchmark_workload_and_main():
    spec = importlib.util.spec_from_file_location("pain_engine_bench", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    obs = bench.observations()
    assert len(obs) == 200
    profile = bench.build_profile(obs, bench.conditions(), bench.medications(), bench.NOW)
    assert len(profile.scores) == 200 and not profile.rejected
    assert {s.method for s in profile.scores} == {"total", "items"}
    assert {"chronic-pain", "neuropathic-likely", "nociplastic-features", "depression"} <= set(profile.phenotypes)
    assert {r.status for r in profile.responses} >= {"too-early", "no-data"}
    result = bench.main(["5"])
    assert result["median_ms"] > 0 and result["scores"] == 200
