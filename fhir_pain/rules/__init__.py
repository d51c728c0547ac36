"""Clinical rules: pure functions, facts in (RuleContext) -> facts.Finding out. No Flask, no HTTP, no FHIR models.

- drug_gene:    CPIC drug-gene advice for one ordered/active drug (via fhir_pain.pgx), uncertainty handling
- pretest:      CPIC pre-test alert when a covered drug has no result on file
- pain_context: phenotype-aware rules (opioid for neuropathic pain, TCA for neuropathic pain in CYP2D6 PM/IM,
                non-response after an adequate trial, referrals)
- summary:      patient-view PGx summary and pain profile
- safety:       patient-view safety alert (PHQ-9 item 9 endorsed)
- age_limits:   codeine/tramadol contraindicated under 12 years (FDA, cited by CPIC), whatever the genotype
- unidentified: orders whose drug could not be identified, named beside other advice (never a card alone)
Knowledge for all of them lives in profiles/rules/*.json; fhir_pain.evaluate runs them per hook.
"""
from fhir_pain.rules.age_limits import age_limit_finding
from fhir_pain.rules.context import RuleContext
from fhir_pain.rules.drug_gene import drug_gene_finding
from fhir_pain.rules.pain_context import non_response, opioid_for_neuropathic, referral_findings, tca_for_neuropathic
from fhir_pain.rules.pretest import pretest_finding
from fhir_pain.rules.safety import suicidality_finding
from fhir_pain.rules.summary import pain_summary, pgx_summary

__all__ = [
    "RuleContext", "drug_gene_finding", "pretest_finding", "opioid_for_neuropathic", "tca_for_neuropathic",
    "non_response", "referral_findings", "pgx_summary", "pain_summary", "suicidality_finding", "age_limit_finding",
]
