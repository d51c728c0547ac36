"""Load the demo patients into a FHIR server (``fhir-pain demo --load URL``), dates shifted to today.

Each patient goes in as one transaction (its Bundle as shipped: every entry a PUT with a fixed id), so a patient is
loaded whole or not at all and loading twice leaves one copy of each resource. A server that does not take
transactions gets the same PUTs one by one, in Bundle order (every reference points to a resource already written).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from cds_hooks.fhir_client import FHIRClient, FHIRError, FHIRTimeout, FHIRUnauthorized

from fhir_pain.demo import catalog

TRANSACTION, PUTS = "transaction", "put"
# The first transaction refused with one of these: the server takes none. Any other 4xx says so only when the
# server did not declare transactions (otherwise it is about that patient's data, and nothing of it was applied).
_UNSUPPORTED = frozenset({405, 501})


@dataclass
class LoadResult:
    patient_id: str
    resources: int = 0
    error: str | None = None
    via: str | None = None  # TRANSACTION or PUTS: how this patient was sent


def _server_wide(exc: FHIRError) -> bool:
    """A failure every other patient would meet too: refused token, unreachable or silent server."""
    return isinstance(exc, (FHIRUnauthorized, FHIRTimeout)) or exc.status is None


def declares_transactions(client: FHIRClient) -> bool | None:
    """What the server's CapabilityStatement says about the ``transaction`` interaction: True, False, or None
    when it cannot be read or says nothing usable."""
    try:
        statement = client.read("metadata")
    except FHIRError:
        return None
    if statement.get("resourceType") != "CapabilityStatement":
        return None
    servers = [r for r in statement.get("rest") or () if isinstance(r, dict) and r.get("mode") == "server"]
    if not servers:
        return None
    return any(isinstance(i, dict) and i.get("code") == "transaction"
               for rest in servers for i in rest.get("interaction") or ())


def _refuses_transactions(exc: FHIRError, declared: bool | None) -> bool:
    if isinstance(exc, FHIRUnauthorized) or exc.status is None:
        return False
    return exc.status in _UNSUPPORTED or (declared is None and 400 <= exc.status < 500)


def load_patients(base_url: str, *, token: str | None = None, today: date | None = None,
                  patients: list[catalog.DemoPatient] | None = None, client: FHIRClient | None = None,
                  ) -> list[LoadResult]:
    """Write every demo patient to ``base_url``; one result per patient.

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
        declared = declares_transactions(client)
        via, proven = (PUTS if declared is False else TRANSACTION), False
        for p in patients if patients is not None else catalog.patients():
            result = LoadResult(patient_id=p.id)
            results.append(result)
            if stopped:
                result.error = f"not tried ({stopped})"
                continue
            bundle = catalog.shift_dates(p.bundle(), days)
            try:
                if via == TRANSACTION:
                    result.via = TRANSACTION
                    try:
                        result.resources = len(client.transaction(bundle)["entry"])
                        proven = True
                        continue
                    except FHIRError as exc:
                        if proven or not _refuses_transactions(exc, declared):
                            raise
                        via = PUTS   # nothing was applied: the same PUTs one by one, for this and every later patient
                result.via = PUTS
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
