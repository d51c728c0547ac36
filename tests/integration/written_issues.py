"""Reading back what the poller wrote, straight from the FHIR server (for the integration tests)."""
from __future__ import annotations

from fhir_pain.poller import detected_issue as di


def issues_for(server, patient_ref: str) -> list[dict]:
    """The DetectedIssues the poller wrote for one patient."""
    patient_id = patient_ref.split("/")[-1]
    found = server.search(f"DetectedIssue?_tag={di.PATIENT_TAG_SYSTEM}|{patient_id}&_count=100")
    return [r for r in found if di.issue_key(r)]
