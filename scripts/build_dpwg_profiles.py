#!/usr/bin/env python3
"""Generate profiles/dpwg/recommendations.json from PharmGKB's annotations of the DPWG guidelines.

    python scripts/build_dpwg_profiles.py [--src reference/dpwg] [--out profiles/dpwg]     (make profiles)

Per drug and gene: DPWG's rows (a phenotype group, or a genotype for phenytoin) with the pairs of allele functions
each covers, DPWG's implication and recommendation text (HTML stripped), PharmGKB's strength and prescribing-change
status, and our action and gist from the hand-kept profiles/dpwg/wording.json. Per gene: DPWG's allele functions.

The build stops when the sources disagree with what the engine assumes: an allele with different functions in two
files of one gene, a function pair in two rows of one drug, a row without wording, or wording written for a DPWG
text that has since changed (its textSha256), so that a DPWG update cannot ship advice nobody re-read.
"""
from __future__ import annotations

import argparse
import hashlib
import html
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "reference" / "dpwg"     # provenance and licence: reference/dpwg/README.md
OUT = REPO / "profiles" / "dpwg"
WORDING = REPO / "profiles" / "dpwg" / "wording.json"
CPIC_DIR = REPO / "reference" / "cpic"
CPIC_TABLES = REPO / "profiles" / "pgx" / "recommendations.json"   # the ingredients' RxCUIs
GENERATED_BY = "scripts/build_dpwg_profiles.py"
WORDING_VERSION = "1.0"
CPIC_DIPLOTYPES = {"CYP2D6": "phenotype_cpic_CYP2D6.json", "CYP2C9": "phenotype_CYP2C9.json",
                   "CYP2C19": "phenotype_CYP2C19.json"}   # in reference/cpic (its README)
ACTIVITY_GENES = ("CYP2D6", "CYP2C9")     # CPIC keys these by activity score
GROUPS = {"Poor Metabolizer": "PM", "Intermediate Metabolizer": "IM", "Normal Metabolizer": "NM",
          "Ultrarapid Metabolizer": "UM", "PM": "PM", "IM": "IM", "NM": "NM", "UM": "UM"}
GENOTYPE_ROW = re.compile(r"^\*\d+/\*\d+$")


class BuildError(Exception):
    pass


def text(fragment: dict | None) -> str:
    """DPWG's HTML as one line of plain text."""
    raw = re.sub(r"<[^>]+>", " ", (fragment or {}).get("html") or "")
    return " ".join(html.unescape(raw).split())


def text_sha(implication: str, recommendation: str) -> str:
    return hashlib.sha256(f"{implication}\n{recommendation}".encode("utf-8")).hexdigest()[:16]


def group_key(name: str) -> str:
    if name in GROUPS:
        return GROUPS[name]
    if GENOTYPE_ROW.match(name):
        return name
    raise BuildError(f"unknown DPWG group {name!r}")


def from_cpic(gene: str, functions: dict[str, str], cpic_dir: Path) -> dict:
    """CPIC activity score / phenotype -> the DPWG function pairs of the diplotypes CPIC's own table gives it: how
    the engine reads a result without a diplotype DPWG's functions can read (fhir_pain/pgx/dpwg.py, rule 2).
    Diplotypes without a duplication are used when any gives the key: a duplication is reported as such (a result
    without diplotype is not read as one), and CPIC's and DPWG's duplication values differ (CPIC ``*10x2`` 0.5,
    DPWG "Normal function"). Keys only duplications reach (CYP2D6 2.5 and up) use them all."""
    from fhir_pain.pgx.diplotype import parse          # the engine's reader: the build must read as it does
    from fhir_pain.pgx.dpwg import allele_function, pair_key
    found: dict[tuple[str, str], tuple[set[str], set[str]]] = {}     # (kind, key) -> (plain pairs, with dups)
    for row in load(cpic_dir / CPIC_DIPLOTYPES[gene])["diplotypes"]:
        d = parse(f"{gene} {row['diplotype']}")
        if d is None or d.unphased_copies is not None:
            continue
        terms = [allele_function(functions, a) for a in d.alleles]
        if not all(terms):          # an allele DPWG does not list
            continue
        dup = d.has_duplication
        keys = [("phenotype", row["phenotype"])] + ([("activityScore", row["lookupkey"])]
                                                   if gene in ACTIVITY_GENES else [])
        for key in keys:
            found.setdefault(key, (set(), set()))[dup].add(pair_key(*terms))
    out: dict[str, dict[str, list[str]]] = {}
    for (kind, key), (plain, dups) in sorted(found.items()):
        out.setdefault(kind, {})[key] = sorted(plain or dups)
    return out


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def build(src: Path = SRC, wording_path: Path = WORDING, cpic_dir: Path = CPIC_DIR) -> dict:
    wording = load(wording_path)["pairs"]
    rxnorm = {name: d["rxnorm"] for name, d in load(CPIC_TABLES)["drugs"].items()}
    genes: dict[str, dict[str, str]] = {}
    drugs: dict[str, dict] = {}
    versions, used = set(), set()
    for path in sorted(src.glob("*_and_*.json")):
        doc = load(path)
        g = doc["guideline"]
        if g.get("source") != "DPWG":
            raise BuildError(f"{path.name}: not a DPWG guideline ({g.get('source')!r})")
        versions.add(doc["version"])
        [drug] = [c["name"] for c in g["relatedChemicals"]]
        [gg] = g["guidelineGenes"]
        gene = gg["gene"]["symbol"]
        functions = genes.setdefault(gene, {})
        for allele in gg["alleles"]:
            term = allele["function"]["term"]
            if functions.setdefault(allele["_label"], term) != term:
                raise BuildError(f"{gene} {allele['_label']}: {term!r} in {path.name}, "
                                 f"{functions[allele['_label']]!r} elsewhere")
        pair_key = f"{drug}/{gene}"
        words = wording.get(pair_key, {})
        rows, seen_pairs = [], {}
        for grp in doc["annotationGroups"]:
            key = group_key(grp["name"])
            pairs = []
            for gp in grp["genePhenotypes"]:
                prefix, _, pair = gp.partition(":")
                if prefix != gene:
                    raise BuildError(f"{path.name} {key}: gene phenotype {gp!r} is not {gene}'s")
                if pair in seen_pairs:
                    raise BuildError(f"{path.name}: {pair!r} in rows {seen_pairs[pair]} and {key}")
                seen_pairs[pair] = key
                pairs.append(pair)
            implication, recommendation = text(grp.get("implications")), text(grp.get("recommendation"))
            ours = words.get(key)
            if ours is None:
                raise BuildError(f"no wording for {pair_key} {key}: add it to profiles/dpwg/wording.json "
                                 f"(textSha256 {text_sha(implication, recommendation)})")
            if ours.get("textSha256") != text_sha(implication, recommendation):
                raise BuildError(f"DPWG's text for {pair_key} {key} changed: re-read it, update the wording and "
                                 f"its textSha256 ({text_sha(implication, recommendation)})")
            used.add((pair_key, key))
            row = {"group": key, "name": grp["name"], "functionPairs": sorted(pairs)}
            score = text(grp.get("activityScore"))
            if score:
                row["activityScore"] = score
            row.update({"strength": grp["strength"]["term"], "prescribingChange": grp["rxChangeStatus"]["term"],
                        "implication": implication, "recommendation": recommendation})
            row.update({k: v for k, v in ours.items() if k != "textSha256"})
            rows.append(row)
        d = drugs.setdefault(drug, {"rxnorm": rxnorm[drug], "guidelines": []})
        d["guidelines"].append({
            "gene": gene, "id": g["id"], "name": g["name"], "url": g["url"], "annotationVersion": g["version"],
            "pmids": [c["pmid"] for c in doc.get("citations", []) if c.get("pmid")],
            "rows": sorted(rows, key=lambda r: r["group"]),
        })
    unused = {(p, k) for p, ks in wording.items() for k in ks} - used
    if unused:
        raise BuildError(f"wording for rows DPWG does not have: {sorted(unused)}")
    if len(versions) != 1:
        raise BuildError(f"the files come from several PharmGKB data versions: {sorted(versions)}")
    [version] = versions
    mapped = {gene: from_cpic(gene, functions, cpic_dir) for gene, functions in sorted(genes.items())}
    for gene, m in mapped.items():      # every pair CPIC's diplotypes give must have a DPWG row in every drug
        pairs = {p for v in m.values() for ps in v.values() for p in ps}
        for name, d in drugs.items():
            for gl in d["guidelines"]:
                have = {"/".join(sorted(p.split("/"))) for r in gl["rows"] for p in r["functionPairs"]}
                if gl["gene"] == gene and pairs - have:
                    raise BuildError(f"{name}/{gene}: no DPWG row for {sorted(pairs - have)}")
    for d in drugs.values():
        d["guidelines"].sort(key=lambda x: x["gene"])
    return {
        "schema": "dpwg-recommendations",
        "meta": {
            "source": "DPWG guidelines as annotated by PharmGKB/ClinPGx (PharmCAT reporter/guidelines/dpwg/*.json)",
            "version": f"pharmgkb-{version}; wording-{WORDING_VERSION}",
            "date": version[:10],
            "url": "https://www.pharmgkb.org/guidelineAnnotations",
            "generatedBy": GENERATED_BY,
            "notes": ("Adapted from PharmGKB's guideline annotations of the Dutch Pharmacogenetics Working Group "
                      "(DPWG) guidelines, CC BY-SA 4.0 (attribution: PharmGKB/ClinPGx and DPWG; this file is shared "
                      "under the same licence): function pairs, implications, recommendations, strength and "
                      "prescribing-change status verbatim (HTML stripped); 'action', 'gist', 'doseFactor' (the "
                      "dose DPWG names as a fraction of the standard one, to rank advice) and 'indicator' are ours "
                      "(profiles/dpwg/wording.json). The annotations give no DPWG strength ('N/A')."),
        },
        "genes": {gene: {"functions": functions} for gene, functions in sorted(genes.items())},
        "fromCpic": mapped,
        "drugs": dict(sorted(drugs.items())),
    }


def write(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=SRC)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    try:
        data = build(args.src)
    except BuildError as exc:
        print(f"build_dpwg_profiles: {exc}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    write(args.out / "recommendations.json", data)
    print(f"wrote {args.out / 'recommendations.json'}: {sum(len(g['rows']) for d in data['drugs'].values() for g in d['guidelines'])} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
