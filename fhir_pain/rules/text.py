"""Wording helpers shared by the rules and the card renderer: markdown escaping and short phrases.

Card wording is ours; facts come from CPIC and the engines. Anything that came from the EHR (drug text,
diplotypes such as ``*1/*4``) is escaped before it goes into markdown: asterisks would otherwise turn into
emphasis, and CDS Hooks clients render GitHub-flavoured markdown (HTML must not pass through).
"""
from __future__ import annotations

import re
from collections.abc import Iterable

from fhir_pain.facts import GenePhenotype
from fhir_pain.memo import short_text_memo
from fhir_pain.pgx.knowledge import HLA_ALLELES

SUMMARY_MAX = 140
_MD_SPECIAL = re.compile(r"([\\`*_\[\]#|~])")   # what could start emphasis, code, links, headings, tables
_MD_LONGEST = 2000   # longer texts (rare; an EHR's, possibly hostile) are escaped each time, never kept


def md(text: object) -> str:
    """Plain text -> markdown-safe text (HTML neutralised, markdown punctuation escaped, one line)."""
    s = text if type(text) is str else str(text)
    # the length checked here, the memo asked directly: md runs some 70 times per order call
    return _md_kept(s) if len(s) <= _MD_LONGEST else _md(s)


@short_text_memo(maxsize=8192, longest=_MD_LONGEST)
def _md(text: str) -> str:
    # memoised: most texts are the knowledge's (CPIC's recommendations, drug names), escaped on every call
    s = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = " ".join(s.split())
    return _MD_SPECIAL.sub(r"\\\1", s)


_md_kept = _md.cache_kept


def code(text: object) -> str:
    """Inline code span for identifiers such as diplotypes (``*1/*4``)."""
    s = " ".join(str(text).split()).replace("`", "'")
    return f"`{s}`"


def phenotype_phrase(phenotype: str) -> str:
    """'Poor Metabolizer' -> 'poor metabolizer'; 'Indeterminate' -> 'indeterminate result'."""
    if phenotype == "Indeterminate":
        return "indeterminate result"
    return phenotype[:1].lower() + phenotype[1:].lower() if phenotype else "unknown phenotype"


def article(word: str) -> str:
    """'a' or 'an' before a gene symbol as it is read aloud: 'a CYP2D6 test', 'an HLA-B test'."""
    return "an" if word[:1].upper() in "AEFHILMNORSX" else "a"


def gene_phrase(gene: str, gp: GenePhenotype, *, with_inhibitor: bool = True) -> str:
    """'CYP2D6 poor metabolizer' (+ ' via paroxetine' when phenoconverted)."""
    by = gp.phenoconverted_by if with_inhibitor else ()
    try:
        return _gene_phrase(gene, gp.phenotype, by)
    except TypeError:     # a field that cannot be a memo key (not a GenePhenotype fhir_pain.pgx built)
        return _gene_phrase.__wrapped__(gene, gp.phenotype, by)  # type: ignore[attr-defined]


@short_text_memo(maxsize=1024, longest=300)   # pure; CPIC vocabulary and inhibitor names
def _gene_phrase(gene: str, phenotype: str, phenoconverted_by: tuple[str, ...]) -> str:
    phrase = f"{gene} {phenotype_phrase(phenotype)}"
    if phenoconverted_by:
        phrase += " via " + join_and(phenoconverted_by)
    return phrase


def instrument_label(key: str | None) -> str:
    """Instrument key -> short label: 'phq9' -> 'PHQ-9', 'pcs' -> 'PCS', 'nrs' -> 'NRS'."""
    if not key:
        return ""
    m = re.fullmatch(r"([a-z]+)(\d+)", key)
    return f"{m.group(1).upper()}-{m.group(2)}" if m else key.upper()


def sources_md(sources: list[dict]) -> str:
    """'**Sources:** [NICE NG193](url); ...' from a rule's sources (each label's short name, before ':' or ' (')."""
    return "**Sources:** " + "; ".join([f"[{md(s['label'].split(':')[0].split(' (')[0])}]({s['url']})"
                                        for s in sources])


_NEEDS_MD = re.compile(r"[\\`*_\[\]#|~&<>\s]")   # what md() would escape, neutralise or collapse


def evidence_md(refs: Iterable[str]) -> str:
    """'**Evidence:** Observation/1, MedicationRequest/2' (each reference escaped)."""
    refs = tuple(refs)
    try:
        plain = _NEEDS_MD.search("".join(refs)) is None
    except TypeError:     # a reference that is no text: md() says it
        plain = False
    if plain:             # the usual references: md() would return each as it is
        return "**Evidence:** " + ", ".join(refs)
    return "**Evidence:** " + ", ".join([md(e) for e in refs])


def join_and(items: Iterable[str], conj: str = "and") -> str:
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f" {conj} " + items[-1]


def fit(*candidates: str) -> str:
    """The first candidate that fits a card summary (<= 140 characters); the last one cut at a word if none."""
    for c in candidates:
        # most candidates are single-spaced already (every other whitespace is unprintable): no split and join then
        if not c.isprintable() or "  " in c or c[:1] == " " or c[-1:] == " ":
            c = " ".join(c.split())
        if 0 < len(c) <= SUMMARY_MAX:
            return c
    last = " ".join(candidates[-1].split())
    cut = last[: SUMMARY_MAX - 1].rsplit(" ", 1)[0]
    return cut.rstrip(",;:") + "…"


def gene_line(gene: str, gp: GenePhenotype) -> str:
    """One markdown line: diplotype, activity score, phenotype, its source, and any phenoconversion
    ("genetic Normal Metabolizer, functionally Poor Metabolizer while taking paroxetine")."""
    args = (gene, gp.phenotype, gp.diplotype, gp.activity_score, gp.source, gp.genetic_phenotype,
            gp.genetic_activity_score, gp.phenoconverted_by, gp.possible_scores, gp.ambiguous)
    try:
        return _gene_line(*args)
    except TypeError:     # a field that cannot be a memo key (not a GenePhenotype fhir_pain.pgx built)
        return _gene_line.__wrapped__(*args)  # type: ignore[attr-defined]


@short_text_memo(maxsize=1024, longest=300)   # pure; CPIC vocabulary, normalised diplotypes and inhibitor names
def _gene_line(gene: str, phenotype: str, diplotype: str | None, activity_score: str | None, source: str,
               genetic_phenotype: str | None, genetic_activity_score: str | None, phenoconverted_by: tuple[str, ...],
               possible_scores: tuple[str, ...], ambiguous: bool) -> str:
    allele = HLA_ALLELES.get(gene)
    if allele:   # HLA: the status of CPIC's risk allele, read from a typing, a presence result or a lab's text
        if phenotype == "Indeterminate":
            return f"**{gene}** → {md(allele)} status unknown (the result does not say; treated as possibly positive)"
        return f"**{gene}** → **{md(phenotype)}** (CPIC's allele status, from the HLA result on file)"
    if phenoconverted_by and not diplotype and not genetic_phenotype:   # no result on file at all
        taking = md(join_and(phenoconverted_by))
        return (f"**{gene}** no result on file → **{phenotype}**"
                + (f", activity score {code(activity_score)}" if activity_score else "")
                + f" while taking {taking} (phenoconversion, whatever the genotype)")
    genetic_pheno = genetic_phenotype or phenotype
    genetic_as = genetic_activity_score or activity_score
    bits = [f"**{gene}**"]
    if diplotype:
        bits.append(code(diplotype))
    if len(possible_scores) > 1:
        bits.append("possible activity scores " + ", ".join(code(s) for s in possible_scores))
    elif genetic_as and genetic_as != "n/a":
        bits.append(f"activity score {code(genetic_as)}")
    if ambiguous and len(possible_scores) > 1:
        line = ", ".join(bits) + " → phenotype uncertain"
    else:
        line = ", ".join(bits) + f" → genetic {genetic_pheno}"
    if source == "reported":
        line += " (phenotype as reported by the lab)"
    if phenoconverted_by:
        taking = md(join_and(phenoconverted_by))
        if phenotype != genetic_pheno:
            line += f"; **converted to {phenotype}** by {taking} (phenoconversion)"
        else:
            line += f"; activity lowered by {taking}"
        if activity_score and activity_score != genetic_as:
            line += f", activity score {code(activity_score)}"
    return line
