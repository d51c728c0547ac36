"""The site's guideline source (GUIDELINES, FHIR_PAIN_GUIDELINES) in what sweeps and workers write back: the same
rules as the services and ``fhir-pain poll`` follow. A CYP2D6 ultrarapid metabolizer on paroxetine is the
difference: DPWG's advice is its own rule (dpwg/paroxetine/CYP2D6), CPIC's another."""
from __future__ import annotations

import pytest

from fhir_pain.poller import detected_issue as di
from fhir_pain.population import patient_job
from fhir_pain.store import Store
from integration.pgx_seed import cyp2d6, medication_request, seed
from population_helpers import make_sweep
from sekmet_server import Sekmet

pytestmark = pytest.mark.integration
PAROXETINE = ("32937", "paroxetine 20 MG Oral Tablet")


def ultrarapid_on_paroxetine() -> list[dict]:
    urn = "urn:uuid:5f0c2b1e-0d7e-4c53-9a43-3d1e2a7f0b11"
    return [{"fullUrl": urn, "resource": {"resourceType": "Patient", "gender": "male", "birthDate": "1968-03-02"},
             "request": {"method": "POST", "url": "Patient"}},
            {"fullUrl": "urn:uuid:5f0c2b1e-0d7e-4c53-9a43-3d1e2a7f0b12", "resource": cyp2d6(urn, "*1/*1x≥3"),
             "request": {"method": "POST", "url": "Observation"}},
            {"fullUrl": "urn:uuid:5f0c2b1e-0d7e-4c53-9a43-3d1e2a7f0b13",
             "resource": medication_request(urn, PAROXETINE), "request": {"method": "POST", "url": "MedicationRequest"}}]


def rules(issue: dict) -> list[str]:
    return [c["code"] for c in issue["code"]["coding"] if c["system"] == di.RULE_SYSTEM]


@pytest.fixture
def server(tmp_path):
    server = Sekmet(tmp_path / "sekmet").start()
    yield server
    server.stop()


def test_a_sweep_under_guidelines_dpwg_writes_dpwg_s_advice(server, tmp_path, monkeypatch):
    monkeypatch.setenv("FHIR_PAIN_GUIDELINES", "dpwg")
    (patient, _, _), = seed(server, [ultrarapid_on_paroxetine()])
    stats = make_sweep(server, Store(f"sqlite:///{tmp_path / 'dpwg.sqlite3'}")).run()
    assert stats.evaluated == 1 and not stats.errors
    [issue] = server.search(f"DetectedIssue?_tag={di.PATIENT_TAG_SYSTEM}|{patient.split('/')[1]}")
    assert rules(issue) == ["dpwg/paroxetine/CYP2D6"]

    # the site goes back to CPIC: a full sweep replaces DPWG's finding by CPIC's (the DPWG one is closed)
    monkeypatch.setenv("FHIR_PAIN_GUIDELINES", "cpic")
    stats = make_sweep(server, Store(f"sqlite:///{tmp_path / 'cpic.sqlite3'}"), full=True).run()
    assert not stats.errors and stats.closed == 1
    issues = server.search(f"DetectedIssue?_tag={di.PATIENT_TAG_SYSTEM}|{patient.split('/')[1]}")
    open_rules = [rules(r) for r in issues if di.is_open(r)]
    assert len(open_rules) == 1 and open_rules[0] != ["dpwg/paroxetine/CYP2D6"]
    assert open_rules[0][0].endswith("paroxetine/CYP2D6")


def test_writeback_evaluate_reads_the_setting_as_the_services_do(monkeypatch):
    monkeypatch.setenv("FHIR_PAIN_GUIDELINES", "nice")
    with pytest.raises(ValueError, match="GUIDELINES must be one of cpic, dpwg, both"):
        patient_job.site_guidelines("nice")
    monkeypatch.delenv("FHIR_PAIN_GUIDELINES")
    assert patient_job.site_guidelines(None) == "cpic"
    assert patient_job.site_guidelines("both") == "both"
