"""(drug, PGx profile) -> the CPIC recommendation, looked up in the generated tables.

The lookup key per gene is what CPIC keys its table by: the activity score ("1.25", "≥3.0", "n/a") or the
phenotype; "No Result" for a gene of a two-gene table the patient has no result for. A score CPIC does not list
(e.g. 0.625 after phenoconversion) falls back to the entries of its phenotype. When the results leave several
possibilities open every one is looked up: the same advice -> that advice at the weakest classification among them;
different advice -> the most cautious advice any of them carries, with every possibility listed (``uncertainty``).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import product

from fhir_pain.facts import Drug, GenePhenotype, Recommendation
from fhir_pain.pgx.drugs import drug_by_name
from fhir_pain.pgx.knowledge import (
    CLASS_ORDER, DEFAULT_POPULATION, NO_RESULT, DrugTable, drug_tables, informational, key_phenotype,
)
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


@lru_cache(maxsize=None)
def _rule_id(rxnorm: str) -> str:
    t = drug_tables()[rxnorm]
    return f"cpic/{t.name}/{'+'.join(t.genes)}"


_NO_RESULT_OPTIONS: tuple[Option, ...] = ((NO_RESULT, NO_RESULT),)


def _options(profile: PgxProfile, gene: str, gp: GenePhenotype | None) -> tuple[Option, ...]:
    if gp is None:
        return _NO_RESULT_OPTIONS
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
    if key_type != "activityScore":      # "phenotype" (CYP2C19, CYP2B6), "alleleStatus" (HLA: "*15:02 positive")
        return phenotype
    if score is not None:
        return score
    return "n/a" if phenotype == "Indeterminate" else ""


def _entries_for(t: DrugTable, combo: tuple[Option, ...], population: str | None = None) -> tuple[int, ...]:
    key = tuple(_key(kt, o) for kt, o in zip(t.key_types, combo))
    idx = t.lookup_for(population).get(key)
    if idx is not None:
        return (idx,)
    phenotypes = tuple(NO_RESULT if o[0] == NO_RESULT else o[1] for o in combo)
    if t.populations:        # the fallback within the population's own rows
        return _by_phenotypes(t.rxnorm, population).get(phenotypes, ())
    return t.by_phenotypes.get(phenotypes, ())


@lru_cache(maxsize=None)
def _by_phenotypes(rxnorm: str, population: str | None) -> dict[tuple[str, ...], tuple[int, ...]]:
    t = drug_tables()[rxnorm]
    out: dict[tuple[str, ...], list[int]] = {}
    for key, idx in t.lookup_for(population).items():
        ph = tuple(key_phenotype(g, k) for g, k in zip(t.genes, key))
        if idx not in out.setdefault(ph, []):
            out[ph].append(idx)
    return {k: tuple(v) for k, v in out.items()}


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


# Most cautious first: under uncertainty the advice of the first action any possibility carries is given.
CAUTION = ("avoid", "use-alternative", "reduce-dose", "monitor", "no-recommendation", "standard-dose", "informational")


def _caution(entry: dict | None) -> tuple[int, int]:
    if entry is None:                        # no CPIC row: an unknown, ranked as CPIC's "no recommendation"
        return CAUTION.index("no-recommendation"), 0
    action = entry["action"] if entry["action"] in CAUTION else "no-recommendation"
    return CAUTION.index(action), -CLASS_ORDER.get(entry["classification"], 0)


def _why(present: list[GenePhenotype | None], per_gene, differ: bool) -> str | None:
    """Why the result is uncertain ('conflicting' | 'inhibitor-strength' | 'ambiguous' | 'indeterminate'), or None.
    ``present``: per gene of the table, the patient's GenePhenotype or None."""
    # one pass over the genes; the reasons are then weighed in this order
    conflicting = converted_several = several = gp_ambiguous = indeterminate = False
    for gp, opts in zip(present, per_gene):
        if len(opts) > 1:
            several = True
        if gp is None:
            continue
        if gp.conflicting:
            conflicting = True
        if gp.phenoconverted_by and len(opts) > 1:
            converted_several = True
        if gp.ambiguous:
            gp_ambiguous = True
        if gp.phenotype == "Indeterminate" or gp.activity_score == "n/a":
            indeterminate = True
    if conflicting:
        return "conflicting"
    if converted_several:
        return "inhibitor-strength" if differ or gp_ambiguous else None
    if several and differ:
        return "ambiguous"
    if indeterminate:
        return "indeterminate"
    return "ambiguous" if differ else None


def _possibility(t: DrugTable, profile: PgxProfile, combo, entry: dict | None) -> dict:
    """One possibility of the findings contract: the gene values it stands for, CPIC's row and where it comes from."""
    genes, sources = {}, []
    for gene, (score, phenotype) in zip(t.genes, combo):
        genes[gene] = {k: v for k, v in (("phenotype", phenotype), ("activityScore", score)) if v}
        origin = (profile.origins.get(gene, {}) if isinstance(profile, PgxProfile) else {}).get((score, phenotype))
        if origin and (len(profile.options.get(gene, ())) > 1):
            sources.extend(origin)
    out: dict = {}
    if len(genes) == 1:
        out.update(next(iter(genes.values())))
    else:
        out["genes"] = genes
    out["classification"] = entry["classification"] if entry else "No Recommendation"
    out["action"] = entry["action"] if entry else "no-recommendation"
    if sources:
        out["source"] = "; ".join(dict.fromkeys(sources))
    return out


def _looked_up(rxnorm: str, per_gene: tuple[tuple[Option, ...], ...], population: str | None
               ) -> tuple[tuple[tuple[tuple, int | None], ...], tuple[int, ...], bool, int | None]:
    """The table look-up part of ``recommend``, a pure function of the table and the option keys: (every
    (combination of options, table row or None), the rows found, whether they differ in advice, the row the advice
    comes from or None when no row was found)."""
    t = drug_tables()[rxnorm]
    possibilities: list[tuple[tuple, int | None]] = []
    complete = True
    for combo in product(*per_gene):
        idxs = _entries_for(t, combo, population)
        if not idxs:      # CPIC has no row for this combination
            complete = False
            possibilities.append((combo, None))
        for i in idxs:
            possibilities.append((combo, i))
    found = tuple(dict.fromkeys(i for _, i in possibilities if i is not None))
    entries = [t.entries[i] for i in found]
    differ = not (entries and complete and _same_advice(entries))
    if not entries:
        return tuple(possibilities), found, differ, None
    if not differ:
        best = min(found, key=lambda i: CLASS_ORDER[t.entries[i]["classification"]])
    else:   # the most cautious advice any possibility carries, at its strongest classification
        best = min(found, key=lambda i: _caution(t.entries[i]))
    return tuple(possibilities), found, differ, best


def _looked_up_row(rxnorm: str, per_gene: tuple[tuple[Option, ...], ...], population: str | None) -> tuple:
    """``_looked_up`` and what ``recommend`` reads of the table for it, in one: (possibilities, found, differ, best,
    guideline, rule id, population applied, implication, alternatives), the last two None when no row was found."""
    possibilities, found, differ, best = _looked_up(rxnorm, per_gene, population)
    t = drug_tables()[rxnorm]
    applied = (population if population in t.populations else DEFAULT_POPULATION) if t.populations else None
    implication, alternatives = _entry_view(rxnorm, best) if best is not None else (None, None)
    return (possibilities, found, differ, best, _guideline(rxnorm), _rule_id(rxnorm), applied, implication,
            alternatives)


# kept: the same phenotypes recur across drugs, calls and patients (keys are CPIC vocabulary, bounded all the same)
_advice = lru_cache(maxsize=2048)(_looked_up_row)


def populations(drug: Drug) -> tuple[str, ...]:
    """The CPIC populations the drug's table distinguishes (empty when it has one)."""
    t = _table(drug)
    return tuple(t.populations) if t is not None else ()


def _lookup(drug: Drug, profile: PgxProfile, population: str | None):
    """What ``recommend`` reads of the profile and the table: None (no table, or no result for its genes), or (table,
    per gene the GenePhenotype or None, per gene the options, the genes with a result, their evidence, the look-up)."""
    t = drug_tables().get(drug.rxnorm) if isinstance(drug, Drug) else None    # _table(drug), without its call
    if t is None or not isinstance(profile, PgxProfile):
        return None
    # one pass over the guideline's genes: the patient's phenotype (or None) and the options each leaves open
    present: list[GenePhenotype | None] = []
    per_gene_list: list[tuple[Option, ...]] = []
    genes: dict[str, GenePhenotype] = {}
    refs: list[str] = []
    for g in t.genes:
        gp = profile.genes.get(g)
        present.append(gp)
        if gp is None:
            per_gene_list.append(_NO_RESULT_OPTIONS)
            continue
        genes[g] = gp
        refs.extend(gp.evidence)
        per_gene_list.append(profile.options.get(g) or _options(profile, g, gp))
    if not genes:
        return None
    per_gene = tuple(per_gene_list)
    # options hold CPIC vocabulary (scores, phenotypes, HLA allele statuses), never free text; few per gene
    looked = _advice(t.rxnorm, per_gene, population) if sum(map(len, per_gene)) <= 16 else \
        _looked_up_row(t.rxnorm, per_gene, population)
    return t, present, per_gene, genes, refs, looked


def _no_row(t: DrugTable) -> str:
    return f"CPIC's table has no row for {t.name} with this result."


def advice_of(drug: Drug, profile: PgxProfile, population: str | None = None) -> tuple[str, str] | None:
    """(action, recommendation) of ``recommend(drug, profile, population)``, or None when it gives none, without
    building the recommendation: for a rule that only compares advice."""
    looked = _lookup(drug, profile, population)
    if looked is None:
        return None
    t, best = looked[0], looked[5][3]
    if best is None:
        return "no-recommendation", _no_row(t)
    entry = t.entries[best]
    return entry["action"], entry["gist"]


def recommend(drug: Drug, profile: PgxProfile, population: str | None = None) -> Recommendation | None:
    """CPIC's recommendation for ``drug`` given ``profile``; None when CPIC does not cover the drug here or the
    profile has no result for any of the guideline's genes (the rules layer raises the pre-test alert then).

    Every possibility the results leave open (conflicting results, an ambiguous duplication, an inhibitor of
    uncertain strength, a phenotype reported without the score CPIC keys by) is looked up in CPIC's table under the
    key the patient actually has -- ``Indeterminate``/``n/a``/``No Result`` rows included. If they all give the same
    advice, that is the advice. If not, the advice is the most cautious one any possibility carries (an "avoid" is
    never hidden by a benign possibility), and ``uncertainty`` lists every possibility.

    ``population``: for tables CPIC splits by population (HLA anticonvulsants), the one to look up (default
    "naive"); the Recommendation names it."""
    looked = _lookup(drug, profile, population)
    if looked is None:
        return None
    t, present, per_gene, genes, refs, (possibilities, found, differ, best, guideline, rule, applied, implication,
                                        alternatives) = looked
    evidence = tuple(dict.fromkeys(refs))
    the_drug = guideline.drug
    why = _why(present, per_gene, differ)
    if best is None:
        return Recommendation(
            drug=the_drug, genes=genes, rule=rule, implication="CPIC's table has no entry for this result.",
            recommendation=_no_row(t),
            classification="No Recommendation", action="no-recommendation", knowledge=guideline.knowledge,
            evidence=evidence, ambiguous=bool(why), population=applied,
            uncertainty={"why": why, "possibilities": [_possibility(t, profile, c, None) for c, _ in possibilities]}
            if why else None)
    entry = t.entries[best]
    uncertainty = None
    if why:
        seen, listed = set(), []
        for combo, idx in possibilities:
            p = _possibility(t, profile, combo, t.entries[idx] if idx is not None else None)
            key = repr(sorted(p.items()))
            if key not in seen:
                seen.add(key)
                listed.append(p)
        uncertainty = {"why": why, "possibilities": listed}
        if differ:   # the possibility the advice comes from, for the card's wording
            uncertainty["basis"] = next(_possibility(t, profile, c, t.entries[i]) for c, i in possibilities
                                        if i == best)
    return Recommendation(
        drug=the_drug, genes=genes, rule=rule, implication=implication, recommendation=entry["gist"],
        classification=entry["classification"], action=entry["action"], alternatives=alternatives,
        knowledge=guideline.knowledge, evidence=evidence, ambiguous=differ, uncertainty=uncertainty,
        population=applied)


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
