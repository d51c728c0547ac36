"""Load the demo patients into a FHIR server (``fhir-pain demo --load URL``), dates shifted to today.

Every entry is a PUT with a fixed id, so loading twice leaves one copy of each resource.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from cds_hooks.fhir_client import FHIRClient, FHIRError

from fhir_pain.demo import catalog


@dataclass
class LoadResult:
    patient_id: str
    resources: int = 0
    error: str | None = None


def load_patients(base_url: str, *, token: str | None = None, today: date | None = None,
                  patients: list[catalog.DemoPatient] | None = None, client: FHIRClient | None = None,
                  ) -> list[LoadResult]:
    """PUT every demo patient's resources to ``base_url``; one result per patient (a failure does not stop the rest).

    The URL comes from the command line, so it is the one base this client may call.
    """
    days = catalog.shift_days(today)
    own = client is None
    client = client or FHIRClient(base_url, auth=token, allowed_bases=[base_url], timeout=(5.0, 30.0), retries=2)
    results = []
    try:
        for p in patients if patients is not None else catalog.patients():
            bundle = catalog.shift_dates(p.bundle(), days)
            result = LoadResult(patient_id=p.id)
            try:
                # entries are ordered so that every reference points to a resource already written
                for entry in bundle["entry"]:
                    client.update(entry["resource"])
                    result.resources += 1
            except FHIRError as exc:
                result.error = f"{type(exc).__name__}: {exc}"
            results.append(result)
    finally:
        if own:
            client.close()
    return results
