#!/usr/bin/env python3
"""Generate profiles/pgx/products.json: RxNorm product codes (SCD, SBD, GPCK, BPCK) -> the ingredients we cover.

    python scripts/build_rxnorm_products.py [--out DIR]      (make profiles)

EHRs often send an order coded by its clinical or branded drug alone (e.g. 993781 "acetaminophen 300 MG / codeine
phosphate 30 MG Oral Tablet"). The sources, copied unmodified with their provenance (reference/README.md):
- reference/rxnorm/rxnorm-opioid-products.json: every opioid SCD/SBD/pack in OMTK with its opioid ingredient
  (RxCUI) and the other ingredients of combinations as named in the RxNorm name;
- reference/opioid/omtk-drug-ingredients.json: OMTK's DrugIngredients table (cqframework/opioid-mme-r4), from
  which the first is derived: the build checks that both name the same opioid ingredients for every product;
- reference/opioid/opioid-cds-valuesets/*.json: the CDC opioid CDS medication value sets (newer expansions, with
  RxNorm names as displays): their codes OMTK does not list are read from the name. The name reader is checked
  on every OMTK product and on every code both list (a disagreement stops the build).

An ingredient is ours when profiles/pgx/drugs.json lists it: the opioid ingredient by its RxCUI (its name must
agree), the others by their RxNorm name, salt words dropped ("naltrexone hydrochloride" -> naltrexone). Products
without any ingredient of ours are left out (counted in meta.notes). The term type is read from RxNorm's naming
conventions: packs are "{...} Pack", branded names end in "[Brand]". Brand names come from the SBD names; a brand
whose products do not all hold the same ingredients of ours is left out. Everything is sorted, so the output is
byte-identical for the same input.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "profiles" / "pgx"
DRUGS = REPO / "profiles" / "pgx" / "drugs.json"
PRODUCTS = REPO / "reference" / "rxnorm" / "rxnorm-opioid-products.json"
OMTK = REPO / "reference" / "opioid" / "omtk-drug-ingredients.json"
VALUE_SETS = REPO / "reference" / "opioid" / "opioid-cds-valuesets"
RXNORM_SYSTEMS = ("http://www.nlm.nih.gov/research/umls/rxnorm",)
GENERATED_BY = "scripts/build_rxnorm_products.py"
VERSION = "2"            # bump when the sources or the build's rules change; the sources' own dates are in meta.source
DATE = "2026-12-04"      # the date the source tables were copied (reference/rxnorm/README.md)
TTYS = ("SCD", "SBD", "GPCK", "BPCK")

_WORD = re.compile(r"[a-z0-9]+")
_BRAND = re.compile(r"\[([^\[\]]+)\]\s*$")
# what an ingredient not ours is named by: its words, without leading quantities ("1 ML", "72 HR"), to its strength
_QUANTITY = re.compile(r"^(?:[\d.]+\s+(?:ML|HR|ACTUAT|MG|DAY)\s+|[\d.]+\s+)*")
_STRENGTH = re.compile(r"\s[\d.]")
# RxNorm keeps a reformulated brand as its own name ("Endodan Reformulated May 2009"): prescribers write "Endodan"
_REFORMULATED = re.compile(r"\s+Reformulated\s+[A-Z][a-z]{2}\s+\d{4}$")


def normalise(name: str) -> str:
    return " ".join(_WORD.findall(name.lower()))


def tty_of(name: str) -> str:
    pack = name.startswith("{") and "} Pack" in name
    branded = bool(_BRAND.search(name))
    return ("BPCK" if branded else "GPCK") if pack else ("SBD" if branded else "SCD")


def brand_of(name: str) -> str | None:
    m = _BRAND.search(name)
    return _REFORMULATED.sub("", m.group(1)).strip() if m and tty_of(name) == "SBD" else None


class Ingredients:
    """Ours (drugs.json): by RxCUI, and by name or synonym for the RxNorm-named other ingredients."""

    def __init__(self, drugs: dict):
        self.by_rxcui = {i["rxnorm"]: i["name"] for i in drugs["ingredients"]}
        self.by_name = {}
        for i in drugs["ingredients"]:
            for n in (i["name"], *i.get("synonyms", ())):
                self.by_name[normalise(n)] = i["name"]

    def named(self, rxnorm_name: str) -> str | None:
        """The first run of words that names one of ours, longest first: "naltrexone hydrochloride" -> naltrexone,
        "Matrix Delivery 24 HR tramadol hydrochloride" -> tramadol (RxNorm's qualifiers come first)."""
        words = normalise(rxnorm_name).split()
        for start in range(len(words)):
            for k in range(len(words), start, -1):
                hit = self.by_name.get(" ".join(words[start:k]))
                if hit:
                    return hit
        return None

    def in_rxnorm_name(self, name: str) -> tuple[list[str], list[str]]:
        """Ours and the rest among the ingredients of an RxNorm drug or pack name: brands and pack braces dropped,
        one ingredient per " / " component ("Abuse-Deterrent 12 HR oxycodone hydrochloride 10 MG ..." -> oxycodone);
        the rest are named by their words up to the strength ("chlordiazepoxide 5 MG" -> chlordiazepoxide)."""
        ours: list[str] = []
        others: list[str] = []
        plain = re.sub(r"[{}()]", " ", re.sub(r"\[[^\]]*\]", " ", name))
        for part in plain.split(" / "):
            hit = self.named(part)
            if hit:
                ours.append(hit)
            else:
                words = _STRENGTH.split(_QUANTITY.sub("", part.strip()), maxsplit=1)[0].strip()
                others.append(words)
        return list(dict.fromkeys(ours)), others


def check_against_omtk(products: dict, omtk: dict) -> None:
    """The derived table must name exactly OMTK's opioid ingredients for every product, and no other product."""
    rows: dict[str, set[tuple[str, str]]] = defaultdict(set)
    names: dict[str, str] = {}
    for r in omtk["rows"]:
        rows[r["drugCode"]].add((r["ingredientCode"], r["strength"]))
        names[r["drugCode"]] = r["drugName"]
    if set(rows) != set(products):
        raise SystemExit(f"product codes differ from OMTK's: {sorted(set(rows) ^ set(products))[:10]}")
    for code, p in products.items():
        mine = {(i["rxcui"], i["strength"]) for i in p["opioidIngredients"]}
        if mine != rows[code] or p["name"] != names[code]:
            raise SystemExit(f"{code}: the product table disagrees with OMTK ({p['name']})")


def _omtk_products(ours: Ingredients, products_src: dict, uncovered: Counter[str]) -> dict[str, tuple[str, list[str]]]:
    """code -> (RxNorm name, our ingredients) for the OMTK products: the opioid by its RxCUI, the rest by name."""
    out = {}
    for code, p in products_src["products"].items():
        found: list[str] = []
        for ing in p["opioidIngredients"]:
            name = ours.by_rxcui.get(ing["rxcui"])
            if name is None:
                uncovered[ing["name"]] += 1
                continue
            if name != ing["name"].lower():
                raise SystemExit(f"{code}: RxCUI {ing['rxcui']} is {ing['name']} in the table, {name} in drugs.json")
            found.append(name)
        for other in p["otherIngredientsByName"]:
            name = ours.named(other)
            if name is None:
                uncovered[other] += 1
            else:
                found.append(name)
        # the name reader below must read every OMTK product as OMTK does: it is what the value sets rely on
        if sorted(ours.in_rxnorm_name(p["name"])[0]) != sorted(set(found)):
            raise SystemExit(f"{code}: the RxNorm name reader disagrees with OMTK ({p['name']})")
        out[code] = (p["name"], list(dict.fromkeys(found)))
    return out


def _value_set_products(ours: Ingredients, value_sets: list[dict], omtk: dict[str, tuple[str, list[str]]],
                        uncovered: Counter[str]) -> dict[str, tuple[str, list[str]]]:
    """code -> (RxNorm name, our ingredients) for the RxNorm codes of the CDC opioid CDS value sets that OMTK does
    not list (read from their display, an RxNorm name); a code both list must give the same ingredients."""
    out: dict[str, tuple[str, list[str]]] = {}
    for vs in value_sets:
        for c in vs.get("expansion", {}).get("contains", ()):
            if c.get("system") not in RXNORM_SYSTEMS or not c.get("display"):
                continue
            found, others = ours.in_rxnorm_name(c["display"])
            if c["code"] in omtk:
                if sorted(found) != sorted(omtk[c["code"]][1]):
                    raise SystemExit(f"{c['code']}: value set {vs['url']} and OMTK disagree ({c['display']})")
                continue
            if c["code"] not in out:
                for o in others:
                    uncovered[o] += 1
            out[c["code"]] = (c["display"], found)
    return out


def build(drugs: dict, products_src: dict, omtk: dict, value_sets: list[dict]) -> dict:
    check_against_omtk(products_src["products"], omtk)
    ours = Ingredients(drugs)
    uncovered: Counter[str] = Counter()
    from_omtk = _omtk_products(ours, products_src, uncovered)
    from_vs = _value_set_products(ours, value_sets, from_omtk, uncovered)
    named = {**from_omtk, **from_vs}
    products = {code: {"tty": tty_of(named[code][0]), "ingredients": named[code][1]}
                for code in sorted(named, key=int) if named[code][1]}
    left_out = len(named) - len(products)
    vs_kept = sum(1 for code in from_vs if code in products)

    by_brand: dict[str, set[tuple[str, ...]]] = defaultdict(set)
    for code, p in products.items():
        brand = brand_of(named[code][0])
        if brand:
            by_brand[brand].add(tuple(sorted(p["ingredients"])))
    brands = {b: list(next(iter(sets))) for b, sets in sorted(by_brand.items(), key=lambda kv: kv[0].lower())
              if len(sets) == 1}
    mixed = sorted(b for b, sets in by_brand.items() if len(sets) > 1)

    coverage: dict[str, dict[str, int]] = {}
    for p in products.values():
        for name in p["ingredients"]:
            coverage.setdefault(name, dict.fromkeys(TTYS, 0))[p["tty"]] += 1
    coverage = {n: {**c, "total": sum(c.values())} for n, c in sorted(coverage.items())}

    notes = (f"{len(products)} product codes hold at least one ingredient of profiles/pgx/drugs.json: "
             f"{len(products) - vs_kept} of OMTK's {len(from_omtk)} products and {vs_kept} of the "
             f"{len(from_vs)} codes the CDC opioid CDS value sets add ({len(value_sets)} value sets, read from "
             f"their displays); {left_out} hold none and are left out. Ingredients of the sources that drugs.json "
             "does not list (never identified from these codes; products listing them are still identified by "
             "their other ingredients), with their products: "
             + ", ".join(f"{n} ({c})" for n, c in sorted(uncovered.items(), key=lambda kv: kv[0].lower())) + ". "
             + (f"Brands whose products differ in our ingredients, left out: {', '.join(mixed)}. " if mixed else "")
             + "coverage: products per ingredient and RxNorm term type (only ingredients with products; every "
             "other ingredient is identified by its ingredient code, names and brands alone).")
    return {
        "schema": "pgx-products",
        "meta": {
            "source": "RxNorm clinical and branded opioid drugs of the Opioid MME Toolkit (OMTK): "
                      "reference/rxnorm/rxnorm-opioid-products.json, derived from reference/opioid/"
                      "omtk-drug-ingredients.json (cqframework/opioid-mme-r4 input/cql/OMTKData.cql @1357f45, "
                      "generated from RxNav 2020-10-20); the RxNorm codes of the CDC opioid CDS medication value "
                      "sets (reference/opioid/opioid-cds-valuesets/, cqframework/opioid-cds-r4 @b29bdcb, expansions "
                      "of 2023-2025). RxNorm content courtesy of the U.S. National Library of Medicine. Ingredient "
                      "names: profiles/pgx/drugs.json.",
            "version": VERSION,
            "date": DATE,
            "generatedBy": GENERATED_BY,
            "notes": notes,
        },
        "products": products,
        "brands": brands,
        "coverage": coverage,
    }


def write(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"wrote {path} ({path.stat().st_size} bytes)")


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def value_sets() -> list[dict]:
    return [_load(p) for p in sorted(VALUE_SETS.glob("*.json"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help="where to write (default: profiles/pgx)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    for path in (DRUGS, PRODUCTS, OMTK, VALUE_SETS):
        if not path.exists():
            print(f"source not found: {path}", file=sys.stderr)
            return 2
    args.out.mkdir(parents=True, exist_ok=True)
    write(args.out / "products.json", build(_load(DRUGS), _load(PRODUCTS), _load(OMTK), value_sets()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
