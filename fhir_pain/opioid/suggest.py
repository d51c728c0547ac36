"""What opioid-safety findings add to a card: the naloxone draft (a code verified in the CDC naloxone value set),
the CDC opioid CDS override reasons (the snooze reasons clinicians use for these alerts), and the check that keeps
a card from contradicting itself (no drafted replacement by another opioid when the card says an opioid's dose or
combination is the risk). Built from plain dicts: cards.py turns them into cds_hooks objects."""
from __future__ import annotations

from cds_hooks import Action, ActionType, Suggestion
from fhir_pain.facts import Drug, Finding, PatientData
from fhir_pain.opioid.knowledge import class_products, rules

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
_RISK_RULES = ("cdc2022/mme-50", "cdc2022/mme-90", "cdc2022/opioid-benzodiazepine", "cdc2022/opioid-cns-depressant",
               "fda2019/opioid-gabapentinoid", "cdc2022/mme-unreadable")


def naloxone_code_verified(code: str) -> bool:
    """True only for a code in the CDC naloxone value set (the source that verifies it)."""
    return code in class_products()["naloxone"]


def naloxone_suggestion(data: PatientData, group: list[Finding]) -> Suggestion | None:
    n = rules()["naloxoneDraft"]
    if not naloxone_code_verified(n["rxnorm"]):
        return None
    resource = {
        "resourceType": "MedicationRequest",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": n["rxnorm"], "display": n["display"]}],
                                      "text": n["display"]},
        "subject": {"reference": f"Patient/{data.patient_id}"},
        "dosageInstruction": [{"text": n["instruction"], "asNeededBoolean": True}],
        "dispenseRequest": {"quantity": {"value": n["dispenseQuantity"], "unit": "spray device"}},
        "note": [{"text": "Overdose risk raised (" + ", ".join(f.rule for f in group if f.extra.get("naloxoneDraft"))
                          + "). Check and sign."}],
    }
    return Suggestion(label="Order naloxone nasal spray (draft)", actions=(
        Action(type=ActionType.CREATE, description=f"Draft order: {n['display']}", resource=resource),))


def opioid_override_reasons() -> list[dict]:
    """The reasons a card with an opioid-safety finding offers besides its primary finding's own."""
    return [dict(r) for r in rules()["overrideReasons"]]


def opioid_replacement_conflicts(group: list[Finding], alt: Drug) -> bool:
    """A replacement by another opioid would contradict a card that warns about the opioid dose or combination."""
    if alt.name not in rules()["opioids"]:
        return False
    return any(f.kind == "opioid-safety" and f.rule in _RISK_RULES for f in group)
