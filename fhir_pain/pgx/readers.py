"""PGx results from FHIR Observations (plain dicts) -> GeneResult facts.

Shapes read (examples in tests/fixtures/pgx): Genomics Reporting STU1 phenotype Observations (code 53040-2,
value an LA answer), STU2/STU3 therapeutic implications (components predicted-therapeutic-implication /
therapeutic-implication / 53040-2, the gene from the text or the derivedFrom genotype), genotype Observations
(84413-4, PharmVar or ClinVar or plain text value, gene component 48018-6 with HGNC "HGNC:2625" or "2625"), and
lab-style results whose code text names the gene and whose value is a diplotype or phenotype as text. HLA-B/HLA-A
results (a genotype with the typing, a 69548-6 presence result, lab text) are read by fhir_pain.pgx.hla into CPIC's
allele status ("*15:02 positive"), "Indeterminate" when they do not settle it. A diplotype value listing several
diplotypes joined by "or" (a caller that could not tell them apart) keeps them all: each is a possibility.
Only final/amended/corrected results count. Anything else is skipped cheaply; bad input never raises.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from fhir_pain import fhirdates
from fhir_pain.facts import GeneResult
from fhir_pain.memo import keep_short, short_text_memo
from fhir_pain.pgx import diplotype as dip
from fhir_pain.pgx import hla

USABLE_STATUS = frozenset({"final", "amended", "corrected"})
GENOTYPE, HAPLOTYPE, PHENOTYPE_STU1, GENE_STUDIED = "84413-4", "84414-2", "53040-2", "48018-6"
VARIANT_ASSESSMENT = "69548-6"   # Genomics Reporting variant: an HLA allele's presence, with the gene as a component
IMPLICATION_CODES = frozenset({"therapeutic-implication", "predicted-therapeutic-implication", PHENOTYPE_STU1})
HGNC = {"2625": "CYP2D6", "2623": "CYP2C9", "2621": "CYP2C19", "2615": "CYP2B6", "8156": "OPRM1", "2228": "COMT",
        "4931": "HLA-A", "4932": "HLA-B"}
GENES = ("CYP2C19", "CYP2C9", "CYP2D6", "CYP2B6", "OPRM1", "COMT")     # CYP2C19 before CYP2C9: prefix match
_GENE_RE = re.compile(r"(?<![A-Z0-9])(CYP2C19|CYP2C9|CYP2D6|CYP2B6|OPRM1|COMT|HLA[\s-]?[AB])(?![0-9A-Z])", re.I)
LA_PHENOTYPES = {
    "LA10315-2": "Ultrarapid Metabolizer", "LA25390-8": "Rapid Metabolizer", "LA25391-6": "Normal Metabolizer",
    "LA10317-8": "Intermediate Metabolizer", "LA9657-3": "Poor Metabolizer",
}
_PHENOTYPE_WORDS = (
    (re.compile(r"ultra[\s-]?rapid", re.I), "Ultrarapid Metabolizer"),
    (re.compile(r"likely\s+intermediate", re.I), "Likely Intermediate Metabolizer"),
    (re.compile(r"likely\s+poor", re.I), "Likely Poor Metabolizer"),
    (re.compile(r"\brapid", re.I), "Rapid Metabolizer"),
    (re.compile(r"\b(normal|extensive)", re.I), "Normal Metabolizer"),
    (re.compile(r"\bintermediate", re.I), "Intermediate Metabolizer"),
    (re.compile(r"\bpoor", re.I), "Poor Metabolizer"),
    (re.compile(r"\bindeterminate", re.I), "Indeterminate"),
)
_STAR = re.compile(r"\*\s*\d")


_PHENOTYPE_PHRASE = re.compile(
    r"(ultra[\s-]?rapid|likely\s+intermediate|likely\s+poor|rapid|normal|extensive|intermediate|poor)\s+metaboli[sz]",
    re.I)


def phenotype_from_text(text: str | None) -> str | None:
    """CPIC phenotype vocabulary from free text ("CYP2C19 Rapid Metabolizer", "IM - intermediate metabolizer").
    The "<word> metabolizer" phrase decides ("Intermediate metabolizer (normal + no function allele)")."""
    if not text:
        return None
    return _phenotype_in(text) if type(text) is str else _phenotype_in.__wrapped__(text)


@short_text_memo(maxsize=4096, longest=300)   # pure; the same few result texts recur across patients
def _phenotype_in(text: str) -> str | None:
    low = text.lower()
    if "metaboli" not in low and "indeterminate" not in low:
        return None
    m = _PHENOTYPE_PHRASE.search(text)
    if m:
        text = m.group(1)
    for pattern, phenotype in _PHENOTYPE_WORDS:
        if pattern.search(text):
            return phenotype
    return None


def gene_from_text(text: str | None) -> str | None:
    if not text:
        return None
    return _gene_in(text) if type(text) is str else _gene_in.__wrapped__(text)


@short_text_memo(maxsize=4096, longest=300)   # pure; the same few code and result texts recur across patients
def _gene_in(text: str) -> str | None:
    m = _GENE_RE.search(text)
    if not m:
        return None
    gene = m.group(1).upper()
    return "HLA-" + gene[-1] if gene.startswith("HLA") else gene


def _codings(cc: object) -> list[dict]:
    if not isinstance(cc, dict):
        return []
    codings = cc.get("coding")
    if isinstance(codings, dict):
        codings = [codings]
    return [c for c in codings if isinstance(c, dict)] if isinstance(codings, list) else []


def _codes(cc: object) -> set[str]:
    return {c.get("code") for c in _codings(cc) if isinstance(c.get("code"), str)}


def _texts(cc: object) -> list[str]:
    """Every human-readable string of a CodeableConcept: text, displays, and codes (PharmVar codes are text)."""
    out: list[str] = []
    if isinstance(cc, dict) and isinstance(cc.get("text"), str):
        out.append(cc["text"])
    for c in _codings(cc):
        for k in ("code", "display"):
            if isinstance(c.get(k), str):
                out.append(c[k])
    return out


def _gene_of_concept(cc: object) -> str | None:
    codings = _codings(cc)
    for c in codings:
        code = c.get("code")
        if isinstance(code, str):
            gene = HGNC.get(code.upper().removeprefix("HGNC:"))
            if gene:
                return gene
    # then the texts in _texts' order (text, each coding's code and display), without building the list
    text = cc.get("text") if isinstance(cc, dict) else None
    if isinstance(text, str):
        gene = gene_from_text(text)
        if gene:
            return gene
    for c in codings:
        for k in ("code", "display"):
            value = c.get(k)
            if isinstance(value, str):
                gene = gene_from_text(value)
                if gene:
                    return gene
    return None


def _value_texts(obs: dict) -> tuple[str, ...]:
    v = obs.get("valueString")
    if isinstance(v, str):
        return (v,)
    return _concept(obs.get("valueCodeableConcept")).texts


def _phenotype_of_concept(cc: object) -> str | None:
    for code in _codes(cc):
        if code in LA_PHENOTYPES:
            return LA_PHENOTYPES[code]
    for t in _texts(cc):
        p = phenotype_from_text(t)
        if p:
            return p
    return None


class _Concept(NamedTuple):
    """What the readers take from one CodeableConcept (_concept reads it once per distinct concept)."""
    codes: frozenset[str]      # _codes
    texts: tuple[str, ...]     # _texts
    phenotype: str | None      # _phenotype_of_concept
    gene: str | None           # _gene_of_concept


_NO_CONCEPT = _Concept(frozenset(), (), None, None)


def _read_concept(cc: object) -> _Concept:
    return _Concept(frozenset(_codes(cc)), tuple(_texts(cc)), _phenotype_of_concept(cc), _gene_of_concept(cc))


_concepts: dict[tuple, _Concept] = {}   # (text, code, display) of one-coding concepts -> _Concept (keep_short)


def _concept(cc: object) -> _Concept:
    """A CodeableConcept as the readers see it. The usual shapes (one coding, or a text alone) are memoised on
    their texts: the same few result, value and component concepts recur in every call; others are read anew."""
    if not isinstance(cc, dict):
        return _NO_CONCEPT
    codings = cc.get("coding")
    if type(codings) is list and len(codings) == 1:
        coding = codings[0]
        try:      # seen before, with texts as _concept_of keeps them (strings or nothing): one look-up
            return _concepts[cc.get("text"), coding.get("code"), coding.get("display")]
        except (KeyError, TypeError, AttributeError):
            pass
    return _concept_of(cc)


def _concept_of(cc: dict) -> _Concept:
    codings = cc.get("coding")
    if isinstance(codings, list):
        dicts = [c for c in codings if isinstance(c, dict)]
        if len(dicts) > 1:
            return _read_concept(cc)
        coding = dicts[0] if dicts else None
    else:
        coding = codings if isinstance(codings, dict) else None     # _codings reads a lone coding as one
    text = cc.get("text")
    code, display = (coding.get("code"), coding.get("display")) if coding is not None else (None, None)
    # _read_concept reads strings only: a field of another type is as good as absent
    key = (text if isinstance(text, str) else None, code if isinstance(code, str) else None,
           display if isinstance(display, str) else None)
    got = _concepts.get(key)
    if got is None:
        got = _read_concept({"coding": [{"code": key[1], "display": key[2]}], "text": key[0]})
        keep_short(_concepts, key, got, maxsize=4096, longest=300)
    return got


def _iter_resources(items: Iterable) -> Iterator[dict]:
    """Observations, also when handed a Bundle or a Parameters resource (genomics-operations answers)."""
    for item in items or ():
        if not isinstance(item, dict):
            continue
        rt = item.get("resourceType")
        if rt == "Observation":     # the usual item first
            yield item
        elif rt == "Bundle":
            yield from _iter_resources(e.get("resource") for e in item.get("entry") or () if isinstance(e, dict))
        elif rt == "Parameters":
            yield from _iter_parameters(item.get("parameter"))


def _observations(items: Iterable) -> Iterable[dict]:
    """_iter_resources of ``items``: a list of Observations (the usual) as it is, without a generator's steps."""
    if type(items) is not list:
        return _iter_resources(items)
    for item in items:
        if type(item) is not dict or item.get("resourceType") != "Observation":
            return _iter_resources(items)
    return items


def _iter_parameters(params: object) -> Iterator[dict]:
    for p in params if isinstance(params, list) else ():
        if isinstance(p, dict):
            yield from _iter_resources([p.get("resource")])
            yield from _iter_parameters(p.get("part"))


def _ref(obs: dict) -> str:
    rid = obs.get("id")
    return f"Observation/{rid}" if isinstance(rid, str) and rid else "Observation/unidentified"


_NAMED = "named"    # _coding_kind: a coding whose code or display names a PGx gene (a lab-style result)
_CODE_KINDS = {GENOTYPE: "genotype", VARIANT_ASSESSMENT: "genotype", HAPLOTYPE: "haplotype",
               **{c: "implication" for c in IMPLICATION_CODES}}


def _coding_kind(value: str | None, display: str | None) -> str | None:
    """What one coding says of its Observation: 'genotype' | 'implication' | 'haplotype' | _NAMED | None."""
    kind = _CODE_KINDS.get(value) if value is not None else None
    if kind is not None:
        return kind
    if (display is not None and _GENE_RE.search(display)) or (value is not None and _GENE_RE.search(value)):
        return _NAMED
    return None


# (code, display) of a coding -> _coding_kind (keep_short): the same few codings (pain scores, vitals) recur.
_coding_kinds: dict[tuple, str | None] = {}
_UNSEEN = object()


def _forget() -> None:
    """Empty the plain-dict memos (_coding_kinds, _code_kinds, _concepts): bench/pgx_engine.py's cold rounds."""
    _coding_kinds.clear()
    _code_kinds.clear()
    _concepts.clear()


_coding_kind.cache_clear = _forget   # type: ignore[attr-defined]  # the name bench/pgx_engine.py clears


def _coding_kind_of(value: object, display: object) -> str | None:
    """_coding_kind of a coding's fields as sent (strings or nothing: a field of another type is as good as absent)."""
    key = (value if isinstance(value, str) else None, display if isinstance(display, str) else None)
    kind = _coding_kinds.get(key, _UNSEEN)
    if kind is _UNSEEN:
        kind = keep_short(_coding_kinds, key, _coding_kind(*key), maxsize=4096, longest=300)
    return kind


@short_text_memo(maxsize=4096, longest=300)
def _names_gene(text: str) -> bool:
    """Whether a code's text names a PGx gene (memoised like _coding_kind)."""
    return _GENE_RE.search(text) is not None


# (text, code, display) of a code with one coding -> _kind (keep_short): one look-up for the usual Observation
_code_kinds: dict[tuple, str | None] = {}


def _kind(obs: dict) -> str | None:
    """'genotype' | 'implication' | 'lab' | None (not a PGx result), from the code alone. Runs for every
    Observation of the patient (pain scores, vitals ...): the usual code, one coding seen before, is one look-up."""
    code = obs.get("code")
    if not isinstance(code, dict):
        return None
    codings = code.get("coding")
    if type(codings) is list and len(codings) == 1:
        c = codings[0]
        if type(c) is dict:
            try:
                return _code_kinds[code.get("text"), c.get("code"), c.get("display")]
            except (KeyError, TypeError):
                pass
    kind = _kind_by_codings(code)
    if type(codings) is list and len(codings) == 1 and type(codings[0]) is dict:
        key = (code.get("text"), codings[0].get("code"), codings[0].get("display"))
        if all(v is None or type(v) is str for v in key):    # the look-up above finds only these
            keep_short(_code_kinds, key, kind, maxsize=4096, longest=300)
    return kind


def _kind_by_codings(code: dict) -> str | None:
    named = False
    codings = code.get("coding")
    for c in codings if isinstance(codings, list) else ():
        if not isinstance(c, dict):
            continue
        kind = _coding_kind_of(c.get("code"), c.get("display"))
        if kind is None:
            continue
        if kind == _NAMED:
            named = True
        elif kind == "haplotype":
            return None
        else:
            return kind
    text = code.get("text")
    if named or (isinstance(text, str) and _names_gene(text)):
        return "lab"
    return None


def read_gene_results(observations: Iterable[dict]) -> list[GeneResult]:
    """Every usable PGx result, one GeneResult per Observation (skips everything else)."""
    candidates: list[tuple[dict, str, str | None, str]] = []
    genes_by_ref: dict[str, str] = {}
    for obs in _observations(observations):
        status = obs.get("status")
        if not isinstance(status, str) or (status not in USABLE_STATUS and status.lower() not in USABLE_STATUS):
            continue
        try:
            kind = _kind(obs)
            if kind is None:
                continue
            # genotype Observations name the gene that therapeutic implications derive from
            gene = _genotype_gene(obs) if kind == "genotype" else None
        except (TypeError, ValueError, AttributeError):
            continue
        ref = _ref(obs)
        if gene:
            genes_by_ref[ref] = gene
        candidates.append((obs, kind, gene, ref))
    out: list[GeneResult] = []
    for obs, kind, gene, ref in candidates:
        try:
            result = _read(obs, kind, gene, genes_by_ref, ref)
        except (TypeError, ValueError, AttributeError):
            result = None     # malformed beyond what we can read: skip it, never fail the request
        if result is not None:
            out.append(result)
    return out


def _components(obs: dict) -> list[dict]:
    comps = obs.get("component")
    if not isinstance(comps, list):
        return []
    for c in comps:
        if not isinstance(c, dict):
            return [c for c in comps if isinstance(c, dict)]
    return comps     # the usual: all objects, read as sent (never changed)


def _genotype_gene(obs: dict) -> str | None:
    for comp in _components(obs):
        if GENE_STUDIED in _concept(comp.get("code")).codes:
            gene = _concept(comp.get("valueCodeableConcept")).gene
            if gene:
                return gene
    for t in _value_texts(obs):
        gene = gene_from_text(t)
        if gene:
            return gene
    return gene_from_text(" ".join(_concept(obs.get("code")).texts))


_DIPLOTYPE_IN_TEXT = re.compile(
    r"(?:(CYP2C19|CYP2C9|CYP2D6|CYP2B6)\s*[:\-]?\s*)?"
    r"(\(?\s*\*[^/\s;,]*\s*/\s*\*[^\s;,()]*"
    r"(?:\s*\)\s*(?:[x×]\s*[Nn\d]+|\d+\s*[Nn]))?"
    r"(?:\s*,?\s*(?:with\s+)?(?:gene\s+)?(?:dup|duplication)\b)?)", re.I)


_ALTERNATIVES = re.compile(r"\s+or\s+", re.I)


def _diplotype_in(texts: Iterable[str], gene: str | None) -> tuple[str | None, str | None]:
    """(gene, normalised diplotype) from the first text that holds one, e.g. "CYP2C19*2/*2",
    "*1/*4 (intermediate metabolizer)", "CYP2D6 (*1/*4)xN"."""
    for t in texts:
        found = _diplotype_kept(t, gene) if len(t) <= 300 else _diplotype_in_text(t, gene)
        if found is not None:
            return found
    return gene, None


@short_text_memo(maxsize=4096, longest=300)   # pure; the same few result texts recur across patients
def _diplotype_in_text(t: str, gene: str | None) -> tuple[str | None, str | None] | None:
    """_diplotype_in for one text; None when the text holds no diplotype (the next text is tried)."""
    if not _STAR.search(t):
        return None
    parts = _ALTERNATIVES.split(t)
    if sum(1 for p in parts if _STAR.search(p) and "/" in p) > 1:
        # "CYP2B6 *1/*6 or *4/*9": every diplotype stays a possibility, never the first alone
        found = [_diplotype_in([part], gene) for part in parts]
        if all(d for _, d in found):
            return found[0][0] or gene, " or ".join(dict.fromkeys(d for _, d in found))
        return gene, None
    d = dip.parse(t)
    if d is None:
        m = _DIPLOTYPE_IN_TEXT.search(t)
        if m:
            d = dip.parse(m.group(2))
            if d is not None and m.group(1):
                return m.group(1).upper(), d.text
    if d is not None:
        return d.gene or gene, d.text
    return None


_diplotype_kept = _diplotype_in_text.cache_kept  # type: ignore[attr-defined]  # _diplotype_in checks the length


def _read_hla(obs: dict, gene: str, ref: str, when, status) -> GeneResult | None:
    components = [t for comp in _components(obs) if GENE_STUDIED not in _codes(comp.get("code"))
                  for t in _texts(comp.get("code")) + list(_value_texts(comp))]
    allele_status = hla.allele_status(gene, _texts(obs.get("code")), list(_value_texts(obs)),
                                      _codes(obs.get("valueCodeableConcept")), components)
    return GeneResult(gene, ref, None, allele_status, when, status) if allele_status else None


def _read_implication(obs: dict, gene: str | None, genes_by_ref: dict[str, str], ref: str, when, status
                      ) -> GeneResult | None:
    phenotype, gene = None, None
    code = _concept(obs.get("code"))
    if PHENOTYPE_STU1 in code.codes:
        value = _concept(obs.get("valueCodeableConcept"))
        phenotype, gene = value.phenotype, value.gene
        if phenotype is None:  # lab feeds send the STU1 phenotype as text: "CYP2D6 Poor Metabolizer"
            value_texts = _value_texts(obs)
            phenotype = next(filter(None, map(phenotype_from_text, value_texts)), None)
            gene = gene or next(filter(None, map(gene_from_text, value_texts + code.texts)), None)
    for comp in _components(obs) if phenotype is None or gene is None else ():
        if phenotype is not None and gene is not None:
            break      # nothing a further component could change
        roles = _concept(comp.get("code")).codes
        if phenotype is None and not roles.isdisjoint(IMPLICATION_CODES):
            value = _concept(comp.get("valueCodeableConcept"))
            phenotype, gene = value.phenotype, gene or value.gene
        elif GENE_STUDIED in roles:
            gene = gene or _concept(comp.get("valueCodeableConcept")).gene
    if phenotype is None and gene in hla.GENES:   # an HLA phenotype: the risk allele's status
        return _read_hla(obs, gene, ref, when, status)
    if phenotype is None:
        return None
    if gene is None:
        for d in obs.get("derivedFrom") or ():
            r = d.get("reference") if isinstance(d, dict) else None
            if isinstance(r, str):
                gene = genes_by_ref.get(r) or genes_by_ref.get("Observation/" + r.rsplit("/", 1)[-1])
                if gene:
                    break
    if gene is None:
        return None
    return GeneResult(gene, ref, None, phenotype, when, status)


def _read(obs: dict, kind: str, gene: str | None, genes_by_ref: dict[str, str], ref: str) -> GeneResult | None:
    effective = fhirdates.effective(obs)
    when = effective.at if effective else None
    status = obs.get("status")
    if kind == "lab" or (kind == "genotype" and gene is None):
        gene = gene or gene_from_text(" ".join(_concept(obs.get("code")).texts))
    if gene in hla.GENES:
        return _read_hla(obs, gene, ref, when, status)
    if kind == "implication":
        return _read_implication(obs, gene, genes_by_ref, ref, when, status)
    value_texts = _value_texts(obs)
    if kind == "genotype":
        if gene in ("OPRM1", "COMT"):
            raw = next((t for t in value_texts if t.strip()), None)
            return GeneResult(gene, ref, raw, None, when, status) if raw else None
        gene, diplotype = _diplotype_in(value_texts, gene)
        if gene is None or diplotype is None:
            return None
        return GeneResult(gene, ref, diplotype, None, when, status)
    # lab style: the code names the gene; the value holds a diplotype and/or a phenotype as text
    gene = gene_from_text(" ".join(_concept(obs.get("code")).texts))
    gene, diplotype = _diplotype_in(value_texts, gene)
    phenotype = None
    for t in value_texts:
        phenotype = phenotype_from_text(t)
        if phenotype:
            break
    if phenotype is None:
        phenotype = _concept(obs.get("valueCodeableConcept")).phenotype
    if gene in ("OPRM1", "COMT") and diplotype is None:
        diplotype = next((t.strip() for t in value_texts if t.strip()), None)   # e.g. "rs1799971 A/G"
    if gene is None or (diplotype is None and phenotype is None):
        return None
    return GeneResult(gene, ref, diplotype, phenotype, when, status)
