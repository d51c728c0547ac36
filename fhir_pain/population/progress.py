"""Progress of a long run and its final summary.

On a terminal: one self-rewriting line (done/total, rate, ETA). Elsewhere (a service's log): one JSON
line per interval (``{"event": "sweep-progress", "done": .., "total": .., "rate": .., "eta_s": ..}``).
The summary says what was evaluated and written and the errors by cause; it names no patient.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TextIO

import orjson

from fhir_pain.poller.cycle import CycleStats

@dataclass
class SweepStats(CycleStats):
    """The poller's counters (``add``, ``written``) and the sweep's own; ``failed``/``skipped``/``changes`` of
    the poller stay 0: a sweep counts its errors by cause."""
    mode: str = "full"
    current: int = 0              # --reevaluate: already evaluated under the current knowledge, not re-checked
    files: int = 0
    resources: int = 0
    bytes: int = 0
    malformed_lines: int = 0
    orphans: int = 0              # exported resources about no patient we could name
    errors: Counter = field(default_factory=Counter)   # cause -> patients (or files, for export causes)
    transaction_time: str | None = None
    resumed: bool = False
    interrupted: bool = False
    export_seconds: float = 0.0

    @property
    def done(self) -> int:
        return self.evaluated + self.current + sum(v for k, v in self.errors.items() if k.startswith("patient-"))

    def error(self, cause: str, n: int = 1) -> None:
        with self._lock:
            self.errors[cause] += n

    @property
    def has_errors(self) -> bool:
        return bool(self.errors) or self.interrupted

    def summary(self) -> str:
        errors = ", ".join(f"{cause} {n}" for cause, n in sorted(self.errors.items())) or "none"
        return (f"bulk sweep ({self.mode}{', resumed' if self.resumed else ''}"
                f"{', interrupted' if self.interrupted else ''}): {self.patients} patients, {self.evaluated} "
                f"evaluated, {self.current} already current, {self.findings} findings, {self.written} written "
                f"({self.created} created, {self.updated} updated, {self.closed} closed, {self.unchanged} "
                f"unchanged); export: {self.files} files, {self.resources} resources, {self.bytes} bytes, "
                f"{self.malformed_lines} malformed lines, {self.orphans} without a patient, "
                f"{self.export_seconds:.1f}s; errors: {errors}; cursor "
                f"{'advanced to ' + str(self.transaction_time) if self.cursor_advanced else 'held'}; "
                f"{self.seconds:.1f}s ({self.patients_per_second:.1f} patients/s)")


class Progress:
    """Call with the stats as they change; ``finish()`` clears the terminal line."""

    def __init__(self, stream: TextIO, *, tty: bool, interval_s: float = 10.0, min_redraw_s: float = 0.2,
                 clock=time.monotonic):
        self.stream = stream
        self.tty = tty
        self.interval_s = interval_s if not tty else min_redraw_s
        self.clock = clock
        self._start = clock()
        self._last = self._start
        self._shown = False

    def __call__(self, stats: SweepStats, *, force: bool = False) -> None:
        now = self.clock()
        if not force and now - self._last < self.interval_s:
            return
        self._last = now
        elapsed = max(now - self._start, 1e-9)
        done, total = stats.done, stats.patients
        rate = done / elapsed
        eta = (total - done) / rate if rate > 0 and total >= done else None
        if self.tty:
            eta_text = f"{eta:.0f}s" if eta is not None else "?"
            self.stream.write(f"\rsweep: {done}/{total} patients  {rate:.0f}/s  ETA {eta_text}  "
                              f"written {stats.written}  errors {sum(stats.errors.values())}\x1b[K")
            self.stream.flush()
            self._shown = True
        else:
            record = {"done": done, "total": total, "rate": round(rate, 1),
                      "eta_s": None if eta is None else round(eta), "written": stats.written,
                      "errors": sum(stats.errors.values())}
            self.stream.write(orjson.dumps({"event": "sweep-progress", **record}).decode() + "\n")
            self.stream.flush()

    def finish(self) -> None:
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False
