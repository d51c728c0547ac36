"""One patient's data for the dashboard, through the same path as a patient-view hook call.

The patient-view service's own prefetch templates are resolved (cds_hooks.prefetch.resolve: the fetch policy,
the allowlist, the deadline and the byte cap of the hook path) and the result is sorted by fhir_pain.gather into
PatientData: there is no second reader. From a FHIR server (SMART launch) the templates are fetched with the
user's access token; for the demo patients they are answered from the shipped Bundles, as ``fhir-pain demo`` does.
"""
from __future__ import annotations

from datetime import datetime

from flask import Flask

from cds_hooks import HookRequest
from cds_hooks.fhir_client import FHIRClient, FHIRError
from cds_hooks.prefetch import resolve
from cds_hooks.registry import Service
from fhir_pain.demo import catalog
from fhir_pain.demo.hook_requests import hook_request
from fhir_pain.facts import PatientData
from fhir_pain.gather import PATIENT, gather
from fhir_pain.services import SERVICE_IDS

HOOK = "patient-view"


def _service(app: Flask) -> Service:
    return app.extensions["cds_hooks"].registry.get(SERVICE_IDS[HOOK])


def _gathered(app: Flask, body: dict, now: datetime) -> PatientData:
    service = _service(app)
    prefetch, missing = resolve(service, body, app.extensions["cds_hooks"].fetch_policy)
    request = HookRequest(hook=HOOK, hook_instance="dashboard", service_id=service.id, context=body["context"],
                          prefetch=prefetch, missing=missing, fhir_server=body.get("fhirServer"))
    return gather(request, now=now)


def from_fhir_server(app: Flask, base: str, token: str, patient_id: str, now: datetime) -> PatientData:
    """Raises FHIRError (typed: unauthorized, not found, timeout, server error, not allowed) when the Patient
    itself cannot be read; other data that cannot be had is listed in ``missing``, as on a hook call."""
    policy = app.extensions["cds_hooks"].fetch_policy
    with FHIRClient(base, auth=token, allowed_bases=list(policy.allowed_bases), timeout=policy.timeout,
                    deadline_s=policy.deadline_s, max_response_bytes=policy.max_response_bytes) as client:
        patient = client.read(f"Patient/{patient_id}")
    if patient.get("resourceType") != "Patient":
        raise FHIRError("the FHIR server did not return a Patient")
    body = {"hook": HOOK, "context": {"patientId": patient_id}, "prefetch": {PATIENT: patient},
            "fhirServer": base, "fhirAuthorization": {"token_type": "Bearer", "access_token": token}}
    return _gathered(app, body, now)


def demo_patient_ids() -> list[str]:
    return [p.id for p in catalog.patients()]


def from_demo(app: Flask, patient_id: str) -> PatientData:
    """A demo patient (KeyError if unknown), dates moved to today as ``fhir-pain demo`` moves them."""
    bundle = catalog.shift_dates(catalog.patient(patient_id).bundle(), catalog.shift_days())
    built = hook_request(bundle, HOOK, [_service(app).discovery_entry()])
    return _gathered(app, built.body, catalog.now_on())
