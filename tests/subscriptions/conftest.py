"""Fixtures of the Subscriptions tests: a real FHIR server (sekmet, which sends the notifications), a PostgreSQL
database per test (the store and its work queue), workers and the service as real processes (harness.py)."""
from __future__ import annotations

import pytest

from integration.sekmet_server import Sekmet


@pytest.fixture(scope="module")
def sekmet(tmp_path_factory):
    server = Sekmet(tmp_path_factory.mktemp("sekmet-subs")).start()
    yield server
    server.stop()


@pytest.fixture
def pg_url(postgres):
    url = postgres.create_database()
    yield url
    postgres.drop_database(url)
