"""(drug, PGx profile) -> the CPIC recommendation, looked up in the generated tables.

The lookup key per gene is what CPIC keys its table by: the activity score ("1.25", "≥3.0", "n/a") or the
phenotype; "No Result" for a gene of a two-gene table the patient has no result for. A score CPIC does not list
(e.g. 0.625 after phenoconversion) falls back to the entries of its phenotype. When a result has several options
(ambiguous duplication, uncertain inhibitor strength) every option is looked up: the same advice -> that advice at
the weakest classification among them; different advice -> an ambiguous Recommendation that gives none.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import product

from fhir_pain.facts import Drug, GenePhenotype, Recommendation
from fhir_pain.pgx.drugs import drug_by_name
from fhir_pain.pgx.knowledge import CLASS_ORDER, NO_RESULT, DrugTable, drug_tables, informational, key_phenotype
from fhir_pain.pgx.phenotype import Option
from fhir_pain.pgx.profile import PgxProfile


@dataclass(frozen=True)
class Guideline:
    drug: Drug
    genes: tuple[str, ...]
    name: str
    url: str
    version: str
    pmids: tuple[str, ...] = ()
    origin: str = ""

    @property
    def knowledge(self) -> dict:
        return {"source": "CPIC", "version": self.version, "url": self.url}


def _table(drug: Drug) -> DrugTable | None:
    if not isinstance(drug, Drug):
        return None
    return drug_tables().get(drug.rxnorm)


def guideline_for(drug: Drug) -> Guideline | None:
    """The CPIC guideline covering this ingredient, or None when we cover none."""
    return _guideline(drug.rxnorm) if isinstance(drug, Drug) and isinstance(drug.rxnorm, str) else None


@lru_cache(maxsize=None)
def _guideline(rxnorm: str) -> Guideline | None:
    t = drug_tables().get(rxnorm)
    if t is None:
        return None
    g = t.guideline
    return Guideline(drug=Drug(t.rxnorm, t.name), genes=t.genes, name=g["name"], url=g["url"], version=g["version"],
                     pmids=tuple(g.get("pmids", ())), origin=t.origin)


def _options(profile: PgxProfile, gene: str, gp: GenePhenotype | None) -> tuple[Option, ...]:
    if gp is None:
        return ((NO_RESULT, NO_RESULT),)
    opts = profile.options.get(gene) if isinstance(profile, PgxProfile) else None
    if opts:
        return opts
    if gp.possible_scores:      # a GenePhenotype built elsewhere: rebuild the options from its scores
        return tuple((s, key_phenotype(gene, s)) for s in gp.possible_scores)
    return ((gp.activity_score, gp.phenotype),)


def _key(key_type: str, option: Option) -> str:
    score, phenotype = option
    if score == NO_RESULT:
        return NO_RESULT
    if key_type == "phenotype":
        return phenotype
    if score is not None:
        return score
    return "n/a" if phenotype == "Indeterminate" else ""


def _entries_for(t: DrugTable, combo: tuple[Option, ...]) -> tuple[int, ...]:
    key = tuple(_key(kt, o) for kt, o in zip(t.key_types, combo))
    idx = t.lookup.get(key)
    if idx is not None:
        return (idx,)
    phenotypes = tuple(NO_RESULT if o[0] == NO_RESULT else o[1] for o in combo)
    return t.by_phenotypes.get(phenotypes, ())


def _same_advice(entries: list[dict]) -> bool:
    first = entries[0]
    return all(e["action"] == first["action"] and e["gist"] == first["gist"] for e in entries[1:])


@lru_cache(maxsize=None)
def _entry_view(rxnorm: str, idx: int) -> tuple[str, tuple[Drug, ...]]:
    """(implication text, named alternatives) of one table entry, built once."""
    t = drug_tables()[rxnorm]
    entry = t.entries[idx]
    return _implication(t, entry), _alternatives(entry)


def _implication(t: DrugTable, entry: dict) -> str:
    parts = [f"{g}: {entry['implications'][g]}" for g in t.genes if g in entry.get("implications", {})]
    if len(t.genes) == 1 and parts:
        return entry["implications"][t.genes[0]]
    return "; ".join(parts) or "n/a"


def _alternatives(entry: dict) -> tuple[Drug, ...]:
    out = []
    for name in entry.get("alternatives", ()):
        d = drug_by_name(name)
        if d is not None:
            out.append(d)
    return tuple(out)


def _describe(gene: str, gp: GenePhenotype | None, options: tuple[Option, ...]) -> str:
    listed = ", ".join(f"{p}{f' (activity score {s})' if s and s != NO_RESULT else ''}" for s, p in options)
    return f"{gene} {gp.diplotype or ''} may be {listed}".replace("  ", " ")


def recommend(drug: Drug, profile: PgxProfile) -> Recommendation | None:
    """CPIC's recommendation for ``drug`` given ``profile``; None when CPIC does not cover the drug here or the
    profile has no result for any of the guideline's genes (the rules layer raises the pre-test alert then)."""
    t = _table(drug)
    if t is None or not isinstance(profile, PgxProfile):
        return None
    present = {g: profile.genes.get(g) for g in t.genes}
    if all(gp is None for gp in present.values()):
        return None
    per_gene = [_options(profile, g, present[g]) for g in t.genes]
    if all(len(o) == 1 for o in per_gene):      # the usual case: one option per gene
        found = _entries_for(t, tuple(o[0] for o in per_gene))
        missing = not found
    else:
        found, missing = (), False
        for combo in product(*per_gene):
            idxs = _entries_for(t, combo)
            missing = missing or not idxs
            found += tuple(i for i in idxs if i not in found)
    entries = [t.entries[i] for i in found]
    guideline = _guideline(t.rxnorm)
    genes = {g: gp for g, gp in present.items() if gp is not None}
    evidence = tuple(dict.fromkeys(ref for gp in genes.values() for ref in gp.evidence))
    rule = f"cpic/{t.name}/{'+'.join(t.genes)}"
    the_drug = guideline.drug
    if entries and not missing and _same_advice(entries):
        best = min(found, key=lambda i: CLASS_ORDER[t.entries[i]["classification"]])
        entry = t.entries[best]
        implication, alternatives = _entry_view(t.rxnorm, best)
        return Recommendation(
            drug=the_drug, genes=genes, rule=rule, implication=implication, recommendation=entry["gist"],
            classification=entry["classification"], action=entry["action"], alternatives=alternatives,
            knowledge=guideline.knowledge, evidence=evidence, ambiguous=False)
    if not entries:
        return Recommendation(
            drug=the_drug, genes=genes, rule=rule, implication="CPIC's table has no entry for this result.",
            recommendation=f"CPIC gives no genotype-based advice for {t.name} with this result.",
            classification="No Recommendation", action="no-recommendation", knowledge=guideline.knowledge,
            evidence=evidence, ambiguous=False)
    # the possible results lead to different advice: say why, advise nothing
    reasons, hints = [], []
    for g, kt, opts in zip(t.genes, t.key_types, per_gene):
        gp = present[g]
        if len(opts) > 1:
            reasons.append(_describe(g, gp, opts))
            if gp is not None and (gp.diplotype or "").endswith("N"):     # "*1/*4xN", "(*1/*4)3N"
                hints.append(f"confirm the {g} genotype (which allele is duplicated, and its copy number)")
            if gp is not None and gp.phenoconverted_by:
                hints.append(f"review {', '.join(gp.phenoconverted_by)} ({g} inhibitor of uncertain strength)")
        elif kt == "activityScore" and opts[0][0] is None and opts[0][1] != NO_RESULT:
            reasons.append(f"{g} {opts[0][1]} was reported without a diplotype or activity score, and CPIC's "
                           f"advice differs between the scores of that phenotype")
            hints.append(f"obtain the {g} diplotype")
    advice = "; ".join(f"{e['classification']}: {e['gist']}" for e in entries)
    return Recommendation(
        drug=the_drug, genes=genes, rule=rule,
        implication="The result is ambiguous: " + ("; ".join(reasons) or "the possible results differ") + ".",
        recommendation=(f"CPIC's advice for {t.name} differs between the possible results, so none is given. "
                        f"Confirm before relying on it: {'; '.join(dict.fromkeys(hints)) or 'repeat the test'}. "
                        f"Possible advice: {advice}"),
        classification="No Recommendation", action="no-recommendation", alternatives=(),
        knowledge=guideline.knowledge, evidence=evidence, ambiguous=True)


def informational_recommendations(drug: Drug, profile: PgxProfile) -> list[Recommendation]:
    """CPIC's 'no recommendation' information (OPRM1, COMT for opioids) for genes the profile has a result for."""
    if not isinstance(drug, Drug) or not isinstance(profile, PgxProfile):
        return []
    out = []
    for gene, info in informational().items():
        gp = profile.genes.get(gene)
        if gp is None or drug.name not in info["drugs"]:
            continue
        g = info["guideline"]
        out.append(Recommendation(
            drug=drug, genes={gene: gp}, rule=f"cpic/{drug.name}/{gene}", implication=info["implication"],
            recommendation=info["gist"], classification=info["classification"], action=info["action"],
            knowledge={"source": "CPIC", "version": g["version"], "url": g["url"]}, evidence=gp.evidence))
    return out
