"""Finding -> FHIR R4 ``DetectedIssue``, and the bookkeeping that makes the poller's writes idempotent.

Every DetectedIssue the poller writes carries:
- a deterministic ``identifier`` (hash of patient + rule + drug + medication): one finding, one resource;
- the same hash as its logical ``id``, so creating it is a PUT (update-as-create) that a retry or a second
  poller can repeat without making a duplicate;
- a content hash (extension) over what the finding says, so a changed finding updates its resource and an
  unchanged one is left alone;
- a ``meta.tag`` naming the patient, because ``_tag`` is the one search parameter every server indexes on
  every type (sekmet-fhir 0.1.1 has no ``patient`` or ``identifier`` search on DetectedIssue);
- a ``meta.tag`` naming the knowledge version that produced it (fhir_pain.knowledge_version): an issue written
  under older knowledge is rewritten when re-evaluated, even if its content is the same.

Pure functions over plain dicts: no HTTP, no fhir.resources (tests validate the output with the R4B models).
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone

import orjson

from fhir_pain.facts import Finding
from fhir_pain.knowledge_version import cpic_version, knowledge_version

BASE = "https://fhir-pain.io/fhir"
IDENTIFIER_SYSTEM = f"{BASE}/sid/detected-issue"
PATIENT_TAG_SYSTEM = f"{BASE}/CodeSystem/poller-patient"
KNOWLEDGE_TAG_SYSTEM = f"{BASE}/CodeSystem/knowledge-version"
CONTENT_HASH_URL = f"{BASE}/StructureDefinition/detected-issue-content-hash"
FINDING_KIND_SYSTEM = f"{BASE}/CodeSystem/finding-kind"
RULE_SYSTEM = f"{BASE}/CodeSystem/rule"
MITIGATION_SYSTEM = f"{BASE}/CodeSystem/detected-issue-mitigation"
V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"

SEVERITY = {"critical": "high", "warning": "moderate", "info": "low"}
# What is written back follows the rules' own judgement (fhir_pain.evaluate): a warning or critical finding.
# Informational findings (the PGx summary, a pre-test reminder for a drug already taken) stay on the chart's
# cards: written for every patient on the server they would bury the issues that matter. Advice to change a drug
# is written whatever its indicator (it would then be "low").
DRUG_CHANGING_ACTIONS = frozenset({"avoid", "use-alternative", "reduce-dose"})
OPEN = "final"
CLOSED = "cancelled"
# A human marked it so: the poller never reopens or rewrites it.
HANDS_OFF = frozenset({"entered-in-error"})

# v3 ActCode detected-issue categories (DetectedIssueCategory value set, preferred binding).
_CATEGORY = {
    "drug-gene": ("GEN", "Genetic Alert"),
    "pre-test": ("GEN", "Genetic Alert"),
    "pain-phenotype": ("COND", "Condition Alert"),
    "safety": ("COND", "Condition Alert"),
}
# by rule family (the rule id is "<family>/<drug>"): an age contraindication, whatever its kind
_RULE_CATEGORY = {"fhir-pain/age-limit": ("AGE", "Age Alert"),
                  # opioid safety: dose problems, drug interactions, a condition to treat
                  "cdc2022/mme-50": ("DOSE", "Dosage problem"), "cdc2022/mme-90": ("DOSE", "Dosage problem"),
                  "cdc2022/mme-unreadable": ("DOSE", "Dosage problem"),
                  "cdc2022/er-la-opioid-naive": ("DOSE", "Dosage problem"),
                  "cdc2022/acute-over-7-days": ("DOSE", "Dosage problem"),
                  "cdc2022/opioid-benzodiazepine": ("DRG", "Drug Interaction Alert"),
                  "cdc2022/opioid-cns-depressant": ("DRG", "Drug Interaction Alert"),
                  "fda2019/opioid-gabapentinoid": ("DRG", "Drug Interaction Alert"),
                  "cdc2022/offer-moud": ("COND", "Condition Alert")}
_KIND_TEXT = {
    "drug-gene": "Drug-gene interaction (pharmacogenomics)",
    "pre-test": "Pharmacogenomic test advised before prescribing",
    "pain-phenotype": "Pain phenotype and treatment choice",
    "treatment-response": "Response to the current pain treatment",
    "informational": "Pain management information",
    "safety": "Patient-safety limit (regulator's warning or screening answer)",
    "opioid-safety": "Opioid prescribing safety (CDC 2022 guideline)",
}
_ID_PREFIX = "fhir-pain-"
_VOLATILE = ("id", "meta", "status", "identifiedDateTime", "mitigation", "extension")


def is_actionable(finding: Finding) -> bool:
    return finding.indicator in ("warning", "critical") or finding.action in DRUG_CHANGING_ACTIONS


def finding_key(patient_id: str, finding: Finding) -> str:
    """Deterministic key of a finding for one patient: same patient, rule, drug and medication -> same key."""
    parts = (
        f"Patient/{patient_id}",
        finding.rule,
        finding.drug.rxnorm if finding.drug else "",
        finding.medication.ref if finding.medication else "",
    )
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def resource_id(key: str) -> str:
    return _ID_PREFIX + key[:40]  # FHIR ids: at most 64 of [A-Za-z0-9.-]


def _local_refs(refs) -> list[str]:
    """Relative ``Type/id`` references only: drafts (urn:uuid) and contained refs mean nothing on the server."""
    out: list[str] = []
    for ref in refs:
        if isinstance(ref, str) and "/" in ref and not ref.startswith(("urn:", "#")) and ref not in out:
            out.append(ref)
    return out


def _result_refs(finding: Finding) -> list[str]:
    return _local_refs(r for gene in finding.genes.values() for r in gene.evidence)


def _instant(now: datetime) -> str:
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    return now.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def content_hash(resource: dict) -> str:
    """Hash of what the issue says (not its id, status, dates or bookkeeping)."""
    body = {k: v for k, v in resource.items() if k not in _VOLATILE}
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def stored_hash(resource: dict) -> str | None:
    for ext in resource.get("extension") or ():
        if isinstance(ext, dict) and ext.get("url") == CONTENT_HASH_URL:
            return ext.get("valueString")
    return None


def issue_key(resource: dict) -> str | None:
    """Our identifier value on a DetectedIssue read back from the server (None: not written by the poller)."""
    for ident in resource.get("identifier") or ():
        if isinstance(ident, dict) and ident.get("system") == IDENTIFIER_SYSTEM and ident.get("value"):
            return ident["value"]
    return None


def render(finding: Finding, patient_id: str, now: datetime) -> dict:
    """The open DetectedIssue for ``finding`` (valid R4). ``identifiedDateTime`` is ``now``; on an update the
    caller keeps the date the issue was first identified."""
    key = finding_key(patient_id, finding)
    coding = []
    family = finding.rule.rsplit("/", 1)[0] if finding.rule.count("/") > 1 else finding.rule
    category = _RULE_CATEGORY.get(family) or _RULE_CATEGORY.get(finding.rule) or _CATEGORY.get(finding.kind)
    if category:
        code, display = category
        coding.append({"system": V3_ACT_CODE, "code": code, "display": display})
    coding.append({"system": FINDING_KIND_SYSTEM, "code": finding.kind})
    coding.append({"system": RULE_SYSTEM, "code": finding.rule})
    medication = _local_refs([finding.medication.ref]) if finding.medication else []
    implicated = medication + _result_refs(finding)
    evidence = _local_refs(finding.evidence)
    text = finding.summary.strip()
    if finding.detail.strip():
        text = f"{text}\n\n{finding.detail.strip()}"

    issue: dict = {
        "resourceType": "DetectedIssue",
        "identifier": [{"use": "official", "system": IDENTIFIER_SYSTEM, "value": key}],
        "code": {"coding": coding, "text": _KIND_TEXT.get(finding.kind, finding.kind)},
        "severity": SEVERITY.get(finding.indicator, "moderate"),
        "patient": {"reference": f"Patient/{patient_id}"},
    }
    if implicated:
        issue["implicated"] = [{"reference": r} for r in implicated]
    if evidence:
        issue["evidence"] = [{"detail": [{"reference": r} for r in evidence]}]
    if text:
        issue["detail"] = text
    url = (finding.knowledge or {}).get("url")
    if isinstance(url, str) and url.strip():
        issue["reference"] = url.strip()

    digest = content_hash(issue)
    return {
        "resourceType": "DetectedIssue",
        "id": resource_id(key),
        "meta": {"tag": [{"system": PATIENT_TAG_SYSTEM, "code": patient_id}, knowledge_tag()]},
        "extension": [{"url": CONTENT_HASH_URL, "valueString": digest}],
        "status": OPEN,
        "identifiedDateTime": _instant(now),
        **{k: v for k, v in issue.items() if k != "resourceType"},
    }


def knowledge_tag() -> dict:
    return {"system": KNOWLEDGE_TAG_SYSTEM, "code": knowledge_version(), "display": f"CPIC {cpic_version()}"}


def knowledge_of(resource: dict) -> str | None:
    """The knowledge version a DetectedIssue was written under (None: before versions were recorded)."""
    for tag in (resource.get("meta") or {}).get("tag") or ():
        if isinstance(tag, dict) and tag.get("system") == KNOWLEDGE_TAG_SYSTEM:
            return tag.get("code")
    return None


def needs_write(existing: dict, wanted: dict) -> bool:
    """False when the server already holds what we would write (same content, open, same knowledge)."""
    return existing.get("status") != wanted["status"] or stored_hash(existing) != stored_hash(wanted) \
        or knowledge_of(existing) != knowledge_of(wanted)


def updated(existing: dict, wanted: dict) -> dict:
    """``wanted`` written over ``existing``: keeps its id and the date the issue was first identified."""
    out = dict(wanted, id=existing["id"])
    if existing.get("identifiedDateTime"):
        out["identifiedDateTime"] = existing["identifiedDateTime"]
    return out


def closed(existing: dict, now: datetime) -> dict:
    """The issue closed by a status change, with a mitigation that says why (R4 has no 'resolved' status)."""
    out = {k: v for k, v in existing.items() if k != "meta"}
    meta_tags = (existing.get("meta") or {}).get("tag")
    if meta_tags:
        out["meta"] = {"tag": meta_tags}
    out["status"] = CLOSED
    out["mitigation"] = [*(existing.get("mitigation") or []), {
        "action": {
            "coding": [{"system": MITIGATION_SYSTEM, "code": "no-longer-applies",
                        "display": "Finding no longer applies"}],
            "text": "Re-evaluation no longer finds this issue (medication stopped, or new results).",
        },
        "date": _instant(now),
    }]
    return out


def is_open(resource: dict) -> bool:
    return resource.get("status") not in (CLOSED, *HANDS_OFF)
