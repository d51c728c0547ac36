"""A real FHIR server for the poller's integration tests: sekmet-fhir 0.1.1, started here (see sekmet_server.py).

One server for the session; every test polls with a cursor that starts when the test starts, so it sees only
the data it seeds itself.
"""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from cds_hooks.fhir_client import FHIRClient
from fhir_pain.facts import Drug, Finding, GenePhenotype, MedicationUse
from fhir_pain.poller import detected_issue as di
from fhir_pain.poller.cycle import Poller
from fhir_pain.store import Store
from sekmet_server import Sekmet


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


CODEINE = Drug("2670", "codeine")
CODEINE_GUIDELINE = "https://cpicpgx.org/guidelines/guideline-for-codeine-and-cyp2d6/"


def _stand_in_evaluate(data, hook):
    """TEMPORARY test double for fhir_pain.evaluate.evaluate (not landed yet): CYP2D6 *4/*4 or *1/*1x2 with
    active codeine -> avoid; *1/*1 -> standard dose (not actionable)."""
    diplotype, obs_ref = None, None
    for obs in data.observations:
        coding = (obs.get("valueCodeableConcept") or {}).get("coding") or [{}]
        code = coding[0].get("code", "")
        if code.startswith("CYP2D6 ") and obs.get("status") in ("final", "amended"):
            diplotype, obs_ref = code.split(" ", 1)[1], f"Observation/{obs['id']}"
    phenotype = {"*4/*4": "Poor Metabolizer", "*1/*1x2": "Ultrarapid Metabolizer"}.get(diplotype,
                                                                                        "Normal Metabolizer")
    findings = []
    for mr in data.medication_requests:
        codes = {c.get("code") for c in mr.get("medicationCodeableConcept", {}).get("coding", [])}
        if diplotype is None or "2670" not in codes or mr.get("status") != "active":
            continue
        ref = f"MedicationRequest/{mr['id']}"
        gene = GenePhenotype("CYP2D6", phenotype, diplotype=diplotype, evidence=(obs_ref,))
        actionable = phenotype != "Normal Metabolizer"
        findings.append(Finding(
            rule="cpic/codeine/CYP2D6", kind="drug-gene", indicator="critical" if actionable else "info",
            summary=f"CYP2D6 {phenotype}: {'avoid' if actionable else 'standard dose of'} codeine",
            drug=CODEINE, genes={"CYP2D6": gene}, action="avoid" if actionable else "standard-dose",
            classification="Strong", evidence=(obs_ref, ref),
            medication=MedicationUse(ref, "active", "order", (CODEINE,), "codeine"),
            knowledge={"source": "CPIC", "version": "test", "url": CODEINE_GUIDELINE}))
    return findings


@pytest.fixture
def stand_in_evaluate():
    return _stand_in_evaluate


@pytest.fixture
def make_poller(live_sekmet, store):
    since = datetime.now(timezone.utc)

    def make(*, base_url: str | None = None, auth=live_sekmet.token, retries: int = 2, workers: int = 2,
             evaluate=None, **kwargs) -> Poller:
        client = FHIRClient(base_url or live_sekmet.base_url, auth=auth, timeout=(2.0, 10.0), retries=retries,
                            backoff_s=0.01, max_pages=50)
        kwargs.setdefault("cursor_name", "poller:test")
        return Poller(client, store, evaluate=evaluate or _stand_in_evaluate, since=since, workers=workers, page_size=50, **kwargs)

    return make


def issues_for(server, patient_ref: str) -> list[dict]:
    """The DetectedIssues the poller wrote for one patient, read straight from the server."""
    patient_id = patient_ref.split("/")[-1]
    found = server.search(f"DetectedIssue?_tag={di.PATIENT_TAG_SYSTEM}|{patient_id}&_count=100")
    return [r for r in found if di.issue_key(r)]
