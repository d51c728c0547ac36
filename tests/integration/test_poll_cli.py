"""``fhir-pain poll`` end to end against the real FHIR server."""
from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from datetime import datetime, timezone

import pytest

from fhir_pain.cli import main
from written_issues import issues_for
from pgx_seed import CODEINE, patient_entries, seed

pytestmark = pytest.mark.integration
LINE_DEADLINE_S = 120.0   # a cold interpreter and a first cycle on a busy machine; seconds when idle


def _line_reader(stream) -> queue.Queue:
    """The stream's lines, read by a thread: the test waits for each with a deadline instead of blocking for ever
    on a process that hangs."""
    lines: queue.Queue = queue.Queue()

    def pump():
        for line in stream:
            lines.put(line)
        lines.put("")   # end of stream
    threading.Thread(target=pump, daemon=True).start()
    return lines


def test_poll_once_writes_then_reports_nothing_new(live_sekmet, tmp_path, monkeypatch, capsys):
    since = datetime.now(timezone.utc).isoformat()
    [(patient, _, _)] = seed(live_sekmet, [patient_entries("Cli", diplotype="*4/*4", drugs=(CODEINE,))])
    monkeypatch.setenv("FHIR_PAIN_POLL_TOKEN", live_sekmet.token)
    argv = ["poll", "--fhir-server", live_sekmet.base_url, "--once", "--since", since,
            "--database-url", f"sqlite:///{tmp_path / 'cursor.sqlite3'}", "--progress", "always"]

    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert out.startswith("poll: 3 changes, 1 patients, 1 evaluated, 1 findings, 1 written (1 created")
    assert "cursor advanced" in out and "patients/s" in out
    assert "patients 1/1" in err                     # the progress line (forced on: stderr is no terminal here)
    assert live_sekmet.token not in out + err
    assert len(issues_for(live_sekmet, patient)) == 1

    assert main(argv) == 0
    out, _ = capsys.readouterr()
    assert out.startswith("poll: 0 changes, 0 patients") and "0 written" in out


def test_poll_once_exits_1_when_the_server_refuses(live_sekmet, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FHIR_PAIN_POLL_TOKEN", "wrong")
    assert main(["poll", "--fhir-server", live_sekmet.base_url, "--once", "--retries", "0",
                 "--database-url", f"sqlite:///{tmp_path / 'cursor.sqlite3'}"]) == 1
    err = capsys.readouterr().err
    assert "FHIRUnauthorized HTTP 401" in err and "cursor unchanged" in err and "wrong" not in err


def test_poll_with_an_interval_keeps_polling_and_stops_cleanly_on_sigterm(live_sekmet, tmp_path):
    since = datetime.now(timezone.utc).isoformat()
    [(patient, _, _)] = seed(live_sekmet, [patient_entries("Loop", diplotype="*4/*4", drugs=(CODEINE,))])
    env = dict(os.environ, FHIR_PAIN_POLL_TOKEN=live_sekmet.token)
    proc = subprocess.Popen(
        [sys.executable, "-m", "fhir_pain.cli", "poll", "--fhir-server", live_sekmet.base_url, "--interval", "0.2",
         "--since", since, "--database-url", f"sqlite:///{tmp_path / 'cursor.sqlite3'}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = _line_reader(proc.stdout)
        first = lines.get(timeout=LINE_DEADLINE_S)
        second = lines.get(timeout=LINE_DEADLINE_S)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "1 created" in first and "cursor advanced" in first
    assert second.startswith("poll: 0 changes") and "0 written" in second
    assert proc.stderr.read() == ""           # no progress line off a terminal, no errors
    assert len(issues_for(live_sekmet, patient)) == 1
