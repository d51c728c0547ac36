"""What the population tests share: the synthetic population of scripts/build_population.py loaded into a real
sekmet-fhir (tests/integration/sekmet_server.py), and sweeps/clients pointed at it. A module of its own, not
conftest: two conftest modules (tests/integration, tests/population) cannot both be imported by that name."""
from __future__ import annotations

import importlib.util
import sys
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))

from cds_hooks.fhir_client import FHIRClient  # noqa: E402
from fhir_pain.population.bulk import BulkClient  # noqa: E402
from fhir_pain.population.sweep import Sweep  # noqa: E402
from fhir_pain.store import Store  # noqa: E402
from sekmet_server import Sekmet  # noqa: E402

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)   # one clock for the sweep and the poller they match


def _load_generator():
    spec = importlib.util.spec_from_file_location("build_population", REPO / "scripts" / "build_population.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


population = _load_generator()


def load_population(server: Sekmet, n: int, *, seed: int = 17, start: int = 0, per_bundle: int = 100) -> list[str]:
    """Load patients ``start``..``start+n-1`` of the seed's population (and its Medications); their ids."""
    server.transaction(population.transaction([population.medications()])["entry"])
    ids: list[str] = []
    batch: list[list[dict]] = []
    for resources in population.patients(n, seed, start):
        ids.append(resources[0]["id"])
        batch.append(resources)
        if len(batch) == per_bundle:
            server.transaction(population.transaction(batch)["entry"])
            batch = []
    if batch:
        server.transaction(population.transaction(batch)["entry"])
    return ids


def fhir_client(server: Sekmet) -> FHIRClient:
    return FHIRClient(server.base_url, auth=server.token, timeout=(2.0, 60.0), retries=2, backoff_s=0.05,
                      max_pages=50)


def make_sweep(server: Sekmet, store: Store, **kwargs) -> Sweep:
    client = fhir_client(server)
    bulk = BulkClient(server.base_url, auth=server.token, min_poll_s=0.1, max_poll_s=1.0,
                      max_wait_s=kwargs.pop("max_wait_s", 300.0))
    return Sweep(client, bulk, store, clock=lambda: NOW, **kwargs)
