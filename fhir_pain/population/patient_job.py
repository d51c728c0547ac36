"""One patient, evaluated and written back exactly as the poller does it (the population's unit of work).

Minimal version (the subscriptions/queue branch): only ``resources=None`` (read the patient from the FHIR server
with the poller's per-patient reads) is implemented here; the bulk branch's version of this file, with the same
signature, also evaluates resources it already has (its spool) and replaces this one.
"""
from __future__ import annotations

from datetime import datetime

from cds_hooks.fhir_client import FHIRError
from fhir_pain.poller.cycle import (BATCH_UNSUPPORTED, HOOK, Evaluate, PatientOutcome, default_evaluate, gather,
                                    reconcile)

PAGE_SIZE = 100


def evaluate_patient(client, store, *, patient_id: str, resources: list[dict] | None, now: datetime,
                     evaluate: Evaluate | None = None) -> PatientOutcome:
    """Read the patient, evaluate with the services' rules (patient-view), reconcile the DetectedIssues.

    Idempotent: every DetectedIssue has a deterministic id (a create is a PUT), an unchanged finding is not
    written, so running it twice, or in two processes at once, writes nothing twice. ``store`` is unused here."""
    if resources is not None:
        raise NotImplementedError("evaluating given resources comes with the bulk sweep (fhir_pain.population)")
    batch = hasattr(client, "batch_get")
    try:
        data, existing = gather(client, patient_id, now, PAGE_SIZE, batch=batch)
    except FHIRError as exc:
        # a server that takes no batch Bundles at its base: one request per read (as the poller falls back)
        if not (batch and exc.status in BATCH_UNSUPPORTED and exc.url == getattr(client, "base_url", None)):
            raise
        data, existing = gather(client, patient_id, now, PAGE_SIZE, batch=False)
    findings = (evaluate or default_evaluate())(data, HOOK)
    return reconcile(client, patient_id, findings, existing, now)
