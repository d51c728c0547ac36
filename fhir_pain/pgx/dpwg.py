"""(drug, PGx profile) -> DPWG's recommendation, from profiles/dpwg/recommendations.json.

DPWG assigns a phenotype from the pair of allele *functions* (its own categories), not from CPIC's activity
scores, so the engine's phenotype is not taken by name. Per gene and possibility:

1. A diplotype read on its own (computed, one possibility, no inhibitor): each allele's DPWG function
   (``*10`` "Decreased function"; ``*10x2``/``*41x2`` "Normal function"; increased function split by copies into
   "AV 2" and "AV ≥3"), and the pair picks DPWG's row. E.g. CYP2D6 ``*1x2/*41`` is CPIC's UM (2.5) but DPWG's NM;
   CYP2C9 ``*2/*2`` is CPIC's IM (1.0) but has a DPWG row of its own (50%).
2. Otherwise (a phenotype reported without diplotype, an allele DPWG does not list, a duplication of unstated copy
   number, phenoconversion, conflicting results): the CPIC activity score, else the CPIC phenotype, is read as every
   DPWG function pair that CPIC's own diplotype tables give for it (``fromCpic`` in the profile, built from
   reference/cpic). CPIC's CYP2D6 1.0 is DPWG's IM or NM (``*10x2/*41``), CPIC's CYP2C19 "Likely Intermediate
   Metabolizer" DPWG's IM or PM (``*9/*9``): each is a possibility, and the most cautious advice wins.
3. Nothing fits (Indeterminate, an unknown allele with no CPIC score): DPWG has no row for the result.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from fhir_pain.facts import Drug, GenePhenotype, Recommendation
from fhir_pain.pgx.diplotype import Allele, parse
from fhir_pain.pgx.knowledge import NO_RESULT
from fhir_pain.pgx.phenotype import Option
from fhir_pain.pgx.profile import PgxProfile
from fhir_pain.profiles import load

PROFILE = "dpwg/recommendations.json"
SOURCE = "DPWG"
GROUP_NAMES = {"PM": "Poor Metabolizer", "IM": "Intermediate Metabolizer", "NM": "Normal Metabolizer",
               "UM": "Ultrarapid Metabolizer"}
# Most cautious first (the findings contract's order, with DPWG's "increase-dose" beside "reduce-dose").
CAUTION = ("avoid", "use-alternative", "reduce-dose", "increase-dose", "monitor", "no-recommendation",
           "standard-dose")


def allele_function(functions: dict[str, str], allele: Allele) -> str | None:
    """DPWG's function term for one allele as the pairs name it; None when DPWG does not list it."""
    if allele.unknown_copies or len(allele.parts) != 1:
        return None
    core = allele.parts[0]
    if allele.copies == 1 and not allele.at_least:
        return functions.get(core)
    label = f"{core}x2" if allele.copies == 2 and not allele.at_least else f"{core}x≥3"
    term = functions.get(label)
    if term == "Increased function":     # DPWG's CYP2D6 rows tell a duplication from a triplication
        term += " (AV 2)" if label.endswith("x2") else " (AV ≥3)"
    return term


def pair_key(*terms: str) -> str:
    return "/".join(sorted(terms))


def function_pair(functions: dict[str, str], diplotype: str | None) -> str | None:
    """The DPWG function pair of a diplotype, or None when it cannot be read with DPWG's functions alone."""
    d = parse(diplotype) if diplotype else None
    if d is None or d.unphased_copies is not None:
        return None
    terms = [allele_function(functions, a) for a in d.alleles]
    return pair_key(*terms) if all(terms) else None


@dataclass(frozen=True)
class Row:
    group: str
    name: str
    action: str
    gist: str
    implication: str
    recommendation: str
    prescribing_change: str
    strength: str
    dose_factor: float | None = None
    indicator: str | None = None

    @property
    def classification(self) -> str:
        """PharmGKB's status, in the place of a strength the annotations do not give."""
        return f"Prescribing change: {self.prescribing_change}"


@dataclass(frozen=True)
class Guideline:
    drug: Drug
    gene: str
    id: str
    name: str
    url: str
    annotation_version: int
    rows: tuple[Row, ...]
    by_pair: dict[str, int]


@lru_cache(maxsize=1)
def _profile() -> dict:
    return load(PROFILE)


def version() -> str:
    return _profile()["meta"]["version"]


@lru_cache(maxsize=None)
def guidelines(rxnorm: str) -> tuple[Guideline, ...]:
    for name, d in _profile()["drugs"].items():
        if d["rxnorm"] == rxnorm:
            out = []
            for g in d["guidelines"]:
                rows = tuple(Row(r["group"], r["name"], r["action"], r["gist"], r["implication"], r["recommendation"],
                                 r["prescribingChange"], r["strength"], r.get("doseFactor"), r.get("indicator"))
                             for r in g["rows"])
                by_pair = {pair_key(*p.split("/")): i for i, r in enumerate(g["rows"]) for p in r["functionPairs"]}
                out.append(Guideline(Drug(d["rxnorm"], name), g["gene"], g["id"], g["name"], g["url"],
                                     g["annotationVersion"], rows, by_pair))
            return tuple(out)
    return ()


def guidelines_for(drug: Drug) -> tuple[Guideline, ...]:
    return guidelines(drug.rxnorm) if isinstance(drug, Drug) and isinstance(drug.rxnorm, str) else ()


def pairs_for_option(gene: str, option: Option) -> tuple[str, ...]:
    """Every DPWG function pair a CPIC (score, phenotype) can stand for (rule 2 of the module docstring)."""
    score, phenotype = option
    cpic = _profile()["fromCpic"].get(gene, {})
    if score and score in cpic.get("activityScore", {}):
        return tuple(cpic["activityScore"][score])
    return tuple(cpic.get("phenotype", {}).get(phenotype, ()))


def _pairs(gene: str, gp: GenePhenotype, option: Option, single: bool) -> tuple[str, ...]:
    if single and gp.source == "computed" and not gp.phenoconverted_by and gp.diplotype:
        pair = function_pair(_profile()["genes"].get(gene, {}).get("functions", {}), gp.diplotype)
        if pair is not None:
            return (pair,)
    return pairs_for_option(gene, option)


def _rank(row: Row | None) -> tuple[int, float]:
    if row is None:
        return CAUTION.index("no-recommendation"), 0.0
    factor = row.dose_factor if row.action == "reduce-dose" and row.dose_factor else 1.0
    return CAUTION.index(row.action), factor


@dataclass(frozen=True)
class GeneAdvice:
    """DPWG's advice for one gene of the drug: the row applied and every possibility the result leaves open."""
    guideline: Guideline
    gp: GenePhenotype
    row: Row | None                                   # None: DPWG has no row for this result
    possibilities: tuple[tuple[Option, Row | None], ...]

    @property
    def differ(self) -> bool:
        rows = {p[1] for p in self.possibilities}
        return len({(r.action, r.gist) if r else None for r in rows}) > 1


def gene_advice(guideline: Guideline, profile: PgxProfile) -> GeneAdvice | None:
    gene = guideline.gene
    gp = profile.genes.get(gene) if isinstance(profile, PgxProfile) else None
    if gp is None:
        return None
    options = profile.options.get(gene) or ((gp.activity_score, gp.phenotype),)
    single = len(options) == 1
    possibilities: list[tuple[Option, Row | None]] = []
    for option in options:
        if option[0] == NO_RESULT:
            continue
        pairs = _pairs(gene, gp, option, single)
        idxs = tuple(dict.fromkeys(guideline.by_pair[p] for p in pairs if p in guideline.by_pair))
        if not idxs:
            possibilities.append((option, None))
        possibilities.extend((option, guideline.rows[i]) for i in idxs)
    possibilities = list(dict.fromkeys(possibilities))
    found = [r for _, r in possibilities if r is not None]
    row = min(found, key=_rank) if found else None
    return GeneAdvice(guideline, gp, row, tuple(possibilities))


def _why(advice: GeneAdvice) -> str | None:
    gp = advice.gp
    if not advice.differ and advice.row is not None:
        return None
    if gp.conflicting:
        return "conflicting"
    if gp.phenoconverted_by and len({o for o, _ in advice.possibilities}) > 1:
        return "inhibitor-strength"
    if len({o for o, _ in advice.possibilities}) > 1:
        return "ambiguous"
    if advice.row is None or gp.phenotype == "Indeterminate":
        return "indeterminate"
    return "mapping"      # one CPIC result that DPWG's function pairs read in several ways


def _possibility(advice: GeneAdvice, option: Option, row: Row | None) -> dict:
    score, phenotype = option
    out = {k: v for k, v in (("phenotype", phenotype), ("activityScore", score)) if v}
    if row is not None:
        out["dpwgPhenotype"] = GROUP_NAMES.get(row.group, row.group)
    out["classification"] = row.classification if row else "No Recommendation"
    out["action"] = row.action if row else "no-recommendation"
    return out


def entry(advice: GeneAdvice) -> dict:
    """One ``recommendations`` entry of the findings contract for this gene's DPWG advice."""
    g, row = advice.guideline, advice.row
    out = {"source": SOURCE, "version": version(), "guideline": g.name, "url": g.url, "genes": [g.gene]}
    if row is None:
        out.update({"classification": "No Recommendation", "action": "no-recommendation"})
        return out
    out.update({"classification": row.classification, "strength": row.strength, "action": row.action,
                "phenotype": {g.gene: GROUP_NAMES.get(row.group, row.group)}})
    return out


def recommend(drug: Drug, profile: PgxProfile) -> Recommendation | None:
    """DPWG's recommendation for ``drug``: per DPWG gene the patient has a result for, the row their result maps
    to; across genes and possibilities the most cautious advice. None when DPWG's data here has no guideline for
    the drug or the patient has no result for its genes. ``action`` "no-recommendation" when DPWG has no row for
    the result (the caller then shows CPIC's)."""
    parts = [a for a in (gene_advice(g, profile) for g in guidelines_for(drug)) if a is not None]
    if not parts:
        return None
    primary = min(parts, key=lambda a: _rank(a.row))
    row = primary.row
    genes = {a.guideline.gene: a.gp for a in parts}
    evidence = tuple(dict.fromkeys(ref for a in parts for ref in a.gp.evidence))
    g = primary.guideline
    uncertainty = None
    why = _why(primary)
    if why:
        listed = [_possibility(primary, o, r) for o, r in primary.possibilities]
        uncertainty = {"why": why, "possibilities": list({repr(p): p for p in listed}.values())}
        if primary.differ and row is not None:
            uncertainty["basis"] = next(_possibility(primary, o, r) for o, r in primary.possibilities if r == row)
    return Recommendation(
        drug=g.drug, genes=genes, rule=f"dpwg/{g.drug.name}/{'+'.join(genes)}",
        implication=row.implication if row else "DPWG has no row for this result.",
        recommendation=row.gist if row else f"DPWG's table has no row for {g.drug.name} with this result.",
        classification=row.classification if row else "No Recommendation",
        action=row.action if row else "no-recommendation",
        knowledge={"source": SOURCE, "version": version(), "url": g.url}, evidence=evidence,
        ambiguous=primary.differ, uncertainty=uncertainty,
        indicator=row.indicator if row else None,
        sources=tuple(entry(a) for a in parts))


__all__ = ["CAUTION", "Guideline", "Row", "allele_function", "function_pair", "gene_advice",
           "guidelines_for", "pairs_for_option", "recommend", "version"]
