"""Star-allele diplotypes as labs write them, and what CPIC's rules make of them.

Accepted: "CYP2D6 *1/*4", "cyp2d6*1/*4", "*1 / *4", "*4/*1", "*1x2/*4", "*2X2/*10", "*1/*1x≥3" (also ">=3"),
"*1/*2xN", "*36+*10/*4" (tandem: the parts' values add up), sub-alleles ("*2A", "*1.001": scored as the core allele),
and duplications of an unstated allele: "(*1/*4)xN", "(*1/*4)3N", "*1/*4 dup", "*1/*4 with duplication".

Duplications. An explicit copy number ("x2", "x3", "x≥3") on an allele is taken as written, as CPIC's tables do.
"xN" (copy number not determined) is treated as a duplication whose copy number *and* carrier allele are uncertain:
labs that cannot count copies often cannot phase them either, and CPIC asks to consider the score for each allele
when the duplicated one is not known. Every possibility (the duplicated allele x 2 or x ≥3 copies, on either
allele) is scored; when they map to different phenotypes the result is ambiguous, never a confident call.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from itertools import product

from fhir_pain.pgx.knowledge import GeneModel, Score, format_score

GENE_PREFIX = re.compile(r"^\s*(CYP2D6|CYP2C19|CYP2C9|CYP2B6)\s*[:\-]?\s*", re.I)
_ALLELE = re.compile(r"^\*?(\d+)([A-Za-z]|\.\d+)?$")
_COPIES = re.compile(r"^\s*[x×]\s*(≥|>=|>)?\s*(\d+|n)\s*$", re.I)
_UNPHASED_PAREN = re.compile(r"^\((.+/.+)\)\s*(?:[x×]\s*(n|\d+)|(\d+)\s*n)$", re.I)
_UNPHASED_WORD = re.compile(r"^(.+/.+?)\s*[,;(+]?\s*(?:with\s+)?(?:gene\s+)?(?:dup|duplication|dupl\.?)\)?$", re.I)


@dataclass(frozen=True, slots=True)
class Allele:
    parts: tuple[str, ...]       # core star names, e.g. ("*36", "*10") for a tandem, ("*2",) usually
    written: str                 # as normalised for display: "*2A", "*36+*10"
    copies: int = 1
    at_least: bool = False       # "x≥3"
    unknown_copies: bool = False  # "xN"


@dataclass(frozen=True, slots=True)
class Diplotype:
    gene: str | None             # from a "CYP2D6 " prefix, when written
    alleles: tuple[Allele, Allele]
    unphased_copies: int | None = None   # "(*1/*4)3N" -> 3; 0 = duplication of unknown count and allele

    @property
    def text(self) -> str:
        a, b = (_allele_text(x) for x in self.alleles)
        if self.unphased_copies is None:
            return f"{a}/{b}"
        return f"({a}/{b})" + ("xN" if self.unphased_copies == 0 else f"{self.unphased_copies}N")

    @property
    def has_duplication(self) -> bool:
        return self.unphased_copies is not None or any(a.copies > 1 or a.unknown_copies for a in self.alleles)


def _allele_text(a: Allele) -> str:
    if a.unknown_copies:
        return f"{a.written}xN"
    if a.copies > 1:
        return f"{a.written}x{'≥' if a.at_least else ''}{a.copies}"
    return a.written


def _core(token: str) -> tuple[str, str] | None:
    m = _ALLELE.match(token.strip())
    if not m:
        return None
    suffix = m.group(2) or ""
    return f"*{int(m.group(1))}", f"*{int(m.group(1))}{suffix.upper() if len(suffix) == 1 else suffix}"


def _parse_allele(token: str) -> Allele | None:
    token = token.strip()
    copies, at_least, unknown = 1, False, False
    m = re.search(r"[x×]", token, re.I)
    if m:
        cm = _COPIES.match(token[m.start():])
        if not cm:
            return None
        token = token[:m.start()]
        if cm.group(2).lower() == "n":
            unknown = True
        else:
            copies = int(cm.group(2))
            at_least = cm.group(1) is not None
            if copies < 1:
                return None
    cores = [_core(p) for p in token.split("+")]
    if not cores or any(c is None for c in cores):
        return None
    if len(cores) > 1 and (copies > 1 or unknown):
        return None  # a duplicated tandem is beyond what CPIC scores
    return Allele(tuple(c[0] for c in cores), "+".join(c[1] for c in cores), copies, at_least, unknown)


def _sort_key(a: Allele) -> tuple:
    return (int(a.parts[0][1:]), a.written, a.copies)


def parse(text: str) -> Diplotype | None:
    """A diplotype from lab text, or None when it is not one (bad input never raises)."""
    if not isinstance(text, str) or "/" not in text or len(text) > 120:
        return None
    return _parse(text)


@lru_cache(maxsize=4096)   # labs write a few hundred distinct diplotypes: parse each once
def _parse(text: str) -> Diplotype | None:
    s = text.strip().replace("\u2009", " ")
    gene = None
    m = GENE_PREFIX.match(s)
    if m:
        gene = m.group(1).upper()
        s = s[m.end():]
    unphased = None
    m = _UNPHASED_PAREN.match(s)
    if m:
        count = m.group(2) or m.group(3)
        unphased = 0 if count.lower() == "n" else int(count)
        s = m.group(1)
    else:
        m = _UNPHASED_WORD.match(s)
        if m:
            unphased, s = 0, m.group(1)
    halves = s.split("/")
    if len(halves) != 2:
        return None
    a, b = _parse_allele(halves[0]), _parse_allele(halves[1])
    if a is None or b is None:
        return None
    if unphased is not None and (unphased == 1 or unphased == 2 or a.copies > 1 or b.copies > 1
                                 or a.unknown_copies or b.unknown_copies):
        return None   # "(*1/*4)2N" is no duplication; a stated copy number inside is contradictory
    a, b = sorted((a, b), key=_sort_key)
    return Diplotype(gene, (a, b), unphased)


# ---- scoring -----------------------------------------------------------------------------------------------

def _value(model: GeneModel, part: str) -> float | None:
    return model.values.get(part)


def _allele_score(model: GeneModel, a: Allele, copies: int, at_least: bool) -> Score:
    total = 0.0
    for part in a.parts:
        v = _value(model, part)
        if v is None:
            return None
        total += v
    value = total * copies
    return (value, at_least and value > 0)


def _add(x: Score, y: Score) -> Score:
    if x is None or y is None:
        return None
    return (x[0] + y[0], x[1] or y[1])


def _copy_options(unknown: bool, copies: int, at_least: bool) -> list[tuple[int, bool]]:
    # "xN": two copies, or three or more (CPIC writes the latter "x≥3")
    return [(2, False), (3, True)] if unknown else [(copies, at_least)]


def possible_scores(model: GeneModel, d: Diplotype) -> tuple[Score, ...]:
    """Every activity score the diplotype can have under CPIC's rules, distinct, lowest first."""
    a, b = d.alleles
    options: list[Score] = []
    if d.unphased_copies is not None or a.unknown_copies or b.unknown_copies:
        # the duplication may sit on either allele, with 2 or >=3 copies (or the stated total)
        if d.unphased_copies:
            extra = [(d.unphased_copies - 1, False)]
        else:
            extra = _copy_options(True, 0, False)
        for dup, single in ((a, b), (b, a)):
            for copies, at_least in extra:
                options.append(_add(_allele_score(model, dup, copies, at_least), _allele_score(model, single, 1, False)))
    else:
        for (ca, la), (cb, lb) in product(_copy_options(False, a.copies, a.at_least),
                                          _copy_options(False, b.copies, b.at_least)):
            options.append(_add(_allele_score(model, a, ca, la), _allele_score(model, b, cb, lb)))
    distinct = {format_score(s): s for s in options}
    return tuple(sorted(distinct.values(), key=lambda s: (-1.0, False) if s is None else s))


def unknown_alleles(model: GeneModel, d: Diplotype) -> list[str]:
    """Alleles the gene's table does not know (so the result is Indeterminate)."""
    table = model.values if model.method == "activity-score" else model.functions
    return [p for a in d.alleles for p in a.parts if p not in table]


def function_pair_phenotype(model: GeneModel, d: Diplotype) -> str:
    """CYP2C19: phenotype from the two alleles' functions; anything CPIC does not define is Indeterminate."""
    if d.has_duplication or any(len(a.parts) > 1 for a in d.alleles):
        return "Indeterminate"
    fa = model.functions.get(d.alleles[0].parts[0])
    fb = model.functions.get(d.alleles[1].parts[0])
    if fa is None or fb is None:
        return "Indeterminate"
    return model.pairs.get((fa, fb), "Indeterminate")
