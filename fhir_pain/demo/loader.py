"""Load the demo patients into a FHIR server (``fhir-pain demo --load URL``), dates shifted to today.

Every entry is a PUT with a fixed id, so loading twice leaves one copy of each resource.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from cds_hooks.fhir_client import FHIRClient, FHIRError, FHIRTimeout, FHIRUnauthorized

from fhir_pain.demo import catalog


@dataclass
class LoadResult:
    patient_id: str
    resources: int = 0
    error: str | None = None


def _server_wide(exc: FHIRError) -> bool:
    """A failure every other patient would meet too: refused token, unreachable or silent server."""
    return isinstance(exc, (FHIRUnauthorized, FHIRTimeout)) or exc.status is None


def load_patients(base_url: str, *, token: str | None = None, today: date | None = None,
                  patients: list[catalog.DemoPatient] | None = None, client: FHIRClient | None = None,
                  ) -> list[LoadResult]:
    """PUT every demo patient's resources to ``base_url``; one result per patient.

    A failure of one patient's data (e.g. a server that rejects a resource) does not stop the others; a failure of
    the server itself (unreachable, token refused) stops the run, and the patients not tried are reported so.
    The URL comes from the command line, so it is the one base this client may call (URLNotAllowed if it is not
    an http(s) URL).
    """
    days = catalog.shift_days(today)
    own = client is None
    client = client or FHIRClient(base_url, auth=token, allowed_bases=[base_url], timeout=(5.0, 30.0), retries=2)
    results = []
    stopped: str | None = None
    try:
        for p in patients if patients is not None else catalog.patients():
            result = LoadResult(patient_id=p.id)
            results.append(result)
            if stopped:
                result.error = f"not tried ({stopped})"
                continue
            bundle = catalog.shift_dates(p.bundle(), days)
            try:
                # entries are ordered so that every reference points to a resource already written
                for entry in bundle["entry"]:
                    client.update(entry["resource"])
                    result.resources += 1
            except FHIRError as exc:
                result.error = f"{type(exc).__name__}: {exc}"
                if _server_wide(exc):
                    stopped = "stopped after a server failure"
    finally:
        if own:
            client.close()
    return results
