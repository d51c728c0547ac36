"""Findings -> CDS Hooks cards: one card per drug (and its gene set), FHIR suggestions, override reasons, links,
and the machine-readable findings under ``card.extension["io.fhir-pain.findings"]``.

Only suggestions a clinician can accept safely: replacing a *draft* order (delete it by resourceId, create a
draft for the alternative ingredient with no dose, the clinician completes it), removing a draft the advice says to
avoid when no replacement can be drafted (never marked recommended: the choice of what to give instead stays with
the prescriber), ordering a genotype test, or a referral. Dose reductions are stated in the detail, never applied.
Active medications and combination products are never changed from a card.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from functools import lru_cache

from cds_hooks import Action, ActionType, Card, Coding, Link, LinkType, SelectionBehavior, Source, Suggestion
from fhir_pain.facts import Drug, Finding, MedicationUse, PatientData
from fhir_pain.pgx import code_verified
from fhir_pain.gather import CONDITIONS, MEDICATION_HISTORY, MEDICATIONS, MISSING_MEANING, OPIOID_TESTS, PAIN, PGX
from fhir_pain.opioid.suggest import naloxone_suggestion, opioid_override_reasons, opioid_replacement_conflicts
from fhir_pain.rules.classes import classes_of
from fhir_pain.rules.drug_gene import REPLACE_ACTIONS, is_combination, removable_draft
from fhir_pain.rules.knowledge import card_conventions, pretest_alerts
from fhir_pain.rules.text import article, md

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LAB_CATEGORY = {"system": "http://snomed.info/sct", "code": "108252007", "display": "Laboratory procedure"}
_RANK = {"critical": 0, "warning": 1, "info": 2}
_KIND_RANK = {"safety": -1, "drug-gene": 0, "pain-phenotype": 1, "treatment-response": 2, "pre-test": 3,
              "informational": 4}   # a regulator's limit leads a drug's card over genotype advice of equal severity
# Which missing data a card of each kind has to own up to.
RELEVANT_MISSING = {
    "drug-gene": (PGX, MEDICATIONS), "pre-test": (PGX,), "pain-phenotype": (PAIN, CONDITIONS),
    "treatment-response": (PAIN, MEDICATIONS, MEDICATION_HISTORY),
    "informational": (PGX, PAIN, CONDITIONS, MEDICATIONS),
    "opioid-safety": (CONDITIONS, MEDICATIONS, MEDICATION_HISTORY, OPIOID_TESTS),
}


def render(findings: Iterable[Finding], data: PatientData) -> list[Card]:
    """Cards in the order of the findings (most severe first), one per group."""
    return [card_for(group, data) for group in group_findings(findings)]


# The patient-view summaries open the dashboard (fhir_pain.dashboard) when its launch URL is configured.
DASHBOARD_LINK_RULES = frozenset({"fhir-pain/pgx-summary", "fhir-pain/pain-profile"})
DASHBOARD_LINK_LABEL = "Pain and PGx dashboard (trends, pain profile, genotype)"


def with_dashboard_link(cards: list[Card], launch_url: str, findings_key: str) -> list[Card]:
    """The summary cards with a SMART link to the dashboard (the EHR adds ``iss`` and ``launch``)."""
    link = Link(label=DASHBOARD_LINK_LABEL, url=launch_url, type=LinkType.SMART)
    out = []
    for card in cards:
        rules = {f.get("rule") for f in (card.extension or {}).get(findings_key, ())}
        out.append(dataclasses.replace(card, links=(*card.links, link)) if rules & DASHBOARD_LINK_RULES else card)
    return out


def group_key(f: Finding) -> tuple:
    med = f.medication.ref if f.medication else ""
    drug = f.drug.rxnorm if f.drug else ""
    if f.extra.get("joins") == "opioid":      # patient-view: the total MME and the opioid rules, one card
        return ("opioid",)
    if f.kind in ("drug-gene", "pre-test") or f.extra.get("joins") == "drug":
        return ("drug", med, drug)
    if f.rule.startswith("fhir-pain/referral/"):
        return ("referral",)
    return (f.rule, med, drug)


def group_findings(findings: Iterable[Finding]) -> list[list[Finding]]:
    """One group per card. Opioid-safety findings about an order join the card that already speaks of that order,
    whatever its rule (one card per decision); findings marked ``attach: first-card`` (the unidentified orders)
    join the first card, never make one."""
    findings = list(findings)
    keys = [group_key(f) for f in findings]   # each finding's once: by_med and the grouping both need it
    groups: dict[tuple, list[Finding]] = {}
    attached: list[Finding] = []
    by_med = {f.medication.ref: key for f, key in zip(reversed(findings), reversed(keys))
              if f.kind != "opioid-safety" and f.medication is not None and f.extra.get("attach") != "first-card"}
    for f, key in zip(findings, keys):
        if f.extra.get("attach") == "first-card":
            attached.append(f)
            continue
        if f.kind == "opioid-safety" and f.medication is not None and f.medication.ref in by_med:
            key = by_med[f.medication.ref]
        groups.setdefault(key, []).append(f)
    out = list(groups.values())
    if out:
        out[0].extend(attached)
    return out


def primary_of(group: list[Finding]) -> Finding:
    marked = [f for f in group if f.extra.get("primary")]
    if marked:
        return marked[0]
    return min(group, key=lambda f: (_RANK.get(f.indicator, 3), _KIND_RANK.get(f.kind, 9)))


def card_for(group: list[Finding], data: PatientData) -> Card:
    conv = card_conventions()
    primary = primary_of(group)
    indicator = min((f.indicator for f in group), key=lambda i: _RANK.get(i, 3))
    suggestions = _suggestions(group, data)
    replaces = any(s.label.startswith("Replace ") for s in suggestions)
    return Card(
        summary=_referral_summary(group) if primary.rule.startswith("fhir-pain/referral/") else primary.summary,
        indicator=indicator,
        source=_source(),
        detail=_detail(group, primary, data),
        suggestions=tuple(suggestions),
        selection_behavior=(SelectionBehavior.AT_MOST_ONE if replaces else SelectionBehavior.ANY)
        if suggestions else None,
        override_reasons=_override_codings(primary.rule, primary.kind,
                                           any(f.kind == "opioid-safety" for f in group)),
        links=tuple(_links(group)),
        extension={conv["findingsExtension"]: [f.to_contract() for f in group]},
    )


# The override reasons, the source and the links come from the knowledge (card conventions, guideline urls): the
# same few (immutable, checked when built) objects on every card, built once each.
@lru_cache(maxsize=256)
def _override_codings(rule: str, kind: str, opioid_safety: bool) -> tuple[Coding, ...]:
    conv = card_conventions()
    reasons = _override_reasons(conv, rule, kind) + (opioid_override_reasons() if opioid_safety else [])
    return tuple(Coding(code=r["code"], system=r.get("system", conv["overrideReasonSystem"]), display=r["display"])
                 for r in reasons)


@lru_cache(maxsize=1)
def _source() -> Source:
    source = card_conventions()["source"]
    return Source(label=source["label"], url=source.get("url"))


@lru_cache(maxsize=256)
def _link(label: str, url: str) -> Link:
    return Link(label=label, url=url, type=LinkType.ABSOLUTE)


def _override_reasons(conv: dict, rule: str, kind: str) -> list[dict]:
    """The rule's own reasons when the conventions name some (a kind's reasons may not fit every rule of it), for
    the rule itself or its family ("fhir-pain/age-limit" for "fhir-pain/age-limit/codeine")."""
    by_rule = conv.get("overrideReasonsByRule", {})
    for key in (rule, rule.rsplit("/", 1)[0]):
        if key in by_rule:
            return by_rule[key]
    return conv["overrideReasons"].get(kind, [])


# ---- text ---------------------------------------------------------------------------------------------------

def _referral_summary(group: list[Finding]) -> str:
    if len(group) == 1:
        return group[0].summary
    labels = [f.extra["referral"]["label"] for f in group if "referral" in f.extra]
    text = "Consider referral: " + "; ".join(label.replace("Refer to ", "") for label in labels)
    return text if len(text) <= 140 else group[0].summary


def _detail(group: list[Finding], primary: Finding, data: PatientData) -> str:
    parts = [primary.detail] if primary.detail else []
    for f in group:
        if f is not primary and f.detail:
            parts.append(f"**{md(f.summary)}**\n\n{f.detail}")
    missing = [k for k in data.missing if any(k in _relevant_missing(f) for f in group)]
    if missing:
        labels = ", ".join(MISSING_MEANING.get(k, k) for k in dict.fromkeys(missing))
        parts.append(f"**Data not available:** {md(labels)}. This advice uses only the data that could be read.")
    return "\n\n---\n\n".join(parts)


def _relevant_missing(f: Finding) -> tuple[str, ...]:
    """The missing data a finding has to own up to: its rule's own list when it names one, else its kind's."""
    own = f.extra.get("relevantMissing")
    return tuple(own) if own is not None else RELEVANT_MISSING.get(f.kind, ())


def _links(group: list[Finding]) -> list[Link]:
    seen, out = set(), []
    for f in group:
        k = f.knowledge or {}
        url = k.get("url")
        if isinstance(url, str) and url.startswith(("http://", "https://")) and url not in seen:
            seen.add(url)
            source = k.get("source", "Guideline")
            label = f"{source} guideline for {f.drug.name}" if source == "CPIC" and f.drug else source
            if source == "FDA" and k.get("version"):   # a regulator's communication is known by its date
                label = f"FDA Drug Safety Communication {k['version']}"
            out.append(_link(label[:100], url))
    return out


# ---- suggestions ------------------------------------------------------------------------------------------

def _suggestions(group: list[Finding], data: PatientData) -> list[Suggestion]:
    out: list[Suggestion] = []
    labels: set[str] = set()

    def add(s: Suggestion | None) -> None:
        if s is not None and s.label not in labels:
            labels.add(s.label)
            out.append(s)

    for f in group:
        if f.medication is not None and (f.action in REPLACE_ACTIONS or f.extra.get("replace")):
            for alt in f.alternatives:
                if not opioid_replacement_conflicts(group, alt):
                    add(replace_suggestion(f.medication, alt, f, data))
        for gene in f.extra.get("testGenes", ()) or ():
            add(test_suggestion(gene, f, data, confirm=False))
        for gene in f.extra.get("confirmGenes", ()) or ():
            add(test_suggestion(gene, f, data, confirm=True))
        if "referral" in f.extra:
            add(referral_suggestion(f, data))
    if not any(s.label.startswith("Replace ") for s in out):
        for f in group:
            # opioid safety: "remove or reduce" (a reduction is the prescriber's edit, the detail says so)
            if f.extra.get("offerRemoval") and (f.action in REPLACE_ACTIONS or f.kind == "opioid-safety"):
                add(removal_suggestion(f))
    if any(f.extra.get("naloxoneDraft") for f in group):
        add(naloxone_suggestion(data, group))
    return out


def _subject(data: PatientData) -> dict:
    return {"reference": f"Patient/{data.patient_id}"}


def replace_suggestion(med: MedicationUse, alt: Drug, f: Finding, data: PatientData) -> Suggestion | None:
    draft = removable_draft(med)
    if not code_verified(alt.rxnorm):
        return None   # an unverified code could order the wrong drug: the detail names it, the clinician orders it
    if draft is None or is_combination(med):
        # without deleting the original a new draft would double the therapy; replacing a combination product
        # would drop its other ingredients: offer nothing, the detail says why
        return None
    old = f.drug.name if f.drug else (med.text or "the draft")
    resource = {
        "resourceType": "MedicationRequest",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": alt.rxnorm, "display": alt.name}],
                                      "text": alt.name},
        "subject": _subject(data),
        "note": [{"text": f"Replaces {old} ({f.rule}). Dose, route and quantity to be completed by the prescriber."}],
    }
    encounter = (med.resource or {}).get("encounter")
    if isinstance(encounter, dict) and isinstance(encounter.get("reference"), str):
        resource["encounter"] = {"reference": encounter["reference"]}
    return Suggestion(
        label=f"Replace {old} with {alt.name} (new draft without dose)"[:120],
        actions=(
            Action(type=ActionType.DELETE, description=f"Remove the draft order for {old}", resource_id=draft),
            Action(type=ActionType.CREATE, description=f"Draft order for {alt.name}; complete the dose",
                   resource=resource),
        ),
    )


def removal_suggestion(f: Finding) -> Suggestion | None:
    """Delete-only: the advice is to avoid the drug and no replacement draft can be offered (CPIC names a class,
    or its named alternatives have no verified code). Not for active medications, drafts without an id or
    combination products (their detail says how to act); never recommended, since nothing replaces the drug."""
    med = f.medication
    draft = removable_draft(med)
    if draft is None or is_combination(med):
        return None
    name = f.drug.name if f.drug else (med.text or "this")
    instead = "another analgesic" if f.drug is not None and classes_of(f.drug) else "an alternative"
    return Suggestion(label=f"Remove the {name} draft; choose {instead}"[:120], actions=(
        Action(type=ActionType.DELETE, description=f"Remove the draft order for {name}", resource_id=draft),))


def test_suggestion(gene: str, f: Finding, data: PatientData, *, confirm: bool) -> Suggestion:
    drug = f.drug.name if f.drug else "pain medication"
    reason = (f"Confirm {gene} genotype: current result is {f.extra.get('uncertainty', {}).get(gene, 'uncertain')}"
              if confirm else f"CPIC pre-test alert: {drug} ordered, no {gene} result found")
    resource = {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "order",
        "category": [{"coding": [dict(LAB_CATEGORY)]}],
        "code": {"coding": [dict(pretest_alerts()["testCode"])], "text": f"{gene} genotype"},
        "subject": _subject(data),
        "reasonCode": [{"text": reason}],
    }
    label = f"Order a confirmatory {gene} genotype test" if confirm else f"Order {article(gene)} {gene} genotype test"
    return Suggestion(label=label, actions=(
        Action(type=ActionType.CREATE, description=f"Draft laboratory order: {gene} genotype", resource=resource),))


def referral_suggestion(f: Finding, data: PatientData) -> Suggestion:
    ref = f.extra["referral"]
    resource = {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "order",
        "code": {"coding": [dict(ref["code"])], "text": ref["code"]["display"]},
        "subject": _subject(data),
        "reasonCode": [{"text": f.extra.get("reason") or ref["code"]["display"]}],
    }
    reasons = [{"reference": e} for e in f.evidence if e.startswith(("Observation/", "Condition/"))]
    if reasons:
        resource["reasonReference"] = reasons
    return Suggestion(label=ref["label"], actions=(
        Action(type=ActionType.CREATE, description=ref["code"]["display"], resource=resource),))
