"""Uncertain CYP2D6 results x the drugs whose advice hangs on them: the card gives the most cautious advice any
possibility carries, lists the possibilities, and says what it advises.

The situations: an ambiguous duplication (copy number or duplicated allele not stated), two genotypes that disagree,
a genotype and a reported phenotype that disagree (either newer), two reported phenotypes that disagree, and
terbinafine (a strong CYP2D6 inhibitor in one source, moderate in the other) with each genotype or none. Each
possibility is worked out here from CPIC's own data (reference/cpic/phenotype_cpic_CYP2D6.json: activity values and
diplotype keys; CPIC's phenoconversion rule: strong -> 0, moderate -> x 0.5) and looked up in the drug's table;
the engine's card must carry the most cautious of those rows.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from itertools import permutations, product
from pathlib import Path

import pytest

from fhir_pain.evaluate import evaluate
from fhir_pain.facts import PatientData
from fhir_pain.pgx.knowledge import NO_RESULT, drug_tables
from golden.fhir_builders import day, draft, genotype, medication_request, reported_phenotype

NOW = datetime(2026, 5, 1, tzinfo=timezone.utc)
CPIC_CYP2D6 = Path(__file__).resolve().parents[2] / "reference" / "cpic" / "phenotype_cpic_CYP2D6.json"
# Most cautious first (issue 10): under uncertainty the card carries the first of these any possibility carries.
CAUTION = ("avoid", "use-alternative", "reduce-dose", "monitor", "no-recommendation", "standard-dose")
DRUGS = ("codeine", "tramadol", "amitriptyline", "ondansetron")
GENOTYPES = ("*1/*1", "*1/*4", "*4/*4", "*1/*1x2", "*1/*41")
PHENOTYPES = ("Poor Metabolizer", "Intermediate Metabolizer", "Normal Metabolizer", "Ultrarapid Metabolizer")
DUPLICATIONS = ("*1/*4xN", "*1/*10xN", "*4/*4xN", "(*1/*4)3N", "*1/*41xN", "*2/*10xN", "(*1/*10)3N")
TERBINAFINE = ("37801", "terbinafine 250 MG Oral Tablet")
OLDER, NEWER = f"{day(-400)}T09:30:00Z", f"{day(-30)}T09:30:00Z"
# what the summary says for each action (rules/drug_gene.py words it; these are the words a prescriber must see)
SAYS = {"avoid": "avoid", "use-alternative": "alternative", "reduce-dose": "lower dose",
        "monitor": "label", "standard-dose": "standard", "no-recommendation": "no recommendation"}

Possibility = tuple[str | None, str]   # (CYP2D6 activity-score key or None for a reported phenotype, phenotype)


# ---- CPIC's data, read here independently of the engine ------------------------------------------------------

@lru_cache(maxsize=None)
def cpic_cyp2d6() -> dict:
    return json.loads(CPIC_CYP2D6.read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def key_phenotypes() -> dict[str, str]:
    """CPIC's CYP2D6 lookup key -> phenotype, as its diplotype table pairs them."""
    out = {r["lookupkey"]: r["phenotype"] for r in cpic_cyp2d6()["diplotypes"]}
    return {**out, NO_RESULT: NO_RESULT}


def cpic_phenotype(score: float) -> str:
    """CPIC's CYP2D6 activity-score bands (2019 consensus); a "≥" score is read at its lower bound."""
    if score == 0:
        return "Poor Metabolizer"
    if score < 1.25:
        return "Intermediate Metabolizer"
    return "Normal Metabolizer" if score <= 2.25 else "Ultrarapid Metabolizer"


def key_of(value: float, at_least: bool) -> Possibility:
    """CPIC's key form: "1.0", "≥3.0" (at least: three or more copies of an allele with activity)."""
    return (("≥" if at_least else "") + repr(float(value)), cpic_phenotype(value))


def listed_key(diplotype: str) -> Possibility:
    """The key CPIC's diplotype table gives a plainly written diplotype."""
    a, b = diplotype.split("/")
    wanted = {a: 1, b: 1} if a != b else {a: 2}
    row = next(r for r in cpic_cyp2d6()["diplotypes"] if r["diplotypekey"] == wanted)
    return row["lookupkey"], row["phenotype"]


def duplication_keys(written: str) -> set[Possibility]:
    """Every key a duplication of unstated copy number (xN: two, or three or more) or unstated carrier allele
    ("(*1/*4)3N": three copies in all, either allele duplicated) can have, from CPIC's activity values."""
    values = {k: float(v) for k, v in cpic_cyp2d6()["activityValues"].items() if "*" in k and "x" not in k
              and v != "n/a"}
    if written.startswith("("):
        pair, total = written[1:].split(")")
        copies = [(int(total[:-1]) - 1, False)]
    else:
        pair, copies = written.replace("xN", ""), [(2, False), (3, True)]
    a, b = pair.split("/")
    return {key_of(values[dup] * n + values[single], at_least and values[dup] > 0)
            for dup, single in ((a, b), (b, a)) for n, at_least in copies}


def converted(poss: Possibility, factor: float) -> Possibility:
    """CPIC phenoconversion of a genotype's key: strong inhibitor -> 0, moderate -> score x 0.5."""
    score, _ = poss
    at_least = score.startswith("≥")
    value = float(score.lstrip("≥")) * factor
    return key_of(value, at_least and value > 0)


@dataclass(frozen=True)
class Drug:
    name: str
    rxnorm: str
    table: object

    def rows(self, poss: Possibility) -> list[dict]:
        """CPIC's rows for one CYP2D6 possibility (with CYP2C19 *1/*1, i.e. Normal Metabolizer, for the TCA):
        the row of its score, else every row of its phenotype (a reported phenotype, a score CPIC does not list)."""
        t = self.table
        score, phenotype = poss
        phenotypes = key_phenotypes()
        other = ("Normal Metabolizer",) if len(t.genes) == 2 else ()
        if (score, *other) in t.lookup:
            return [t.entries[t.lookup[(score, *other)]]]
        keys = [k for k in t.lookup if k[1:] == other and phenotypes.get(k[0]) == phenotype]
        return [t.entries[i] for i in dict.fromkeys(t.lookup[k] for k in keys)]

    def advice(self, possibilities: set[Possibility]) -> set[tuple[str, str]]:
        """The distinct advice (action, wording) CPIC's rows give the possibilities; a missing row is advice too."""
        return {(r["action"], r["gist"]) if r else ("no-recommendation", "") for p in possibilities
                for r in (self.rows(p) or [None])}

    def cautious(self, possibilities: set[Possibility]) -> tuple[str, set[str]]:
        """(the most cautious action any possibility carries, the classifications CPIC gives it)."""
        rows = [r for p in possibilities for r in self.rows(p)]
        actions = [r["action"] for r in rows] + (["no-recommendation"] if any(not self.rows(p) for p in possibilities)
                                                  else [])
        action = min(actions, key=CAUTION.index)
        return action, {r["classification"] for r in rows if r["action"] == action} or {"No Recommendation"}


def drug(name: str) -> Drug:
    table = next(t for t in drug_tables().values() if t.name == name)
    return Drug(name, table.rxnorm, table)


# ---- the situations --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Situation:
    label: str
    cyp2d6: tuple[dict, ...]                 # the CYP2D6 Observations
    possibilities: frozenset[Possibility]    # what CPIC's rules make of them
    meds: tuple[dict, ...] = ()              # active MedicationRequests (terbinafine)
    confirm: bool = True                     # a genotype test can settle it
    conflicting: bool = False                # results that disagree: always said, even when the advice agrees


def ambiguous_duplications() -> list[Situation]:
    return [Situation(f"ambiguous duplication {d}", (genotype("gt1", "p1", "CYP2D6", d),),
                      frozenset(duplication_keys(d))) for d in DUPLICATIONS]


def conflicting_genotypes() -> list[Situation]:
    return [Situation(f"genotype {new} (newer) vs {old} (older)",
                      (genotype("gt1", "p1", "CYP2D6", new, NEWER), genotype("gt2", "p1", "CYP2D6", old, OLDER)),
                      frozenset({listed_key(new), listed_key(old)}), conflicting=True)
            for new, old in permutations(GENOTYPES, 2)]


def genotype_vs_reported() -> list[Situation]:
    out = []
    for g, p in product(GENOTYPES, PHENOTYPES):
        if listed_key(g)[1] == p:
            continue   # they agree: no uncertainty
        for g_when, p_when, order in ((NEWER, OLDER, "genotype newer"), (OLDER, NEWER, "reported newer")):
            out.append(Situation(f"genotype {g} vs reported {p} ({order})",
                                 (genotype("gt1", "p1", "CYP2D6", g, g_when),
                                  reported_phenotype("ph1", "p1", "CYP2D6", p, p_when)),
                                 frozenset({listed_key(g), (None, p)}), conflicting=True))
    return out


def reported_vs_reported() -> list[Situation]:
    return [Situation(f"reported {new} (newer) vs {old} (older)",
                      (reported_phenotype("ph1", "p1", "CYP2D6", new, NEWER),
                       reported_phenotype("ph2", "p1", "CYP2D6", old, OLDER)),
                      frozenset({(None, new), (None, old)}), conflicting=True)
            for new, old in permutations(PHENOTYPES, 2)]


def terbinafine() -> list[Situation]:
    med = (medication_request("a-terb", "p1", *TERBINAFINE),)
    out = [Situation(f"terbinafine with {g}", (genotype("gt1", "p1", "CYP2D6", g),),
                     frozenset({converted(listed_key(g), 0.0), converted(listed_key(g), 0.5)}), med, confirm=False)
           for g in GENOTYPES]
    # an ambiguous duplication as well: the copy number is a doubt a genotype test can settle, so it is offered
    # although the inhibitor's strength is a doubt it cannot (regression: the inhibitor hid the confirmatory test)
    out += [Situation(f"terbinafine with {d}", (genotype("gt1", "p1", "CYP2D6", d),),
                      frozenset(converted(k, f) for k in duplication_keys(d) for f in (0.0, 0.5)), med)
            for d in DUPLICATIONS[:3]]
    # no genotype: strong -> poor metabolizer whatever the genotype; moderate -> the (unknown) genotype decides
    out.append(Situation("terbinafine with no CYP2D6 result", (), frozenset({("0.0", "Poor Metabolizer"),
                                                                             (NO_RESULT, NO_RESULT)}), med))
    return out


SITUATIONS = {"ambiguous-duplication": ambiguous_duplications(), "conflicting-genotypes": conflicting_genotypes(),
              "genotype-vs-reported": genotype_vs_reported(), "reported-vs-reported": reported_vs_reported(),
              "inhibitor-of-uncertain-strength": terbinafine()}


# ---- the check -------------------------------------------------------------------------------------------------

_CARDS: dict[tuple[str, str], list] = {}   # (drug, situation) -> cards: both tests read the same evaluation


def card_for(d: Drug, s: Situation):
    if (d.name, s.label) not in _CARDS:
        _CARDS[d.name, s.label] = _evaluate(d, s)
    return _CARDS[d.name, s.label]


def _evaluate(d: Drug, s: Situation):
    obs = list(s.cyp2d6)
    if len(d.table.genes) == 2:
        obs.append(genotype("gt-2c19", "p1", "CYP2C19", "*1/*1"))
    data = PatientData(patient_id="p1", now=NOW, observations=obs, medication_requests=list(s.meds),
                       draft_orders=[draft("rx1", "p1", d.rxnorm, f"{d.name} oral tablet")])
    rule = f"cpic/{d.name}/{'+'.join(d.table.genes)}"
    return [f for f in evaluate(data, "order-sign") if f.kind == "drug-gene" and f.rule == rule]


def listed(f) -> set[Possibility]:
    out = set()
    for p in (f.uncertainty or {}).get("possibilities", ()):
        v = p["genes"]["CYP2D6"] if "genes" in p else p
        out.add((v.get("activityScore"), v.get("phenotype")))
    return out


def problems_with(d: Drug, s: Situation) -> list[str]:
    where = f"{d.name}, {s.label}"
    expected, classifications = d.cautious(s.possibilities)
    cards = card_for(d, s)
    if len(s.possibilities) == 1:   # every possibility is the same result: certain, nothing to hedge
        return [] if not cards or cards[0].uncertainty is None else [f"{where}: one possibility, card hedges"]
    if not s.conflicting and len(d.advice(s.possibilities)) == 1 and len({p for _, p in s.possibilities}) == 1:
        # e.g. (*1/*10)3N: 2.25 or 1.5, both normal metabolizer -- the result is certain (silent if it asks nothing);
        # a phenotype left open (terbinafine on *1/*1: poor or intermediate) is said even when the advice agrees
        if expected in ("standard-dose", "no-recommendation"):
            return [f"{where}: card for advice every possibility shares ({expected})"] if cards else []
        return [] if [c.action for c in cards] == [expected] else [f"{where}: cards {cards}, CPIC: {expected}"]
    if len(cards) != 1:
        return [f"{where}: {len(cards)} drug-gene cards for an uncertain result (CPIC: {expected})"]
    f = cards[0]
    said = f.summary.lower()
    out = []
    if f.action != expected:
        out.append(f"{where}: card {f.action}, most cautious possibility {expected} "
                   f"({sorted(s.possibilities, key=str)})")
    if f.classification not in classifications:
        out.append(f"{where}: classification {f.classification}, CPIC gives {expected} as {classifications}")
    if not f.uncertainty or listed(f) != set(s.possibilities):
        out.append(f"{where}: possibilities listed {sorted(listed(f), key=str)}, "
                   f"expected {sorted(s.possibilities, key=str)}")
    if f.action != "no-recommendation" and any(w in said for w in ("no recommendation", "no advice", "no cpic")):
        out.append(f"{where}: {f.action} card says there is no advice: {f.summary!r}")
    if SAYS[f.action] not in said:
        out.append(f"{where}: {f.action} card does not say {SAYS[f.action]!r}: {f.summary!r}")
    confirm = "CYP2D6" in f.extra.get("confirmGenes", ())
    if confirm != s.confirm:
        out.append(f"{where}: confirmatory CYP2D6 test {'missing' if s.confirm else 'offered'} ({f.summary!r})")
    return out


def _cases():
    return [pytest.param(kind, name, id=f"{kind}-{name}") for kind in SITUATIONS for name in DRUGS]


@pytest.mark.parametrize(("kind", "name"), _cases())
def test_uncertain_result_gets_the_most_cautious_advice_any_possibility_carries(kind, name):
    d = drug(name)
    problems = [p for s in SITUATIONS[kind] for p in problems_with(d, s)]
    assert not problems, f"{len(problems)} of {len(SITUATIONS[kind])} {kind} situations wrong for {name}:\n" + \
        "\n".join(problems)


def test_an_avoid_possibility_is_never_hidden_by_a_benign_one():
    """The headline guarantee, counted: every situation where some possibility says avoid gets an avoid card."""
    avoid = 0
    for kind, name in product(SITUATIONS, DRUGS):
        d = drug(name)
        for s in SITUATIONS[kind]:
            if len(s.possibilities) > 1 and d.cautious(s.possibilities)[0] == "avoid":
                avoid += 1
                assert [c.action for c in card_for(d, s)] == ["avoid"], f"{name}, {s.label}"
    assert avoid >= 50


def test_the_matrix_covers_every_kind_of_uncertainty():
    counts = {kind: len(v) for kind, v in SITUATIONS.items()}
    uncertain = sum(1 for v in SITUATIONS.values() for s in v if len(s.possibilities) > 1)
    print(f"uncertainty matrix: {counts}, {uncertain} uncertain situations x {len(DRUGS)} drugs")
    assert counts == {"ambiguous-duplication": 7, "conflicting-genotypes": 20, "genotype-vs-reported": 30,
                      "reported-vs-reported": 12, "inhibitor-of-uncertain-strength": 9}
    assert uncertain >= 70
