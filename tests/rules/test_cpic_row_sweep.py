"""Every row of every CPIC table the engine uses, reached from a realistic FHIR genotype.

For each drug table (profiles/pgx/recommendations.json and recommendations-hand.json), each population CPIC splits it
by, and each lookup key, a patient is built whose results map to exactly that key: a diplotype CPIC's own diplotype
table (reference/cpic/phenotype_*.json) gives that key, an allele missing from CPIC's tables for
``n/a``/``Indeterminate`` (as a second case), no Observation for ``No Result``; for an HLA allele status
(``*15:02 positive``) an HLA typing (GL String) and, as a second case, a presence result (Present / Absent). The
"use over 3 months" population is reached by a prescription of the drug on the medication list for 200 days; the
carbamazepine "naive, no alternative available" rows are no patient's data (the naive card quotes them) and are
checked in tests/pgx/test_recommend.py. The drug is then ordered (a draft MedicationRequest, order-sign) and the drug-gene finding must
carry CPIC's row: its classification and action, a card unless the row asks nothing of the prescriber on a certain
result (standard dose, no recommendation) or CPIC's alert workbook writes "No CDS" for a certain monitor row.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import pytest

from fhir_pain import pgx
from fhir_pain.evaluate import build_context, evaluate
from fhir_pain.facts import PatientData
from fhir_pain.pgx.knowledge import NO_RESULT, drug_tables
from fhir_pain.rules.drug_gene import drug_gene_finding
from fhir_pain.rules.knowledge import cpic_alert
from golden.fhir_builders import day, draft, genotype, hla_genotype, hla_presence, medication_request

NOW = datetime(2026, 5, 1, tzinfo=timezone.utc)
CPIC = Path(__file__).resolve().parents[2] / "reference" / "cpic"
DIPLOTYPE_FILES = {"CYP2D6": "phenotype_cpic_CYP2D6.json", "CYP2C19": "phenotype_CYP2C19.json",
                   "CYP2C9": "phenotype_CYP2C9.json", "CYP2B6": "phenotype_CYP2B6.json"}
# HLA allele status -> (typing as alleles, presence result)
HLA_CASES = {
    "*15:02 positive": (["*15:02:01", "*40:01:02"], "present"),
    "*15:02 negative": (["*40:01:02", "*44:02:01"], "absent"),
    "*31:01 positive": (["*31:01:02", "*02:01:01"], "present"),
    "*31:01 negative": (["*02:01:01", "*24:02:01"], "absent"),
}
NOT_A_PATIENTS_DATA = frozenset({"naive-no-alternatives"})
LONG_TERM_DAYS_ON_RECORD = 200
UNKNOWN_KEYS = frozenset({"n/a", "Indeterminate"})
# CPIC advice that asks nothing of the prescriber: an order shows no card for it when the result is certain
SILENT_ON_CERTAIN = frozenset({"standard-dose", "no-recommendation"})
# An allele PharmVar has not named (and so no CPIC table lists): the result is Indeterminate / n/a
UNLISTED = "*1/*999"

TABLES = sorted(drug_tables().values(), key=lambda t: t.name)
# Rows no realistic genotype can reach, with the reason (none at present: CPIC's diplotype tables reach every key,
# and the only absent combination, No Result for every gene, is no row: the pre-test alert speaks then).
UNBUILDABLE: dict[tuple[str, str], str] = {}


@lru_cache(maxsize=None)
def diplotype_for(gene: str, key_type: str) -> dict[str, str]:
    """CPIC lookup key -> the simplest diplotype CPIC's table gives that key (fewest characters, then file order)."""
    rows = json.loads((CPIC / DIPLOTYPE_FILES[gene]).read_text(encoding="utf-8"))["diplotypes"]
    out: dict[str, str] = {}
    for row in sorted(rows, key=lambda r: len(r["diplotype"])):
        key = row["lookupkey"] if key_type == "activityScore" else row["phenotype"]
        out.setdefault(key, row["diplotype"])
    return out


def _gene_choices(gene: str, key_type: str, part: str) -> list[tuple[str, list[dict]]] | None:
    """(label, Observations) for one gene's part of a key; None when no result reaches it."""
    oid = f"gt-{gene.lower()}"
    if part == NO_RESULT:
        return [(f"{gene} no result", [])]
    if key_type == "alleleStatus":
        alleles, presence = HLA_CASES[part]
        allele = part.split()[0]
        return [(f"{gene} {'+'.join(alleles)}", [hla_genotype(oid, "p1", gene, alleles)]),
                (f"{gene}{allele} {presence}", [hla_presence(oid, "p1", gene, allele, presence)])]
    listed = diplotype_for(gene, key_type).get(part)
    if listed is None:
        return None
    choices = [(f"{gene} {listed}", [genotype(oid, "p1", gene, listed)])]
    if part in UNKNOWN_KEYS:
        choices.append((f"{gene} {UNLISTED}", [genotype(oid, "p1", gene, UNLISTED)]))
    return choices


def patient_variants(table, key: tuple[str, ...]) -> list[tuple[str, list[dict]]]:
    """(label, PGx Observations) mapping to ``key``: CPIC's diplotype (an HLA typing), and for an n/a/Indeterminate
    part also an allele CPIC does not list (for an HLA status also a presence result). Empty when no result reaches
    the key."""
    per_gene = []
    for gene, key_type, part in zip(table.genes, table.key_types, key):
        choices = _gene_choices(gene, key_type, part)
        if choices is None:
            return []
        per_gene.append(choices)
    variants = [[c[0] for c in per_gene]]
    for i, choices in enumerate(per_gene):   # one extra patient per second choice, the rest as first listed
        if len(choices) > 1:
            variants.append([c[0] if j != i else c[1] for j, c in enumerate(per_gene)])
    return [(", ".join(label for label, _ in v), [o for _, obs in v for o in obs]) for v in variants]


def populations_of(table) -> list[str | None]:
    return [p for p in table.populations if p not in NOT_A_PATIENTS_DATA] if table.populations else [None]


def history_for(table, population: str | None) -> list[dict]:
    """The medication list that puts the patient in ``population``: the drug on it for 200 days (> 3 months)."""
    if population != "use-over-3-months":
        return []
    return [medication_request("rx-earlier", "p1", table.rxnorm, f"{table.name} oral tablet",
                               authored=day(-LONG_TERM_DAYS_ON_RECORD))]


def check_row(table, key: tuple[str, ...], label: str, obs: list[dict], population: str | None = None) -> list[str]:
    """Mismatches between CPIC's row for ``key`` (in ``population``) and what the engine says for this patient."""
    row = table.entries[table.lookup_for(population)[key]]
    order = draft("rx-sweep", "p1", table.rxnorm, f"{table.name} oral tablet")
    data = PatientData(patient_id="p1", now=NOW, observations=obs, draft_orders=[order],
                       medication_requests=history_for(table, population))
    where = f"{table.name} {'|'.join(key)} ({label}{f', {population}' if population else ''})"
    problems = []
    certain = not (set(key) & UNKNOWN_KEYS)
    expected = (row["classification"], row["action"])

    # the engine directly: the profile of these results, CPIC's table
    rec = pgx.recommend(pgx.drug_by_rxnorm(table.rxnorm), pgx.resolve_profile(pgx.read_gene_results(obs), []),
                        population)
    if rec is None:
        return [f"{where}: recommend() gave nothing; CPIC row {expected}"]
    if (rec.classification, rec.action) != expected:
        problems.append(f"{where}: recommend() {rec.classification}/{rec.action}, CPIC row {expected}")
    if certain and rec.uncertainty is not None:
        problems.append(f"{where}: certain result reported as uncertain ({rec.uncertainty.get('why')})")
    if not certain and not rec.uncertainty:
        problems.append(f"{where}: n/a / Indeterminate result reported as certain")

    # the rule: the finding the order hook is built from
    ctx = build_context(data, "order-sign")
    finding = drug_gene_finding(ctx, ctx.drafts[0], ctx.drafts[0].ingredients[0])
    if finding is None:
        return problems + [f"{where}: no drug-gene finding; CPIC row {expected}"]
    if (finding.classification, finding.action) != expected:
        problems.append(f"{where}: finding {finding.classification}/{finding.action}, CPIC row {expected}")
    if finding.population != population or finding.to_contract().get("population") != population:
        problems.append(f"{where}: population {finding.population!r} applied, expected {population!r}")
    if finding.action == "no-recommendation" and row["classification"] != "No Recommendation":
        problems.append(f"{where}: 'no-recommendation' where CPIC's row is {row['classification']}")
    said = finding.summary.lower()
    if finding.action != "no-recommendation" and ("no recommendation" in said or "no cpic advice" in said
                                                  or "no advice" in said):
        problems.append(f"{where}: summary says no recommendation for {finding.action}: {finding.summary!r}")

    # the order hook: a card unless the row asks nothing on a certain result (or CPIC's workbook says No CDS)
    cards = [f for f in evaluate(data, "order-sign") if f.kind == "drug-gene" and f.rule == finding.rule]
    no_cds = cpic_alert(table.name, {g: k for g, k in zip(table.genes, key) if k != NO_RESULT}) == "no-cds"
    silent = certain and (row["action"] in SILENT_ON_CERTAIN or (row["action"] == "monitor" and no_cds))
    if silent and cards:
        problems.append(f"{where}: card {cards[0].action} shown for a certain {row['action']} result")
    if not silent:
        if len(cards) != 1:
            problems.append(f"{where}: {len(cards)} drug-gene cards; CPIC row {expected}")
        elif (cards[0].classification, cards[0].action) != expected:
            problems.append(f"{where}: card {cards[0].classification}/{cards[0].action}, CPIC row {expected}")
    return problems


@pytest.mark.parametrize("table", TABLES, ids=[t.name for t in TABLES])
def test_every_cpic_row_is_what_a_patient_with_that_result_is_told(table):
    mismatches, unbuilt, checked, rows = [], [], 0, 0
    for population in populations_of(table):
        lookup = table.lookup_for(population)
        rows += len(lookup)
        for key in lookup:
            variants = patient_variants(table, key)
            if not variants:
                unbuilt.append("|".join(key))
                continue
            checked += 1
            for label, obs in variants:
                mismatches.extend(check_row(table, key, label, obs, population))
    assert checked == rows - len(unbuilt)
    listed = sorted(k for (drug, k) in UNBUILDABLE if drug == table.name)
    assert sorted(unbuilt) == listed, f"{table.name}: rows no diplotype reaches: {unbuilt} (listed: {listed})"
    assert not mismatches, f"{len(mismatches)} of {rows} {table.name} rows differ from CPIC:\n" + \
        "\n".join(mismatches)


def test_the_sweep_covers_every_row_of_every_table():
    rows = sum(len(t.lookup_for(p)) for t in TABLES for p in populations_of(t))
    patients = {(t.name, p, key): len(patient_variants(t, key)) for t in TABLES for p in populations_of(t)
                for key in t.lookup_for(p)}
    buildable = sum(1 for n in patients.values() if n)
    print(f"CPIC row sweep: {len(TABLES)} tables, {rows} rows, {buildable} checked ({sum(patients.values())} "
          f"patients), {len(UNBUILDABLE)} unbuildable")
    assert buildable >= rows - len(UNBUILDABLE)
    assert len(UNBUILDABLE) <= 5
    assert {"codeine", "amitriptyline", "celecoxib", "ondansetron", "oxycodone", "carbamazepine", "oxcarbazepine",
            "phenytoin", "fosphenytoin", "citalopram", "escitalopram", "sertraline", "fluvoxamine",
            "vortioxetine"} <= {t.name for t in TABLES}
    # every population a patient's data can put them in is swept, not only the default one
    assert {p for t in TABLES for p in populations_of(t) if p} == {"naive", "use-over-3-months"}
