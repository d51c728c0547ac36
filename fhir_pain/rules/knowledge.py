"""The rules' own knowledge files (profiles/rules/*.json), read once and treated as read-only."""
from __future__ import annotations

from fhir_pain.profiles import load


def pretest_alerts() -> dict:
    """CPIC pre-test alerts: drug name -> {genes, wording, indicator, advice, workbook}."""
    return load("rules/pretest-alerts.json")


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
