"""Genotype -> phenotype for one gene, and phenoconversion by CYP2D6 inhibitors.

A gene's call is a small set of *options*: (activity score or None, phenotype) pairs. One option is the normal
case; several arise from a duplication whose carrier or copy number is unknown, or from an inhibitor whose
strength the sources disagree on. The recommendation lookup scores every option, so ambiguity is carried to the
advice instead of being resolved by a guess here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from itertools import product

from fhir_pain.memo import short_text_memo
from fhir_pain.pgx import diplotype as dip
from fhir_pain.pgx.knowledge import HLA_ALLELES, GeneModel, Inhibitor, format_score, gene_model, parse_score

Option = tuple[str | None, str]     # (CPIC score key or None when only the phenotype is known, phenotype)

# Scores on CPIC's 0.25 grid per phenotype, to phenoconvert a phenotype reported without a diplotype.
_GRID = tuple(i / 4 for i in range(13)) + (3.0,)


@dataclass(frozen=True, slots=True)
class Call:
    gene: str
    options: tuple[Option, ...]
    diplotype: str | None = None
    notes: tuple[str, ...] = ()
    # summarize(options), once per call: calls are memoised, and every profile of every request reads it
    summary: tuple = field(default=(), init=False, compare=False, repr=False)
    # factors -> convert(gene, options, factors), kept with the (memoised) call; the factors are the inhibitor
    # tables' few strengths
    _converted: dict = field(default_factory=dict, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "summary", summarize(self.options))

    def converted(self, factors: tuple[float, ...]) -> tuple[Option, ...]:
        """``convert(self.gene, self.options, factors)``."""
        got = self._converted.get(factors)
        if got is None:
            got = self._converted[factors] = convert(self.gene, self.options, factors)
        return got


@lru_cache(maxsize=4096)   # pure: the same gene + diplotype always gives the same call
def call_diplotype(gene: str, text: str) -> Call | None:
    """The genetic call for a diplotype string; None when the text is no diplotype at all. Several diplotypes
    joined by " or " (a caller such as PharmCAT could not tell them apart) give every option of each."""
    if " or " in text:
        return _call_alternatives(gene, text)
    d = dip.parse(text)
    if d is None:
        return None
    model = gene_model(gene)
    if model is None:
        return Call(gene, ((None, "Indeterminate"),), d.text, (f"{gene} is not a gene with CPIC phenotype rules here.",))
    notes: list[str] = []
    unknown = dip.unknown_alleles(model, d)
    if unknown:
        notes.append(f"{gene} {d.text}: allele {', '.join(unknown)} is not in CPIC's {gene} table, so the "
                     f"phenotype is Indeterminate.")
        return Call(gene, (("n/a", "Indeterminate") if model.method == "activity-score"
                           else (None, "Indeterminate"),), d.text, tuple(notes))
    if d.has_duplication and not model.duplications:
        notes.append(f"{gene} {d.text}: CPIC defines no scoring for a duplicated {gene} allele (Indeterminate).")
        return Call(gene, (("n/a", "Indeterminate") if model.method == "activity-score"
                           else (None, "Indeterminate"),), d.text, tuple(notes))
    if model.method == "function-pair":
        return Call(gene, ((None, dip.function_pair_phenotype(model, d)),), d.text)
    scores = dip.possible_scores(model, d)
    options = tuple((format_score(s), model.phenotype_of(s)) for s in scores)
    if options and options[0][0] == "n/a":
        notes.append(f"{gene} {d.text}: an allele has uncertain or unknown function (CPIC activity value n/a), "
                     f"so the phenotype is Indeterminate.")
    if len(options) > 1:
        listed = ", ".join(f"{s} ({p})" for s, p in options)
        notes.append(f"{gene} {d.text}: a duplication whose copy number or carrier allele is not stated; "
                     f"possible activity scores: {listed}.")
        if len({p for _, p in options}) > 1:
            notes.append(f"{gene} {d.text}: the possible phenotypes differ; confirm which allele is duplicated "
                         f"and its copy number before relying on this result.")
    return Call(gene, options, d.text, tuple(notes))


def _call_alternatives(gene: str, text: str) -> Call | None:
    calls = [call_diplotype(gene, part.strip()) for part in text.split(" or ")]
    if not calls or any(c is None for c in calls):
        return None
    options = tuple(dict.fromkeys(o for c in calls for o in c.options))
    listed = " or ".join(c.diplotype for c in calls)
    notes = [n for c in calls for n in c.notes]
    notes.append(f"{gene} {listed}: the lab could not tell these diplotypes apart; possible phenotypes: "
                 f"{', '.join(dict.fromkeys(p for c in calls for _, p in c.options))}.")
    return Call(gene, options, listed, tuple(dict.fromkeys(notes)))


def call_reported(gene: str, phenotype: str) -> Call:
    if type(gene) is str and type(phenotype) is str:
        # the memo itself for texts of the usual length (short_text_memo's own check, without its call)
        if len(gene) <= 300 and len(phenotype) <= 300:
            return _call_reported_kept(gene, phenotype)
        return _call_reported(gene, phenotype)
    return _call_reported.__wrapped__(gene, phenotype)


@short_text_memo(maxsize=1024, longest=300)   # pure; reported phenotypes are CPIC's few words
def _call_reported(gene: str, phenotype: str) -> Call:
    allele = HLA_ALLELES.get(gene)
    if allele and phenotype == "Indeterminate":
        # an HLA result that does not say whether the risk allele is there: both possibilities stay open
        return Call(gene, ((None, f"{allele} positive"), (None, f"{allele} negative")),
                    notes=(f"{gene}: the result does not say whether {allele} is present (unknown or unreadable); "
                           f"it is treated as possibly positive, never as negative.",))
    return Call(gene, ((None, phenotype),))


_call_reported_kept = _call_reported.cache_kept  # type: ignore[attr-defined]


def summarize(options: tuple[Option, ...]) -> tuple[str, str | None, tuple[str, ...], bool]:
    """(phenotype, activity score, possible scores, ambiguous) for GenePhenotype."""
    if len(options) == 1:    # the usual call: what the general path below gives for one option
        return options[0][1], options[0][0], (), False
    phenotypes = {p for _, p in options}
    ambiguous = len(phenotypes) > 1
    phenotype = "Indeterminate" if ambiguous else next(iter(phenotypes))
    scores = [s for s, _ in options if s is not None]
    if len(options) == 1:
        return phenotype, options[0][0], (), False
    possible = tuple(dict.fromkeys(s for s, _ in options if s is not None))
    score = None
    if not ambiguous and scores and len(scores) == len(options) and "n/a" not in scores:
        lowest = min(parse_score(s)[0] for s in scores)
        score = format_score((lowest, True))   # "≥3.0": the truthful summary of {3.0, ≥4.0}
    return phenotype, score, possible, ambiguous


def _reported_scores(model: GeneModel, phenotype: str) -> list[tuple[float, bool]]:
    scores = [(v, False) for v in _GRID if model.band(v) == phenotype]
    if phenotype == "Ultrarapid Metabolizer":
        scores.append((3.0, True))
    return scores


def factors_of(active: list[Inhibitor]) -> tuple[float, ...]:
    """The activity-score factors the active inhibitors may apply: the strongest inhibitor applies; an inhibitor
    of uncertain strength contributes each factor it may have (so several factors = several possibilities)."""
    if not active:
        return (1.0,)
    return tuple(sorted({min(choice) for choice in product(*(i.factors for i in active))}))


def phenoconvert(gene: str, options: tuple[Option, ...], active: list[Inhibitor]) -> tuple[Option, ...]:
    """CPIC (opioid guideline 2021): strong inhibitor -> activity score 0; moderate -> score x 0.5, re-mapped.
    Several inhibitors: the strongest applies. Uncertain strengths contribute every factor they may have."""
    model = gene_model(gene)
    if not active or model is None or model.method != "activity-score":
        return options
    return convert(gene, options, factors_of(active))


def convert(gene: str, options: tuple[Option, ...], factors: tuple[float, ...]) -> tuple[Option, ...]:
    """``options`` with every activity-score factor in ``factors`` applied (1.0 leaves an option as it is)."""
    model = gene_model(gene)
    if model is None or model.method != "activity-score":
        return options
    out: list[Option] = []
    for score, phenotype in options:
        for f in factors:
            if f == 1.0:
                out.append((score, phenotype))
            elif f == 0:
                out.append(("0.0", model.phenotype_of((0.0, False))))
            elif score is None:
                # phenotype reported without a score: convert every score that phenotype can have
                for s in _reported_scores(model, phenotype):
                    conv = (s[0] * f, s[1] and s[0] > 0)
                    out.append((None, model.phenotype_of(conv)))
            else:
                parsed = parse_score(score)
                conv = None if parsed is None else (parsed[0] * f, parsed[1] and parsed[0] > 0)
                out.append((format_score(conv), model.phenotype_of(conv)))
    return tuple(dict.fromkeys(out))
