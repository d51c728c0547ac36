"""GeneCall -> HL7 Genomics Reporting Observations and one transaction Bundle that writes only what changed.

Per gene fhir-pain reads (fhir_pain.pgx.readers.HGNC), up to two Observations:
- genotype: LOINC 84413-4, gene studied (48018-6, HGNC id), the diplotype as text ("CYP2D6 *1/*3"); several
  possibilities as "CYP2B6 *1/*6 or *4/*9" (the readers keep them all); a no call has no value but a
  dataAbsentReason;
- phenotype: LOINC 53040-2 with the phenotype ("CYP2D6 Intermediate Metabolizer", LA answer code when there is one;
  HLA: PharmCAT's allele statuses), derived from the genotype; "Indeterminate" for a no call or when the possible
  diplotypes disagree (the readers then keep every possibility, never a normal result).
PharmCAT's messages become notes. Each Observation carries a stable identifier (patient + gene + kind) and is written
by conditional update on it, so a re-import changes nothing and a re-called gene updates (``amended``) the one
Observation, whose earlier version stays in its history. A Provenance names PharmCAT's versions (a contained Device),
the file's SHA-256 and the Observations written.
"""
from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote

from fhir_pain.importer.pharmcat import GeneCall, PharmcatResult, Possibility
from fhir_pain.pgx import readers
from fhir_pain.pgx.knowledge import HLA_ALLELES, gene_model, parse_score

RESULT_SYSTEM = "https://fhir-pain.io/fhir/sid/pharmcat-result"
LOINC = "http://loinc.org"
HGNC_SYSTEM = "http://www.genenames.org"
PARTICIPANT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
GENES = {gene: hgnc for hgnc, gene in readers.HGNC.items()}          # the genes fhir-pain reads
_LA = {phenotype: code for code, phenotype in readers.LA_PHENOTYPES.items()}
_CATEGORY = [
    {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]},
    {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "GE", "display": "Genetics"}]},
]
_METHOD = {"MATCHER": "PharmCAT named allele matcher, from the VCF",
           "OUTSIDE": "Outside call given to PharmCAT (called by another tool)",
           "NONE": "PharmCAT (no call)"}
# what decides whether a stored Observation already says what the file says (not when PharmCAT ran, nor status)
_CLINICAL_KEYS = ("identifier", "subject", "code", "valueCodeableConcept", "dataAbsentReason", "component", "note",
                  "method", "category")


@dataclass(frozen=True)
class Plan:
    bundle: dict | None                  # the transaction, None when nothing changed
    created: tuple[str, ...]             # "CYP2D6 genotype", ...
    updated: tuple[str, ...]
    unchanged: tuple[str, ...]
    skipped_genes: tuple[str, ...]       # in the file, but no gene fhir-pain reads


def identifier_value(patient: str, gene: str, kind: str) -> str:
    return hashlib.sha256(f"{patient}|{gene}|{kind}".encode()).hexdigest()


def _gene_component(gene: str) -> dict:
    return {"code": {"coding": [{"system": LOINC, "code": readers.GENE_STUDIED, "display": "Gene studied [ID]"}]},
            "valueCodeableConcept": {"coding": [{"system": HGNC_SYSTEM, "code": f"HGNC:{GENES[gene]}",
                                                 "display": gene}]}}


def _base(patient: str, gene: str, kind: str, code: dict, call: GeneCall, when: str | None) -> dict:
    obs = {"resourceType": "Observation",
           "identifier": [{"system": RESULT_SYSTEM, "value": identifier_value(patient, gene, kind)}],
           "status": "final", "category": _CATEGORY, "code": code,
           "subject": {"reference": f"Patient/{patient}"},
           "method": {"text": _METHOD[call.source]}}
    if when:
        obs["effectiveDateTime"] = when
    return obs


def _notes(call: GeneCall, extra: Iterable[str] = ()) -> list[dict]:
    return [{"text": t} for t in (*extra, *(f"PharmCAT: {m}" for m in call.messages))]


def genotype(patient: str, call: GeneCall, when: str | None) -> dict | None:
    diplotypes = [p.diplotype for p in call.possibilities if p.diplotype]
    if call.possibilities and not diplotypes:
        return None                      # an outside call of a phenotype or score only: no genotype to state
    obs = _base(patient, call.gene, "genotype",
                {"coding": [{"system": LOINC, "code": readers.GENOTYPE, "display": "Genotype display name"}]},
                call, when)
    extra = []
    if not diplotypes:
        obs["dataAbsentReason"] = {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": "unknown",
                        "display": "Unknown"}],
            "text": f"PharmCAT made no {call.gene} call"}
    else:
        obs["valueCodeableConcept"] = {"text": f"{call.gene} {' or '.join(diplotypes)}"}
        if len(diplotypes) > 1:
            extra.append(f"PharmCAT could not tell these {call.gene} diplotypes apart: {', '.join(diplotypes)}. "
                         "Each stays a possibility until a confirmatory test settles it.")
    obs["component"] = [_gene_component(call.gene)]
    if notes := _notes(call, extra):
        obs["note"] = notes
    return obs


def _phenotype_words(gene: str, p: Possibility) -> str | None:
    """The possibility's phenotype in CPIC's words; for an activity score alone, CPIC's phenotype for it."""
    words = [w for w in p.phenotypes if w and w not in ("n/a", "No Result")]
    if words:
        return "; ".join(words)
    if p.activity_score and (model := gene_model(gene)) is not None:
        try:
            return model.phenotype_of(parse_score(p.activity_score))
        except ValueError:
            return None
    return None


def phenotype(patient: str, call: GeneCall, when: str | None, genotype_ref: str | None) -> dict | None:
    gene = call.gene
    words = [_phenotype_words(gene, p) for p in call.possibilities]
    extra = []
    if call.no_call:
        value = "Indeterminate"
        extra.append(f"PharmCAT made no {gene} call (No Result): the phenotype is unknown, not normal.")
    elif None in words and len(words) == 1:
        return None                      # a diplotype without a phenotype PharmCAT names: the genotype says it all
    elif len(set(words)) > 1:
        value = "Indeterminate"
        listed = "; ".join(f"{p.diplotype or '?'}: {w or 'no phenotype'}" for p, w in zip(call.possibilities, words))
        extra.append(f"PharmCAT's possible {gene} diplotypes give different phenotypes ({listed}): indeterminate "
                     "until a confirmatory test settles it.")
    else:
        value = words[0]
        statuses = value.split("; ")
        risk = [w for w in statuses if gene in HLA_ALLELES and w.startswith(HLA_ALLELES[gene] + " ")]
        if risk and len(statuses) > 1:   # the value states CPIC's risk allele alone: one status, one reading
            value = risk[0]
            extra.append(f"PharmCAT's {gene} allele statuses: {'; '.join(statuses)}.")
    obs = _base(patient, gene, "phenotype",
                {"coding": [{"system": LOINC, "code": readers.PHENOTYPE_STU1,
                             "display": "Genetic variation's effect on drug metabolism"}]}, call, when)
    concept: dict = {"text": f"{gene} {value}"}
    if value in _LA:
        concept["coding"] = [{"system": LOINC, "code": _LA[value], "display": value}]
    obs["valueCodeableConcept"] = concept
    obs["component"] = [_gene_component(gene)]
    scores = sorted({p.activity_score for p in call.possibilities if p.activity_score})
    if len(scores) == 1:
        obs["component"].append({"code": {"text": "CPIC activity score"}, "valueString": scores[0]})
    if genotype_ref:
        obs["derivedFrom"] = [{"reference": genotype_ref}]
    if notes := _notes(call, extra):
        obs["note"] = notes
    return obs


def _clinical(obs: dict) -> str:
    return json.dumps({k: obs.get(k) for k in _CLINICAL_KEYS}, sort_keys=True, ensure_ascii=False)


def result_identifiers(patient: str, result: PharmcatResult) -> list[str]:
    return [identifier_value(patient, c.gene, kind) for c in result.calls if c.gene in GENES
            for kind in ("genotype", "phenotype")]


def existing_query(patient: str, result: PharmcatResult) -> str | None:
    """The search that finds what an earlier import of these genes wrote for the patient."""
    values = result_identifiers(patient, result)
    if not values:
        return None
    tokens = ",".join(quote(f"{RESULT_SYSTEM}|{v}", safe="") for v in values)
    return f"Observation?identifier={tokens}&_count={len(values) * 2}"


def plan(patient: str, result: PharmcatResult, existing: Iterable[dict], *, file_sha256: str, file_name: str,
         recorded: str, pharmcat_version: str | None = None) -> Plan:
    """The transaction that brings the server to what the file says (``existing``: the Observations an earlier
    import wrote, from ``existing_query``)."""
    by_identifier: dict[str, dict] = {}
    for obs in existing:
        for ident in obs.get("identifier") or ():
            if isinstance(ident, dict) and ident.get("system") == RESULT_SYSTEM:
                by_identifier[ident.get("value")] = obs
    entries, targets, created, updated, unchanged = [], [], [], [], []
    versions = []
    when = result.timestamp
    for call in result.calls:
        if call.gene not in GENES:
            continue
        geno = genotype(patient, call, when)
        geno_ref = None
        pair = []
        if geno is not None:
            geno_ref = _reference_for(geno, by_identifier)
            pair.append((geno, geno_ref))
        pheno = phenotype(patient, call, when, geno_ref)
        if pheno is not None:
            pair.append((pheno, _reference_for(pheno, by_identifier)))
        for obs, ref in pair:
            value = obs["identifier"][0]["value"]
            old = by_identifier.get(value)
            label = f"{call.gene} {'genotype' if obs is geno else 'phenotype'}"
            if old is not None and _clinical(old) == _clinical(obs):
                unchanged.append(label)
                continue
            if old is not None:
                obs["status"] = "amended"
                updated.append(label)
                versions.append(f"{old.get('id')}/{(old.get('meta') or {}).get('versionId')}")
            else:
                created.append(label)
            entries.append({"fullUrl": ref, "resource": obs,
                            "request": {"method": "PUT", "url": f"Observation?identifier="
                                        f"{quote(RESULT_SYSTEM, safe=':/')}|{value}"}})
            targets.append({"reference": ref})
    skipped = tuple(c.gene for c in result.calls if c.gene not in GENES)
    if not entries:
        return Plan(None, (), (), tuple(unchanged), skipped)
    key = hashlib.sha256("|".join([patient, file_sha256, *sorted(versions),
                                   *sorted(_clinical(e["resource"]) for e in entries)]).encode()).hexdigest()
    # R4 Provenance has no identifier: its id is derived from what it records, so a resent transaction rewrites it
    prov = provenance(result, targets, key, file_sha256=file_sha256, file_name=file_name, recorded=recorded,
                      pharmcat_version=pharmcat_version)
    entries.append({"resource": prov, "request": {"method": "PUT", "url": f"Provenance/{prov['id']}"}})
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    return Plan(bundle, tuple(created), tuple(updated), tuple(unchanged), skipped)


def _reference_for(obs: dict, by_identifier: dict[str, dict]) -> str:
    old = by_identifier.get(obs["identifier"][0]["value"])
    if old is not None and isinstance(old.get("id"), str):
        return f"Observation/{old['id']}"
    return f"urn:uuid:{uuid.uuid4()}"


def provenance(result: PharmcatResult, targets: list[dict], key: str, *, file_sha256: str,
               file_name: str, recorded: str, pharmcat_version: str | None) -> dict:
    device_versions = []
    if pharmcat_version:
        device_versions.append({"type": {"text": "PharmCAT"}, "value": pharmcat_version})
    labels = {"namedAlleleMatcher": "named allele matcher", "phenotypeData": "phenotype data (CPIC/PharmVar)",
              "genomeBuild": "genome build"}
    device_versions += [{"type": {"text": labels.get(k, k)}, "value": v} for k, v in result.versions.items()]
    device = {"resourceType": "Device", "id": "pharmcat",
              "deviceName": [{"name": "PharmCAT", "type": "manufacturer-name"}],
              "manufacturer": "PharmGKB"}
    if device_versions:
        device["version"] = device_versions
    kind = "PharmCAT phenotyper output" if result.kind == "phenotype.json" else "PharmCAT outside-call file"
    sample = f", sample {result.sample}" if result.sample else ""
    what = f"{file_name} ({kind}{sample}; sha256 {file_sha256})"
    return {"resourceType": "Provenance", "id": f"pharmcat-{key[:48]}", "contained": [device],
            "target": targets, "recorded": recorded,
            "activity": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                                     "code": "UPDATE", "display": "revise"}],
                         "text": "fhir-pain import pharmcat"},
            "agent": [{"type": {"coding": [{"system": PARTICIPANT_TYPE, "code": "assembler", "display": "Assembler"}]},
                       "who": {"reference": "#pharmcat", "display": "PharmCAT"}}],
            "entity": [{"role": "source", "what": {"display": what}}]}
