"""``fhir-pain poll --bulk`` end to end against a scripted export server: the summary line, progress, exit
status, option errors, and SIGTERM cancelling the running export."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import orjson

from fhir_pain.cli import main
from test_bulk_faults import Export, ndjson, patient


def argv(httpserver, tmp_path, *more: str) -> list[str]:
    return ["poll", "--fhir-server", httpserver.url_for("/fhir"), "--bulk", "--once",
            "--database-url", f"sqlite:///{tmp_path / 'bulk.sqlite3'}", *more]


def test_bulk_once_prints_the_summary_and_structured_progress(httpserver, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FHIR_PAIN_POLL_TOKEN", "secret-token")
    export = Export(httpserver, files={"Patient.ndjson": ndjson(patient("a"), patient("b"))})
    assert main(argv(httpserver, tmp_path, "--progress", "never")) == 0
    out, err = capsys.readouterr()
    assert out.startswith("bulk sweep (full): 2 patients, 2 evaluated")
    assert "errors: none; cursor advanced to 2026-11-20T08:00:00Z" in out
    progress = [orjson.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert progress[-1] == {"event": "sweep-progress", "done": 2, "total": 2, "rate": progress[-1]["rate"],
                            "eta_s": 0, "written": 0, "errors": 0}
    assert "secret-token" not in out + err
    assert export.kickoffs[0]["auth"] == "Bearer secret-token"


def test_bulk_errors_give_exit_1_and_name_the_cause(httpserver, tmp_path, capsys):
    Export(httpserver, files={"Patient.ndjson": ndjson(patient("a"))},
           manifest_urls=["https://elsewhere.example/x.ndjson"])
    assert main(argv(httpserver, tmp_path)) == 1
    assert "errors: file-off-origin 1; cursor held" in capsys.readouterr().out


def test_group_without_bulk_is_a_usage_error(httpserver, tmp_path, capsys):
    assert main(["poll", "--fhir-server", httpserver.url_for("/fhir"), "--once", "--group", "g1"]) == 2
    assert "--group, --full and --reevaluate need --bulk" in capsys.readouterr().err


def test_sigterm_while_exporting_deletes_the_job_and_exits_130(httpserver, tmp_path):
    export = Export(httpserver, polls=10 ** 9, retry_after="1")
    proc = subprocess.Popen([sys.executable, "-m", "fhir_pain.cli", *argv(httpserver, tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 60
        while not export.kickoffs and time.monotonic() < deadline:
            time.sleep(0.05)
        assert export.kickoffs, "the export was never started"
        proc.send_signal(signal.SIGTERM)
        out, _err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert export.deleted.is_set()
    assert "interrupted" in out and "cursor held" in out


def test_full_ignores_the_cursor(httpserver, tmp_path, capsys):
    export = Export(httpserver, files={"Patient.ndjson": ndjson(patient("a"))})
    assert main(argv(httpserver, tmp_path)) == 0
    export.polls = 0
    assert main(argv(httpserver, tmp_path, "--full")) == 0
    assert "_since" not in export.kickoffs[2]["args"]
    assert capsys.readouterr().out.splitlines()[-1].startswith("bulk sweep (full): 1 patients, 1 evaluated")
