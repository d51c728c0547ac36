"""THE single entry point of the clinical rules: ``evaluate(data, hook) -> list[Finding]``.

Both the CDS services (fhir_pain.services, from a HookRequest) and the poller (fhir_pain.poller, from FHIR
searches) call it, so a patient gets the same advice whichever way it reaches them.

Hook semantics:
- ``patient-view`` (also the poller's proactive mode): the PGx summary, the pain profile, a PHQ-9 item 9 safety
  alert, alerts for *active* medications that conflict with the genotype or an FDA limit (age, tonsillectomy,
  breathing risk, breastfeeding), non-response to current analgesics, referrals.
- ``order-select``: advice on the draft orders named in ``selections`` (other drafts are context only).
- ``order-sign``: advice on every draft order.
An order whose drug cannot be identified is named in the finding ``fhir-pain/unidentified-orders`` when the call has
other findings (cards.py carries it on the first card), never on its own. Both order hooks also warn when a
tricyclic or an opioid is ordered while PHQ-9 item 9 is endorsed, and never offer a tricyclic as a replacement
draft then. Both use active medications (and the other drafts) for phenoconversion, and say only what concerns
the ordered drug itself: referrals and the chart's summaries stay on patient-view (alert fatigue). Standard dosing and "no recommendation" never produce a finding on an order; uncertain
results always do (with the advice that is safe under every possibility, and the confirmatory test).
"""
from __future__ import annotations

import logging
from functools import partial

from fhir_pain import pgx
from fhir_pain.facts import Finding, MedicationUse, PatientData
from fhir_pain.gather import relative_ref
from fhir_pain.rules import (
    RuleContext, age_limit_finding, drug_gene_finding, non_response, opioid_for_neuropathic, pain_summary, pgx_summary,
    pretest_finding, referral_findings, suicidality_finding, tca_for_neuropathic,
)
from fhir_pain.rules.drug_gene import QUIET_ACTIONS
from fhir_pain.rules.fda_limits import fda_limit_findings
from fhir_pain.rules.knowledge import cpic_alert, rule
from fhir_pain.rules.opioid_safety import opioid_order_findings, opioid_patient_findings
from fhir_pain.rules.safety import overdose_risk_finding, withhold_tca_replacements
from fhir_pain.rules.unidentified import unidentified_orders_finding

log = logging.getLogger(__name__)

ORDER_HOOKS = frozenset({"order-select", "order-sign"})
HOOKS = ORDER_HOOKS | {"patient-view"}
_INDICATOR_RANK = {"critical": 0, "warning": 1, "info": 2}
_KIND_RANK = {"opioid-safety": 0, "drug-gene": 0, "pain-phenotype": 1, "treatment-response": 2, "pre-test": 3, "informational": 4}
SUMMARY_RULES = ("fhir-pain/pgx-summary", "fhir-pain/pain-profile")
SAFETY_RULES = (rule("phq9-item9")["id"],)   # first among the cards of their severity


def evaluate(data: PatientData, hook: str, guidelines: str = "cpic", *, summaries: bool = True) -> list[Finding]:
    """Every finding for one patient at one hook, most severe first. Unknown hooks give no findings.
    ``guidelines``: the site's guideline source (setting GUIDELINES, fhir_pain.pgx.guidance).
    ``summaries=False`` leaves out the patient-view summaries (SUMMARY_RULES: informational, never written
    back as DetectedIssues, and half the cost of a patient-view evaluation): for population sweeps."""
    if hook not in HOOKS:
        return []
    ctx = build_context(data, hook, guidelines)
    findings = _patient_view(ctx, summaries) if hook == "patient-view" else \
        _orders(ctx, targets_for(ctx, data, hook))
    return sorted(findings, key=_order)


def build_context(data: PatientData, hook: str, guidelines: str = "cpic") -> RuleContext:
    resolve = partial(_resolve, data.medications)   # not a closure: no function object made per call
    identify = pgx.identify
    active: list[MedicationUse] = []
    # Earlier (completed, stopped, on-hold) requests: the pain engine links renewals to the trial they continue, and
    # CPIC's population for the HLA anticonvulsants counts earlier use; phenoconversion uses the active list alone.
    history: list[MedicationUse] = []
    for r in data.medication_requests:
        if r.get("resourceType") == "MedicationRequest":
            # The template asks for status=active; a server that ignores the filter must not smuggle stopped drugs in.
            (active if r.get("status", "active") == "active" else history).append(identify(r, resolve=resolve))
    drafts = [identify(r, resolve=resolve, is_draft=True) for r in data.draft_orders
              if r.get("resourceType") == "MedicationRequest"]
    results = pgx.read_gene_results(data.observations)
    return RuleContext(hook=hook, now=data.now, patient_id=data.patient_id, results=results, active=active,
                       drafts=drafts, pain=_pain_profile(data, active + history), missing=frozenset(data.missing),
                       patient=data.patient, conditions=data.conditions, procedures=data.procedures,
                       observations=data.observations, history=history, guidelines=guidelines)


def _resolve(medications: dict[str, dict], ref: str) -> dict | None:
    """A medicationReference's Medication among the gathered ones (by the reference as sent, or relative)."""
    found = medications.get(ref)
    if found is None and relative_ref(ref):
        found = medications.get(relative_ref(ref))
    return found


def targets_for(ctx: RuleContext, data: PatientData, hook: str) -> list[MedicationUse]:
    """The drafts to advise on: order-select -> those in ``selections``; order-sign -> all of them."""
    if hook == "order-select" and data.selections:
        wanted = set(data.selections)
        return [d for d in ctx.drafts if d.ref in wanted]
    return list(ctx.drafts)


def _pain_profile(data: PatientData, medications: list[MedicationUse]):
    try:
        from fhir_pain.pain import build_profile
        return build_profile(data.observations, data.conditions, medications, data.now)
    except Exception as exc:  # the pain profile is context: its failure must not silence the PGx advice
        log.warning("pain profile could not be built: %s", type(exc).__name__)
        return None


def _drug_findings(ctx: RuleContext, med: MedicationUse, *, orders: bool) -> list[Finding]:
    out: list[Finding] = []
    for drug in med.ingredients:
        age = age_limit_finding(ctx, med, drug)
        if age is not None:
            out.append(age)
        limits = fda_limit_findings(ctx, med, drug)
        out.extend(limits)
        contraindicated = any(f.indicator == "critical" for f in (age, *limits) if f is not None)
        cpic = drug_gene_finding(ctx, med, drug)
        tca = tca_for_neuropathic(ctx, med, drug, cpic)
        if cpic is not None and (cpic.action not in QUIET_ACTIONS or cpic.uncertainty) and not _cpic_says_no_cds(cpic):
            out.append(cpic)
        if tca is not None:
            out.append(tca)
        # a genotype test to guide a drug the FDA contraindicates here is noise: the safety card says what to do
        pre = pretest_finding(ctx, med, drug) if not contraindicated else None
        if pre is not None:
            out.append(pre)
        if orders:
            opioid = opioid_for_neuropathic(ctx, med, drug)
            if opioid is not None:
                out.append(opioid)
            overdose = overdose_risk_finding(ctx, med, drug)
            if overdose is not None:
                out.append(overdose)
    return out


# CPIC's alert workbooks predate some of its guidelines (paroxetine's is the 2015 SSRI one, its table the 2023
# guideline): a workbook's "No CDS" silences at most a "monitor" card, never advice to avoid, replace or re-dose.
_NO_CDS_SILENCES = QUIET_ACTIONS | {"monitor"}


def _cpic_says_no_cds(f: Finding) -> bool:
    """CPIC's own alert design for noise: its post-test workbook writes "No CDS" for this (certain) result."""
    if f.uncertainty or f.action not in _NO_CDS_SILENCES or f.drug is None:
        return False
    if (f.knowledge or {}).get("source", "CPIC") != "CPIC" or len({r.get("action") for r in f.recommendations or ()}) > 1:
        return False      # CPIC's workbook speaks for CPIC's advice alone, never over a DPWG advice beside it
    keys = {g: (gp.activity_score if gp.activity_score and gp.activity_score != "n/a" else gp.phenotype)
            for g, gp in f.genes.items()}
    return cpic_alert(f.drug.name, keys) == "no-cds"


def _orders(ctx: RuleContext, targets: list[MedicationUse]) -> list[Finding]:
    findings: list[Finding] = []
    for med in targets:
        findings.extend(_drug_findings(ctx, med, orders=True))
        findings.extend(non_response(ctx, med))
        findings.extend(opioid_order_findings(ctx, med))
    withhold_tca_replacements(ctx, findings)
    # orders that could not be identified were not checked: said beside other advice, never a card of their own
    missed = unidentified_orders_finding(targets) if findings else None
    if missed is not None:
        findings.append(missed)
    return findings


def _patient_view(ctx: RuleContext, summaries: bool = True) -> list[Finding]:
    first = (pgx_summary(ctx), pain_summary(ctx)) if summaries else ()
    findings = [f for f in (*first, suicidality_finding(ctx)) if f is not None]
    for med in ctx.active:
        findings.extend(_drug_findings(ctx, med, orders=False))
    findings.extend(non_response(ctx))
    findings.extend(opioid_patient_findings(ctx))
    findings.extend(referral_findings(ctx))
    return findings


def _order(f: Finding) -> tuple:
    first = f.rule in SAFETY_RULES + SUMMARY_RULES or f.kind == "safety"
    return (_INDICATOR_RANK.get(f.indicator, 3), 0 if first else 1, _KIND_RANK.get(f.kind, 9))
