"""CPIC pre-test rule: a drug with a CPIC pre-test alert is ordered and no result was found for a gene it needs.

When the PGx results could not be read at all we cannot know whether a result exists: the finding then says
the check was not possible instead of claiming "no result on file".
"""
from __future__ import annotations

from fhir_pain import pgx
from fhir_pain.facts import Drug, Finding, MedicationUse
from fhir_pain.gather import PGX_SEARCHED
from fhir_pain.rules.context import RuleContext
from fhir_pain.rules.knowledge import pretest_alerts
from fhir_pain.rules.population import LONG_TERM, population
from fhir_pain.rules.text import article, fit, join_and, md

SEARCHED = "searched genotype/phenotype Observations"


def pretest_finding(ctx: RuleContext, med: MedicationUse, drug: Drug) -> Finding | None:
    alert = pretest_alerts()["drugs"].get(drug.name)
    if alert is None:
        return None
    genes_on_file = ctx.profile_for(med).genes    # gene -> phenotype: only its keys are asked about
    missing = [g for g in alert["genes"] if g not in genes_on_file]
    if not missing:
        return None
    guideline = pgx.guideline_for(drug)
    knowledge = {"source": "CPIC", "version": getattr(guideline, "version", None),
                 "url": getattr(guideline, "url", None)}
    knowledge = {k: v for k, v in knowledge.items() if v}
    genes = join_and(missing)
    evidence = (med.ref,) if med.ref and not med.ref.startswith("urn:") else ()
    if not ctx.pgx_complete:
        return Finding(
            rule=f"fhir-pain/pgx-unavailable/{drug.name}", kind="informational", indicator="info",
            action="informational", drug=drug, medication=med, evidence=evidence, knowledge=knowledge,
            summary=fit(f"PGx results could not be retrieved: {genes} check for {drug.name} not done",
                        f"PGx results unavailable: {drug.name} not checked"),
            detail=(f"The pharmacogenomic results could not be read from the EHR, so whether a {genes} result "
                    f"exists is unknown. {md(drug.name.capitalize())} is covered by a CPIC guideline ({genes}): "
                    "check the results before relying on standard dosing."),
            extra={"joins": "drug"},
        )
    wording = alert["wording"]
    indicator = alert["indicator"] if med.is_draft else "info"  # on the chart (not an order) it never interrupts
    if pgx.populations(drug) and population(ctx, drug)[0] == LONG_TERM:
        indicator = "info"   # CPIC's HLA testing is for patients new to the drug
    # "Not found" rather than "not on file": a result stored under a local lab code is not seen (the prefetch
    # searches the codes in PGX_SEARCHED), so the card says what was searched.
    return Finding(
        rule=f"cpic-pretest/{drug.name}/{'+'.join(missing)}", kind="pre-test", indicator=indicator,
        action="order-test", drug=drug, medication=med, evidence=evidence, knowledge=knowledge,
        summary=fit(f"No {genes} result found ({SEARCHED}): genotype {wording} for {drug.name}; "
                    f"consider {article(genes)} {genes} test",
                    f"No {genes} result found ({SEARCHED}) for {drug.name}; consider {article(genes)} {genes} test",
                    f"No {genes} result found ({SEARCHED}); consider a test"),
        detail="\n\n".join([
            f"**No {genes} result found.** CPIC: {genes} genotype {wording} for {md(drug.name)} dosing and use; "
            f"{md(alert['advice'])}. Consider ordering the test (a draft order is suggested) and consult a "
            "clinical pharmacist if needed.",
            f"**Searched:** the patient's Observations coded {md(join_and(PGX_SEARCHED.values()))}, and any "
            f"laboratory result naming {genes} among the Observations received. A result filed only under a local "
            "laboratory code is not found: check the laboratory record before ordering a new test.",
            ("**Source:** CPIC pre-test alert" if alert["workbook"].endswith(".xlsx") else "**Source:** CPIC")
            + f" ({md(alert['workbook'])})"
            + (f", guideline version {md(knowledge['version'])}" if knowledge.get("version") else "") + ".",
        ]),
        extra={"testGenes": missing},
    )
