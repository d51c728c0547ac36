"""Fixtures of the patient-reported-outcome tests: a real FHIR server (sekmet, as tests/integration starts it), a
real ``fhir-pain serve`` writing to it, and a real headless Chromium driven by Playwright.

The browser is Debian's /usr/bin/chromium (never a Playwright download); the lead may merge this fixture with the
dashboard's.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))
from sekmet_server import Sekmet  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def pro_sekmet(tmp_path_factory):
    server = Sekmet(tmp_path_factory.mktemp("pro-sekmet")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def chromium():
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: make test installs Debian's chromium")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):
    context = chromium.new_context()
    page = context.new_page()
    yield page
    context.close()


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

