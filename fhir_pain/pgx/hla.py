"""HLA results -> CPIC's allele status for the risk allele of the gene ("*15:02 positive" / "*15:02 negative"), or
"Indeterminate" when the result does not say. An unreadable HLA result is never taken as negative.

Shapes read (from the texts fhir_pain.pgx.readers hands over):
- genotype Observations (Genomics Reporting 84413-4) whose value lists the alleles: a GL String
  ("hla#3.25.0#HLA-B*15:02:01+HLA-B*40:01:01"), "HLA-B*15:02, HLA-B*40:01", "B*1502/B*4001";
- presence results: the allele in the code or a component ("HLA-B*15:02 [Presence]"), the value Present / Absent
  (LA9633-4 / LA9634-2), positive / negative, detected / not detected, carrier / non-carrier;
- lab text ("HLA-B*15:02 not detected", "Positive for HLA-B*1502", "HLA-B 1502 screen").
A presence result for another allele of the gene (HLA-B*57:01 for abacavir, HLA-B27 for spondyloarthritis) says
nothing of *15:02: not read.
"""
from __future__ import annotations

import re

from fhir_pain.pgx.knowledge import HLA_ALLELES

GENES = tuple(HLA_ALLELES)
INDETERMINATE = "Indeterminate"
PRESENT, ABSENT = "LA9633-4", "LA9634-2"
_NEGATIVE = re.compile(r"\b(negative|neg|not\s+detected|undetected|absent|not\s+present|non[\s-]?carrier|"
                       r"not\s+a\s+carrier)\b", re.I)
_POSITIVE = re.compile(r"\b(positive|pos|detected|present|carrier)\b", re.I)
# "HLA-B*15:02:01", "B*15:02", "*15:02", "B*1502", "B*15" (one field: the allele group only)
_ALLELE = re.compile(r"(?:(?<![A-Z])([AB]))?\s*\*\s*(\d{2})(?::(\d{2,4})|(\d{2})(?!\d))?", re.I)


def status_of(gene: str, positive: bool) -> str:
    return f"{HLA_ALLELES[gene]} {'positive' if positive else 'negative'}"


# without a star only after "HLA-": "HLA-B27" (serological: the allele group), "HLA-B 1502"
_NO_STAR = re.compile(r"HLA[\s-]?([AB])[\s-]?(\d{2})(\d{2})?(?![\d:*])", re.I)


def _alleles(gene: str, text: str) -> list[tuple[str, str | None]]:
    """(group, protein field or None) of every allele of ``gene`` named in the text ("15", "02")."""
    out = []
    for m in _ALLELE.finditer(text):
        letter = m.group(1)
        if letter and letter.upper() != gene[-1]:
            continue
        out.append((m.group(2), m.group(3) or m.group(4)))
    for m in _NO_STAR.finditer(text):
        if m.group(1).upper() == gene[-1]:
            out.append((m.group(2), m.group(3)))
    return out


def _risk(gene: str) -> tuple[str, str]:
    group, field = HLA_ALLELES[gene].lstrip("*").split(":")
    return group, field


def _match(gene: str, allele: tuple[str, str | None]) -> str:
    """'yes' | 'no' | 'group' (one-field typing of the risk allele's group: may or may not be it)."""
    group, field = _risk(gene)
    if allele[0] != group:
        return "no"
    if allele[1] is None:
        return "group"
    return "yes" if allele[1].zfill(2) == field else "no"


def _presence(value_texts: list[str], value_codes: set[str]) -> bool | None:
    if ABSENT in value_codes:
        return False
    if PRESENT in value_codes:
        return True
    for t in value_texts:
        if _NEGATIVE.search(t):
            return False
        if _POSITIVE.search(t):
            return True
    return None


def _risk_part(gene: str, text: str) -> list[str]:
    """A text giving several alleles each its own status ("*15:02 positive; *57:01 positive; *58:01 negative", as
    PharmCAT lists them): only the parts naming the risk allele (or its group), so another allele's "negative" is
    not read as the risk allele's."""
    parts = [p for p in re.split(r"[;\n]", text) if p.strip()]
    if len(parts) < 2 or not (_NEGATIVE.search(text) or _POSITIVE.search(text)):
        return [text]
    risk = [p for p in parts if any(_match(gene, a) != "no" for a in _alleles(gene, p))]
    return risk or [text]


def allele_status(gene: str, code_texts: list[str], value_texts: list[str], value_codes: set[str],
                  component_texts: list[str]) -> str | None:
    """CPIC's key for ``gene`` ("*15:02 positive" / "*15:02 negative"), "Indeterminate" when the result does not
    settle it, None when the result is about another allele of the gene only."""
    value_texts = [t for text in value_texts for t in _risk_part(gene, text)]
    present = _presence(value_texts, value_codes)
    listed = next((a for a in (_alleles(gene, t) for t in value_texts) if a), [])
    if present is not None:
        # a presence result: which allele was tested? (in the code, a component, or the value's own text)
        tested = listed or [a for t in code_texts + component_texts for a in _alleles(gene, t)]
        matches = {_match(gene, a) for a in tested}
        if "yes" in matches:
            return status_of(gene, present)
        if "group" in matches:      # "B*15 negative" rules *15:02 out; "B*15 positive" does not say
            return status_of(gene, False) if not present else INDETERMINATE
        return None if tested else INDETERMINATE
    if not listed:
        return INDETERMINATE
    matches = [_match(gene, a) for a in listed]
    if "yes" in matches:
        return status_of(gene, True)
    if "group" in matches or len(listed) < 2:   # one allele named: homozygous, or the other not reported
        return INDETERMINATE
    return status_of(gene, False)
