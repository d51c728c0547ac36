"""The PGx knowledge files (profiles/pgx/*.json) as small indexed objects, built once per process.

Nothing here decides anything: it only turns the JSON into lookups the engine can use in microseconds.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from fhir_pain import profiles

GENE_FILES = {"CYP2D6": "pgx/cyp2d6.json", "CYP2C9": "pgx/cyp2c9.json", "CYP2C19": "pgx/cyp2c19.json",
              "CYP2B6": "pgx/cyp2b6.json"}
# HLA genes: CPIC keys by the status of one risk allele, "*15:02 positive" / "*15:02 negative"
HLA_ALLELES = {"HLA-B": "*15:02", "HLA-A": "*31:01"}
DEFAULT_POPULATION = "naive"
NO_RESULT = "No Result"
CLASS_ORDER = {"No Recommendation": 0, "Optional": 1, "Moderate": 2, "Strong": 3}

# A score: (value, at_least) where at_least marks CPIC's "≥" values; None is CPIC's "n/a" (unknown function).
Score = tuple[float, bool] | None


def parse_score(text: str | None) -> Score:
    if text is None or text == "n/a":
        return None
    return (float(text[1:]), True) if text[0] == "≥" else (float(text), False)


def format_score(score: Score) -> str:
    """CPIC's lookup-key form: "0.0", "0.25", "1.0", "≥3.0", "n/a"."""
    if score is None:
        return "n/a"
    return ("≥" if score[1] else "") + repr(float(score[0]))


@dataclass(frozen=True)
class GeneModel:
    gene: str
    hgnc: str
    method: str                       # "activity-score" | "function-pair"
    duplications: bool                # CYP2D6: copies multiply the allele's value
    values: dict[str, float | None]   # allele -> activity value (None: uncertain/unknown function)
    functions: dict[str, str]
    bands: tuple[tuple[str, float, bool, float | None, bool], ...] = ()   # phenotype, min, min_excl, max, max_excl
    pairs: dict[tuple[str, str], str] = field(default_factory=dict)
    version: str = ""

    def band(self, value: float) -> str:
        for phenotype, lo, lo_ex, hi, hi_ex in self.bands:
            if (value > lo if lo_ex else value >= lo) and (hi is None or (value < hi if hi_ex else value <= hi)):
                return phenotype
        return "Indeterminate"

    def phenotype_of(self, score: Score) -> str:
        return "Indeterminate" if score is None else self.band(score[0])


@lru_cache(maxsize=None)
def gene_model(gene: str) -> GeneModel | None:
    path = GENE_FILES.get(gene)
    if path is None:
        return None
    data = profiles.load(path)
    bands = tuple((b["phenotype"], float(b["min"]), bool(b.get("minExclusive")),
                   float(b["max"]) if "max" in b else None, bool(b.get("maxExclusive")))
                  for b in data.get("bands", ()))
    values = {a: (None if v == "n/a" else float(v)) for a, v in data.get("activityValues", {}).items()}
    pairs: dict[tuple[str, str], str] = {}
    for a, b, ph in data.get("functionPairs", ()):
        pairs[(a, b)] = pairs[(b, a)] = ph
    return GeneModel(gene=data["gene"], hgnc=data["hgnc"], method=data["method"],
                     duplications=data["duplications"], values=values, functions=data["functions"],
                     bands=bands, pairs=pairs, version=data["meta"]["version"])


# ---- drugs -------------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)   # hashed by identity: one per process, cache key of _names_in
class DrugVocabulary:
    by_rxnorm: dict[str, str]                  # ingredient RxCUI -> name
    rxnorm_of: dict[str, str]                  # name -> ingredient RxCUI
    products: dict[str, tuple[str, ...]]       # product RxCUI -> ingredient names
    names: dict[str, tuple[str, ...]]          # normalised name/synonym/brand ("ms contin") -> ingredient names
    longest: int                               # words in the longest name

    starts: frozenset[str] = frozenset()       # first words of the multi-word names
    # shorthand that names a drug only beside another one ("HC/APAP": hydrocodone; "HC" alone may be hydrocortisone)
    partners: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def names_in(self, text: str) -> tuple[str, ...]:
        """Ingredient names mentioned in free text, as whole words ("Codeine Phosphate 30 MG" -> codeine)."""
        return _names_in(self, text)


@lru_cache(maxsize=8192)   # product texts recur across orders and patients: scan each once
def _names_in(vocab: DrugVocabulary, text: str) -> tuple[str, ...]:
    # dictionary look-ups over 1..n-word windows: much faster than one regex alternation of every name
    words = _WORD.findall(text.lower())
    names, starts, partners = vocab.names, vocab.starts, vocab.partners
    found: list[str] = []
    beside: list[str] = []
    i, n = 0, len(words)
    while i < n:
        w = words[i]
        if w in starts:
            for size in range(min(vocab.longest, n - i), 1, -1):
                hit = names.get(" ".join(words[i:i + size]))
                if hit:
                    found.extend(hit)
                    i += size
                    break
            else:
                found.extend(names.get(w, ()))
                i += 1
            continue
        hit = names.get(w)
        if hit:
            found.extend(hit)
        elif w in partners:
            beside.extend(partners[w])
        i += 1
    return tuple(found + beside) if found else ()


_WORD = re.compile(r"[a-z0-9]+")


def normalise_name(name: str) -> str:
    return " ".join(_WORD.findall(name.lower()))


@lru_cache(maxsize=None)
def drug_vocabulary() -> DrugVocabulary:
    data = profiles.load("pgx/drugs.json")
    by_rxnorm, rxnorm_of, names = {}, {}, {}
    for ing in data["ingredients"]:
        by_rxnorm[ing["rxnorm"]] = ing["name"]
        rxnorm_of[ing["name"]] = ing["rxnorm"]
        for n in (ing["name"], *ing.get("synonyms", ()), *ing.get("brands", ())):
            names[normalise_name(n)] = (ing["name"],)
    for brand, ings in data["combinationBrands"].items():
        names[normalise_name(brand)] = tuple(ings)
    # inhibitors without a verified RxCUI are still recognised by name (phenoconversion)
    for gene_list in profiles.load("pgx/inhibitors.json")["inhibitors"].values():
        for inh in gene_list:
            names.setdefault(normalise_name(inh["name"]), (inh["name"],))
    products = {code: tuple(p["ingredients"]) for code, p in data["products"].items()}
    # the generated RxNorm product table and the curated shorthand come after: the hand-kept entries above win
    generated = profiles.load("pgx/products.json")
    for code, p in generated["products"].items():
        products.setdefault(code, tuple(p["ingredients"]))
    short = profiles.load("pgx/abbreviations.json")
    for section in (generated["brands"], {n: e["ingredients"] for n, e in short["abbreviations"].items()},
                    {n: e["ingredients"] for n, e in short["brands"].items()}):
        for name, ings in section.items():
            names.setdefault(normalise_name(name), tuple(ings))
    partners = {n: tuple(e["ingredients"]) for n, e in short["withPartner"].items() if n not in names}
    longest = max(len(n.split()) for n in names)
    starts = frozenset(n.split()[0] for n in names if " " in n)
    return DrugVocabulary(by_rxnorm, rxnorm_of, products, names, longest, starts, partners)


@lru_cache(maxsize=None)
def unverified_codes() -> frozenset[str]:
    """RxCUIs held only to recognise what an EHR sends (drugs.json meta.unverifiedCodes)."""
    return frozenset(profiles.load("pgx/drugs.json")["meta"].get("unverifiedCodes", ()))


@dataclass(frozen=True)
class Inhibitor:
    name: str
    factors: tuple[float, ...]        # activity-score multipliers; two when the sources disagree on strength
    strength: str                     # "strong", "moderate", "strong or moderate", ...


@lru_cache(maxsize=None)
def inhibitors() -> dict[str, dict[str, Inhibitor]]:
    """gene -> ingredient name -> Inhibitor (only strengths CPIC gives a rule for change the score)."""
    data = profiles.load("pgx/inhibitors.json")
    out: dict[str, dict[str, Inhibitor]] = {}
    for gene, entries in data["inhibitors"].items():
        rule = data["rules"].get(gene)
        if rule is None:
            continue
        by_name = {}
        for e in entries:
            strengths = e["strength"] if isinstance(e["strength"], list) else [e["strength"]]
            factors = tuple(sorted({rule.get(s, 1.0) for s in strengths}))
            if factors != (1.0,):
                by_name[e["name"]] = Inhibitor(e["name"], factors, " or ".join(strengths))
        out[gene] = by_name
    return out


# ---- recommendations ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DrugTable:
    name: str
    rxnorm: str
    genes: tuple[str, ...]
    key_types: tuple[str, ...]                 # per gene: "activityScore" | "phenotype"
    guideline: dict
    origin: str
    entries: tuple[dict, ...]
    lookup: dict[tuple[str, ...], int]
    by_phenotypes: dict[tuple[str, ...], tuple[int, ...]]   # phenotype per gene -> entries (fallback)
    # CPIC population -> its lookup (HLA anticonvulsants: "naive", "use-over-3-months", ...); empty: one population
    populations: dict[str, dict[tuple[str, ...], int]] = field(default_factory=dict)

    def lookup_for(self, population: str | None) -> dict[tuple[str, ...], int]:
        return self.populations.get(population or DEFAULT_POPULATION, self.lookup) if self.populations \
            else self.lookup


def key_phenotype(gene: str, key: str) -> str:
    """The phenotype a CPIC lookup key stands for ("1.25" -> Normal Metabolizer for CYP2D6)."""
    if key == "n/a":
        return "Indeterminate"
    if key and (key[-1].isdigit()):
        model = gene_model(gene)
        return model.phenotype_of(parse_score(key)) if model else "Indeterminate"
    return key


def _table(name: str, d: dict) -> DrugTable:
    genes = tuple(d["genes"])
    lookup: dict[tuple[str, ...], int] = {}
    by_ph: dict[tuple[str, ...], list[int]] = {}
    for key, idx in d["lookup"].items():
        parts = tuple(key.split("|"))
        lookup[parts] = idx
        ph = tuple(key_phenotype(g, k) for g, k in zip(genes, parts))
        if idx not in by_ph.setdefault(ph, []):
            by_ph[ph].append(idx)
    populations = {p: {tuple(k.split("|")): i for k, i in keys.items()} for p, keys in d.get("populations", {}).items()}
    return DrugTable(name=name, rxnorm=d["rxnorm"], genes=genes,
                     key_types=tuple(d["keyTypes"][g] for g in genes), guideline=d["guideline"],
                     origin=d["origin"], entries=tuple(d["entries"]), lookup=lookup,
                     by_phenotypes={k: tuple(v) for k, v in by_ph.items()}, populations=populations)


@lru_cache(maxsize=None)
def drug_tables() -> dict[str, DrugTable]:
    """Ingredient RxCUI -> its CPIC table (generated file first; the hand-encoded file fills the gaps)."""
    out: dict[str, DrugTable] = {}
    for path in ("pgx/recommendations.json", "pgx/recommendations-hand.json"):
        for name, d in profiles.load(path)["drugs"].items():
            out.setdefault(d["rxnorm"], _table(name, d))
    return out


@lru_cache(maxsize=None)
def informational() -> dict[str, dict]:
    """Gene -> CPIC 'no recommendation' information (OPRM1, COMT) with the drugs it applies to."""
    return dict(profiles.load("pgx/recommendations-hand.json").get("informational", {}))
