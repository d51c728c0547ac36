"""Benchmark of the PGx engine on one realistic patient: 10 PGx Observations + 20 MedicationRequests.

One round = identify every MedicationRequest + read the Observations + resolve the profile (phenoconversion
included) + guideline lookup and recommendation for every ingredient of every medication.

    .venv/bin/python -m bench.pgx_engine [ROUNDS]
"""
from __future__ import annotations

import statistics
import sys
import time

from fhir_pain import pgx

LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
TBD = "http://hl7.org/fhir/uv/genomics-reporting/CodeSystem/tbd-codes-cs"


def _genotype(oid: str, hgnc: str, value: str, when: str) -> dict:
    return {"resourceType": "Observation", "id": oid, "status": "final", "effectiveDateTime": when,
            "code": {"coding": [{"system": LOINC, "code": "84413-4"}]},
            "valueCodeableConcept": {"coding": [{"system": "https://www.pharmvar.org", "code": value}]},
            "component": [{"code": {"coding": [{"system": LOINC, "code": "48018-6"}]},
                           "valueCodeableConcept": {"coding": [{"system": "http://www.genenames.org/geneId",
                                                                "code": hgnc}]}}]}


def _implication(oid: str, derived: str, la: str, drug: str) -> dict:
    return {"resourceType": "Observation", "id": oid, "status": "final",
            "code": {"coding": [{"system": TBD, "code": "therapeutic-implication"}]},
            "derivedFrom": [{"reference": f"Observation/{derived}"}],
            "component": [{"code": {"coding": [{"system": TBD, "code": "therapeutic-implication"}]},
                           "valueCodeableConcept": {"coding": [{"system": LOINC, "code": la}]}},
                          {"code": {"coding": [{"system": LOINC, "code": "51963-7"}]},
                           "valueCodeableConcept": {"coding": [{"system": RXNORM, "code": drug}]}}]}


def _lab(oid: str, code_text: str, value: str, status: str = "final") -> dict:
    return {"resourceType": "Observation", "id": oid, "status": status, "effectiveDateTime": "2024-05-02",
            "code": {"text": code_text}, "valueString": value}


OBSERVATIONS = [
    _genotype("g-2d6", "HGNC:2625", "CYP2D6 *1/*41", "2023-04-01"),
    _genotype("g-2d6-old", "2625", "CYP2D6 *1/*1", "2015-01-01"),
    _genotype("g-2c19", "HGNC:2621", "CYP2C19 *1/*17", "2023-04-01"),
    _genotype("g-2c9", "HGNC:2623", "CYP2C9 *1/*3", "2023-04-01"),
    _implication("i-2d6", "g-2d6", "LA25391-6", "2670"),
    _implication("i-2c19", "g-2c19", "LA25390-8", "704"),
    _lab("l-2d6", "CYP2D6 phenotype", "Normal metabolizer"),
    _lab("l-oprm1", "OPRM1 rs1799971", "A/G"),
    _lab("l-comt", "COMT rs4680", "G/A"),
    _lab("l-2c9-err", "CYP2C9 genotype", "*3/*3", "entered-in-error"),
]

_MEDS = [
    ("993889", "Codeine Phosphate 60 MG"), ("994276", "Aspirin 325 MG / butalbital 50 MG / Caffeine 40 MG / "
                                                      "Codeine Phosphate 30 MG [Fiorinal with Codeine]"),
    ("596927", "duloxetine 20 MG [Cymbalta]"), ("345817", "gabapentin 100 MG"), ("197361", "Amlodipine 5 MG Oral Tablet"),
    ("10689", "tramadol"), (None, "oxyCODONE Hydrochloride 5 MG Oral Tablet"), (None, "Celebrex 200 MG Oral Capsule"),
    (None, "Ibuprofen 600 MG Oral Tablet"), (None, "Meloxicam 15 MG Oral Tablet"), (None, "Amitriptyline HCl 25 MG"),
    (None, "Nortriptyline 10 MG Oral Capsule"), (None, "Ondansetron 4 MG Disintegrating Oral Tablet"),
    (None, "Norco 5-325 tablet"), (None, "Metformin 500 MG Oral Tablet"), (None, "Lisinopril 10 MG Oral Tablet"),
    (None, "Venlafaxine 75 MG Extended Release Capsule"), (None, "Hydrocodone Bitartrate 10 MG / Acetaminophen 325 MG"),
    (None, "Methadone Hydrochloride 10 MG Oral Tablet"), (None, "Atorvastatin 20 MG Oral Tablet"),
]
MEDICATION_REQUESTS = [
    {"resourceType": "MedicationRequest", "id": f"m{i}", "status": "draft" if i == 0 else "active", "intent": "order",
     "authoredOn": "2026-03-01",
     "medicationCodeableConcept": {"text": text, "coding": ([{"system": RXNORM, "code": code, "display": text}]
                                                            if code else [])}}
    for i, (code, text) in enumerate(_MEDS)
]


def one_round() -> int:
    meds = [pgx.identify(r, is_draft=r["status"] == "draft") for r in MEDICATION_REQUESTS]
    results = pgx.read_gene_results(OBSERVATIONS)
    profile = pgx.resolve_profile(results, meds)
    n = 0
    for m in meds:
        for drug in m.ingredients:
            if pgx.guideline_for(drug) is not None and pgx.recommend(drug, profile) is not None:
                n += 1
    return n


def clear_input_caches() -> None:
    """Forget every parsed diplotype and scanned drug text: a round as for texts never seen before."""
    from fhir_pain import fhirdates
    from fhir_pain.pgx import diplotype, drugs, knowledge, phenotype, readers
    diplotype._parse.cache_clear()
    phenotype.call_diplotype.cache_clear()
    knowledge._names_in.cache_clear()
    fhirdates._parse.cache_clear()
    readers._names_gene.cache_clear()
    readers._coding_kind.cache_clear()
    readers._diplotype_in_text.cache_clear()
    drugs._ingredients.cache_clear()
    drugs._drug_by_name.cache_clear()


def _measure(rounds: int, cold: bool) -> tuple[float, float]:
    times = []
    for _ in range(rounds):
        if cold:
            clear_input_caches()
        t0 = time.perf_counter_ns()
        one_round()
        times.append(time.perf_counter_ns() - t0)
    times.sort()
    return statistics.median(times) / 1000, times[max(0, int(len(times) * 0.99) - 1)] / 1000


# One order each way an EHR codes it: an RxNorm product code alone (products.json), pharmacy shorthand, a brand with
# a number, a drug we do not know (every word looked up, nothing found).
_SHAPES = {
    "SCD code alone": {"coding": [{"system": RXNORM, "code": "993781"}]},
    "shorthand text": {"text": "APAP/COD 300-30 MG TAB"},
    "brand with number": {"text": "Tylenol #3"},
    "unknown drug": {"text": "Atorvastatin calcium 20 MG Oral Tablet (generic, store below 25 C)"},
}


def vocabulary_build_ms() -> tuple[float, int, int]:
    """The drug vocabulary (drugs.json + products.json + abbreviations.json), built once per process."""
    from fhir_pain import profiles
    from fhir_pain.pgx import knowledge
    knowledge.drug_vocabulary.cache_clear()
    profiles.load.cache_clear()
    t0 = time.perf_counter_ns()
    vocab = knowledge.drug_vocabulary()
    return (time.perf_counter_ns() - t0) / 1e6, len(vocab.names), len(vocab.products)


def identify_us(rounds: int) -> dict[str, float]:
    """Median µs of identify() on one order of each shape, its text never seen before (caches cleared)."""
    from fhir_pain.pgx import drugs, knowledge
    out = {}
    for shape, concept in _SHAPES.items():
        order = {"resourceType": "MedicationRequest", "id": "o1", "status": "draft", "intent": "order",
                 "medicationCodeableConcept": concept}
        times = []
        for _ in range(rounds):
            knowledge._names_in.cache_clear()
            drugs._ingredients.cache_clear()
            t0 = time.perf_counter_ns()
            pgx.identify(order)
            times.append(time.perf_counter_ns() - t0)
        out[shape] = statistics.median(times) / 1000
    return out


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    rounds = int(argv[0]) if argv else 3000
    build_ms, n_names, n_products = vocabulary_build_ms()
    for _ in range(200):            # load the knowledge files and warm the interpreter
        recs = one_round()
    warm = _measure(rounds, cold=False)
    cold = _measure(rounds, cold=True)
    print(f"pgx engine: 10 PGx Observations + 20 MedicationRequests -> {recs} recommendations per round")
    print(f"  identify + read + resolve + recommend: median {warm[0]:.0f} µs, p99 {warm[1]:.0f} µs ({rounds} rounds)")
    print(f"  same, input caches cleared every round: median {cold[0]:.0f} µs, p99 {cold[1]:.0f} µs")
    print(f"  drug vocabulary, built once per process: {build_ms:.1f} ms ({n_names} names, {n_products} product codes)")
    shapes = identify_us(rounds)
    print("  identify one order, text never seen: " + ", ".join(f"{k} {v:.1f} µs" for k, v in shapes.items()))
    return {"median_us": warm[0], "p99_us": warm[1], "cold_median_us": cold[0], "cold_p99_us": cold[1],
            "recommendations": recs, "vocabulary_ms": build_ms, "identify_us": shapes}


if __name__ == "__main__":
    main()
