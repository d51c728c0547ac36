"""PHQ-9 item 9 endorsed and a tricyclic or an opioid ordered: a warning naming the overdose risk, and no tricyclic
offered as a one-click replacement draft while the flag is raised (rules.safety, rules.pain_context)."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from fhir_pain.cards import render
from fhir_pain.evaluate import build_context, evaluate
from fhir_pain.facts import PatientData
from fhir_pain.rules.drug_gene import drug_gene_finding
from fhir_pain.rules.pain_context import first_line_options, opioid_for_neuropathic, tca_for_neuropathic
from fhir_pain.rules.safety import (
    blocked_replacement, drug_group, overdose_risk_finding, tca_replacement_blocked, withhold_tca_replacements,
)
from fhir_pain.rules.text import SUMMARY_MAX
from golden.fhir_builders import (
    condition, day, draft, genotype, phq9, phq9_item9, phq9_panel, project_score,
)

NOW = datetime(2026, 5, 1, 12, tzinfo=timezone.utc)
AMITRIPTYLINE = ("704", "amitriptyline hydrochloride 10 MG Oral Tablet")
NORTRIPTYLINE = ("7531", "nortriptyline 25 MG Oral Capsule")
CODEINE = ("2670", "codeine phosphate 30 MG Oral Tablet")
OXYCODONE = ("7804", "oxycodone hydrochloride 5 MG Oral Tablet")
TRAMADOL = ("10689", "tramadol hydrochloride 50 MG Oral Tablet")
GABAPENTIN = ("25480", "gabapentin 300 MG Oral Capsule")
ITEM9_POSITIVE = phq9_panel("phq", "p1", [1, 1, 1, 0, 0, 1, 0, 0, 2], day(-6))     # total 6, item 9 "more than half"
DPN = condition("dpn", "p1", "230572002", "Diabetic neuropathy", day(-600))
DN4 = project_score("dn4", "p1", "dn4-total", 6, day(-30))


def data(order, obs=(ITEM9_POSITIVE,), conditions=(), **dose):
    return PatientData(patient_id="p1", now=NOW, observations=list(obs), conditions=list(conditions),
                       draft_orders=[draft("rx1", "p1", *order, **dose)])


def finding(order, obs=(ITEM9_POSITIVE,)):
    c = build_context(data(order, obs), "order-sign")
    return overdose_risk_finding(c, c.drafts[0], c.drafts[0].ingredients[0])


@pytest.mark.parametrize("order, group, words", [
    (AMITRIPTYLINE, "tca", "highly toxic in overdose"),
    (NORTRIPTYLINE, "tca", "highly toxic in overdose"),
    (CODEINE, "opioid", "naloxone"),
    (OXYCODONE, "opioid", "naloxone"),
    (TRAMADOL, "opioid", "naloxone"),
])
def test_a_tricyclic_or_an_opioid_ordered_after_a_positive_item_9_gets_a_safety_warning(order, group, words):
    f = finding(order)
    drug = f.drug.name
    assert (f.rule, f.kind, f.indicator, f.action) == (f"fhir-pain/safety/phq9-item9-overdose/{drug}", "safety",
                                                        "warning", "monitor")
    assert f.summary.startswith(f"PHQ-9 item 9 endorsed on {day(-6)}: {drug}") and len(f.summary) <= SUMMARY_MAX
    assert "assess suicide risk" in f.summary and "limit the supply" in f.summary
    assert words in f.detail and "limited supply" in f.detail and "not a diagnosis" in f.detail
    assert f.evidence == ("Observation/phq", "MedicationRequest/rx1")
    assert drug_group(f.drug) == group


def test_other_drugs_a_negative_item_9_or_an_old_answer_give_nothing():
    assert finding(GABAPENTIN) is None
    assert finding(AMITRIPTYLINE, obs=[phq9_panel("phq", "p1", [2, 2, 2, 1, 1, 1, 0, 0, 0], day(-6))]) is None
    assert finding(AMITRIPTYLINE, obs=[phq9_panel("phq", "p1", [0] * 8 + [3], day(-120))]) is None   # > 90 days
    # a later answer of 0 clears the flag; a later total without items does not
    cleared = [ITEM9_POSITIVE, phq9_item9("i9", "p1", 0, day(-1))]
    assert finding(CODEINE, obs=cleared) is None
    assert finding(CODEINE, obs=[ITEM9_POSITIVE, phq9("t", "p1", 4, day(-1))]) is not None


def test_a_standalone_item_9_observation_counts():
    f = finding(AMITRIPTYLINE, obs=[phq9_item9("i9", "p1", 1, day(-3))])
    assert f is not None and f.evidence[0] == "Observation/i9"


def test_the_tricyclic_group_covers_the_class_and_the_other_cpic_tricyclics():
    from fhir_pain.pgx import drug_by_name
    for name in ("amitriptyline", "imipramine", "clomipramine", "doxepin", "trimipramine", "protriptyline"):
        assert drug_group(drug_by_name(name)) == "tca", name
    assert drug_group(drug_by_name("duloxetine")) is None


# ---- no tricyclic as a one-click replacement while item 9 is endorsed -----------------------------------------------

def test_first_line_options_drop_tricyclics_and_say_why():
    c = build_context(data(OXYCODONE, obs=[ITEM9_POSITIVE, DN4], conditions=[DPN]), "order-sign")
    assert tca_replacement_blocked(c)
    options = first_line_options(c, c.drafts[0])
    tca = next(x for x in options["classes"] if x["class"] == "tca")
    assert tca["kept"] == [] and any("PHQ-9 item 9 endorsed" in d for d in tca["dropped"])
    assert [d.name for d in options["replacements"]] == ["gabapentin", "duloxetine"]
    f = opioid_for_neuropathic(c, c.drafts[0], c.drafts[0].ingredients[0])
    assert "tricyclic" not in f.summary and not any(drug_group(a) == "tca" for a in f.alternatives)


def test_without_the_flag_tricyclics_stay_first_line_options():
    c = build_context(data(OXYCODONE, obs=[DN4], conditions=[DPN]), "order-sign")
    assert not tca_replacement_blocked(c)
    assert [d.name for d in first_line_options(c, c.drafts[0])["replacements"]] == ["gabapentin", "duloxetine",
                                                                                    "amitriptyline"]
    assert blocked_replacement(c, c.drafts[0].ingredients[0]) is None


def test_withheld_tricyclic_alternatives_are_said_and_the_drafts_promise_is_dropped():
    from fhir_pain.facts import Finding
    from fhir_pain.pgx import drug_by_name
    from fhir_pain.rules.drug_gene import handling
    c = build_context(data(AMITRIPTYLINE), "order-sign")
    med = c.drafts[0]
    alts = (drug_by_name("nortriptyline"), drug_by_name("desipramine"))
    f = Finding(rule="cpic/amitriptyline/CYP2C19", kind="drug-gene", indicator="warning", summary="s",
                detail=f"**Alternatives:** nortriptyline and desipramine. {handling(med, alts)}", medication=med,
                alternatives=alts, action="avoid")
    withhold_tca_replacements(c, [f])
    assert f.alternatives == () and "No draft offered for nortriptyline or desipramine" in f.detail
    assert "A suggested draft has no dose" not in f.detail              # nothing is suggested any more
    # without the flag nothing changes
    c = build_context(data(AMITRIPTYLINE, obs=()), "order-sign")
    g = Finding(rule="r", kind="drug-gene", indicator="warning", summary="s", medication=med, alternatives=alts)
    withhold_tca_replacements(c, [g])
    assert g.alternatives == alts


def test_cpic_tricyclic_alternatives_never_become_drafts_while_item9_is_endorsed():
    # amitriptyline in a CYP2C19 ultrarapid metabolizer: CPIC names nortriptyline and desipramine
    obs = [ITEM9_POSITIVE, genotype("g1", "p1", "CYP2C19", "*17/*17"), genotype("g2", "p1", "CYP2D6", "*1/*1")]
    d = data(AMITRIPTYLINE, obs=obs)
    cards = [card.to_dict() for card in render(evaluate(d, "order-sign"), d)]
    created = [a["resource"] for card in cards for s in card.get("suggestions", ()) for a in s["actions"]
               if a["type"] == "create"]
    assert not any(r["resourceType"] == "MedicationRequest" for r in created)
    cpic = next(card for card in cards if card["summary"].startswith("CYP2D6"))
    assert "PHQ-9 item 9" in cpic["detail"] and "nortriptyline" in cpic["detail"]
    assert cards[0]["summary"].startswith("PHQ-9 item 9 endorsed")        # the overdose warning is its own card


def test_tca_for_neuropathic_pain_offers_no_tricyclic_either():
    obs = [ITEM9_POSITIVE, DN4, genotype("g1", "p1", "CYP2D6", "*4/*4")]
    # the low-dose rule needs a dose read from the order (10 mg/day)
    c = build_context(data(AMITRIPTYLINE, obs=obs, conditions=[DPN], dose_mg=10), "order-sign")
    med, drug = c.drafts[0], c.drafts[0].ingredients[0]
    f = tca_for_neuropathic(c, med, drug, drug_gene_finding(c, med, drug))
    assert f.alternatives and not any(drug_group(a) == "tca" for a in f.alternatives)
