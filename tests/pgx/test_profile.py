"""Per-gene choice (conflicts, computed vs reported), phenoconversion, and the profile's dict form."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from fhir_pain.facts import GeneResult
from fhir_pain.pgx import drug_by_name, identify, read_gene_results, recommend, resolve_profile
from .conftest import pgx_fixture


def at(year, month=1, day=1):
    return datetime(year, month, day, tzinfo=timezone.utc)


def med(rid, text, status="active", draft=False):
    return identify({"resourceType": "MedicationRequest", "id": rid, "status": status, "intent": "order",
                     "medicationCodeableConcept": {"text": text}}, is_draft=draft)


def cyp2d6(diplotype, ref="Observation/g", when=None, phenotype=None):
    return GeneResult("CYP2D6", ref, diplotype, phenotype, when, "final")


def test_newest_genotype_wins_and_a_disagreement_is_recorded():
    old, new = cyp2d6("*1/*1", "Observation/old", at(2019)), cyp2d6("*4/*4", "Observation/new", at(2024))
    gp = resolve_profile([old, new], []).genes["CYP2D6"]
    assert (gp.diplotype, gp.phenotype, gp.evidence) == ("*4/*4", "Poor Metabolizer",
                                                         ("Observation/new", "Observation/old"))
    assert gp.conflicting and any("Observation/old" in n and "*1/*1" in n for n in gp.notes)


def test_same_genotype_twice_is_no_conflict_and_both_are_evidence():
    gp = resolve_profile([cyp2d6("*1/*4", "Observation/a", at(2020)), cyp2d6("*4/*1", "Observation/b", at(2022))],
                         []).genes["CYP2D6"]
    assert not gp.conflicting and gp.evidence == ("Observation/b", "Observation/a") and not gp.notes


def test_entered_in_error_newer_result_does_not_win():
    obs = [{"resourceType": "Observation", "id": i, "status": s, "code": {"text": "CYP2D6 genotype"},
            "valueString": v, "effectiveDateTime": d}
           for i, s, v, d in (("ok", "final", "*1/*4", "2020-01-01"), ("oops", "entered-in-error", "*4/*4", "2024-01-01"))]
    gp = resolve_profile(read_gene_results(obs), []).genes["CYP2D6"]
    assert (gp.diplotype, gp.phenotype, gp.evidence) == ("*1/*4", "Intermediate Metabolizer", ("Observation/ok",))


def test_computed_phenotype_beats_a_reported_one_and_the_mismatch_is_noted():
    # IG STU1 example: CYP2C9 *4/*35B computes to AS 0.5 (Poor), the implication reports "Rapid"
    profile = resolve_profile(read_gene_results([pgx_fixture("ig-stu1-v1.0.0-pgxexample-bundle.json")]), [])
    gp = profile.genes["CYP2C9"]
    assert (gp.source, gp.activity_score, gp.phenotype) == ("computed", "0.5", "Poor Metabolizer")
    assert any("Rapid Metabolizer" in n and "Observation/med-impact-pgx-example" in n for n in gp.notes)
    # a separate result that disagrees is a conflict (one of them is wrong); the computed one is shown first
    assert gp.conflicting


def test_older_cutoffs_reported_phenotype_is_recomputed():
    # a lab using pre-2022 values calls *1/*41 ... fine; *41/*41 was IM 1.0 then and is IM 0.5 now; *4/*10 PM->IM
    gp = resolve_profile([cyp2d6("*4/*10", when=at(2020), phenotype="Poor Metabolizer")], []).genes["CYP2D6"]
    assert (gp.phenotype, gp.activity_score) == ("Intermediate Metabolizer", "0.25")
    assert any("reports Poor Metabolizer" in n for n in gp.notes)


def test_reported_only_results_newest_wins_and_disagreement_is_conflicting():
    rs = [GeneResult("CYP2C19", "Observation/p1", None, "Poor Metabolizer", at(2018), "final"),
          GeneResult("CYP2C19", "Observation/p2", None, "Normal Metabolizer", at(2023), "final")]
    gp = resolve_profile(rs, []).genes["CYP2C19"]
    assert (gp.phenotype, gp.source, gp.conflicting) == ("Normal Metabolizer", "reported", True)


def test_genomics_operations_example_end_to_end():
    profile = resolve_profile(read_gene_results([pgx_fixture("go-tx-implications-cyp2d6-cyp2c19-amitriptyline.json")]), [])
    assert profile.genes["CYP2D6"].activity_score == "1.25"          # *41 = 0.25 since CPIC's 2022-11 update
    rec = recommend(drug_by_name("amitriptyline"), profile)
    assert (rec.classification, rec.action) == ("Optional", "use-alternative")
    assert set(rec.evidence) == {"Observation/dv-61ccfd4a072302a0eb2115c6", "Observation/dv-631a4ae712d58a72041f91ac",
                                 "Observation/dv-61ccfd4a072302a0eb2115c3", "Observation/dv-631a4ae012d58a72041f3aba"}


@pytest.mark.parametrize("diplotype, inhibitor, genetic, converted, score", [
    ("*1/*1", "PARoxetine 20 MG Oral Tablet", "Normal Metabolizer", "Poor Metabolizer", "0.0"),      # strong
    ("*1/*1x≥3", "Bupropion Hydrochloride 150 MG", "Ultrarapid Metabolizer", "Poor Metabolizer", "0.0"),
    ("*1/*1", "DULoxetine 30 MG Delayed Release Capsule", "Normal Metabolizer", "Intermediate Metabolizer", "1.0"),
    ("*1/*2x2", "duloxetine 60 MG", "Ultrarapid Metabolizer", "Normal Metabolizer", "1.5"),          # moderate
    ("*1/*41", "Cinacalcet 30 MG", "Normal Metabolizer", "Intermediate Metabolizer", "0.625"),
    ("*1/*22", "fluoxetine 20 MG", "Indeterminate", "Poor Metabolizer", "0.0"),
    ("*1/*1", "mirabegron 25 MG Extended Release Oral Tablet", "Normal Metabolizer", "Intermediate Metabolizer", "1.0"),
])
def test_phenoconversion_reports_genetic_and_converted(diplotype, inhibitor, genetic, converted, score):
    profile = resolve_profile([cyp2d6(diplotype)], [med("inh", inhibitor)])
    gp = profile.genes["CYP2D6"]
    assert (gp.genetic_phenotype, gp.phenotype, gp.activity_score) == (genetic, converted, score)
    assert len(gp.phenoconverted_by) == 1 and "MedicationRequest/inh" in gp.evidence
    assert any("Phenoconversion" in n for n in gp.notes)
    finding = gp.to_finding()
    assert finding["phenotype"] == converted and finding["phenoconvertedBy"] == list(gp.phenoconverted_by)
    assert profile.to_dict()["genes"]["CYP2D6"]["geneticPhenotype"] == genetic


def test_phenoconverted_score_off_cpics_grid_still_finds_advice():
    profile = resolve_profile([cyp2d6("*1/*41")], [med("cin", "cinacalcet 30 MG")])   # 1.25 x 0.5 = 0.625
    rec = recommend(drug_by_name("codeine"), profile)
    assert (rec.action, rec.classification, rec.ambiguous) == ("monitor", "Moderate", False)


def test_draft_orders_convert_and_stopped_ones_do_not():
    assert resolve_profile([cyp2d6("*1/*1")], [med("d", "paroxetine 20 MG", "draft", True)]).genes["CYP2D6"].phenotype \
        == "Poor Metabolizer"
    gp = resolve_profile([cyp2d6("*1/*1")], [med("s", "paroxetine 20 MG", "stopped")]).genes["CYP2D6"]
    assert gp.phenotype == "Normal Metabolizer" and gp.phenoconverted_by == ()


def test_strongest_inhibitor_applies():
    gp = resolve_profile([cyp2d6("*1/*1")], [med("a", "duloxetine 30 MG"), med("b", "quinidine sulfate 200 MG")]
                         ).genes["CYP2D6"]
    assert (gp.phenotype, gp.activity_score) == ("Poor Metabolizer", "0.0")
    assert set(gp.phenoconverted_by) == {"duloxetine", "quinidine"}


def test_inhibitor_of_uncertain_strength_scores_both_and_is_ambiguous_when_advice_differs():
    profile = resolve_profile([cyp2d6("*1/*1")], [med("t", "terbinafine 250 MG Oral Tablet")])
    gp = profile.genes["CYP2D6"]
    assert gp.ambiguous and gp.genetic_phenotype == "Normal Metabolizer" and set(gp.possible_scores) == {"0.0", "1.0"}
    rec = recommend(drug_by_name("codeine"), profile)       # PM: avoid; IM: label dose + monitor
    assert rec.ambiguous and (rec.action, rec.classification) == ("avoid", "Strong")
    assert rec.uncertainty["why"] == "inhibitor-strength"
    assert {p["action"] for p in rec.uncertainty["possibilities"]} == {"avoid", "monitor"}
    assert "strong" in rec.uncertainty["basis"]["source"]
    # with a strong inhibitor too, the uncertainty no longer matters
    gp = resolve_profile([cyp2d6("*1/*1")], [med("t", "terbinafine 250 MG"), med("p", "paroxetine 10 MG")]).genes["CYP2D6"]
    assert (gp.phenotype, gp.ambiguous) == ("Poor Metabolizer", False)


def test_reported_phenotype_with_moderate_inhibitor():
    rs = [GeneResult("CYP2D6", "Observation/r", None, "Normal Metabolizer", at(2022), "final")]
    gp = resolve_profile(rs, [med("d", "duloxetine 60 MG")]).genes["CYP2D6"]
    assert (gp.genetic_phenotype, gp.phenotype, gp.source) == ("Normal Metabolizer", "Intermediate Metabolizer", "reported")


def test_cyp2c9_and_cyp2c19_are_not_phenoconverted():
    rs = [GeneResult("CYP2C19", "Observation/c", "*1/*1", None, None, "final")]
    gp = resolve_profile(rs, [med("f", "fluvoxamine 100 MG"), med("x", "fluoxetine 20 MG")]).genes["CYP2C19"]
    assert gp.phenotype == "Normal Metabolizer" and gp.phenoconverted_by == ()


def test_strong_inhibitor_without_cyp2d6_result_makes_a_poor_metabolizer():
    # CPIC: a strong CYP2D6 inhibitor means activity score 0 whatever the genotype
    profile = resolve_profile([], [med("p", "paroxetine 20 MG")])
    gp = profile.genes["CYP2D6"]
    assert (gp.phenotype, gp.activity_score, gp.diplotype, gp.phenoconverted_by) == (
        "Poor Metabolizer", "0.0", None, ("paroxetine",))
    rec = recommend(drug_by_name("codeine"), profile)
    assert (rec.action, rec.classification, rec.uncertainty) == ("avoid", "Strong", None)


def test_moderate_inhibitor_without_cyp2d6_result_is_a_profile_note():
    profile = resolve_profile([], [med("d", "duloxetine 60 MG")])
    assert profile.genes == {} and "duloxetine" in profile.notes[0]
    assert recommend(drug_by_name("codeine"), profile) is None      # the genotype decides: pre-test alert


def test_inhibitor_of_uncertain_strength_without_result_gives_avoid_from_the_strong_possibility():
    profile = resolve_profile([], [med("t", "terbinafine 250 MG Oral Tablet")])
    rec = recommend(drug_by_name("tramadol"), profile)
    assert (rec.action, rec.classification) == ("avoid", "Strong") and rec.uncertainty["why"] == "inhibitor-strength"


def test_unreadable_diplotype_falls_back_to_the_reported_phenotype():
    rs = [GeneResult("CYP2D6", "Observation/x", "see report", "Intermediate Metabolizer", at(2022), "final")]
    gp = resolve_profile(rs, []).genes["CYP2D6"]
    assert (gp.phenotype, gp.source) == ("Intermediate Metabolizer", "reported")
    assert any("could not be read" in n for n in gp.notes)


def test_oprm1_is_reported_as_information():
    profile = resolve_profile(read_gene_results([pgx_fixture("lab-style-results-bundle.json")]), [])
    assert profile.genes["OPRM1"].diplotype == "A/G" and profile.genes["OPRM1"].phenotype == "Indeterminate"
    assert set(profile.genes) == {"CYP2D6", "CYP2C19", "CYP2C9", "OPRM1"}
    d = profile.to_dict()
    assert d["genes"]["CYP2D6"]["diplotype"] == "*1/*4" and d["genes"]["CYP2D6"]["phenotype"] == "Intermediate Metabolizer"


def test_bad_input_is_ignored():
    assert resolve_profile([None, "x", GeneResult("", "r")], []).genes == {}


def test_orders_that_name_no_inhibitor_leave_phenoconversion_as_it_is():
    # resolve_profile keeps only the orders that name an inhibitor: the others, before or after it, change nothing
    from fhir_pain.facts import Drug, GeneResult, MedicationUse
    from fhir_pain.pgx import resolve_profile
    results = [GeneResult("CYP2D6", "Observation/g", "*1/*1")]
    paroxetine = MedicationUse("MedicationRequest/p", "active", "order", (Drug("32937", "paroxetine"),), "Paxil 20 MG")
    named_only = MedicationUse("MedicationRequest/q", "active", "order", (), "bupropion 150 MG")
    other = MedicationUse("MedicationRequest/o", "active", "order", (Drug("6809", "metformin"),), "metformin 500 MG")
    stopped = MedicationUse("MedicationRequest/s", "stopped", "order", (), "fluoxetine 20 MG")
    alone = resolve_profile(results, [paroxetine, named_only])
    among = resolve_profile(results, [other, paroxetine, stopped, other, named_only])
    assert alone == among and alone.options == among.options and alone.origins == among.origins
    assert alone.genes["CYP2D6"].phenoconverted_by == ("paroxetine", "bupropion")
    assert resolve_profile(results, [other, stopped]).genes["CYP2D6"].phenoconverted_by == ()
