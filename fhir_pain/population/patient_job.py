"""One patient, evaluated and written back exactly as the poller does it (fhir_pain.poller.cycle).

``resources=None``: the patient is read from the FHIR server with the poller's per-patient reads (``gather``:
one batch round trip, one request per read where the server takes no batch). A list: the patient's resources
are already here (a bulk export's spool, fhir_pain.population.spool) and are joined as ``gather`` joins them:
the same filters (MedicationRequests active or earlier, never drafts or cancelled ones; only this patient's own
DetectedIssues), so that both paths hand the rules the same PatientData and write the same DetectedIssues.

The writes are the poller's (``reconcile``: deterministic ids, PUT, only differences). With ``writes`` given
they are appended there instead of sent, for the caller to send in transaction Bundles (sweep.py).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache

from cds_hooks.fhir_client import FHIRError
from fhir_pain.facts import Finding, PatientData
from fhir_pain.gather import HISTORY_STATUSES, ref_of
from fhir_pain.poller import detected_issue as di
from fhir_pain.poller.cycle import (BATCH_UNSUPPORTED, HOOK, PatientOutcome, _base_of, by_id, gather, patient_of,
                                    reconcile)

PAGE_SIZE = 100
MEDICATION_STATUSES = frozenset({"active", *HISTORY_STATUSES})   # what the poller's two searches return


class PatientMissing(ValueError):
    """The resources name no Patient resource with this id (deleted, or outside the export)."""


class _Collect:
    """A stand-in for the client's ``update`` that keeps the PUTs for a transaction Bundle."""

    def __init__(self, sink: list[dict]):
        self.sink = sink

    def update(self, resource: dict) -> dict:
        self.sink.append(resource)
        return resource


def patient_data(patient_id: str, resources: list[dict], now: datetime) -> tuple[PatientData, list[dict]]:
    """``gather``'s result built from resources already at hand (the patient, its compartment, Medications)."""
    patient = None
    observations: list[dict] = []
    conditions: list[dict] = []
    procedures: list[dict] = []
    requests: dict[str, dict] = {}
    unnamed: list[dict] = []
    medications: dict[str, dict] = {}
    issues: list[dict] = []
    for r in resources:
        rtype = r.get("resourceType")
        if rtype == "Patient":
            if r.get("id") == patient_id:
                patient = r
        elif rtype == "Medication":
            if isinstance(r.get("id"), str):
                medications[f"Medication/{r['id']}"] = r
        elif rtype == "DetectedIssue":
            if di.issue_key(r) and (r.get("patient") or {}).get("reference") == f"Patient/{patient_id}":
                issues.append(r)
        elif patient_of(r) != patient_id:
            continue   # a resource that only mentions the patient (a performer, an author) is not about them
        elif rtype == "Observation":
            observations.append(r)
        elif rtype == "Condition":
            conditions.append(r)
        elif rtype == "Procedure":
            procedures.append(r)
        elif rtype == "MedicationRequest" and isinstance(r.get("status"), str) and r["status"] in MEDICATION_STATUSES:
            ref = ref_of(r)
            if ref is None:
                unnamed.append(r)
            else:
                requests.setdefault(ref, r)
    if patient is None:
        raise PatientMissing(f"no Patient resource for {patient_id}")
    data = PatientData(patient_id=patient_id, now=now, patient=patient, observations=by_id(observations),
                       conditions=by_id(conditions), procedures=by_id(procedures),
                       medication_requests=[*by_id(requests.values()), *unnamed], medications=medications)
    return data, issues


def writeback_evaluate(data: PatientData, hook: str) -> list[Finding]:
    """The services' rules without the informational summaries, which are never written back: the same
    DetectedIssues as the poller's full evaluation (tests/population check it), at half the cost. The site's
    guideline source (GUIDELINES), as the services and ``fhir-pain poll`` follow it."""
    from fhir_pain.evaluate import evaluate
    return evaluate(data, hook, site_guidelines(os.environ.get(GUIDELINES_ENV)), summaries=False)


GUIDELINES_ENV = "FHIR_PAIN_GUIDELINES"


@lru_cache(maxsize=8)
def site_guidelines(setting: str | None) -> str:
    """The checked GUIDELINES setting (fhir_pain.config), read once per value of its environment variable rather
    than once per patient."""
    from fhir_pain import config
    return config.load(environ={GUIDELINES_ENV: setting} if setting is not None else {})["GUIDELINES"]


def evaluate_patient(client, store, *, patient_id: str, resources: list[dict] | None, now: datetime,
                     evaluate: Callable[[PatientData, str], list[Finding]] | None = None,
                     writes: list[dict] | None = None) -> PatientOutcome:
    """Evaluate one patient and make their DetectedIssues say what the findings say (see the module).

    ``store`` is where population state lives (the queue and the spool keep theirs there); one patient's
    evaluation needs nothing from it. Raises what the reads or writes raise (FHIRError: the caller decides
    whether to retry) and PatientMissing."""
    del store  # part of the shared interface (population/queue.py); nothing per patient is kept there
    evaluate = evaluate or writeback_evaluate
    if resources is None:
        try:
            data, existing = gather(client, patient_id, now, PAGE_SIZE, batch=hasattr(client, "batch_get"))
        except FHIRError as exc:
            if not (exc.status in BATCH_UNSUPPORTED and exc.url == _base_of(client)):
                raise
            data, existing = gather(client, patient_id, now, PAGE_SIZE, batch=False)
    else:
        data, existing = patient_data(patient_id, resources, now)
    findings = evaluate(data, HOOK)
    target = client if writes is None else _Collect(writes)
    return reconcile(target, patient_id, findings, existing, now)
