"""PharmCAT results -> GeneCall: what PharmCAT called per gene, read from its phenotyper output or an outside-call TSV.

Two inputs (examples and provenance in reference/pharmcat/):
- ``*.phenotype.json``, the phenotyper's output: ``matcherMetadata`` (matcher version, sample, timestamp) and
  ``geneReports`` (gene -> ``callSource`` MATCHER / OUTSIDE / NONE, ``sourceDiplotypes`` with label, phenotypes,
  activity score, ``messages``, ``phenotypeVersion``). Several source diplotypes mean PharmCAT could not tell them
  apart; callSource NONE or an ``Unknown/Unknown`` diplotype is a no call.
- the outside-call TSV (PharmCAT's docs/using/Outside-Call-Format.md): gene, diplotype, phenotype, activity score per
  line, ``#`` comments.

Anything else (a VCF, PharmCAT's report.json, other JSON, an empty, truncated or binary file) raises PharmcatFormatError
with a message a lab's pipeline operator can act on. Nothing here touches FHIR.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

MAX_BYTES = 64 * 1024 * 1024          # a phenotype.json is about 0.5 MB; a larger file is no PharmCAT output
NO_CALL_LABELS = frozenset({"Unknown/Unknown", "Unknown"})
NO_CALL_PHENOTYPES = frozenset({"No Result", "n/a", ""})
_GENE = re.compile(r"^[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)?$")
_GENE_PREFIX = re.compile(r"(?<![\w*])(?:CYP\w+|HLA-[AB]|[A-Z][A-Z0-9]+)(?=\*)")
_COPIES_BIN = re.compile(r"(?<![x×])≥(\d)")   # CPIC's "*1≥3" bin; the engine reads "*1x≥3"


class PharmcatFormatError(ValueError):
    """The file is not a PharmCAT phenotyper output or outside-call file (the message says what it is instead)."""


@dataclass(frozen=True)
class Possibility:
    """One diplotype PharmCAT called (or one outside call), with its phenotypes and activity score."""
    diplotype: str | None             # "*1/*3", "*15:02/*57:01"; None when only a phenotype or score was given
    phenotypes: tuple[str, ...] = ()  # PharmCAT's words: "Intermediate Metabolizer", "*15:02 positive"
    activity_score: str | None = None


@dataclass(frozen=True)
class GeneCall:
    gene: str
    possibilities: tuple[Possibility, ...]   # empty: PharmCAT made no call; several: it could not tell them apart
    source: str                              # "MATCHER" (from the VCF) | "OUTSIDE" (an outside call) | "NONE"
    messages: tuple[str, ...] = ()

    @property
    def no_call(self) -> bool:
        return not self.possibilities


@dataclass(frozen=True)
class PharmcatResult:
    calls: tuple[GeneCall, ...]
    kind: str                                # "phenotype.json" | "outside-call"
    versions: dict[str, str] = field(default_factory=dict)   # what produced it: matcher, phenotype data, ...
    sample: str | None = None
    timestamp: str | None = None             # when PharmCAT ran (ISO instant), when the file says


def normalize_diplotype(gene: str, label: str) -> str:
    """PharmCAT's label in the notation fhir_pain.pgx reads: gene prefixes stripped ("CYP2C9*1/CYP2C9*3" ->
    "*1/*3"), CPIC's copy-number bin "*1≥3" written "*1x≥3"."""
    text = label.strip().replace(f"{gene}*", "*").replace(f"{gene} *", "*")
    text = _GENE_PREFIX.sub("", text)
    return _COPIES_BIN.sub(r"x≥\1", text)


def parse(data: bytes, name: str = "the file") -> PharmcatResult:
    """The PharmCAT result in ``data`` (the file's bytes); PharmcatFormatError when it is none."""
    if not data.strip():
        raise PharmcatFormatError(f"{name} is empty")
    if len(data) > MAX_BYTES:
        raise PharmcatFormatError(f"{name} is larger than {MAX_BYTES // (1024 * 1024)} MiB: not a PharmCAT result")
    if data[:2] == b"\x1f\x8b":
        raise PharmcatFormatError(f"{name} is gzip-compressed (a VCF?): give PharmCAT's *.phenotype.json or an "
                                  "outside-call TSV, uncompressed")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise PharmcatFormatError(f"{name} is not UTF-8 text: not a PharmCAT result") from None
    if text.lstrip().startswith(("{", "[")):
        return _parse_phenotype_json(text, name)
    return _parse_outside_calls(text, name)


# -- phenotype.json ------------------------------------------------------------------------------------------------

def _parse_phenotype_json(text: str, name: str) -> PharmcatResult:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PharmcatFormatError(f"{name} is not valid JSON (truncated?): {exc.msg} at line {exc.lineno} "
                                  f"column {exc.colno}") from None
    except RecursionError:
        raise PharmcatFormatError(f"{name}: JSON nested too deeply") from None
    if not isinstance(doc, dict):
        raise PharmcatFormatError(f"{name} is JSON but not a PharmCAT phenotyper output (an object with "
                                  "'geneReports')")
    if "geneReports" not in doc:
        if "drugs" in doc or "genes" in doc or "title" in doc:
            raise PharmcatFormatError(f"{name} looks like a PharmCAT report (report.json), not the phenotyper "
                                      "output: import the *.phenotype.json of the same run")
        if "results" in doc and "metadata" in doc:
            raise PharmcatFormatError(f"{name} looks like PharmCAT's named allele matcher output (*.match.json): "
                                      "import the *.phenotype.json of the same run")
        raise PharmcatFormatError(f"{name} is JSON but not a PharmCAT phenotyper output: no 'geneReports'")
    reports = doc["geneReports"]
    if not isinstance(reports, dict) or not reports:
        raise PharmcatFormatError(f"{name}: 'geneReports' must be a non-empty object of gene reports")
    meta = doc.get("matcherMetadata")
    meta = meta if isinstance(meta, dict) else {}
    calls, data_versions = [], set()
    for gene, report in reports.items():
        call, version = _gene_report(gene, report, name)
        calls.append(call)
        if version:
            data_versions.add(version)
    versions = {}
    if isinstance(meta.get("namedAlleleMatcherVersion"), str):
        versions["namedAlleleMatcher"] = meta["namedAlleleMatcherVersion"]
    if data_versions:
        versions["phenotypeData"] = ", ".join(sorted(data_versions))
    if isinstance(meta.get("genomeBuild"), str):
        versions["genomeBuild"] = meta["genomeBuild"]
    return PharmcatResult(tuple(calls), "phenotype.json", versions,
                          meta.get("sampleId") if isinstance(meta.get("sampleId"), str) else None,
                          meta.get("timestamp") if isinstance(meta.get("timestamp"), str) else None)


def _gene_report(gene: object, report: object, name: str) -> tuple[GeneCall, str | None]:
    if not isinstance(gene, str) or not _GENE.match(gene) or not isinstance(report, dict):
        raise PharmcatFormatError(f"{name}: geneReports entry {gene!r} is not a gene report")
    source = report.get("callSource")
    diplotypes = report.get("sourceDiplotypes")
    if source not in ("MATCHER", "OUTSIDE", "NONE") or not isinstance(diplotypes, list):
        raise PharmcatFormatError(f"{name}: the {gene} report lacks 'callSource' or 'sourceDiplotypes': not a "
                                  "PharmCAT 3 phenotyper output")
    possibilities = []
    for d in diplotypes:
        if not isinstance(d, dict) or not isinstance(d.get("label"), str):
            raise PharmcatFormatError(f"{name}: a {gene} source diplotype has no label")
        phenotypes = d.get("phenotypes") or []
        if not isinstance(phenotypes, list) or not all(isinstance(p, str) for p in phenotypes):
            raise PharmcatFormatError(f"{name}: the {gene} diplotype {d['label']} has malformed phenotypes")
        score = d.get("activityScore")
        score = score if isinstance(score, str) and score not in NO_CALL_PHENOTYPES else None
        if d["label"] in NO_CALL_LABELS and not (set(phenotypes) - NO_CALL_PHENOTYPES):
            continue
        possibilities.append(Possibility(normalize_diplotype(gene, d["label"]), tuple(phenotypes), score))
    if source == "NONE":
        possibilities = []
    messages = tuple(m["message"].strip() for m in report.get("messages") or ()
                     if isinstance(m, dict) and isinstance(m.get("message"), str) and m["message"].strip())
    version = report.get("phenotypeVersion")
    return GeneCall(gene, tuple(dict.fromkeys(possibilities)), source, messages), \
        version if isinstance(version, str) else None


# -- outside-call TSV ----------------------------------------------------------------------------------------------

def _parse_outside_calls(text: str, name: str) -> PharmcatResult:
    if text.startswith("##fileformat=VCF") or "\n#CHROM\t" in text[:200_000]:
        raise PharmcatFormatError(f"{name} is a VCF: run PharmCAT on it and import its *.phenotype.json")
    calls: dict[str, GeneCall] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip("\r\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = [f.strip() for f in line.split("\t")]
        if len(fields) > 4:
            raise PharmcatFormatError(f"{name} line {lineno}: {len(fields)} tab-separated fields; an outside call "
                                      "has at most 4 (gene, diplotype, phenotype, activity score)")
        gene = fields[0]
        if not _GENE.match(gene):
            raise PharmcatFormatError(f"{name} line {lineno}: {gene[:40]!r} is not an HGNC gene symbol: not a "
                                      "PharmCAT outside-call file")
        diplotype, phenotype, score = (fields[1:] + ["", "", ""])[:3]
        if not (diplotype or phenotype or score):
            raise PharmcatFormatError(f"{name} line {lineno}: {gene} has no diplotype, phenotype or activity score")
        if gene in calls:
            raise PharmcatFormatError(f"{name} line {lineno}: a second outside call for {gene}")
        calls[gene] = GeneCall(gene, (Possibility(normalize_diplotype(gene, diplotype) if diplotype else None,
                                                  (phenotype,) if phenotype else (), score or None),), "OUTSIDE")
    if not calls:
        raise PharmcatFormatError(f"{name} holds no outside calls (only comments or blank lines)")
    return PharmcatResult(tuple(calls.values()), "outside-call")
