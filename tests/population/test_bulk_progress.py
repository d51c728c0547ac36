"""Progress: a self-rewriting line with rate and ETA on a terminal, one JSON line per interval elsewhere; the
summary names errors by cause."""
from __future__ import annotations

import io

import orjson

from fhir_pain.poller.cycle import PatientOutcome
from fhir_pain.population.progress import Progress, SweepStats


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def stats_with(done: int, total: int) -> SweepStats:
    stats = SweepStats(patients=total)
    for _ in range(done):
        stats.add(PatientOutcome(findings=1, created=1))
    return stats


def test_terminal_line_shows_done_total_rate_and_eta():
    out, clock = io.StringIO(), Clock()
    progress = Progress(out, tty=True, clock=clock)
    clock.t += 5
    progress(stats_with(50, 100))
    assert out.getvalue() == "\rsweep: 50/100 patients  10/s  ETA 5s  written 50  errors 0\x1b[K"
    progress.finish()
    assert out.getvalue().endswith("\r\x1b[K")


def test_log_mode_writes_one_json_line_per_interval():
    out, clock = io.StringIO(), Clock()
    progress = Progress(out, tty=False, interval_s=10, clock=clock)
    clock.t += 4
    progress(stats_with(10, 100))          # within the interval: nothing
    clock.t += 6
    progress(stats_with(20, 100))
    clock.t += 1
    progress(stats_with(21, 100))          # nothing again
    lines = out.getvalue().splitlines()
    assert [orjson.loads(line) for line in lines] == [
        {"event": "sweep-progress", "done": 20, "total": 100, "rate": 2.0, "eta_s": 40, "written": 20, "errors": 0}]


def test_summary_counts_errors_by_cause():
    stats = stats_with(3, 5)
    stats.error("patient-transient-read")
    stats.error("patient-missing")
    assert stats.done == 5
    assert "errors: patient-missing 1, patient-transient-read 1; cursor held" in stats.summary()
    assert "5 patients, 3 evaluated" in stats.summary()
