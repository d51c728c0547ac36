"""One patient's PGx profile: per gene, the result to act on, with conflicts and phenoconversion recorded.

Choice per gene: a phenotype computed from a diplotype beats a reported one (CPIC: compute it yourself; labs may use
older cut-offs), and among several results of the same kind the newest wins. Every disagreement is written into
the gene's notes in plain words, so the card can say what was set aside and why.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from fhir_pain.facts import GenePhenotype, GeneResult, MedicationUse
from fhir_pain.pgx import phenotype as ph
from fhir_pain.pgx.knowledge import Inhibitor, drug_vocabulary, inhibitors

ACTIVE_STATUSES = frozenset({"active", "draft"})
_OLDEST = datetime.min.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class PgxProfile:
    genes: dict[str, GenePhenotype]
    notes: tuple[str, ...] = ()
    # gene -> the options the recommendation lookup scores (several when a result is ambiguous)
    options: dict[str, tuple[ph.Option, ...]] = field(default_factory=dict, compare=False, repr=False)

    def to_dict(self) -> dict:
        genes = {}
        for gene, gp in self.genes.items():
            d = gp.to_finding()
            if gp.genetic_phenotype and gp.phenoconverted_by:
                d["geneticPhenotype"] = gp.genetic_phenotype
                if gp.genetic_activity_score:
                    d["geneticActivityScore"] = gp.genetic_activity_score
            if gp.possible_scores:
                d["possibleScores"] = list(gp.possible_scores)
            if gp.ambiguous:
                d["ambiguous"] = True
            if gp.conflicting:
                d["conflicting"] = True
            if gp.notes:
                d["notes"] = list(gp.notes)
            if gp.evidence:
                d["evidence"] = list(gp.evidence)
            genes[gene] = d
        out: dict = {"genes": genes}
        if self.notes:
            out["notes"] = list(self.notes)
        return out


def _when(r: GeneResult) -> datetime:
    if r.effective is None:
        return _OLDEST
    return r.effective if r.effective.tzinfo else r.effective.replace(tzinfo=timezone.utc)


def _date(r: GeneResult) -> str:
    return r.effective.date().isoformat() if r.effective else "undated"


def _active_inhibitors(gene: str, medications: Iterable[MedicationUse]) -> list[tuple[Inhibitor, str]]:
    """(inhibitor, medication ref) for active or draft orders; ingredients first, else the order's text."""
    table = inhibitors().get(gene)
    if not table:
        return []
    vocab = drug_vocabulary()
    found: list[tuple[Inhibitor, str]] = []
    for med in medications:
        if not (med.is_draft or (med.status or "").lower() in ACTIVE_STATUSES):
            continue
        names = {d.name for d in med.ingredients}
        if med.text:     # inhibitors without a verified RxCUI are only recognisable by name
            names.update(vocab.names_in(med.text))
        names.intersection_update(table)
        for name in sorted(names):
            inh = table.get(name)
            if inh is not None and all(i.name != name for i, _ in found):
                found.append((inh, med.ref))
    return found


def _choose(gene: str, results: list[GeneResult]) -> tuple[ph.Call | None, GeneResult | None, list[str], list[str],
                                                          bool]:
    """The call to act on, the result it came from, notes, the refs that agree with it, and whether results of
    the same kind (two genotypes, or two reported phenotypes) disagree on the phenotype."""
    computed: list[tuple[ph.Call, GeneResult]] = []
    reported: list[GeneResult] = []
    notes: list[str] = []
    for r in sorted(results, key=_when, reverse=True):
        call = ph.call_diplotype(gene, r.diplotype) if r.diplotype else None
        if call is not None:
            computed.append((call, r))
        elif r.phenotype:
            reported.append(r)
            if r.diplotype:
                notes.append(f"{r.ref}: diplotype '{r.diplotype}' could not be read; its reported phenotype is used.")
        elif r.diplotype:
            notes.append(f"{r.ref}: diplotype '{r.diplotype}' could not be read and no phenotype is given; ignored.")
    if computed:
        call, chosen = computed[0]
    elif reported:
        chosen = reported[0]
        call = ph.call_reported(gene, chosen.phenotype)
    else:
        return None, None, notes, [], False
    agree = [chosen.ref]
    conflicting = False
    genetic_ph = ph.summarize(call.options)[0]
    for other_call, r in computed[1:]:
        if other_call.diplotype != call.diplotype:
            conflicting = conflicting or ph.summarize(other_call.options)[0] != genetic_ph
            notes.append(f"Conflicting {gene} results: {r.ref} ({_date(r)}) reports {other_call.diplotype}; the newer "
                         f"{chosen.ref} ({_date(chosen)}, {call.diplotype}) is used.")
        elif r.ref not in agree:
            agree.append(r.ref)
    # reported phenotypes (and the lab's own phenotype on the chosen diplotype) are checked against the call
    compare = ([chosen] if computed and chosen.phenotype else []) + (reported if computed else reported[1:])
    for r in compare:
        if r.phenotype != genetic_ph:
            conflicting = conflicting or not computed
            what = "computed from the diplotype (current CPIC rules)" if computed else "of the newer result"
            notes.append(f"{gene}: {r.ref} ({_date(r)}) reports {r.phenotype}, but the phenotype {what} is "
                         f"{genetic_ph}; {genetic_ph} is used.")
        elif r.ref not in agree:
            agree.append(r.ref)
    return call, chosen, notes, agree, conflicting


def resolve_profile(results: list[GeneResult], medications: Iterable[MedicationUse]) -> PgxProfile:
    """Per gene, the phenotype to act on (computed > reported, newest first), with phenoconversion by active and
    draft CYP2D6 inhibitors (CPIC: strong -> activity score 0, moderate -> x 0.5); both phenotypes reported."""
    meds = list(medications)
    by_gene: dict[str, list[GeneResult]] = {}
    for r in results:
        if isinstance(r, GeneResult) and r.gene:
            by_gene.setdefault(r.gene.upper(), []).append(r)
    genes: dict[str, GenePhenotype] = {}
    options: dict[str, tuple[ph.Option, ...]] = {}
    profile_notes: list[str] = []
    for gene, rs in by_gene.items():
        if gene in ("OPRM1", "COMT"):
            newest = max(rs, key=_when)
            genes[gene] = GenePhenotype(gene=gene, phenotype="Indeterminate", diplotype=newest.diplotype,
                                        source="reported", notes=(f"CPIC defines no {gene} phenotypes.",),
                                        evidence=(newest.ref,))
            continue
        call, chosen, notes, agree, conflicting = _choose(gene, rs)
        if call is None:
            profile_notes.extend(notes)
            continue
        notes = list(call.notes) + notes
        genetic = call.options
        g_ph, g_score, g_possible, g_ambiguous = ph.summarize(genetic)
        active = _active_inhibitors(gene, meds)
        converted = ph.phenoconvert(gene, genetic, [i for i, _ in active]) if active else genetic
        c_ph, c_score, c_possible, c_ambiguous = ph.summarize(converted)
        by = tuple(i.name for i, _ in active)
        if active:
            strengths = ", ".join(f"{i.name} ({i.strength} {gene} inhibitor)" for i, _ in active)
            notes.append(f"Phenoconversion: {strengths}. Genetic phenotype {g_ph}"
                         f"{f' (activity score {g_score})' if g_score else ''}; acting phenotype {c_ph}"
                         f"{f' (activity score {c_score})' if c_score else ''}.")
            if c_ambiguous and not g_ambiguous:
                notes.append(f"The inhibitor's strength is uncertain; the possible {gene} phenotypes differ.")
        source = "computed" if chosen.diplotype and call.diplotype else "reported"
        genes[gene] = GenePhenotype(
            gene=gene, phenotype=c_ph, diplotype=call.diplotype, activity_score=c_score, source=source,
            genetic_phenotype=g_ph, genetic_activity_score=g_score, phenoconverted_by=by,
            possible_scores=c_possible if active else g_possible, ambiguous=c_ambiguous, conflicting=conflicting,
            notes=tuple(notes), evidence=tuple(agree) + tuple(ref for _, ref in active),
        )
        options[gene] = converted
    # a strong inhibitor matters even without a genotype: say so (the rules layer raises the pre-test alert)
    if "CYP2D6" not in genes:
        for inh, ref in _active_inhibitors("CYP2D6", meds):
            profile_notes.append(f"{inh.name} ({ref}) is a {inh.strength} CYP2D6 inhibitor: CYP2D6 activity is "
                                 f"reduced whatever the genotype.")
    return PgxProfile(genes=genes, notes=tuple(profile_notes), options=options)
