"""Fixtures of the dashboard's tests: the browser (tests/browser.py) and the demo dashboard served on loopback."""
from __future__ import annotations

import pytest

from browser import LiveServer, browser, page  # noqa: F401  (fixtures)
from fhir_pain.app import create_app


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    app = create_app({"AUTH": "off", "DASHBOARD_DEMO": True,
                      "DATABASE_URL": f"sqlite:///{tmp_path_factory.mktemp('dash') / 'store.sqlite3'}"})
    with LiveServer(app) as server:
        yield server
