"""A real FHIR server for the poller's integration tests: sekmet-fhir 0.1.1, started here (see sekmet_server.py);
and a misbehaving one for the fetch fault tests (fault_fhir_server.py).

One server for the session; every test polls with a cursor that starts when the test starts, so it sees only
the data it seeds itself. The rules are the real ones (fhir_pain.evaluate), as the services use them.
"""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from cds_hooks.fhir_client import FHIRClient
from fault_fhir_server import FaultFHIRServer
from fhir_pain.poller.cycle import Poller
from fhir_pain.store import Store
from sekmet_server import Sekmet


@pytest.fixture(scope="session")
def fault_fhir():
    """A FHIR server that drips, stalls, bombs and answers garbage, one base URL per behaviour."""
    server = FaultFHIRServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sekmet(tmp_path_factory):
    server = Sekmet(tmp_path_factory.mktemp("sekmet")).start()
    yield server
    server.stop()


@pytest.fixture
def live_sekmet(sekmet):
    """The session server, running (a test that stops it gets it restarted afterwards)."""
    if not sekmet.running:
        sekmet.start()
    yield sekmet
    if not sekmet.running:
        sekmet.start()


@pytest.fixture
def store(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'poller.sqlite3'}")
    yield store
    store.dispose()


@pytest.fixture
def make_poller(live_sekmet, store):
    since = datetime.now(timezone.utc)

    def make(*, base_url: str | None = None, auth=live_sekmet.token, retries: int = 2, workers: int = 2,
             evaluate=None, **kwargs) -> Poller:
        client = FHIRClient(base_url or live_sekmet.base_url, auth=auth, timeout=(2.0, 10.0), retries=retries,
                            backoff_s=0.01, max_pages=50)
        kwargs.setdefault("cursor_name", "poller:test")
        return Poller(client, store, evaluate=evaluate, since=since, workers=workers, page_size=50, **kwargs)

    return make
