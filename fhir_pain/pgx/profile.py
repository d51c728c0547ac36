"""One patient's PGx profile: per gene, the result to act on, with conflicts and phenoconversion recorded.

Per gene, the result shown first is the newest computed one (CPIC: compute the phenotype from the diplotype; labs
may use older cut-offs), else the newest reported phenotype. Results that disagree are not set aside: each stays a
possibility (``options``, with ``origins`` saying where each comes from), so the recommendation can give the advice
that is safe under all of them. Every disagreement is written into the gene's notes in plain words.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache

from fhir_pain.facts import GenePhenotype, GeneResult, MedicationUse
from fhir_pain.memo import short_text_memo
from fhir_pain.pgx import phenotype as ph
from fhir_pain.pgx.knowledge import HLA_ALLELES, NO_RESULT, Inhibitor, drug_vocabulary, inhibitors

ACTIVE_STATUSES = frozenset({"active", "draft"})
_OLDEST = datetime.min.replace(tzinfo=timezone.utc)


@dataclass(unsafe_hash=True)   # read-only; not frozen: built on every call (see facts.MedicationUse)
class PgxProfile:
    genes: dict[str, GenePhenotype]
    notes: tuple[str, ...] = ()
    # gene -> the options the recommendation lookup scores (several when a result is ambiguous)
    options: dict[str, tuple[ph.Option, ...]] = field(default_factory=dict, compare=False, repr=False)
    # gene -> option -> which result (and inhibitor strength) gives that possibility, in words
    origins: dict[str, dict[ph.Option, tuple[str, ...]]] = field(default_factory=dict, compare=False, repr=False)

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
    return _inhibitors_in(gene, _taken(medications))


def _taken(medications: Iterable[MedicationUse]) -> list[tuple[frozenset[str], str]]:
    """(inhibitor names, ref) of the active and draft orders that name an inhibitor of any gene, read once for every
    gene's inhibitor table. The other orders (most of them) and names are left out: no table would find them."""
    any_gene = _inhibitor_names()
    taken: list[tuple[frozenset[str], str]] = []
    for med in medications:
        text = med.text
        # inhibitors without a verified RxCUI are only recognisable by name; the memo itself for order texts of the
        # usual length (short_text_memo's own check, without its call)
        names = (_inhibitors_named_kept(text) if type(text) is str and len(text) <= 300 else _inhibitors_named(text)) \
            if text else _NONE
        for d in med.ingredients:
            if d.name in any_gene:
                names = names | {d.name}
        status = med.status   # asked only of the few orders that name an inhibitor
        if names and (med.is_draft or status in ACTIVE_STATUSES or (status or "").lower() in ACTIVE_STATUSES):
            taken.append((names, med.ref))
    return taken


_NONE: frozenset[str] = frozenset()
_NO_FACTOR = ph.factors_of([])


@lru_cache(maxsize=1)
def _inhibitor_names() -> frozenset[str]:
    return frozenset(name for table in inhibitors().values() for name in table)


@short_text_memo(maxsize=4096, longest=300)   # pure; order texts recur across calls and patients
def _inhibitors_named(text: str) -> frozenset[str]:
    return _inhibitor_names().intersection(drug_vocabulary().names_in(text))


_inhibitors_named_kept = _inhibitors_named.cache_kept  # type: ignore[attr-defined]


def _inhibitors_in(gene: str, taken: list[tuple[frozenset[str], str]]) -> list[tuple[Inhibitor, str]]:
    table = inhibitors().get(gene)
    if not table:
        return []
    found: list[tuple[Inhibitor, str]] = []
    for names, ref in taken:
        for name in sorted(names.intersection(table)):
            inh = table.get(name)
            if inh is not None and all(i.name != name for i, _ in found):
                found.append((inh, ref))
    return found


@dataclass(unsafe_hash=True)   # read-only; not frozen: one per result per call (see facts.MedicationUse)
class Reading:
    """One distinct result for a gene: its genetic call and where it comes from."""
    call: ph.Call
    result: GeneResult
    computed: bool                    # from a diplotype (else a reported phenotype)

    @property
    def phenotype(self) -> str:
        return self.call.summary[0]

    @property
    def label(self) -> str:
        what = self.call.diplotype if self.computed else (
            f"HLA result {self.result.phenotype}" if self.result.gene in HLA_ALLELES
            else f"reported {self.result.phenotype}")
        return f"{self.result.ref} ({_date(self.result)}, {what})"


def _readings(gene: str, results: list[GeneResult]) -> tuple[list[Reading], list[str], list[str]]:
    """The distinct results for ``gene``, the one to display first (newest computed, else newest reported), notes,
    and the refs of the results that agree with the first one. A person has one germline genotype: results that
    disagree mean an error somewhere, so every disagreeing result stays a possibility (whichever is newer)."""
    computed: list[Reading] = []
    reported: list[Reading] = []
    notes: list[str] = []
    for r in sorted(results, key=_when, reverse=True):
        call = ph.call_diplotype(gene, r.diplotype) if r.diplotype else None
        if call is not None:
            computed.append(Reading(call, r, True))
        elif r.phenotype:
            reported.append(Reading(ph.call_reported(gene, r.phenotype), r, False))
            if r.diplotype:
                notes.append(f"{r.ref}: diplotype '{r.diplotype}' could not be read; its reported phenotype is used.")
        elif r.diplotype:
            notes.append(f"{r.ref}: diplotype '{r.diplotype}' could not be read and no phenotype is given; ignored.")
    ordered = computed + reported
    if not ordered:
        return [], notes, []
    first = ordered[0]
    kept, agree = [first], [first.result.ref]
    for rd in ordered[1:]:
        if _agrees(rd, kept):
            if rd.result.ref not in agree:
                agree.append(rd.result.ref)
            continue
        notes.append(f"Conflicting {gene} results: {rd.label} gives {rd.phenotype}; {first.label} gives "
                     f"{first.phenotype}. A person has one genotype, so one of them is wrong: until a confirmatory "
                     "test settles it, the advice is the one that is safe under each.")
        kept.append(rd)
    # the lab's own phenotype on the diplotype it reports: CPIC says compute it (labs may use older cut-offs)
    for rd in computed:
        lab = rd.result.phenotype
        if lab and lab != rd.phenotype and len(rd.call.options) == 1:
            notes.append(f"{gene}: {rd.result.ref} ({_date(rd.result)}) reports {lab} for {rd.call.diplotype}; "
                         f"under current CPIC rules that diplotype is {rd.phenotype}, which is used.")
    return kept, notes, agree


def _agrees(rd: Reading, kept: list[Reading]) -> bool:
    """``rd`` says what one of ``kept`` says: the same diplotype, the same options or the same reported phenotype."""
    call = rd.call
    for k in kept:
        if call.options == k.call.options or (rd.computed and k.computed and call.diplotype == k.call.diplotype) \
                or (not rd.computed and call.summary[0] == k.call.summary[0]):
            return True
    return False


def _factor_words(gene: str, active: list[tuple[Inhibitor, str]], factor: float) -> str:
    names = join_names(i.name for i, _ in active)
    if factor == 0:
        return f"with {names} as a strong {gene} inhibitor"
    if factor == 1.0:
        return f"if {names} does not inhibit {gene} meaningfully"
    return f"with {names} as a moderate {gene} inhibitor"


def join_names(names) -> str:
    names = list(dict.fromkeys(names))
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


@dataclass(unsafe_hash=True)   # read-only; not frozen: built on every call (see facts.MedicationUse)
class _GeneCall:
    """One gene's results before phenoconversion: its distinct readings (the first one shown), notes and the refs
    of its results."""
    readings: tuple[Reading, ...]
    labels: tuple[str, ...]           # Reading.label of each reading
    notes: tuple[str, ...]            # without repeats
    refs: tuple[str, ...]             # the results that agree with the first, then the other readings' (no repeats)
    genetic: tuple                    # ph.summarize of the first reading's options


@dataclass(unsafe_hash=True)   # read-only; not frozen: built on every call (see facts.MedicationUse)
class Genotypes:
    """What the results say before any medication is considered (per gene, in the order first seen). A patient's
    profile is resolved for several medication lists in one evaluation (with and without the judged drug, without
    any inhibitor): this part is read once and shared (``resolve_profile(..., genotypes=)``)."""
    genes: tuple[tuple[str, GenePhenotype | _GeneCall], ...]   # OPRM1/COMT: the final GenePhenotype
    notes: tuple[str, ...]                                     # from genes none of whose results could be read


def read_genotypes(results: list[GeneResult]) -> Genotypes:
    by_gene: dict[str, list[GeneResult]] = {}
    for r in results:
        if isinstance(r, GeneResult) and r.gene:
            by_gene.setdefault(r.gene.upper(), []).append(r)
    genes: list[tuple[str, GenePhenotype | _GeneCall]] = []
    profile_notes: list[str] = []
    for gene, rs in by_gene.items():
        if gene in ("OPRM1", "COMT"):
            newest = max(rs, key=_when)
            genes.append((gene, GenePhenotype(gene=gene, phenotype="Indeterminate", diplotype=newest.diplotype,
                                              source="reported", notes=(f"CPIC defines no {gene} phenotypes.",),
                                              evidence=(newest.ref,))))
            continue
        readings, notes, agree = _readings(gene, rs)
        if not readings:
            profile_notes.extend(notes)
            continue
        first = readings[0]
        if len(readings) > 1:
            notes = list(first.call.notes) + [n for rd in readings[1:] for n in rd.call.notes] + notes
        elif first.call.notes:
            notes = list(first.call.notes) + notes
        refs = tuple(dict.fromkeys(agree + [rd.result.ref for rd in readings[1:]])) if len(readings) > 1 \
            else tuple(agree)
        genes.append((gene, _GeneCall(tuple(readings), tuple([rd.label for rd in readings]),
                                      tuple(dict.fromkeys(notes)), refs, first.call.summary)))
    return Genotypes(tuple(genes), tuple(profile_notes))


def resolve_profile(results: list[GeneResult], medications: Iterable[MedicationUse],
                    genotypes: Genotypes | None = None, unchanged_from: PgxProfile | None = None) -> PgxProfile:
    """Per gene, the result to act on with every possibility it leaves open (conflicting results, an ambiguous
    duplication, an inhibitor of uncertain strength), and phenoconversion by active and draft CYP2D6 inhibitors
    (CPIC: strong -> activity score 0, moderate -> x 0.5) -- with or without a genotype on file. ``genotypes``:
    ``read_genotypes(results)`` when the caller already has it (it must be of these results). ``unchanged_from``:
    a profile of the same genotypes for other medications; a gene no inhibitor acts on in either is the same in
    both (it depends on the genotypes alone), so it is taken from there rather than built again."""
    taken = _taken(medications)
    if genotypes is None:
        genotypes = read_genotypes(results)
    genes: dict[str, GenePhenotype] = {}
    options: dict[str, tuple[ph.Option, ...]] = {}
    origins: dict[str, dict[ph.Option, tuple[str, ...]]] = {}
    profile_notes: list[str] = list(genotypes.notes)
    for gene, call in genotypes.genes:
        if isinstance(call, GenePhenotype):
            genes[gene] = call
            continue
        active = _inhibitors_in(gene, taken) if taken else []
        same = unchanged_from.genes.get(gene) if unchanged_from is not None and not active else None
        if same is not None and not same.phenoconverted_by:
            genes[gene], options[gene], origins[gene] = same, unchanged_from.options[gene], unchanged_from.origins[gene]
            continue
        readings, first = call.readings, call.readings[0]
        g_ph, g_score, g_possible, g_ambiguous = call.genetic
        factors = ph.factors_of([i for i, _ in active]) if active else _NO_FACTOR
        by_option: dict[ph.Option, list[str]] = {}
        for rd, rd_label in zip(readings, call.labels):
            for f in factors:
                # one option and no factor: convert would return it as it is
                for opt in rd.call.options if f == 1.0 and len(rd.call.options) == 1 else rd.call.converted((f,)):
                    label = rd_label + (f" {_factor_words(gene, active, f)}" if len(factors) > 1 else "")
                    by_option.setdefault(opt, []).append(label)
        if active:
            c_ph, c_score, c_possible, c_ambiguous = ph.summarize(first.call.converted(factors))
            by = tuple(i.name for i, _ in active)
            strengths = ", ".join(f"{i.name} ({i.strength} {gene} inhibitor)" for i, _ in active)
            notes = list(call.notes)
            notes.append(f"Phenoconversion: {strengths}. Genetic phenotype {g_ph}"
                         f"{f' (activity score {g_score})' if g_score else ''}; acting phenotype {c_ph}"
                         f"{f' (activity score {c_score})' if c_score else ''}.")
            if len(factors) > 1:
                notes.append(f"The strength of {join_names(by)} as a {gene} inhibitor is uncertain (the sources "
                             f"disagree): the advice is the one that is safe under each strength.")
            gene_notes = tuple(dict.fromkeys(notes))
            evidence = tuple(dict.fromkeys(call.refs + tuple(ref for _, ref in active)))
        else:    # the genetic call as it is
            c_ph, c_score, c_possible, c_ambiguous = call.genetic
            by, gene_notes, evidence = (), call.notes, call.refs
        genes[gene] = GenePhenotype(
            gene=gene, phenotype=c_ph, diplotype=first.call.diplotype, activity_score=c_score,
            source="computed" if first.computed else "reported", genetic_phenotype=g_ph,
            genetic_activity_score=g_score, phenoconverted_by=by, possible_scores=c_possible,
            genetic_possible_scores=g_possible, ambiguous=c_ambiguous, conflicting=len(readings) > 1,
            notes=gene_notes, evidence=evidence,
        )
        options[gene] = tuple(by_option)
        origins[gene] = {o: tuple(dict.fromkeys(v)) for o, v in by_option.items()}
    # CPIC: a strong inhibitor means activity score 0 whatever the genotype, so it needs no genotype on file
    if "CYP2D6" not in genes and taken:
        active = _inhibitors_in("CYP2D6", taken)
        factors = ph.factors_of([i for i, _ in active]) if active else ()
        if 0 in factors:
            by = tuple(i.name for i, _ in active)
            pm = ("0.0", "Poor Metabolizer")
            opts = {pm: (f"no CYP2D6 result on file; {_factor_words('CYP2D6', active, 0)}",)}
            for f in factors:
                if f != 0:   # the genotype would decide under the weaker strength: that possibility is unknown
                    opts[(NO_RESULT, NO_RESULT)] = (f"no CYP2D6 result on file; {_factor_words('CYP2D6', active, f)}",)
            sure = len(opts) == 1
            strengths = ", ".join(f"{i.name} ({i.strength} CYP2D6 inhibitor, {ref})" for i, ref in active)
            note = (f"No CYP2D6 result on file, but {strengths}: CPIC treats a patient on a strong CYP2D6 inhibitor "
                    f"as a poor metabolizer (activity score 0) whatever the genotype.")
            if not sure:
                note += " Its strength is uncertain: under the weaker strength the genotype would decide."
            genes["CYP2D6"] = GenePhenotype(
                gene="CYP2D6", phenotype="Poor Metabolizer" if sure else "Indeterminate",
                activity_score="0.0" if sure else None, source="computed", phenoconverted_by=by,
                ambiguous=not sure, notes=(note,), evidence=tuple(dict.fromkeys(ref for _, ref in active)))
            options["CYP2D6"] = tuple(opts)
            origins["CYP2D6"] = opts
        else:
            for inh, ref in active:
                profile_notes.append(f"{inh.name} ({ref}) is a {inh.strength} CYP2D6 inhibitor: CYP2D6 activity is "
                                     f"reduced whatever the genotype.")
    return PgxProfile(genes=genes, notes=tuple(profile_notes), options=options, origins=origins)
