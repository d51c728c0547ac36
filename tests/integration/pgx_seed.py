"""Synthetic patients as FHIR R4 transaction entries, in the shapes EHRs and labs send (see fhir_pain/demo):
a Genomics Reporting genotype Observation (84413-4, PharmVar-coded diplotype, gene component 48018-6 HGNC)
and RxNorm-coded MedicationRequests. Shared by the integration tests and bench/poller.py.
"""
from __future__ import annotations

import uuid

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CODEINE = ("2670", "codeine")
TRAMADOL = ("10689", "tramadol")
IBUPROFEN = ("5640", "ibuprofen")
OXYCODONE = ("7804", "oxycodone")


def _urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def genotype(subject: str, gene: str, hgnc: str, diplotype: str, when: str = "2025-09-27T07:00:00Z") -> dict:
    return {
        "resourceType": "Observation",
        "meta": {"profile": ["http://hl7.org/fhir/uv/genomics-reporting/StructureDefinition/genotype"]},
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "laboratory", "display": "Laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "84413-4", "display": "Genotype display name"}]},
        "subject": {"reference": subject},
        "effectiveDateTime": when,
        "issued": when,
        "valueCodeableConcept": {"coding": [{"system": "http://www.pharmvar.org", "code": f"{gene} {diplotype}",
                                             "display": f"{gene} {diplotype}"}]},
        "component": [{
            "code": {"coding": [{"system": "http://loinc.org", "code": "48018-6", "display": "Gene studied [ID]"}]},
            "valueCodeableConcept": {"coding": [{"system": "http://www.genenames.org", "code": hgnc,
                                                 "display": gene}]},
        }],
    }


def cyp2d6(subject: str, diplotype: str) -> dict:
    return genotype(subject, "CYP2D6", "HGNC:2625", diplotype)


def medication_request(subject: str, drug: tuple[str, str], status: str = "active",
                       authored: str = "2026-10-01T09:00:00Z") -> dict:
    rxcui, name = drug
    return {
        "resourceType": "MedicationRequest",
        "status": status,
        "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": rxcui, "display": name}], "text": name},
        "subject": {"reference": subject},
        "authoredOn": authored,
        "dosageInstruction": [{"text": f"{name} as directed for pain"}],
    }


def patient_entries(family: str, *, diplotype: str | None = None,
                    drugs: tuple[tuple[str, str], ...] = ()) -> list[dict]:
    """Transaction entries for one patient: Patient, optional CYP2D6 genotype, active MedicationRequests."""
    patient_urn = _urn()
    entries = [{"fullUrl": patient_urn,
                "resource": {"resourceType": "Patient", "name": [{"family": family, "given": ["Test"]}],
                             "gender": "female", "birthDate": "1970-01-01"},
                "request": {"method": "POST", "url": "Patient"}}]
    if diplotype:
        entries.append({"fullUrl": _urn(), "resource": cyp2d6(patient_urn, diplotype),
                        "request": {"method": "POST", "url": "Observation"}})
    for drug in drugs:
        entries.append({"fullUrl": _urn(), "resource": medication_request(patient_urn, drug),
                        "request": {"method": "POST", "url": "MedicationRequest"}})
    return entries


def seed(server, patients: list[list[dict]], per_transaction: int = 100) -> list[list[str]]:
    """Load patients (lists of entries) in transactions of about ``per_transaction`` entries.
    Returns, per patient, the ``Type/id`` of its resources in entry order (the Patient first)."""
    out: list[list[str]] = []
    batch: list[list[dict]] = []

    def flush() -> None:
        refs = server.transaction([e for p in batch for e in p])
        i = 0
        for p in batch:
            out.append(refs[i:i + len(p)])
            i += len(p)
        batch.clear()

    for entries in patients:
        batch.append(entries)
        if sum(len(p) for p in batch) >= per_transaction:
            flush()
    if batch:
        flush()
    return out
