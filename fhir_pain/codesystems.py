"""Code system URIs and status sets that several readers match on (the engines and the rules share them, so
they live below both: the flow stays one-way, readers -> engines -> rules)."""
from __future__ import annotations

LOINC_SYSTEM = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
CPT = "http://www.ama-assn.org/go/cpt"
ICD10PCS = "http://www.cms.gov/Medicare/Coding/ICD10"
# ICD-10-CM and WHO ICD-10, by URI and by OID: real feeds use all four.
ICD10 = ("http://hl7.org/fhir/sid/icd-10-cm", "http://hl7.org/fhir/sid/icd-10", "urn:oid:2.16.840.1.113883.6.90",
         "urn:oid:2.16.840.1.113883.6.3")
# An Observation in one of these states says nothing about the patient.
OBSERVATION_VOID = frozenset({"entered-in-error", "cancelled", "registered"})
