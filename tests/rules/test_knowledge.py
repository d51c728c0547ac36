"""The rules' knowledge files agree with the engines' knowledge they lean on."""
from __future__ import annotations

from fhir_pain import pgx
from fhir_pain.pain import ANALGESIC_CLASSES
from fhir_pain.rules.knowledge import card_conventions, pain_rules, rule


def test_first_line_classes_are_first_line_in_the_pain_class_map():
    for fl in rule("opioid-neuropathic")["firstLine"]:
        assert ANALGESIC_CLASSES[fl["class"]].neuropathic_line == 1, fl["class"]
    for key in rule("opioid-neuropathic")["orderedClasses"] + rule("tca-neuropathic-cyp2d6")["orderedClasses"]:
        assert key in ANALGESIC_CLASSES, key


def test_summary_drugs_are_all_covered_by_cpic():
    for name in pain_rules()["pgxSummaryDrugs"]:
        drug = pgx.drug_by_name(name)
        assert drug is not None and pgx.guideline_for(drug) is not None, name


def test_override_reasons_exist_for_every_actionable_kind():
    reasons = card_conventions()["overrideReasons"]
    for kind in ("drug-gene", "pre-test", "pain-phenotype", "treatment-response"):
        assert reasons[kind] and all(r["display"] for r in reasons[kind]), kind
        codes = [r["code"] for r in reasons[kind]]
        assert len(codes) == len(set(codes)), kind
