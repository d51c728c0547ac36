"""The poller reads earlier prescriptions (completed, stopped, on-hold) from a real FHIR server (sekmet-fhir) as the
services' ``medicationHistory`` prefetch does, so a renewal is linked to the trial it continues and a treatment
that has not worked is written back; without the original prescription nothing is guessed."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from fhir_pain.fhir_models import validate
from fhir_pain.poller import detected_issue as di
from pgx_seed import medication_request
from written_issues import issues_for

pytestmark = pytest.mark.integration

GABAPENTIN = ("25480", "gabapentin")
NON_RESPONSE = "fhir-pain/analgesic-non-response"


def _when(days_ago: float) -> str:
    return (datetime.now(timezone.utc) - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _nrs(subject: str, value: int, days_ago: float) -> dict:
    return {"resourceType": "Observation", "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "survey"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "72514-3",
                                 "display": "Pain severity - 0-10 verbal numeric rating [Score] - Reported"}]},
            "subject": {"reference": subject}, "effectiveDateTime": _when(days_ago), "valueInteger": value}


def _renewed_patient(family: str, *, with_original: bool) -> list[dict]:
    """Pain 7/10 before gabapentin was first prescribed (150 days ago, since completed) and 7/10 now, on its
    renewal (40 days ago, priorPrescription -> the first). Without the original, the renewal points nowhere."""
    patient, original = f"urn:uuid:{uuid.uuid4()}", f"urn:uuid:{uuid.uuid4()}"
    renewal = medication_request(patient, GABAPENTIN, authored=_when(40))
    entries = [{"fullUrl": patient, "resource": {"resourceType": "Patient", "name": [{"family": family}]},
                "request": {"method": "POST", "url": "Patient"}},
               *({"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": _nrs(patient, 7, d),
                  "request": {"method": "POST", "url": "Observation"}} for d in (170, 5))]
    if with_original:
        entries.append({"fullUrl": original, "request": {"method": "POST", "url": "MedicationRequest"},
                        "resource": medication_request(patient, GABAPENTIN, status="completed",
                                                       authored=_when(150))})
        renewal["priorPrescription"] = {"reference": original}
    entries.append({"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": renewal,
                    "request": {"method": "POST", "url": "MedicationRequest"}})
    return entries


def test_a_renewal_is_linked_through_the_earlier_prescriptions_and_its_non_response_written(live_sekmet,
                                                                                             make_poller):
    linked = live_sekmet.transaction(_renewed_patient("Renewed", with_original=True))
    alone = live_sekmet.transaction(_renewed_patient("RenewalOnly", with_original=False))
    original, renewal = linked[3], linked[4]
    assert live_sekmet.read(original)["status"] == "completed"
    poller = make_poller()
    stats = poller.run_cycle()
    assert (stats.patients, stats.evaluated, stats.failed, stats.skipped) == (2, 2, 0, 0)

    [issue] = issues_for(live_sekmet, linked[0])
    validate(issue)
    assert {"system": di.RULE_SYSTEM, "code": NON_RESPONSE} in issue["code"]["coding"]
    assert {"reference": renewal} in issue["implicated"]
    evidence = {d["reference"] for e in issue.get("evidence", ()) for d in e["detail"]}
    assert {original, renewal} <= evidence                       # the trial started with the completed request
    assert "gabapentin" in issue["detail"].lower()
    assert issues_for(live_sekmet, alone[0]) == []               # its start is unknown: nothing is guessed
    assert poller.run_cycle().written == 0
