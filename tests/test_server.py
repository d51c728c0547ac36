"""``fhir-pain serve``: arguments, gunicorn options, and a real start on a free port."""
from __future__ import annotations

import argparse
import os

import requests
from serve_process import ServeProcess, free_port

from fhir_pain import cli, server


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
    served = ServeProcess("--auth", "off", "--workers", "1", "--threads", "2",
                          env={**os.environ, "FHIR_PAIN_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.sqlite3'}"})
    try:
        response = served.wait_ready("/cds-services")
        assert response.status_code == 200
        assert isinstance(response.json()["services"], list)
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert requests.get(f"{served.url}/healthz", timeout=(5, 60)).json() == {"status": "pass"}
    finally:
        output = served.stop()
    assert served.proc.returncode == 0
    assert "--auth off" in output and "Local development only" in output  # the warning is clear
    assert '"event":"cds_call"' in output  # the structured access line


def test_gunicorn_refusals_name_the_broken_rule_never_the_request():
    # gunicorn answered these with an HTML page quoting the offending header (it may hold a token)
    from gunicorn.http import errors
    header = errors.InvalidHeader("Authorization: Bearer secret-token")
    assert server.refusal(header) == (400, "Bad Request", "invalid", "malformed HTTP request (InvalidHeader)")
    assert server.refusal(errors.LimitRequestLine(9000, 4094))[:3] == (414, "URI Too Long", "too-costly")
    assert server.refusal(errors.LimitRequestHeaders("x"))[0] == 431
    assert server.refusal(errors.UnsupportedTransferCoding("gzip"))[0] == 400
    assert server.refusal(errors.InvalidResponseHeader("X: \n"))[0] == 500   # the application's fault, not the client's
    assert server.refusal(RuntimeError("boom")) == (500, "Internal Server Error", "exception", "internal error")


def test_settle_heap_freezes_what_is_loaded_and_collects_the_young_generation_less_often():
    import gc

    from fhir_pain.server import YOUNG_GC_THRESHOLD, settle_heap

    before = gc.get_threshold()
    try:
        settle_heap()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (YOUNG_GC_THRESHOLD, *before[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
