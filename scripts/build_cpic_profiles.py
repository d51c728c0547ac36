#!/usr/bin/env python3
"""Generate the CPIC-derived knowledge in profiles/pgx/ from the CPIC exports.

    python scripts/build_cpic_profiles.py [CPIC_DIR]      (make profiles; default reference/cpic)

Writes profiles/pgx/cyp2d6.json, cyp2c9.json, cyp2c19.json, cyp2b6.json (allele activity values / functions and the
phenotype rules) and profiles/pgx/recommendations.json (every drug's recommendation table). The CPIC wording is
mapped to our own gist, action and named alternatives through the hand-kept profiles/pgx/wording.json: a CPIC
text without wording stops the build, so a CPIC update cannot silently ship untranslated advice.

The build checks what it stores against CPIC's own tables: every explicit duplication allele must equal
value x copies, every diplotype's activity score and phenotype must follow from the stored values and bands,
every CYP2C19 diplotype from its function pair. A mismatch stops the build (the engine would disagree too).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "profiles" / "pgx"
CPIC_EXPORTS = REPO / "reference" / "cpic"  # the CPIC exports, with their provenance (reference/cpic/README.md)
GENERATED_BY = "scripts/build_cpic_profiles.py"

# CPIC/DPWG consensus (Caudle et al., Clin Transl Sci 2020;13:116) as used by the CPIC database for CYP2D6;
# CYP2C9 bands from the CPIC NSAID guideline (Theken 2020). Bounds: [min, max], exclusive flags where stated.
BANDS = {
    "CYP2D6": [
        {"phenotype": "Poor Metabolizer", "min": 0, "max": 0},
        {"phenotype": "Intermediate Metabolizer", "min": 0, "minExclusive": True, "max": 1.25, "maxExclusive": True},
        {"phenotype": "Normal Metabolizer", "min": 1.25, "max": 2.25},
        {"phenotype": "Ultrarapid Metabolizer", "min": 2.25, "minExclusive": True},
    ],
    "CYP2C9": [
        {"phenotype": "Poor Metabolizer", "min": 0, "max": 0.5},
        {"phenotype": "Intermediate Metabolizer", "min": 0.5, "minExclusive": True, "max": 1.5},
        {"phenotype": "Normal Metabolizer", "min": 1.5, "minExclusive": True},
    ],
}
BAND_SOURCES = {
    "CYP2D6": "CPIC/DPWG CYP2D6 genotype-to-phenotype consensus (Caudle et al., Clin Transl Sci 2020;13:116-124)",
    "CYP2C9": "CPIC NSAID guideline (Theken et al. 2020, PMID 32189324, doi:10.1002/cpt.1830)",
}
HGNC = {"CYP2D6": "HGNC:2625", "CYP2C9": "HGNC:2623", "CYP2C19": "HGNC:2621", "CYP2B6": "HGNC:2615"}
PHENOTYPE_FILES = {"CYP2D6": "phenotype_cpic_CYP2D6.json", "CYP2C9": "phenotype_CYP2C9.json",
                   "CYP2C19": "phenotype_CYP2C19.json", "CYP2B6": "phenotype_CYP2B6.json"}
FUNCTION_GENES = ("CYP2C19", "CYP2B6")          # no activity score: phenotype from the pair of allele functions
# HLA genes: CPIC keys by the status of one risk allele ("*15:02 positive"), not by a phenotype
HLA_GENES = ("HLA-B", "HLA-A")
DUP = re.compile(r"^(\*\d+)x(≥?)(\d+)$")

# Drugs with a CPIC export, in the order the knowledge file lists them; gene order of the rule id.
EXPORTED = {
    "codeine": ["CYP2D6"], "tramadol": ["CYP2D6"], "hydrocodone": ["CYP2D6"],
    "celecoxib": ["CYP2C9"], "flurbiprofen": ["CYP2C9"], "ibuprofen": ["CYP2C9"], "lornoxicam": ["CYP2C9"],
    "meloxicam": ["CYP2C9"], "piroxicam": ["CYP2C9"], "tenoxicam": ["CYP2C9"],
    "amitriptyline": ["CYP2D6", "CYP2C19"], "nortriptyline": ["CYP2D6"],
    "ondansetron": ["CYP2D6"], "paroxetine": ["CYP2D6"], "venlafaxine": ["CYP2D6"],
    "citalopram": ["CYP2C19"], "escitalopram": ["CYP2C19"], "sertraline": ["CYP2C19", "CYP2B6"],
    "fluvoxamine": ["CYP2D6"], "vortioxetine": ["CYP2D6"],
    "carbamazepine": ["HLA-B", "HLA-A"], "oxcarbazepine": ["HLA-B"],
    "phenytoin": ["HLA-B", "CYP2C9"], "fosphenytoin": ["HLA-B", "CYP2C9"],
}
# CPIC's populations (the export's `population`) -> ours. A table with populations is looked up in the one the
# patient's medication history puts them in; "naive" is the default (the cautious one: "> 3 months" relaxes it).
# The carbamazepine "no alternatives" rows are naive patients for whom no alternative exists: kept as a population
# of their own (the card says what CPIC advises then).
POPULATIONS = {
    "CBZ naive": "naive", "CBZ use >3mos ": "use-over-3-months", "CBZ-no alternatives": "naive-no-alternatives",
    "OXC naive": "naive", "OXC use >3 mos": "use-over-3-months",
    "PHT naive": "naive", "PHT use >3mos": "use-over-3-months",
}
DEFAULT_POPULATION = "naive"
# Guideline version labels (publication the export's recommendations come from).
GUIDELINE_VERSION = {
    "codeine": "2021 (PMID 33387367)", "tramadol": "2021 (PMID 33387367)", "hydrocodone": "2021 (PMID 33387367)",
    "celecoxib": "2020 (PMID 32189324)", "flurbiprofen": "2020 (PMID 32189324)", "ibuprofen": "2020 (PMID 32189324)",
    "lornoxicam": "2020 (PMID 32189324)", "meloxicam": "2020 (PMID 32189324)", "piroxicam": "2020 (PMID 32189324)",
    "tenoxicam": "2020 (PMID 32189324)", "amitriptyline": "2016 (PMID 27997040)",
    "nortriptyline": "2016 (PMID 27997040)", "ondansetron": "2016 (PMID 28002639)",
    "paroxetine": "2023 (PMID 37032427)", "venlafaxine": "2023 (PMID 37032427)",
    "citalopram": "2023 (PMID 37032427)", "escitalopram": "2023 (PMID 37032427)",
    "sertraline": "2023 (PMID 37032427)", "fluvoxamine": "2023 (PMID 37032427)",
    "vortioxetine": "2023 (PMID 37032427)",
    "carbamazepine": "2017 (PMID 29392710)", "oxcarbazepine": "2017 (PMID 29392710)",
    "phenytoin": "2020 (PMID 32779747)", "fosphenytoin": "2020 (PMID 32779747)",
}
# Drugs CPIC covers through another drug's table (no export of their own).
# tropisetron: the ondansetron/tropisetron guideline gives both drugs the same recommendations [OND].
# other TCAs: the TCA guideline extends amitriptyline's (tertiary amines) and nortriptyline's (secondary amines)
# recommendations to the other tricyclics with the "other TCAs" classification: Strong for normal metabolizers,
# Optional otherwise (CPIC TCA 2016, Tables 2-3).
DERIVED = {
    "tropisetron": {"from": "ondansetron", "rxnorm": "27392", "otherTca": False},
    "desipramine": {"from": "nortriptyline", "rxnorm": "3247", "otherTca": True},
    "clomipramine": {"from": "amitriptyline", "rxnorm": "2597", "otherTca": True},
    "doxepin": {"from": "amitriptyline", "rxnorm": "3638", "otherTca": True},
    "imipramine": {"from": "amitriptyline", "rxnorm": "5691", "otherTca": True},
    "trimipramine": {"from": "amitriptyline", "rxnorm": "10834", "otherTca": True},
}


def fnum(x: float) -> str:
    """A score the way CPIC writes its lookup keys: 0.0, 0.25, 1.5, 3.0."""
    return repr(float(x))


def parse_value(v: str) -> tuple[float, bool] | None:
    if v == "n/a" or v is None:
        return None
    return (float(v[1:]), True) if v.startswith("≥") else (float(v), False)


def band_of(gene: str, value: float) -> str:
    for b in BANDS[gene]:
        lo_ok = value > b["min"] if b.get("minExclusive") else value >= b["min"]
        hi_ok = "max" not in b or (value < b["max"] if b.get("maxExclusive") else value <= b["max"])
        if lo_ok and hi_ok:
            return b["phenotype"]
    raise ValueError(f"{gene}: no band for {value}")


def meta(source: str, version: str, day: str, notes: str, url: str | None = None) -> dict:
    m = {"source": source, "version": version, "date": day, "generatedBy": GENERATED_BY, "notes": notes}
    if url:
        m["url"] = url
    return m


def export_date(version: str) -> str:
    """'2024-08-27-21-12' -> '2024-08-27'."""
    return version[:10]


def build_activity_gene(gene: str, src: Path) -> dict:
    data = json.loads((src / PHENOTYPE_FILES[gene]).read_text())
    values: dict[str, str] = {}
    functions: dict[str, str] = {}
    explicit_dups = {}
    for a in data["namedAlleles"]:
        name, value, func = a["name"], a["activityValue"], a["functionValue"]
        m = DUP.match(name)
        if m:
            explicit_dups[name] = (m.group(1), m.group(2) == "≥", int(m.group(3)), value)
            continue
        values[name] = value
        functions[name] = func
    # explicit duplications must follow "value x copies" (">=" kept), else the engine's rule is wrong
    for name, (base, at_least, copies, value) in explicit_dups.items():
        bv = parse_value(values[base])
        want = "n/a" if bv is None else ("0.0" if bv[0] == 0 else ("≥" if at_least else "") + fnum(bv[0] * copies))
        if want != value:
            raise SystemExit(f"{gene} {name}: CPIC says {value}, value x copies gives {want}")
    # every diplotype must follow from the values and the bands
    for d in data["diplotypes"]:
        total, at_least, unknown = 0.0, False, False
        for hap, n in d["diplotypekey"].items():
            v = parse_value(data["activityValues"][hap])
            if v is None:
                unknown = True
                continue
            total += v[0] * n
            at_least = at_least or (v[1] and v[0] > 0)
        if unknown:
            want_score, want_ph = "n/a", "Indeterminate"
        else:
            want_score, want_ph = ("≥" if at_least else "") + fnum(total), band_of(gene, total)
        if (want_score, want_ph) != (d["activityScore"], d["phenotype"]):
            raise SystemExit(f"{gene} {d['diplotype']}: CPIC {d['activityScore']}/{d['phenotype']}, "
                             f"rules give {want_score}/{want_ph}")
    version = data["version"]
    notes = f"Allele activity values and functions from the CPIC database export ({version}); "
    if explicit_dups:
        notes += (f"duplications are scored as value x copies (checked against all {len(explicit_dups)} duplication "
                  f"alleles CPIC lists); ")
    else:
        notes += f"CPIC defines no duplication scoring for {gene}: a duplicated allele gives Indeterminate; "
    notes += (f"phenotype bands: {BAND_SOURCES[gene]}. Checked at build time against all "
              f"{len(data['diplotypes'])} diplotypes of CPIC's table.")
    return {
        "schema": "pgx-gene",
        "meta": meta(f"CPIC database via PharmGKB/PharmCAT {PHENOTYPE_FILES[gene]}", version, export_date(version),
                     notes, "https://cpicpgx.org/"),
        "gene": gene,
        "hgnc": HGNC[gene],
        "method": "activity-score",
        "duplications": bool(explicit_dups),
        "activityValues": values,
        "functions": functions,
        "bands": BANDS[gene],
    }


def build_function_gene(gene: str, src: Path) -> dict:
    data = json.loads((src / PHENOTYPE_FILES[gene]).read_text())
    functions = dict(data["haplotypes"])
    pairs: dict[tuple[str, str], str] = {}
    for d in data["diplotypes"]:
        haps = [h for h, n in d["diplotypekey"].items() for _ in range(n)]
        key = tuple(sorted(functions[h] for h in haps))
        if pairs.setdefault(key, d["phenotype"]) != d["phenotype"]:
            raise SystemExit(f"{gene}: function pair {key} maps to two phenotypes")
    version = data["version"]
    return {
        "schema": "pgx-gene",
        "meta": meta(f"CPIC database via PharmGKB/PharmCAT {PHENOTYPE_FILES[gene]}", version, export_date(version),
                     f"Allele functions and the function-pair -> phenotype table, both from the CPIC export "
                     f"({version}); the pairs are read off all {len(data['diplotypes'])} CPIC diplotypes. {gene} "
                     f"has no activity score.", "https://cpicpgx.org/"),
        "gene": gene,
        "hgnc": HGNC[gene],
        "method": "function-pair",
        "duplications": False,
        "functions": functions,
        "functionPairs": [[a, b, ph] for (a, b), ph in sorted(pairs.items())],
    }


def key_of(genes: list[str], lookup: dict) -> str:
    return "|".join(lookup.get(g, "No Result") for g in genes)


def key_type(gene: str) -> str:
    if gene in HLA_GENES:
        return "alleleStatus"
    return "phenotype" if gene in FUNCTION_GENES else "activityScore"


def build_drug(name: str, genes: list[str], export: dict, wording: dict) -> dict:
    entries: list[dict] = []
    index: dict[str, int] = {}
    lookups: dict[str, dict[str, int]] = {}
    for r in export["recommendations"]:
        cpic_population = r.get("population", "general")
        population = "general" if cpic_population == "general" else POPULATIONS.get(cpic_population)
        if population is None:
            raise SystemExit(f"{name}: unknown CPIC population {cpic_population!r}: map it in POPULATIONS")
        text = r["drugrecommendation"]
        w = wording.get(text)
        if w is None:
            raise SystemExit(f"{name}: no wording in profiles/pgx/wording.json for CPIC text: {text!r}")
        entry = {
            # CPIC writes 'n/a' for the classification of some 'No recommendation' rows (phenytoin)
            "classification": "No Recommendation" if r["classification"] == "n/a" else r["classification"],
            "action": w["action"],
            "gist": w["gist"].replace("{drug}", name),
            "implications": {g: r["implications"][g] for g in genes if r["implications"].get(g, "n/a") != "n/a"},
            "cpic": text,
        }
        if w.get("alternatives"):
            entry["alternatives"] = w["alternatives"]
        sig = json.dumps(entry, sort_keys=True, ensure_ascii=False)
        idx = index.setdefault(sig, len(entries))
        if idx == len(entries):
            entries.append(entry)
        lookups.setdefault(population, {})[key_of(genes, r["lookupkey"])] = idx
    pmids = [c["pmid"] for c in export.get("citations", []) if c.get("pmid")]
    out = {
        "rxnorm": export["drugid"].split(":", 1)[1],
        "genes": genes,
        "keyTypes": {g: key_type(g) for g in genes},
        "guideline": {"name": export["guidelinename"], "url": export["url"],
                      "version": f"{GUIDELINE_VERSION[name]}; CPIC data {export['cpicVersion']}", "pmids": pmids},
        "origin": "CPIC recommendation export",
        "entries": entries,
    }
    if set(lookups) == {"general"}:
        out["lookup"] = lookups["general"]
    else:
        out["lookup"] = lookups[DEFAULT_POPULATION]
        out["populations"] = {p: lookups[p] for p in sorted(lookups)}
    return out


def other_tca_classification(entry: dict, phenotypes: list[str]) -> dict:
    """The 'other TCAs' classification: Strong only where every gene is a normal metabolizer (or not tested)."""
    e = dict(entry)
    if e["classification"] != "No Recommendation":
        all_normal = all(p in ("Normal Metabolizer", "No Result") for p in phenotypes)
        e["classification"] = "Strong" if all_normal else "Optional"
    return e


def key_phenotype(gene: str, key: str) -> str:
    """The phenotype a lookup key stands for (activity-score keys are mapped through the gene's bands)."""
    if key in ("No Result", "n/a") or not key[-1].isdigit():
        return {"n/a": "Indeterminate"}.get(key, key)
    return band_of(gene, float(key.lstrip("≥")))


def derive_drug(name: str, spec: dict, base: dict) -> dict:
    d = json.loads(json.dumps(base))
    d["rxnorm"] = spec["rxnorm"]
    d["origin"] = f"derived from the CPIC {spec['from']} recommendations"
    for e in d["entries"]:
        e["gist"] = e["gist"].replace(spec["from"], name)
        if spec["otherTca"]:
            del e["cpic"]  # CPIC's text names the other drug; the gist carries the advice
    if spec["otherTca"]:
        # re-key: the same CPIC entry may now split by classification
        entries, index, lookup = [], {}, {}
        for key, idx in d["lookup"].items():
            e = other_tca_classification(d["entries"][idx], [key_phenotype(g, k)
                                                             for g, k in zip(d["genes"], key.split("|"))])
            sig = json.dumps(e, sort_keys=True, ensure_ascii=False)
            new = index.setdefault(sig, len(entries))
            if new == len(entries):
                entries.append(e)
            lookup[key] = new
        d["entries"], d["lookup"] = entries, lookup
        d["origin"] += " with CPIC's 'other TCAs' classification (TCA guideline 2016, Tables 2-3)"
    return d


def build_recommendations(src: Path) -> dict:
    wording_file = json.loads((OUT / "wording.json").read_text())
    wording = wording_file["texts"]
    drugs: dict[str, dict] = {}
    exports = {}
    for name, genes in EXPORTED.items():
        exports[name] = json.loads((src / f"recommendations_cpic_{name}.json").read_text())
        drugs[name] = build_drug(name, genes, exports[name], wording)
    for name, spec in DERIVED.items():
        drugs[name] = derive_drug(name, spec, drugs[spec["from"]])
    versions = sorted({e["cpicVersion"] for e in exports.values()})
    return {
        "schema": "pgx-recommendations",
        "meta": meta(
            "CPIC recommendation exports (CPIC API via PharmGKB/PharmCAT reporter/guidelines/cpic/*.json)",
            # our wording (gist, action, alternatives) is part of the file: its version moves this one too
            "cpic-" + "+".join(versions) + "; wording-" + wording_file["meta"]["version"], "2023-08-08",
            "Implications, classifications and lookup keys verbatim from CPIC; 'gist', 'action' and "
            "'alternatives' are ours (profiles/pgx/wording.json). tropisetron uses the ondansetron table (same "
            "guideline and recommendations). desipramine (nortriptyline's table) and clomipramine, doxepin, "
            "imipramine, trimipramine (amitriptyline's CYP2D6+CYP2C19 table) follow the TCA guideline's extension "
            "to other tricyclics, with its 'other TCAs' classification (Strong for normal metabolizers, Optional "
            "otherwise). Carbamazepine, oxcarbazepine, phenytoin and fosphenytoin: CPIC keys HLA-B/HLA-A by the "
            "status of the risk allele ('*15:02 positive'), per population: 'populations' holds each population's "
            "lookup (naive, use-over-3-months, and naive-no-alternatives for carbamazepine), 'lookup' is the naive "
            "one. Oxycodone, methadone and the OPRM1/COMT information have no export: see "
            "recommendations-hand.json.",
            "https://cpicpgx.org/guidelines/"),
        "drugs": drugs,
    }


def write(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=False) + "\n",
                    encoding="utf-8")
    print(f"wrote {path} ({path.stat().st_size} bytes)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cpic_dir", nargs="?", type=Path, default=CPIC_EXPORTS,
                        help="folder of the CPIC exports (default: reference/cpic)")
    parser.add_argument("--out", type=Path, default=OUT, help="where to write (default: profiles/pgx)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    src, out = args.cpic_dir, args.out
    if not src.is_dir():
        print(f"CPIC source folder not found: {src}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    write(out / "cyp2d6.json", build_activity_gene("CYP2D6", src))
    write(out / "cyp2c9.json", build_activity_gene("CYP2C9", src))
    write(out / "cyp2c19.json", build_function_gene("CYP2C19", src))
    write(out / "cyp2b6.json", build_function_gene("CYP2B6", src))
    write(out / "recommendations.json", build_recommendations(src))
    return 0


if __name__ == "__main__":
    sys.exit(main())
