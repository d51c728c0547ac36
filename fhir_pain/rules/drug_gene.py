"""Drug-gene rule: one ordered (or active) drug x the patient's PGx profile -> CPIC finding.

Facts come from the CPIC engine (fhir_pain.pgx.recommend); this module decides how loud the finding is, says
it in our words, and never gives confident advice on an ambiguous, indeterminate or conflicting result.
"""
from __future__ import annotations

from dataclasses import replace

from fhir_pain import pgx
from fhir_pain.facts import Drug, Finding, GenePhenotype, MedicationUse, Recommendation
from fhir_pain.pgx import guidance
from fhir_pain.pgx.knowledge import HLA_ALLELES
from fhir_pain.pgx.recommend import advice_of
from fhir_pain.rules.context import RuleContext
from fhir_pain.rules.population import LONG_TERM, population
from fhir_pain.rules.safety import blocked_replacement
from fhir_pain.rules.text import code, evidence_md, fit, gene_line, gene_phrase, join_and, md

ACTIONABLE = frozenset({"avoid", "use-alternative", "reduce-dose", "increase-dose", "monitor"})
# CPIC advice that asks nothing of the prescriber: silent on orders, not in the summary's "check" list.
QUIET_ACTIONS = frozenset({"standard-dose", "no-recommendation", "informational"})
REPLACE_ACTIONS = frozenset({"avoid", "use-alternative"})
MAX_ALTERNATIVES = 3


_LOUDNESS = ("critical", "warning", "info")


def indicator_for(rec: Recommendation) -> str:
    """critical for a Strong 'avoid' (or a row its guideline makes critical), warning for other actionable advice,
    info otherwise; with two guidelines on the card, the more cautious of the two."""
    if rec.others:
        return min((indicator_for(r) for r in (replace(rec, others=()), *rec.others)), key=_LOUDNESS.index)
    if rec.indicator:
        return rec.indicator
    if rec.action == "avoid" and rec.classification == "Strong":
        return "critical"
    return "warning" if rec.action in ACTIONABLE else "info"


def uncertainty(genes: dict[str, GenePhenotype], rec: Recommendation | None = None) -> dict[str, str]:
    """Genes whose result is uncertain -> why ('conflicting' | 'ambiguous' | 'indeterminate' |
    'inhibitor-strength'). Empty when the advice rests on a certain result."""
    why = (rec.uncertainty or {}).get("why") if rec is not None else None
    if why is None:
        return {}
    out = {}
    for gene, gp in genes.items():
        if gp.conflicting:
            out[gene] = "conflicting"
        elif gp.ambiguous or len(gp.possible_scores) > 1:
            out[gene] = "inhibitor-strength" if gp.phenoconverted_by and why == "inhibitor-strength" else "ambiguous"
        elif gp.phenotype == "Indeterminate" or gp.activity_score == "n/a":
            out[gene] = "indeterminate"
    return out or {g: why for g in genes}


def confirm_genes(genes: dict[str, GenePhenotype], unsure: dict[str, str]) -> list[str]:
    """Genes a confirmatory test could settle: not those whose only doubt is an inhibitor's strength on a known
    genotype (a test cannot change that); an inhibitor on an ambiguous genotype (copy number) still gets it."""
    return [g for g, why in unsure.items()
            if why != "inhibitor-strength" or genes[g].genetic_possible_scores
            or not genes[g].diplotype and genes[g].source == "computed"]


def drug_gene_finding(ctx: RuleContext, med: MedicationUse, drug: Drug) -> Finding | None:
    """The CPIC finding for ``drug`` (an ingredient of ``med``), or None when CPIC does not cover it or the
    patient has no result for its genes (the pre-test rule speaks then)."""
    if not guidance.covers(drug, ctx.guidelines):
        return None
    profile = ctx.profile_for(med, drug)
    applied, why_population = population(ctx, drug) if pgx.populations(drug) else (None, "")
    rec = ctx.recommend(drug, profile, applied, mode=ctx.guidelines)
    if rec is None:
        return None
    unsure = uncertainty(rec.genes, rec)
    evidence = _evidence(med, rec)
    finding = Finding(
        rule=rec.rule, kind="drug-gene", indicator=indicator_for(rec), summary="", drug=drug, genes=rec.genes,
        classification=rec.classification, action=rec.action, evidence=evidence, knowledge=rec.knowledge,
        medication=med, uncertainty=rec.uncertainty, population=rec.population,
        recommendations=list(rec.sources) or None,
    )
    if rec.population:
        finding.extra["populationBasis"] = why_population
    kept, dropped = safe_alternatives(ctx, med, rec.alternatives, profile) if rec.action in REPLACE_ACTIONS \
        else ([], [])
    finding.alternatives = tuple(kept)
    finding.extra["alternativesDropped"] = dropped
    if rec.action in REPLACE_ACTIONS:
        finding.extra["offerRemoval"] = True   # the card offers removing the draft when it can replace nothing
    finding.summary = _summary(rec, kept)
    if unsure:
        confirm = confirm_genes(rec.genes, unsure)
        finding.extra["uncertainty"] = unsure
        if confirm:
            finding.extra["confirmGenes"] = confirm
        finding.summary = _uncertain_summary(rec, kept, unsure, confirm)
        if rec.action in QUIET_ACTIONS and indicator_for(rec) == "info":
            finding.indicator = "info"
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
        blocked = blocked_replacement(ctx, alt)     # e.g. no tricyclic draft while PHQ-9 item 9 is endorsed
        if blocked:
            dropped.append(blocked)
            continue
        if ctx.on_drug(alt, exclude=med) is not None:
            dropped.append(f"{alt.name} (already prescribed)")
            continue
        if pgx.guideline_for(alt) is not None:
            arec = ctx.recommend(alt, profile)
            if arec is not None and (arec.action in REPLACE_ACTIONS or uncertainty(arec.genes, arec)):
                genes = ", ".join(gene_phrase(g, gp) for g, gp in arec.genes.items())
                dropped.append(f"{alt.name} (CPIC advice for {genes}: {arec.action})")
                continue
        kept.append(alt)
        if len(kept) == MAX_ALTERNATIVES:
            break
    return kept, dropped


def _if_inhibitor_stopped(ctx: RuleContext, f: Finding, rec: Recommendation) -> list[str]:
    """Phenoconversion hides the genetic phenotype only while the inhibitor is taken: when the genetic advice
    differs (e.g. an ultrarapid metabolizer on fluoxetine), say what stopping the inhibitor brings back."""
    converted = [(g, gp) for g, gp in rec.genes.items() if gp.phenoconverted_by and gp.genetic_phenotype]
    if not converted or f.drug is None:
        return []
    genetic_profile = ctx.genetic_profile()
    if ctx.guidelines == "cpic" and advice_of(f.drug, genetic_profile) in (None, (rec.action, rec.recommendation)):
        return []    # the same advice (or none): what ctx.recommend would give is not needed
    genetic = ctx.recommend(f.drug, genetic_profile, mode=ctx.guidelines)
    if genetic is None or (genetic.action == rec.action and genetic.recommendation == rec.recommendation):
        return []
    inhibitors = join_and(sorted({n for _, gp in converted for n in gp.phenoconverted_by}))
    phenos = join_and([f"{g} {gp.genetic_phenotype}" for g, gp in converted])
    return [f"**If {md(inhibitors)} is stopped:** activity returns to the genetic phenotype ({md(phenos)}), and "
            f"{md(_source(genetic))}'s advice becomes: {md(genetic.classification)}, {md(genetic.recommendation)}"
            + (" Stopping the inhibitor brings the toxicity risk back." if genetic.action in ("avoid",)
               and any(gp.genetic_phenotype == "Ultrarapid Metabolizer" for _, gp in converted) else "")]


def _evidence(med: MedicationUse, rec: Recommendation) -> tuple[str, ...]:
    refs = list(rec.evidence)
    for gp in rec.genes.values():
        refs.extend(gp.evidence)
    if med.ref and not med.ref.startswith("urn:"):
        refs.append(med.ref)
    return tuple(dict.fromkeys(refs))


def _genes_phrase(genes: dict[str, GenePhenotype]) -> str:
    return " + ".join(gene_phrase(g, gp) for g, gp in genes.items())


def _source(rec: Recommendation) -> str:
    return (rec.knowledge or {}).get("source", "CPIC")


_ACTION_WORDS = {"avoid": "avoid", "use-alternative": "use an alternative", "reduce-dose": "lower dose",
                 "increase-dose": "higher dose", "monitor": "monitor response", "standard-dose": "standard dosing",
                 "no-recommendation": "no advice"}


def _cite(rec: Recommendation) -> str:
    """The guideline (and its strength) the summary names; the other guideline's word when one is beside it."""
    own = f"CPIC {rec.classification}" if _source(rec) == "CPIC" else _source(rec)
    for other in rec.others:
        own += f"; {_source(other)} " + ("agrees" if other.action == rec.action
                                         else _ACTION_WORDS.get(other.action, other.action))
    return own


def _summary(rec: Recommendation, alternatives: list[Drug]) -> str:
    genes, drug, cls = _genes_phrase(rec.genes), rec.drug.name, rec.classification
    alts = join_and([a.name for a in alternatives], "or")
    tail = f" ({_cite(rec)})"
    if rec.action == "avoid":
        return fit(f"{genes}: avoid {drug}" + (f"; consider {alts}" if alts else "") + tail,
                   f"{genes}: avoid {drug}" + tail, f"{genes}: avoid {drug}")
    if rec.action == "use-alternative":
        return fit(f"{genes}: use an alternative to {drug}" + (f", e.g. {alts}" if alts else "") + tail,
                   f"{genes}: use an alternative to {drug}" + tail, f"{genes}: use an alternative to {drug}")
    if rec.action == "reduce-dose" and rec.recommendation.startswith("Usual first (loading) dose"):
        return fit(f"{genes}: usual {drug} loading dose, then a lower maintenance dose" + tail,
                   f"{genes}: usual {drug} loading dose, lower maintenance dose")
    if rec.action == "reduce-dose" and rec.recommendation.startswith("Start at the recommended starting dose"):
        return fit(f"{genes}: usual {drug} start, slower titration, lower maintenance dose" + tail,
                   f"{genes}: slower {drug} titration, lower maintenance dose")
    if rec.action == "reduce-dose":
        return fit(f"{genes}: start {drug} at a lower dose" + tail, f"{genes}: lower {drug} dose")
    if rec.action == "monitor" and rec.population == LONG_TERM:
        # HLA risk allele, drug used > 3 months: CPIC's "cautiously consider" holds only without a skin reaction
        return fit(f"{genes}: {drug} > 3 months; cautiously continue if no skin reaction" + tail,
                   f"{genes}: {drug} > 3 months; cautiously continue if no skin reaction",
                   f"{genes}: cautiously continue {drug}")
    if rec.action == "monitor":
        # CPIC's "monitor" texts (codeine, tramadol, hydrocodone): label dosing, and *consider* another drug if there
        # is no response; for hydrocodone CPIC does not say relief is reduced, so the summary does not either
        return fit(f"{genes}: label {drug} dosing; if no response, consider an alternative" + tail,
                   f"{genes}: label {drug} dosing; if no response, consider another drug" + tail,
                   f"{genes}: label {drug} dosing; consider another drug if no response",
                   f"{genes}: monitor {drug} response")
    if rec.action == "increase-dose":
        return fit(f"{genes}: higher {drug} dose with monitoring, or avoid" + tail,
                   f"{genes}: higher {drug} dose with monitoring, or avoid")
    if rec.action == "standard-dose":
        return fit(f"{genes}: standard {drug} dosing" + tail, f"{genes}: standard {drug} dosing")
    src = _source(rec)
    return fit(f"{genes}: no {src} dosing recommendation for {drug}", f"{genes}: no {src} advice for {drug}")


_WHY_WORDS = {"conflicting": "Conflicting {gene} results", "ambiguous": "Ambiguous {gene} result",
              "indeterminate": "{gene} indeterminate", "inhibitor-strength": "{gene} inhibitor of uncertain strength",
              "mapping": "{gene} result read two ways by DPWG"}


def _uncertain_summary(rec: Recommendation, alternatives: list[Drug], unsure: dict[str, str],
                       confirm: list[str]) -> str:
    """The advice safe under every possibility, said as such: why the data are uncertain, what to do, and which
    possibility the advice comes from when the possibilities differ."""
    gene, why = next(iter(unsure.items()))
    head = _WHY_WORDS[why].format(gene=gene)
    if gene in HLA_ALLELES and why != "conflicting":
        head = f"{gene}{HLA_ALLELES[gene]} status unknown"
    drug, cls = rec.drug.name, rec.classification
    u = rec.uncertainty or {}
    basis = u.get("basis") or {}
    if_what = basis.get("phenotype") or ", ".join(   # multi-gene tables: the uncertain genes' phenotypes
        f"{g} {v.get('phenotype')}" for g, v in (basis.get("genes") or {}).items() if g in unsure)
    # "if <phenotype>" only when the possibilities disagree on what to do: when all say avoid, no hedging
    hedge = len({p.get("action") for p in u.get("possibilities", ())}) > 1 and if_what
    src = f"CPIC {cls}" if _source(rec) == "CPIC" else _cite(rec)
    tail = f" ({src}{f' if {if_what}' if hedge else ''})"
    test = f"; confirm {join_and(confirm)}" if confirm else ""
    doing = {
        "avoid": f"avoid {drug}", "use-alternative": f"use an alternative to {drug}",
        "reduce-dose": f"start {drug} at a lower dose",
        "monitor": f"cautiously consider {drug}" if rec.population == LONG_TERM
        else f"label {drug} dosing, consider another if no response",
        "standard-dose": f"standard {drug} dosing", "increase-dose": f"higher {drug} dose with monitoring, or avoid",
    }.get(rec.action)
    if doing is None:
        return fit(f"{head}: {_source(rec)} has no recommendation for {drug} for this result{test}",
                   f"{head}: no {_source(rec)} recommendation for {drug}{test}")
    return fit(f"{head}: {doing}{tail}{test}", f"{head}: {doing} ({src}){test}", f"{head}: {doing}{test}",
               f"{gene}: {doing}")


def _uncertainty_lines(rec: Recommendation, unsure: dict[str, str]) -> list[str]:
    u = rec.uncertainty or {}
    lines = []
    for gene, why in unsure.items():
        gp = rec.genes[gene]
        if why == "conflicting":
            lines.append(f"**Conflicting results:** the {gene} results on file disagree. A person has one genotype, "
                         "so one of them is wrong; the advice below is the one that is safe under each until a "
                         "confirmatory test settles it.")
        elif gene in HLA_ALLELES and why in ("ambiguous", "indeterminate"):
            lines.append(f"**Uncertain result:** the {gene} result on file does not say whether "
                         f"{md(gene + HLA_ALLELES[gene])} is present (not reported, or not readable). It is not taken as "
                         "negative: the advice below is the one that is safe whether the allele is present or not, "
                         f"until a confirmatory {gene} test settles it.")
        elif why == "ambiguous":
            scores = ", ".join(code(s) for s in gp.possible_scores) or "several"
            lines.append(f"**Ambiguous result:** the {gene} result allows several activity scores ({scores}); "
                         "the advice below is the one that is safe under each. A test that resolves the copy "
                         "number or the duplicated allele settles it.")
        elif why == "mapping":
            lines.append(f"**DPWG phenotype uncertain:** DPWG assigns phenotypes from allele functions, not CPIC's "
                         f"activity scores; without a diplotype DPWG can read on its own, this {gene} result can be "
                         "more than one DPWG phenotype. The advice below is the one that is safe under each; a "
                         "genotype (diplotype) result settles it.")
        elif why == "inhibitor-strength":
            lines.append(f"**Inhibitor of uncertain strength:** {md(join_and(gp.phenoconverted_by))} is a strong "
                         f"{gene} inhibitor in one source and moderate in another; the advice below is the one "
                         "that is safe under each strength.")
        else:
            lines.append(f"**Indeterminate:** the {gene} result contains an allele of unknown or uncertain "
                         f"function. CPIC's row for this result is applied; a confirmatory test may resolve it.")
    possible = u.get("possibilities") or []
    if len(possible) > 1:
        rows = []
        for p in possible:
            if "genes" in p:
                what = "; ".join(f"{g} {v.get('phenotype', '')}" + (f" ({v['activityScore']})"
                                 if v.get("activityScore") and v["activityScore"] != "No Result" else "")
                                 for g, v in p["genes"].items())
            else:
                what = p.get("phenotype", "") + (f" (activity score {p['activityScore']})"
                                                 if p.get("activityScore") and p["activityScore"] != "No Result"
                                                 else "")
            src = f" (from {md(p['source'])})" if p.get("source") else ""
            if p.get("dpwgPhenotype"):
                what += f" = DPWG {p['dpwgPhenotype']}"
            rows.append(f"- {md(what)}: {md(_source(rec))} {md(p['classification'])}, {md(p['action'])}{src}")
        lines.append(f"**Possibilities and {md(_source(rec))}'s advice for each:**\n" + "\n".join(rows))
    return lines


def _population_line(f: Finding, rec: Recommendation) -> str:
    line = (f"**Population:** CPIC's rows for {'patients who have used' if rec.population == LONG_TERM else 'patients new to'} "
            f"{md(rec.drug.name)}{' for longer than three months' if rec.population == LONG_TERM else ''} applied "
            f"({md(rec.population)}): {md(f.extra.get('populationBasis', ''))}.")
    if rec.population == LONG_TERM:
        line += (" CPIC's advice for them holds only if no cutaneous adverse reaction occurred: check the patient's "
                 "record (allergies and reactions are not read here).")
    return line


def _sources_lines(rec: Recommendation) -> list[str]:
    """Under GUIDELINES dpwg/both: the DPWG phenotype applied, why another guideline is shown, and its advice."""
    lines = []
    for e in rec.sources:
        if e.get("source") == "DPWG" and e.get("phenotype"):
            lines.append("**DPWG phenotype:** " + md(", ".join(f"{g} {p}" for g, p in e["phenotype"].items())))
        if e.get("source") == "DPWG":     # the attribution CC BY-SA 4.0 asks for, on every card citing DPWG
            lines.append(f"**DPWG source:** {md(e.get('guideline', 'DPWG guideline'))} ({md(e.get('url', ''))}): "
                         f"PharmGKB/ClinPGx annotation of the DPWG guideline, CC BY-SA 4.0; data "
                         f"{md(e.get('version', ''))}.")
    if rec.note:
        lines.append(f"**Guideline sources:** {md(rec.note)}")
    for other in rec.others:
        verdict = "agrees" if other.action == rec.action else \
            f"differs: {_ACTION_WORDS.get(other.action, other.action)}"
        lines.append(f"**{md(_source(other))} ({verdict}):** {md(other.classification)}. "
                     f"{md(other.recommendation)}")
    return lines


def _detail(ctx: RuleContext, f: Finding, rec: Recommendation, unsure: dict[str, str]) -> str:
    lines: list[str] = _uncertainty_lines(rec, unsure) if unsure else []
    basis = (rec.uncertainty or {}).get("basis")
    if basis and rec.ambiguous:
        lines.append(f"**Advice given:** {md(_source(rec))}'s advice for the most cautious possibility "
                     f"({md(basis.get('phenotype') or 'see above')}" + (f", from {md(basis['source'])}"
                     if basis.get("source") else "") + ").")
    lines.append(f"**Implication:** {md(rec.implication)}")
    lines.append(f"**Recommendation:** {md(rec.recommendation)}")
    lines.append(f"**Classification:** {md(_source(rec))} {md(rec.classification)}")
    lines.extend(_sources_lines(rec))
    if rec.population:
        lines.append(_population_line(f, rec))
    how = handling(f.medication, f.alternatives) if rec.action in REPLACE_ACTIONS else ""
    if f.alternatives:
        lines.append("**Alternatives** (checked against this patient's genotype): "
                     + md(join_and([a.name for a in f.alternatives])) + ". " + how)
    elif how:
        lines.append(f"**Acting on it:** {how}")
    dropped = f.extra.get("alternativesDropped") or []
    if dropped:
        lines.append("**Not suggested:** " + md("; ".join(dropped)) + ".")
    lines.extend(_if_inhibitor_stopped(ctx, f, rec))
    lines.append("**Genotype:**\n" + "\n".join([f"- {gene_line(g, gp)}" for g, gp in rec.genes.items()]))
    notes = [n for gp in rec.genes.values() for n in gp.notes]
    if notes:
        lines.append("**Notes on the results:**\n" + "\n".join([f"- {md(n)}" for n in dict.fromkeys(notes)]))
    if not ctx.meds_complete and any(g == "CYP2D6" for g in rec.genes):
        lines.append("**Caution:** the active medication list could not be read, so CYP2D6 inhibitors "
                     "(phenoconversion) could not be checked.")
    if not ctx.pgx_complete:
        lines.append("**Caution:** not all pharmacogenomic results could be read; a newer result may exist.")
    if f.evidence:
        lines.append(evidence_md(f.evidence))
    k = rec.knowledge or {}
    if k:
        lines.append(f"**Guideline:** {md(k.get('source', 'CPIC'))} {md(k.get('version', ''))}".rstrip())
    return "\n\n".join(lines)
