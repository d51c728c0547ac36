"""Drug-gene rule: loudness, alternatives checked against the patient, uncertainty."""
from __future__ import annotations

from datetime import datetime, timezone

from fhir_pain import pgx
from fhir_pain.evaluate import build_context
from fhir_pain.facts import Drug, PatientData, Recommendation
from fhir_pain.rules.drug_gene import drug_gene_finding, handling, indicator_for, safe_alternatives
from fhir_pain.rules.text import SUMMARY_MAX
from golden.fhir_builders import draft, genotype, medication_request

NOW = datetime(2026, 5, 1, tzinfo=timezone.utc)


def ctx(obs=(), meds=(), drafts=()):
    return build_context(PatientData(patient_id="p1", now=NOW, observations=list(obs), medication_requests=list(meds),
                                     draft_orders=list(drafts)), "order-sign")


def rec(action, classification):
    return Recommendation(drug=Drug("1", "x"), genes={}, rule="r", implication="", recommendation="",
                          classification=classification, action=action)


def test_indicator_policy():
    assert indicator_for(rec("avoid", "Strong")) == "critical"
    assert indicator_for(rec("avoid", "Optional")) == "warning"
    for action in ("use-alternative", "reduce-dose", "monitor"):
        assert indicator_for(rec(action, "Strong")) == "warning"
    for action in ("standard-dose", "no-recommendation"):
        assert indicator_for(rec(action, "Strong")) == "info"


def test_alternatives_drop_what_the_patient_takes_and_what_their_genotype_argues_against():
    morphine = medication_request("a1", "p1", "7052", "morphine sulfate 15 MG Oral Tablet")
    c = ctx(obs=[genotype("g1", "p1", "CYP2D6", "*4/*4")], meds=[morphine],
            drafts=[draft("rx1", "p1", "2670", "codeine 30 MG Oral Tablet")])
    codeine_order = c.drafts[0]
    names = lambda drugs: [d.name for d in drugs]  # noqa: E731
    tramadol, hydromorphone, morphine_drug = (pgx.drug_by_name(n) for n in ("tramadol", "hydromorphone", "morphine"))
    kept, dropped = safe_alternatives(c, codeine_order, [morphine_drug, tramadol, hydromorphone],
                                      c.profile_for(codeine_order))
    assert names(kept) == ["hydromorphone"]
    assert any(d.startswith("morphine (already prescribed)") for d in dropped)
    assert any(d.startswith("tramadol (CPIC advice for CYP2D6 poor metabolizer: avoid)") for d in dropped)


def test_replacement_alternatives_only_for_replace_actions():
    c = ctx(obs=[genotype("g1", "p1", "CYP2C9", "*3/*3")], drafts=[draft("rx1", "p1", "140587", "celecoxib 200 MG")])
    f = drug_gene_finding(c, c.drafts[0], c.drafts[0].ingredients[0])
    assert f.action == "reduce-dose" and f.alternatives == ()
    assert "Recommendation:" in f.detail and "lowest" in f.detail.lower()   # the dose advice lives in the detail


def test_uncovered_drug_gives_no_finding():
    c = ctx(obs=[genotype("g1", "p1", "CYP2D6", "*4/*4")], drafts=[draft("rx1", "p1", "7052", "morphine 15 MG")])
    assert drug_gene_finding(c, c.drafts[0], c.drafts[0].ingredients[0]) is None


def test_uncertain_results_give_the_safe_advice_and_a_confirmatory_test():
    for dip, why, action, classification, indicator in (
            ("*1/*4xN", "ambiguous", "avoid", "Strong", "critical"),     # UM possible: avoid, never softened
            ("*1/*22", "indeterminate", "no-recommendation", "No Recommendation", "info")):   # CPIC's n/a row
        c = ctx(obs=[genotype("g1", "p1", "CYP2D6", dip)], drafts=[draft("rx1", "p1", "2670", "codeine 30 MG")])
        f = drug_gene_finding(c, c.drafts[0], c.drafts[0].ingredients[0])
        assert f.extra["uncertainty"] == {"CYP2D6": why} and f.uncertainty["why"] == why
        assert (f.action, f.classification, f.indicator) == (action, classification, indicator)
        assert f.extra["confirmGenes"] == ["CYP2D6"]
        contract = f.to_contract()
        assert contract["action"] == action and contract["uncertainty"]["why"] == why


def first_finding(c):
    return drug_gene_finding(c, c.drafts[0], c.drafts[0].ingredients[0])


def test_monitor_summary_says_consider_an_alternative_as_cpic_does():
    """CPIC: label dosing; 'if no response ... consider' another opioid. Never 'switch', never reduced relief for
    hydrocodone (CPIC: insufficient evidence that analgesia is affected)."""
    cases = [
        ([genotype("g1", "p1", "CYP2D6", "*1/*4")], draft("rx1", "p1", "2670", "codeine 30 MG Oral Tablet"), ()),
        ([genotype("g1", "p1", "CYP2D6", "*1/*1")], draft("rx1", "p1", "10689", "tramadol 50 MG Oral Tablet"),
         [medication_request("a1", "p1", "72625", "duloxetine 30 MG Delayed Release Oral Capsule")]),
        ([genotype("g1", "p1", "CYP2D6", "*4/*4")], draft("rx1", "p1", "5489", "hydrocodone 10 MG"), ()),
    ]
    for obs, order, meds in cases:
        f = first_finding(ctx(obs=obs, meds=meds, drafts=[order]))
        assert f.action == "monitor" and f.indicator == "warning", f.summary
        assert "if no response, consider an alternative" in f.summary and len(f.summary) <= SUMMARY_MAX
        assert "switch" not in f.summary and "relief" not in f.summary and "usual" not in f.summary
        assert "offerRemoval" not in f.extra and "Acting on it" not in f.detail


def test_avoid_offers_removal_of_the_draft_and_the_detail_says_how_to_act_otherwise():
    pm = genotype("g1", "p1", "CYP2D6", "*4/*4")
    f = first_finding(ctx(obs=[pm], drafts=[draft("rx1", "p1", "2670", "codeine 30 MG Oral Tablet")]))
    assert (f.action, f.alternatives, f.extra["offerRemoval"]) == ("avoid", (), True)
    assert "Acting on it" not in f.detail          # the delete-only suggestion explains itself
    c = ctx(obs=[pm], drafts=[draft("rx1", "p1", "993781", "Acetaminophen 300 MG / Codeine Phosphate 30 MG Oral Tablet")])
    combo = drug_gene_finding(c, c.drafts[0], next(i for i in c.drafts[0].ingredients if i.name == "codeine"))
    assert "**Acting on it:** This is a combination product: replace it by hand" in combo.detail
    c = ctx(obs=[pm], meds=[medication_request("a1", "p1", "10689", "tramadol 50 MG Oral Tablet")])
    active = drug_gene_finding(c, c.active[0], c.active[0].ingredients[0])
    assert "**Acting on it:** This is an active prescription" in active.detail


def test_dose_advice_never_offers_removal_and_an_uncertain_avoid_does():
    dup = first_finding(ctx(obs=[genotype("g1", "p1", "CYP2D6", "*1/*4xN")],
                            drafts=[draft("rx1", "p1", "2670", "codeine 30 MG")]))
    celecoxib = first_finding(ctx(obs=[genotype("g1", "p1", "CYP2C9", "*3/*3")],
                                  drafts=[draft("rx1", "p1", "140587", "celecoxib 200 MG")]))
    assert dup.action == "avoid" and celecoxib.action == "reduce-dose"
    assert "offerRemoval" in dup.extra and "offerRemoval" not in celecoxib.extra


def test_handling_of_drafts_the_card_cannot_act_on():
    c = ctx(drafts=[{**draft("x", "p1", "2670", "codeine 30 MG"), "id": None}])
    no_id = c.drafts[0]
    assert no_id.ref.startswith("urn:") and "no id" in handling(no_id)
    granisetron, naproxen = pgx.drug_by_name("granisetron"), pgx.drug_by_name("naproxen")
    removable = ctx(drafts=[draft("rx1", "p1", "26225", "ondansetron 4 MG")]).drafts[0]
    assert handling(removable) == ""
    assert handling(removable, (granisetron,)).startswith("Order granisetron by hand")
    assert handling(removable, (naproxen, granisetron)).startswith("A suggested draft has no dose")
