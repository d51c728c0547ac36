"""Fixtures of the dashboard's tests: the demo dashboard served on loopback (the browser: tests/browser.py, registered
by tests/conftest.py)."""
from __future__ import annotations

import pytest

from browser import LiveServer
from fhir_pain.app import create_app


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    app = create_app({"AUTH": "off", "DASHBOARD_DEMO": True,
                      "DATABASE_URL": f"sqlite:///{tmp_path_factory.mktemp('dash') / 'store.sqlite3'}"})
    with LiveServer(app) as server:
        yield server
