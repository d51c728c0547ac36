"""A real headless Chromium (Debian's ``chromium``, installed by ``make test`` when missing) driven by Playwright,
for the browser tests of any test package: the ``browser`` and ``page`` fixtures are registered once for the
suite by tests/conftest.py (``pytest_plugins``: Playwright's sync API allows one instance per process), and
``from browser import LiveServer`` serves an app for them.

Never ``playwright install``: Playwright drives the system browser through ``executable_path``. The flags keep
the browser from calling home (no component updates, sync, QUIC or background networking), so a test only ever
talks to the servers the suite started.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

CHROMIUM = Path(os.environ.get("FHIR_PAIN_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.is_file(), f"{CHROMIUM} is missing: `make test` installs Debian's chromium"
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.set_default_timeout(30_000)    # a busy 2-core CI machine
    tab = context.new_page()
    yield tab
    context.close()


class LiveServer:
    """A WSGI app served on a free loopback port in a thread (werkzeug), for pages a browser must load."""

    def __init__(self, app, host: str = "127.0.0.1"):
        self._server = make_server(host, 0, app, threaded=True)
        self.url = f"http://{host}:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> LiveServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._thread.join(timeout=10)
