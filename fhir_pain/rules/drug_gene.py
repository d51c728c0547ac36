"""Drug-gene rule: one ordered (or active) drug x the patient's PGx profile -> CPIC finding.

Facts come from the CPIC engine (fhir_pain.pgx.recommend); this module decides how loud the finding is, says
it in our words, and never gives confident advice on an ambiguous, indeterminate or conflicting result.
"""
from __future__ import annotations

from fhir_pain import pgx
from fhir_pain.facts import Drug, Finding, GenePhenotype, MedicationUse, Recommendation
from fhir_pain.rules.context import RuleContext
from fhir_pain.rules.text import code, fit, gene_line, gene_phrase, join_and, md

ACTIONABLE = frozenset({"avoid", "use-alternative", "reduce-dose", "monitor"})
# CPIC advice that asks nothing of the prescriber: silent on orders, not in the summary's "check" list.
QUIET_ACTIONS = frozenset({"standard-dose", "no-recommendation", "informational"})
REPLACE_ACTIONS = frozenset({"avoid", "use-alternative"})
MAX_ALTERNATIVES = 3


def indicator_for(rec: Recommendation) -> str:
    """critical for a Strong 'avoid', warning for other actionable advice, info otherwise."""
    if rec.action == "avoid" and rec.classification == "Strong":
        return "critical"
    return "warning" if rec.action in ACTIONABLE else "info"


def uncertainty(genes: dict[str, GenePhenotype], rec: Recommendation | None = None) -> dict[str, str]:
    """Genes whose result must not carry confident advice -> why ('conflicting' | 'ambiguous' | 'indeterminate').
    Conflicting: results on file disagree on the phenotype. A person has one germline genotype, so that means an
    error somewhere: no confident advice, whichever result is newest."""
    out = {}
    for gene, gp in genes.items():
        if gp.conflicting:
            out[gene] = "conflicting"
        elif gp.ambiguous or (rec is not None and rec.ambiguous and len(gp.possible_scores) > 1):
            out[gene] = "ambiguous"
        elif gp.phenotype == "Indeterminate":
            out[gene] = "indeterminate"
    if rec is not None and rec.ambiguous and not out:
        out = {g: "ambiguous" for g in genes}
    return out


def drug_gene_finding(ctx: RuleContext, med: MedicationUse, drug: Drug) -> Finding | None:
    """The CPIC finding for ``drug`` (an ingredient of ``med``), or None when CPIC does not cover it or the
    patient has no result for its genes (the pre-test rule speaks then)."""
    if pgx.guideline_for(drug) is None:
        return None
    profile = ctx.profile_for(med)
    rec = pgx.recommend(drug, profile)
    if rec is None:
        return None
    unsure = uncertainty(rec.genes, rec)
    evidence = _evidence(med, rec)
    finding = Finding(
        rule=rec.rule, kind="drug-gene", indicator=indicator_for(rec), summary="", drug=drug, genes=rec.genes,
        classification=rec.classification, action=rec.action, evidence=evidence, knowledge=rec.knowledge,
        medication=med,
    )
    if unsure:
        _uncertain(finding, rec, unsure)
    else:
        kept, dropped = safe_alternatives(ctx, med, rec.alternatives, profile) if rec.action in REPLACE_ACTIONS \
            else ([], [])
        finding.alternatives = tuple(kept)
        finding.summary = _summary(rec, kept)
        finding.extra["alternativesDropped"] = dropped
        if rec.action in REPLACE_ACTIONS:
            finding.extra["offerRemoval"] = True   # the card offers removing the draft when it can replace nothing
    finding.detail = _detail(ctx, finding, rec, unsure)
    return finding


def removable_draft(med: MedicationUse | None) -> str | None:
    """``MedicationRequest/<id>`` of a draft a card may delete; None for active medications (cards never change
    them) and drafts without an id (a delete action needs a resourceId)."""
    if med is None or not med.is_draft or not med.ref.startswith("MedicationRequest/") \
            or med.ref == "MedicationRequest/":
        return None
    return med.ref


def handling(med: MedicationUse, alternatives=()) -> str:
    """How to act on advice to stop or replace ``med`` when the card cannot do it all: "" for a draft the card
    can remove (fhir_pain.cards offers a replacement draft, or a self-explaining delete-only suggestion when none
    can be made; a rule may still withdraw that offer, so the text does not promise it)."""
    if not med.is_draft:
        return "This is an active prescription: review it with the patient (cards never change it)."
    if is_combination(med):
        return "This is a combination product: replace it by hand so that its other ingredients are kept."
    if removable_draft(med) is None:
        return "This draft has no id the card could act on: change it by hand."
    coded = [a for a in alternatives if pgx.code_verified(a.rxnorm)]
    by_hand = [a.name for a in alternatives if not pgx.code_verified(a.rxnorm)]
    how = ["A suggested draft has no dose: complete it."] if coded else []
    if by_hand:
        how.append(f"Order {join_and(by_hand)} by hand: no draft is offered because its RxNorm code is not "
                   "verified here.")
    return " ".join(how)


def is_combination(med: MedicationUse) -> bool:
    """A multi-ingredient product (RxNorm names join ingredients with " / "): replacing the whole order with one
    alternative ingredient would silently drop the others, so no automatic replacement is offered for it."""
    return len(med.ingredients) > 1 or " / " in (med.text or "")


def safe_alternatives(ctx: RuleContext, med: MedicationUse | None, alternatives, profile
                      ) -> tuple[list[Drug], list[str]]:
    """CPIC's named alternatives minus those this patient's own genotype argues against (or that are uncertain
    for them) and those already prescribed. Returns (kept, reasons for the dropped ones)."""
    kept, dropped = [], []
    for alt in alternatives:
        if ctx.on_drug(alt, exclude=med) is not None:
            dropped.append(f"{alt.name} (already prescribed)")
            continue
        if pgx.guideline_for(alt) is not None:
            arec = pgx.recommend(alt, profile)
            if arec is not None and (arec.action in REPLACE_ACTIONS or uncertainty(arec.genes, arec)):
                genes = ", ".join(gene_phrase(g, gp) for g, gp in arec.genes.items())
                dropped.append(f"{alt.name} (CPIC advice for {genes}: {arec.action})")
                continue
        kept.append(alt)
        if len(kept) == MAX_ALTERNATIVES:
            break
    return kept, dropped


def _evidence(med: MedicationUse, rec: Recommendation) -> tuple[str, ...]:
    refs = list(rec.evidence)
    for gp in rec.genes.values():
        refs.extend(gp.evidence)
    if med.ref and not med.ref.startswith("urn:"):
        refs.append(med.ref)
    return tuple(dict.fromkeys(refs))


def _genes_phrase(genes: dict[str, GenePhenotype]) -> str:
    return " + ".join(gene_phrase(g, gp) for g, gp in genes.items())


def _summary(rec: Recommendation, alternatives: list[Drug]) -> str:
    genes, drug, cls = _genes_phrase(rec.genes), rec.drug.name, rec.classification
    alts = join_and([a.name for a in alternatives], "or")
    tail = f" (CPIC {cls})"
    if rec.action == "avoid":
        return fit(f"{genes}: avoid {drug}" + (f"; consider {alts}" if alts else "") + tail,
                   f"{genes}: avoid {drug}" + tail, f"{genes}: avoid {drug}")
    if rec.action == "use-alternative":
        return fit(f"{genes}: use an alternative to {drug}" + (f", e.g. {alts}" if alts else "") + tail,
                   f"{genes}: use an alternative to {drug}" + tail, f"{genes}: use an alternative to {drug}")
    if rec.action == "reduce-dose":
        return fit(f"{genes}: start {drug} at a lower dose" + tail, f"{genes}: lower {drug} dose")
    if rec.action == "monitor":
        # CPIC's "monitor" texts (codeine, tramadol, hydrocodone): label dosing, and *consider* another drug if there
        # is no response; for hydrocodone CPIC does not say relief is reduced, so the summary does not either
        return fit(f"{genes}: label {drug} dosing; if no response, consider an alternative" + tail,
                   f"{genes}: label {drug} dosing; if no response, consider another drug" + tail,
                   f"{genes}: label {drug} dosing; consider another drug if no response",
                   f"{genes}: monitor {drug} response")
    if rec.action == "standard-dose":
        return fit(f"{genes}: standard {drug} dosing" + tail, f"{genes}: standard {drug} dosing")
    return fit(f"{genes}: no CPIC dosing recommendation for {drug}", f"{genes}: no CPIC advice for {drug}")


def _uncertain(finding: Finding, rec: Recommendation, unsure: dict[str, str]) -> None:
    """Ambiguous / indeterminate / conflicting: say what is uncertain, advise no action, offer a confirmatory test."""
    gene = next(iter(unsure))
    why = unsure[gene]
    gp = rec.genes[gene]
    dip = f" ({gp.diplotype})" if gp.diplotype else ""
    drug = rec.drug.name
    finding.action = "order-test"
    finding.alternatives = ()
    finding.extra["confirmGenes"] = list(unsure)
    finding.extra["uncertainty"] = unsure
    if why == "ambiguous":
        finding.indicator = "warning"
        finding.summary = fit(f"{gene} result{dip} is ambiguous for {drug}: advice differs by score; confirm genotype",
                              f"{gene} result is ambiguous for {drug}: confirm genotype before relying on it")
    elif why == "conflicting":
        finding.indicator = "warning"
        finding.summary = fit(f"Conflicting {gene} results on file: {drug} advice uncertain; confirm genotype",
                              f"Conflicting {gene} results: confirm genotype")
    else:
        finding.indicator = "info"
        finding.summary = fit(f"{gene} indeterminate{dip}: CPIC gives no {drug} advice; consider confirmatory test",
                              f"{gene} indeterminate: no CPIC advice for {drug}; consider confirmatory test")


def _detail(ctx: RuleContext, f: Finding, rec: Recommendation, unsure: dict[str, str]) -> str:
    lines: list[str] = []
    if unsure:
        for gene, why in unsure.items():
            gp = rec.genes[gene]
            if why == "ambiguous":
                scores = ", ".join(code(s) for s in gp.possible_scores) or "several"
                lines.append(f"**Ambiguous result:** the {gene} result allows several activity scores ({scores}) "
                             f"that lead to different CPIC advice for {md(rec.drug.name)}. No recommendation is "
                             "made on it; a confirmatory test that resolves the copy number or allele is suggested.")
            elif why == "conflicting":
                lines.append(f"**Conflicting results:** the {gene} results on file disagree. Do not rely on either "
                             "until a confirmatory test settles it.")
            else:
                lines.append(f"**Indeterminate:** the {gene} result contains an allele of unknown or uncertain "
                             f"function, so CPIC makes no recommendation for {md(rec.drug.name)}. A confirmatory "
                             "test may resolve it.")
    else:
        lines.append(f"**Implication:** {md(rec.implication)}")
        lines.append(f"**Recommendation:** {md(rec.recommendation)}")
        lines.append(f"**Classification:** CPIC {md(rec.classification)}")
        how = handling(f.medication, f.alternatives) if rec.action in REPLACE_ACTIONS else ""
        if f.alternatives:
            lines.append("**Alternatives** (checked against this patient's genotype): "
                         + md(join_and([a.name for a in f.alternatives])) + ". " + how)
        elif how:
            lines.append(f"**Acting on it:** {how}")
        dropped = f.extra.get("alternativesDropped") or []
        if dropped:
            lines.append("**Not suggested:** " + md("; ".join(dropped)) + ".")
    lines.append("**Genotype:**\n" + "\n".join(f"- {gene_line(g, gp)}" for g, gp in rec.genes.items()))
    notes = [n for gp in rec.genes.values() for n in gp.notes]
    if notes:
        lines.append("**Notes on the results:**\n" + "\n".join(f"- {md(n)}" for n in dict.fromkeys(notes)))
    if not ctx.meds_complete and any(g == "CYP2D6" for g in rec.genes):
        lines.append("**Caution:** the active medication list could not be read, so CYP2D6 inhibitors "
                     "(phenoconversion) could not be checked.")
    if not ctx.pgx_complete:
        lines.append("**Caution:** not all pharmacogenomic results could be read; a newer result may exist.")
    if f.evidence:
        lines.append("**Evidence:** " + ", ".join(md(e) for e in f.evidence))
    k = rec.knowledge or {}
    if k:
        lines.append(f"**Guideline:** {md(k.get('source', 'CPIC'))} {md(k.get('version', ''))}".rstrip())
    return "\n\n".join(lines)
