"""cpic_alert: what CPIC's post-test alert workbook designs for a result, on the workbooks' real rows."""
from __future__ import annotations

import pytest

from fhir_pain.rules.knowledge import cpic_alert, posttest_alerts


# codeine (opioids/codeine_Pre_and_Post_Test_Alerts_and_Flow_Chart.xlsx, keyed by activity score):
# UM '>2.25' Post-Test, NM 1.25-2.25 'No CDS', IM 0.25-1 Post-Test, PM 0 Post-Test, Indeterminate 'No CDS'.
@pytest.mark.parametrize("score", ["1.25", "1.5", "1.75", "2.0", "2.25"])
def test_codeine_normal_metabolizer_is_no_cds(score):
    assert cpic_alert("codeine", {"CYP2D6": score}) == "no-cds"


@pytest.mark.parametrize("score", ["0.25", "0.5", "0.75", "1.0"])
def test_codeine_intermediate_metabolizer_gets_an_alert(score):
    assert cpic_alert("codeine", {"CYP2D6": score}) == "cds"


@pytest.mark.parametrize("score", ["0.0", "2.5", "3.0", "≥3.0", "≥6.0"])
def test_codeine_poor_and_ultrarapid_metabolizers_get_an_alert(score):
    assert cpic_alert("codeine", {"CYP2D6": score}) == "cds"


def test_codeine_indeterminate_is_no_cds():
    assert cpic_alert("codeine", {"CYP2D6": "n/a"}) == "no-cds"


def test_hydrocodone_ultrarapid_metabolizer_is_no_cds_unlike_codeine():
    assert cpic_alert("hydrocodone", {"CYP2D6": "≥3.0"}) == "no-cds"
    assert cpic_alert("hydrocodone", {"CYP2D6": "0.0"}) == "cds"


def test_a_drug_without_its_gene_result_is_left_to_the_pre_test_rule():
    assert cpic_alert("codeine", {}) is None
    assert cpic_alert("codeine", {"CYP2C19": "Normal Metabolizer"}) is None


def test_a_score_outside_cpics_table_is_not_covered_where_the_workbook_lists_scores():
    # 0.625 (phenoconversion) is no codeine key: no claim, the engine's own advice stands
    assert cpic_alert("codeine", {"CYP2D6": "0.625"}) is None


@pytest.mark.parametrize("drug", ["celecoxib", "flurbiprofen", "ibuprofen", "lornoxicam", "meloxicam", "piroxicam",
                                  "tenoxicam"])
def test_nsaid_workbooks_alert_on_scores_1_and_0_to_0_5_and_list_nothing_else(drug):
    assert [cpic_alert(drug, {"CYP2C9": s}) for s in ("0.0", "0.5", "1.0")] == ["cds"] * 3
    assert [cpic_alert(drug, {"CYP2C9": s}) for s in ("1.5", "2.0", "n/a")] == [None] * 3


def test_paroxetine_intermediate_metabolizer_is_no_cds_from_a_score_a_phenoconverted_score_or_a_phenotype():
    # SSRI workbook: 'CYP2D6 NM  or IM and paroxetine ordered' -> 'No CDS'; it names phenotypes only
    for key in ("1.0", "0.25", "0.625", "Intermediate Metabolizer", "2.0"):
        assert cpic_alert("paroxetine", {"CYP2D6": key}) == "no-cds", key
    assert cpic_alert("paroxetine", {"CYP2D6": "0.0"}) == "cds"
    assert cpic_alert("paroxetine", {"CYP2D6": "≥3.0"}) == "cds"
    assert cpic_alert("paroxetine", {"CYP2D6": "n/a"}) is None


@pytest.mark.parametrize("drug", ["ondansetron", "tropisetron"])
def test_ondansetron_workbook_alerts_only_on_ultrarapid_metabolizers(drug):
    assert cpic_alert(drug, {"CYP2D6": "≥3.0"}) == "cds"
    assert [cpic_alert(drug, {"CYP2D6": s}) for s in ("0.0", "0.5", "1.5")] == ["no-cds"] * 3


def test_nortriptyline_normal_metabolizer_is_no_cds_and_the_others_alert():
    assert cpic_alert("nortriptyline", {"CYP2D6": "1.5"}) == "no-cds"
    assert [cpic_alert("nortriptyline", {"CYP2D6": s}) for s in ("0.0", "0.5", "2.5")] == ["cds"] * 3


def test_amitriptyline_is_looked_up_on_both_genes():
    # 'CYP2D6 Normal Metabolizer' x 'CYP2C19 Normal Metabolizer or Intermediate Metabolizer or Likely
    # Intermediate Metabolizer' -> 'No CDS'; a CYP2C19 poor metabolizer gets an alert
    assert cpic_alert("amitriptyline", {"CYP2D6": "2.0", "CYP2C19": "Normal Metabolizer"}) == "no-cds"
    assert cpic_alert("amitriptyline", {"CYP2D6": "1.25", "CYP2C19": "Likely Intermediate Metabolizer"}) == "no-cds"
    assert cpic_alert("amitriptyline", {"CYP2D6": "2.0", "CYP2C19": "Poor Metabolizer"}) == "cds"
    assert cpic_alert("amitriptyline", {"CYP2D6": "1.0", "CYP2C19": "Normal Metabolizer"}) == "cds"


def test_amitriptyline_with_one_gene_missing_follows_the_no_result_rows():
    # CYP2D6 NM without CYP2C19: CPIC alerts ('Pre-test' context: CYP2C19 should be known); CYP2C19 NM without CYP2D6 too
    assert cpic_alert("amitriptyline", {"CYP2D6": "2.0"}) == "cds"
    assert cpic_alert("amitriptyline", {"CYP2C19": "Normal Metabolizer"}) == "cds"
    assert cpic_alert("amitriptyline", {}) is None          # no result at all: the pre-test rule


def test_amitriptyline_indeterminate_results_are_not_covered():
    assert cpic_alert("amitriptyline", {"CYP2D6": "n/a", "CYP2C19": "Normal Metabolizer"}) is None
    assert cpic_alert("amitriptyline", {"CYP2D6": "2.0", "CYP2C19": "Indeterminate"}) is None


@pytest.mark.parametrize("drug", ["venlafaxine", "desipramine", "oxycodone", "not-a-drug"])
def test_drugs_without_a_workbook_are_not_covered(drug):
    assert cpic_alert(drug, {"CYP2D6": "0.0"}) is None


def test_the_workbook_of_each_drug_is_named():
    drugs = posttest_alerts()["drugs"]
    assert drugs["codeine"]["workbook"] == "opioids/codeine_Pre_and_Post_Test_Alerts_and_Flow_Chart.xlsx"
    assert drugs["tropisetron"]["workbook"] == drugs["ondansetron"]["workbook"]
