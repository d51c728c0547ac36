"""HookRequest -> facts.PatientData: the prefetch (already resolved by cds_hooks) sorted into plain FHIR dicts.

Lenient in: a prefetch value may be a single resource, a searchset Bundle (possibly with ``_include``d
Medications), an OperationOutcome or ``null``; the draftOrders Bundle may lack ``type`` (the CDS Hooks Sandbox)
or arrive as a bare list. Nothing here raises on bad input; what cannot be read is skipped.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterable

from fhir_pain.facts import PatientData

# Prefetch keys of the three services (services.py holds their templates). What each one means for the rules
# when it is listed in HookRequest.missing is in MISSING_MEANING.
PATIENT = "patient"
PGX = "pgxResults"
PAIN = "painAssessments"
CONDITIONS = "conditions"
MEDICATIONS = "activeMedications"
MEDICATION_HISTORY = "medicationHistory"   # completed/stopped/on-hold requests: only the pain engine reads them
PROCEDURES = "procedures"                   # tonsillectomy/adenoidectomy (FDA limit of codeine and tramadol)
SAFETY_OBSERVATIONS = "safetyObservations"  # BMI, BMI-for-age percentile, breastfeeding status (FDA limits)
OPIOID_TESTS = "opioidTests"                # laboratory results: urine drug tests (opioid safety, CDC 2022)
# The statuses of that history: the services' prefetch template and the poller's search both use them.
HISTORY_STATUSES = ("completed", "stopped", "on-hold")

# PGx result codes the PGx prefetch searches (and the PGx readers understand): genotype (84413-4), STU1
# phenotype (53040-2), and the Genomics Reporting IG therapeutic-implication Observations (STU2/STU3). Lab-style
# results under other codes reach the service only through an EHR's own prefetch (or the poller), not through
# this template; the pre-test alert says so. Codes go without their system: a token without system matches any
# system, keeps the URL short, and a system URL ("http://loinc.org|...") inside a template is refused by
# cds_hooks.templates as absolute-looking.
PGX_SEARCHED = {
    "84413-4": "LOINC 84413-4 (genotype)",
    "53040-2": "LOINC 53040-2 (metabolizer phenotype)",
    "therapeutic-implication": "therapeutic-implication",
    "predicted-therapeutic-implication": "predicted-therapeutic-implication (HL7 Genomics Reporting)",
    "69548-6": "LOINC 69548-6 (genetic variant assessment: HLA allele presence)",
}
PGX_CODES = tuple(PGX_SEARCHED)

MISSING_MEANING = {
    PATIENT: "patient demographics",
    PGX: "pharmacogenomic results",
    PAIN: "pain assessments",
    CONDITIONS: "conditions (problem list)",
    MEDICATIONS: "active medication list",
    MEDICATION_HISTORY: "earlier prescriptions (renewals of a current analgesic may not be linked)",
    PROCEDURES: "procedures (surgery such as tonsillectomy)",
    SAFETY_OBSERVATIONS: "BMI and breastfeeding status",
    OPIOID_TESTS: "laboratory results (urine drug tests not checked)",
}


def array(value: Any) -> list:
    """A JSON array as sent, else nothing: EHR JSON can hold any type where FHIR has an array."""
    return value if isinstance(value, list) else []


def _bundle_like(value: Any) -> bool:
    """A Bundle, or an object without a type holding entries (read as one)."""
    if not isinstance(value, dict):
        return False
    rtype = value.get("resourceType")
    return rtype == "Bundle" or (rtype is None and isinstance(value.get("entry"), list))


def resources_of(value: Any) -> list[dict]:
    """The resources in one prefetch value: a Bundle's entries, a single resource, or nothing."""
    if not isinstance(value, dict):
        return []
    rtype = value.get("resourceType")
    if _bundle_like(value):
        out = []
        for entry in array(value.get("entry")):
            res = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(res, dict) and isinstance(res.get("resourceType"), str):
                out.append(res)
        return out
    if rtype == "OperationOutcome" or not isinstance(rtype, str):
        return []
    return [value]


def medications_by_full_url(value: Any) -> dict[str, dict]:
    """A Bundle's Medications under their entry fullUrl ("urn:uuid:...", absolute URLs): references may use it."""
    if not isinstance(value, dict) or not isinstance(value.get("entry"), list):
        return {}
    out = {}
    for entry in value["entry"]:
        res = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(res, dict) and res.get("resourceType") == "Medication" and isinstance(entry.get("fullUrl"), str):
            out[entry["fullUrl"]] = res
    return out


def relative_ref(ref: str) -> str | None:
    """``Medication/123`` for an absolute or versioned reference (``https://ehr/fhir/Medication/123/_history/2``)."""
    parts = ref.split("/")
    if "_history" in parts:
        parts = parts[:parts.index("_history")]
    return "/".join(parts[-2:]) if len(parts) >= 2 and parts[-2] == "Medication" and parts[-1] else None


def draft_orders_of(context: dict) -> list[dict]:
    """context.draftOrders as a list of resources (a Bundle, a Bundle without type, or a bare list)."""
    drafts = context.get("draftOrders")
    if isinstance(drafts, list):
        items = [d.get("resource", d) if isinstance(d, dict) else None for d in drafts]
        return [r for r in items if isinstance(r, dict) and isinstance(r.get("resourceType"), str)]
    return resources_of(drafts)


def ref_of(resource: dict) -> str | None:
    """``Type/id`` of a resource, or None when it has no id."""
    rid = resource.get("id")
    return f"{resource['resourceType']}/{rid}" if isinstance(rid, str) and rid else None


def gather(request: Any, now: datetime | None = None) -> PatientData:
    """Sort a cds_hooks.HookRequest's context and resolved prefetch into PatientData."""
    context = request.context if isinstance(getattr(request, "context", None), dict) else {}
    prefetch = getattr(request, "prefetch", None)
    prefetch = prefetch if isinstance(prefetch, dict) else {}
    patient_id = getattr(request, "patient_id", None) or context.get("patientId")
    data = PatientData(patient_id=patient_id if isinstance(patient_id, str) else "",
                       now=now or datetime.now(timezone.utc))

    # the drafts first: a draft being signed may already be stored on the server as active, and must not count
    # twice (the ids of the draft MedicationRequests: ref_of's "MedicationRequest/<id>" without building it)
    data.draft_orders = draft_orders_of(context)
    draft_refs = {ref_of(r) for r in data.draft_orders} - {None}
    draft_requests = {ref[18:] for ref in draft_refs if ref.startswith("MedicationRequest/")}

    seen: dict[tuple[str, str], None] = {}   # (type, id): what ref_of's "Type/id" says, without building it
    observations, requests = data.observations, data.medication_requests
    for key in sorted(prefetch):  # sorted: the same request always gives the same order
        value = prefetch[key]
        # resources_of's walk, inline: every resource of every call passes here
        bundle = _bundle_like(value)
        with_medication = False
        for item in array(value.get("entry")) if bundle else resources_of(value):
            res = (item.get("resource") if isinstance(item, dict) else None) if bundle else item
            if not isinstance(res, dict):
                continue
            rtype, rid = res.get("resourceType"), res.get("id")
            if not isinstance(rtype, str):
                continue
            if isinstance(rid, str) and rid:
                typed = (rtype, rid)
                if typed in seen:
                    with_medication = with_medication or rtype == "Medication"   # its fullUrl is still read below
                    continue
                seen[typed] = None
            else:
                rid = None
            if rtype == "Observation":      # most of them
                observations.append(res)
            elif rtype == "MedicationRequest":
                if rid is None or rid not in draft_requests:
                    requests.append(res)
            elif rtype == "Condition":
                data.conditions.append(res)
            elif rtype == "Procedure":
                data.procedures.append(res)
            elif rtype == "Medication":
                with_medication = True
                if rid is not None:
                    data.medications[f"Medication/{rid}"] = res
            elif rtype == "Patient" and data.patient is None:
                data.patient = res
        # the entries again, for their fullUrl; a Bundle's resources were all walked above, so a Bundle without a
        # Medication (most) has nothing for it
        if not bundle or with_medication:
            for url, med in medications_by_full_url(value).items():
                data.medications.setdefault(url, med)

    # a draftOrders Bundle may carry the Medications its orders reference (medicationReference)
    for url, med in medications_by_full_url(context.get("draftOrders")).items():
        data.medications.setdefault(url, med)
    for res in data.draft_orders:
        if res.get("resourceType") == "Medication" and ref_of(res):
            data.medications.setdefault(ref_of(res), res)
    for res in data.draft_orders:
        for contained in array(res.get("contained")):
            if isinstance(contained, dict) and contained.get("resourceType") == "Medication":
                cref = ref_of(contained)
                if cref:
                    data.medications.setdefault(cref, contained)
    data.selections = tuple(s for s in array(context.get("selections")) if isinstance(s, str))
    data.missing = tuple(k for k in getattr(request, "missing", ()) or () if isinstance(k, str))
    return data


def missing_labels(missing: Iterable[str]) -> list[str]:
    """Plain words for the prefetch keys that could not be had (for card details)."""
    return [MISSING_MEANING.get(k, k) for k in missing]
