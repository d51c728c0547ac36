"""A synthetic population built from the demo patients (fhir_pain/demo/patients), deterministic by seed.

    python scripts/build_population.py --patients 10000 --seed 17 --out pop/               # NDJSON per type
    python scripts/build_population.py --patients 10000 --format bundles --per-bundle 200 --out pop/

Each patient is one demo patient under a new id (``p<seed>-<n>``; every id and reference rewritten) with a
genotype drawn for each gene it has a result for (the reported CYP2D6 phenotype dropped when the diplotype is
redrawn, so the two never disagree by construction) and 0-3 extra MedicationRequests drawn from the covered pain
drugs: mostly active, some completed (history), some drafts (which the rules must ignore), some naming their
drug through a shared ``Medication`` resource (outside the Patient compartment, as EHRs write formularies).
Everything is tagged HTEST (test health data). Output is streamed: 50,000 patients never sit in memory.
``patients(n, seed)`` and ``medications()`` are the same data for Python callers (tests, bench).
"""
from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson

DEMO = Path(__file__).resolve().parents[1] / "fhir_pain" / "demo" / "patients"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
HTEST = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HTEST",
         "display": "test health data"}
GENOTYPE_LOINC = "84413-4"
PHENOTYPE_LOINC = "53040-2"
DIPLOTYPES = {
    "CYP2D6": ["*1/*1"] * 5 + ["*1/*2", "*1/*4", "*4/*4", "*4/*41", "*1/*1x2", "*10/*10", "*1/*5", "*5/*5",
                               "*41/*41", "*2/*41"],
    "CYP2C9": ["*1/*1"] * 4 + ["*1/*2", "*1/*3", "*2/*3", "*3/*3", "*2/*2"],
    "CYP2C19": ["*1/*1"] * 4 + ["*1/*2", "*2/*2", "*1/*17", "*17/*17", "*2/*17"],
    "CYP2B6": ["*1/*1"] * 3 + ["*1/*6", "*6/*6"],
}
# RxNorm ingredient codes of covered drugs and common co-medications, with the text an order carries
DRUGS = [("2670", "codeine", "Codeine Sulfate 30 MG Oral Tablet"), ("10689", "tramadol", "Tramadol 50 MG Oral Tablet"),
         ("5489", "hydrocodone", "Hydrocodone 5 MG / Acetaminophen 325 MG Oral Tablet"),
         ("7804", "oxycodone", "Oxycodone 5 MG Oral Tablet"), ("5640", "ibuprofen", "Ibuprofen 400 MG Oral Tablet"),
         ("140587", "celecoxib", "Celecoxib 200 MG Oral Capsule"), ("704", "amitriptyline", "Amitriptyline 10 MG"),
         ("7531", "nortriptyline", "Nortriptyline 25 MG Oral Capsule"),
         ("26225", "ondansetron", "Ondansetron 4 MG Oral Tablet"), ("32937", "paroxetine", "Paroxetine 20 MG"),
         ("2556", "citalopram", "Citalopram 20 MG Oral Tablet"), ("36437", "sertraline", "Sertraline 50 MG"),
         ("161", "acetaminophen", "Acetaminophen 500 MG Oral Tablet")]
SHARED = ("2670", "10689", "5640", "140587")   # these may be ordered through a formulary Medication resource
STATUSES = ["active"] * 6 + ["completed", "stopped", "draft", "cancelled"]


def _templates() -> list[tuple[str, list[dict]]]:
    out = []
    for path in sorted(DEMO.glob("*.json")):
        bundle = orjson.loads(path.read_bytes())
        resources = [e["resource"] for e in bundle["entry"]]
        patient = next(r for r in resources if r["resourceType"] == "Patient")
        out.append((patient["id"], resources))
    return out


def medications() -> list[dict]:
    """The formulary Medications some orders reference (one per shared drug)."""
    out = []
    for rxcui, name, text in DRUGS:
        if rxcui in SHARED:
            out.append({"resourceType": "Medication", "id": f"pop-med-{rxcui}", "meta": {"tag": [HTEST]},
                        "code": {"coding": [{"system": RXNORM, "code": rxcui, "display": name}], "text": text}})
    return out


def _gene_of(obs: dict) -> str | None:
    for comp in obs.get("component") or ():
        if comp["code"]["coding"][0].get("code") == "48018-6":
            return comp["valueCodeableConcept"]["coding"][0].get("display")
    return None


def _medication_request(pid: str, n: int, rng: random.Random) -> dict:
    rxcui, name, text = rng.choice(DRUGS)
    status = rng.choice(STATUSES)
    request = {"resourceType": "MedicationRequest", "id": f"{pid}-mr{n}", "meta": {"tag": [HTEST]},
               "status": status, "intent": "order", "subject": {"reference": f"Patient/{pid}"},
               "authoredOn": f"2026-{rng.randint(1, 10):02d}-{rng.randint(1, 28):02d}T09:00:00Z",
               "dosageInstruction": [{"text": "as directed"}]}
    if rxcui in SHARED and rng.random() < 0.3:
        request["medicationReference"] = {"reference": f"Medication/pop-med-{rxcui}"}
    else:
        request["medicationCodeableConcept"] = {"coding": [{"system": RXNORM, "code": rxcui, "display": name}],
                                                "text": text}
    return request


def patients(n: int, seed: int = 17, start: int = 0) -> Iterator[list[dict]]:
    """Patient ``start`` .. ``start + n - 1`` of the population of ``seed``: each a list of resources, the
    Patient first. Patient i is the same whatever ``n`` and ``start`` (its own random stream)."""
    templates = _templates()
    for i in range(start, start + n):
        rng = random.Random(f"{seed}:{i}")
        template_id, resources = templates[rng.randrange(len(templates))]
        pid = f"p{seed}-{i:07d}"
        text = orjson.dumps(resources).decode().replace(template_id, pid)
        out: list[dict] = []
        redrawn: set[str] = set()
        for r in orjson.loads(text):
            if r["resourceType"] == "Observation" and r["code"]["coding"][0].get("code") == GENOTYPE_LOINC:
                gene = _gene_of(r)
                if gene in DIPLOTYPES and (r.get("valueCodeableConcept") or {}).get("coding"):  # lab text: kept
                    value = f"{gene} {rng.choice(DIPLOTYPES[gene])}"
                    r["valueCodeableConcept"]["coding"][0].update(code=value, display=value)
                    redrawn.add(gene)
            out.append(r)
        out = [r for r in out if not (r["resourceType"] == "Observation"
                                      and r["code"]["coding"][0].get("code") == PHENOTYPE_LOINC
                                      and _gene_of(r) in redrawn)]
        out.extend(_medication_request(pid, k, rng) for k in range(rng.choice((0, 1, 1, 2, 3))))
        yield out


def transaction(patient_lists: list[list[dict]]) -> dict:
    """A transaction Bundle of PUTs (loading is idempotent: the ids are the population's)."""
    return {"resourceType": "Bundle", "type": "transaction",
            "entry": [{"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
                      for p in patient_lists for r in p]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--start", type=int, default=0, help="first patient number (to build in parts)")
    parser.add_argument("--format", choices=("ndjson", "bundles"), default="ndjson")
    parser.add_argument("--per-bundle", type=int, default=200, help="patients per transaction Bundle")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.format == "ndjson":
        files: dict[str, object] = {}
        try:
            files["Medication"] = open(args.out / "Medication.ndjson", "wb")
            for r in medications():
                files["Medication"].write(orjson.dumps(r) + b"\n")
            for resources in patients(args.patients, args.seed, args.start):
                for r in resources:
                    rtype = r["resourceType"]
                    if rtype not in files:
                        files[rtype] = open(args.out / f"{rtype}.ndjson", "wb")
                    files[rtype].write(orjson.dumps(r) + b"\n")
        finally:
            for f in files.values():
                f.close()
    else:
        (args.out / "medications.json").write_bytes(orjson.dumps(transaction([medications()])))
        batch: list[list[dict]] = []
        k = 0
        for resources in patients(args.patients, args.seed, args.start):
            batch.append(resources)
            if len(batch) == args.per_bundle:
                (args.out / f"bundle-{k:05d}.json").write_bytes(orjson.dumps(transaction(batch)))
                batch, k = [], k + 1
        if batch:
            (args.out / f"bundle-{k:05d}.json").write_bytes(orjson.dumps(transaction(batch)))
    print(f"{args.patients} patients (seed {args.seed}) written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
