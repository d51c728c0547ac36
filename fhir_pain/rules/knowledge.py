"""The rules' own knowledge files (profiles/rules/*.json), read once and treated as read-only."""
from __future__ import annotations

from functools import lru_cache
from itertools import product

from fhir_pain.pgx.knowledge import NO_RESULT, key_phenotype
from fhir_pain.profiles import load


def pretest_alerts() -> dict:
    """CPIC pre-test alerts: drug name -> {genes, wording, indicator, advice, workbook}."""
    return load("rules/pretest-alerts.json")


def posttest_alerts() -> dict:
    """CPIC's post-test alert design (profiles/rules/posttest-alerts.json): drug name -> results, each 'cds' or
    'no-cds' as CPIC's workbook has it."""
    return load("rules/posttest-alerts.json")


def cpic_alert(drug_name: str, keys: dict[str, str]) -> str | None:
    """What CPIC's alert workbook designs for this result: "cds" (an alert), "no-cds" (CPIC writes 'No CDS'),
    or None when no workbook covers the drug or the result.

    ``keys`` maps gene -> CPIC lookup key ("1.25", "≥3.0", "n/a" or a phenotype such as "Normal Metabolizer");
    a gene left out counts as "No Result". Where the workbook names phenotypes only, a score is read as its CPIC
    phenotype, so a phenoconverted score (0.625) is covered too; where it lists scores, only CPIC's table keys are.
    """
    drug = _posttest_index().get(drug_name)
    if drug is None:
        return None
    genes, key_types, verdicts = drug
    wanted = tuple(key_phenotype(g, keys.get(g, NO_RESULT)) if kt == "phenotype" else keys.get(g, NO_RESULT)
                   for g, kt in zip(genes, key_types))
    return verdicts.get(wanted)


@lru_cache(maxsize=None)
def _posttest_index() -> dict[str, tuple[tuple[str, ...], tuple[str, ...], dict[tuple[str, ...], str]]]:
    """drug -> (genes, key type per gene, {one key per gene: "cds" | "no-cds"}); the build made keys unique."""
    out = {}
    for name, d in posttest_alerts()["drugs"].items():
        genes = tuple(d["genes"])
        verdicts = {combo: row["cds"] for row in d["results"] for combo in product(*(row["keys"][g] for g in genes))}
        out[name] = (genes, tuple(d["keyTypes"][g] for g in genes), verdicts)
    return out


def pain_rules() -> dict:
    return load("rules/pain-rules.json")


def rule(name: str) -> dict:
    """One phenotype-aware rule from profiles/rules/pain-rules.json, e.g. ``rule("opioid-neuropathic")``."""
    return pain_rules()["rules"][name]


def referrals() -> list[dict]:
    return pain_rules()["referrals"]


def card_conventions() -> dict:
    return load("rules/cards.json")


def age_limits() -> dict:
    """Regulators' age contraindications (profiles/rules/age-limits.json): rule definition + drug name -> limit."""
    return load("rules/age-limits.json")


def source_knowledge(sources: list[dict], version: str | None = None) -> dict:
    """The findings-contract ``knowledge`` object for a rule with its own (non-CPIC) sources; ``version`` is the
    version of the knowledge file the rule lives in (default: profiles/rules/pain-rules.json)."""
    first = sources[0]
    return {"source": "fhir-pain rules (" + first["label"].split(":")[0].split(" (")[0] + ")",
            "version": version or pain_rules()["meta"]["version"], "url": first["url"]}
