"""``fhir-pain serve``: arguments, gunicorn options, and a real start on a free port."""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time

import requests

from fhir_pain import cli, server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(["serve", *argv])


def test_arguments_and_gunicorn_options():
    args = parse("--host", "0.0.0.0", "--port", "9000", "--auth", "off", "--workers", "3", "--threads", "4")
    opts = server.gunicorn_options(args)
    assert opts["bind"] == "0.0.0.0:9000" and opts["worker_class"] == "fhir_pain.server.OperationOutcomeWorker"
    assert (opts["workers"], opts["threads"]) == (3, 4)
    defaults = parse()
    assert (defaults.host, defaults.port, defaults.auth) == ("127.0.0.1", 8080, None)  # auth: config decides


def test_bad_configuration_exits_2_before_starting(monkeypatch, capsys):
    monkeypatch.setenv("FHIR_PAIN_TRUSTED_ISSUERS", '[{"iss": "https://ehr.example"}]')
    monkeypatch.setenv("FHIR_PAIN_DATABASE_URL", "sqlite://")
    assert server.run(parse("--port", str(free_port()))) == 2


def test_serve_really_starts_and_serves_discovery(tmp_path):
    port = free_port()
    env = {**os.environ, "FHIR_PAIN_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.sqlite3'}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fhir_pain.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--auth", "off", "--workers", "1", "--threads", "2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # gunicorn accepts connections before its worker has booted: on a busy machine a probe can be refused or
        # wait; poll with short probes against a generous overall deadline (ready in about a second when idle)
        deadline = time.monotonic() + 180
        response = None
        while time.monotonic() < deadline:
            try:
                response = requests.get(f"http://127.0.0.1:{port}/cds-services", timeout=(2, 10))
                break
            except requests.RequestException:
                assert proc.poll() is None, proc.stdout.read()
                time.sleep(0.2)
        assert response is not None and response.status_code == 200
        assert isinstance(response.json()["services"], list)
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=(5, 60)).json() == {"status": "pass"}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            output, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
    assert proc.returncode == 0
    assert "--auth off" in output and "Local development only" in output  # the warning is clear
    assert '"event":"cds_call"' in output  # the structured access line
