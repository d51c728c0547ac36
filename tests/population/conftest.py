"""Fixtures for the population tests: a real sekmet-fhir (tests/integration/sekmet_server.py) loaded with the
synthetic population of scripts/build_population.py, a Store, and sweeps/pollers pointed at them.

Each sekmet a test module starts is a server of its own: the bulk export is Patient-level, so a test's
patients must be the only ones on its server.
"""
from __future__ import annotations

import pytest

from fhir_pain.store import Store
from population_helpers import NOW, fhir_client, load_population, make_sweep, population  # noqa: F401 - re-exported


@pytest.fixture
def store(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'population.sqlite3'}")
    yield store
    store.dispose()


def pytest_collection_modifyitems(config, items):
    """Population-size tests run only when asked for (``-m slow``: make test-population); otherwise they are
    deselected, not skipped."""
    if "slow" in (config.getoption("-m") or ""):
        return
    slow = [item for item in items if "slow" in item.keywords]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if "slow" not in item.keywords]
