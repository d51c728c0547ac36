"""Fixtures of the patient-reported-outcome tests: a real FHIR server (sekmet, as tests/integration starts it), a
real ``fhir-pain serve`` writing to it, and the suite's one headless Chromium
(``browser``/``page`` of tests/browser.py, registered by tests/conftest.py).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))
from sekmet_server import Sekmet  # noqa: E402


@pytest.fixture(scope="session")
def pro_sekmet(tmp_path_factory):
    server = Sekmet(tmp_path_factory.mktemp("pro-sekmet")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pro_server(pro_sekmet, tmp_path_factory):
    """``fhir-pain serve --auth off`` (gunicorn) writing answers to the test FHIR server."""
    from serve_process import ServeProcess, serve_env
    env = serve_env(tmp_path_factory.mktemp("pro-serve") / "store.sqlite3")
    env.update({"FHIR_PAIN_FHIR_SERVER_ALLOWLIST": pro_sekmet.base_url,
                "FHIR_PAIN_PRO_FHIR_SERVER": pro_sekmet.base_url,
                "FHIR_PAIN_PRO_FHIR_TOKEN": pro_sekmet.token,
                "FHIR_PAIN_FHIR_TIMEOUT_S": "[2.0, 30.0]"})
    server = ServeProcess("--auth", "off", "--workers", "1", "--threads", "4", env=env)
    server.wait_ready()
    yield server
    server.stop()
