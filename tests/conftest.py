"""Fixtures shared by the whole suite.

- ``fixture_json("sandbox/patient-view-request.json")``: a JSON file under tests/fixtures.
- ``store_url``: an empty store database, once on SQLite and once on PostgreSQL (a real server started for the
  session by ``postgres``, see postgres_server.py): the store's tests run on both backends.
- ``app_factory(**config)``: ``create_app`` with a throw-away SQLite store and responses checked against the
  CDS Hooks response schema. Clinical services are off unless the test passes REGISTER_CLINICAL_SERVICES=True,
  auth is off unless it passes AUTH="required".
- ``browser``, ``page``: the suite's one headless Chromium (browser.py), for tests/dashboard and tests/pro alike
  (Playwright's sync API allows one instance per process).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
pytest_plugins = ["browser"]


@pytest.fixture
def fixture_json():
    def load(relative: str):
        return json.loads((FIXTURES / relative).read_text(encoding="utf-8"))
    return load


@pytest.fixture
def db_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'fhir-pain-test.sqlite3'}"


@pytest.fixture(scope="session")
def postgres():
    from postgres_server import PostgresServer
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fhir-pain-store.sqlite3'}"
        return
    server = request.getfixturevalue("postgres")
    url = server.create_database()
    yield url
    server.drop_database(url)


@pytest.fixture
def app_factory(db_url, monkeypatch):
    from fhir_pain.app import create_app

    for name in list(__import__("os").environ):  # the developer's shell must not change test results
        if name.startswith("FHIR_PAIN_") and name != "FHIR_PAIN_SEKMET":
            monkeypatch.delenv(name)
    made = []

    def make(**config):
        settings = {"AUTH": "off", "DATABASE_URL": db_url, "REGISTER_CLINICAL_SERVICES": False,
                    "VALIDATE_RESPONSES": True}
        settings.update(config)
        app = create_app(settings)
        app.config["TESTING"] = True
        made.append(app)
        return app

    yield make
    for app in made:
        app.extensions["fhir_pain.store"].dispose()
