"""GUIDELINES (cpic | dpwg | both): which guideline a site's cards follow, how DPWG reads the engine's phenotypes,
and that a bad value stops the service at start-up.

Expected values here are written from the guidelines' texts (reference/dpwg, reference/cpic), not read back from
profiles/, so a wrong wording or mapping fails them.
"""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from fhir_pain import config, pgx, server
from fhir_pain.evaluate import build_context, evaluate
from fhir_pain.facts import PatientData
from fhir_pain.pgx import dpwg
from fhir_pain.rules.drug_gene import drug_gene_finding
from golden.fhir_builders import draft, genotype, hook_request, medication_request, prefetch, reported_phenotype

NOW = datetime(2026, 5, 1, tzinfo=timezone.utc)


def finding(drug: str, obs: list[dict], mode: str, meds: list[dict] = ()):
    rx = pgx.drug_by_name(drug).rxnorm
    data = PatientData(patient_id="p1", now=NOW, observations=obs, medication_requests=list(meds),
                       draft_orders=[draft("rx1", "p1", rx, f"{drug} oral tablet")])
    ctx = build_context(data, "order-sign", mode)
    return drug_gene_finding(ctx, ctx.drafts[0], ctx.drafts[0].ingredients[0])


def cards(drug: str, obs: list[dict], mode: str) -> list:
    rx = pgx.drug_by_name(drug).rxnorm
    data = PatientData(patient_id="p1", now=NOW, observations=obs,
                       draft_orders=[draft("rx1", "p1", rx, f"{drug} oral tablet")])
    return [f for f in evaluate(data, "order-sign", mode) if f.kind == "drug-gene"]


def sources(f) -> list[tuple[str, str, str]]:
    return [(r["source"], r["classification"], r["action"]) for r in f.to_contract()["recommendations"]]


# ---- how DPWG reads a genotype: its allele functions, not CPIC's activity values --------------------------------

FUNCTIONS = {
    "CYP2D6": {"*1": "Normal function", "*4": "No function", "*10": "Decreased function", "*17": "Decreased function",
               "*1x2": "Increased function", "*1x≥3": "Increased function", "*10x2": "Normal function",
               "*41x2": "Normal function"},
}


@pytest.mark.parametrize("diplotype, pair", [
    ("*1/*10", "Decreased function/Normal function"),             # CPIC 1.25 (NM); DPWG: decreased + normal = NM
    ("*4/*10", "Decreased function/No function"),                 # CPIC 0.25 (IM); DPWG IM
    ("*10x2/*4", "No function/Normal function"),                  # DPWG: a duplicated *10 is "Normal function"
    ("*1x2/*17", "Decreased function/Increased function (AV 2)"),  # CPIC 2.5 (UM); DPWG NM
    ("*1x3/*4", "Increased function (AV ≥3)/No function"),
    ("*1/*2xN", None),                                             # copy number unstated: not read alone
    ("*1/*999", None),                                             # an allele DPWG does not list
])
def test_a_cyp2d6_diplotype_is_read_with_dpwg_s_allele_functions(diplotype, pair):
    functions = dict(dpwg._profile()["genes"]["CYP2D6"]["functions"])
    assert {a: functions[a] for a in FUNCTIONS["CYP2D6"]} == FUNCTIONS["CYP2D6"]   # DPWG's table, as read
    assert dpwg.function_pair(functions, diplotype) == pair


def test_cpic_ultrarapid_by_an_activity_score_of_2_5_is_dpwg_normal_no_card_under_dpwg_two_sources_under_both():
    obs = [genotype("gt", "p1", "CYP2D6", "*1x2/*17")]
    cpic = finding("codeine", obs, "cpic")
    assert (cpic.genes["CYP2D6"].activity_score, cpic.action, cpic.indicator) == ("2.5", "avoid", "critical")
    only_dpwg = finding("codeine", obs, "dpwg")
    assert (only_dpwg.rule, only_dpwg.action) == ("dpwg/codeine/CYP2D6", "standard-dose")
    assert only_dpwg.to_contract()["recommendations"][0]["phenotype"] == {"CYP2D6": "Normal Metabolizer"}
    assert cards("codeine", obs, "dpwg") == []          # DPWG's normal metabolizer: nothing to say on an order
    both = finding("codeine", obs, "both")
    assert (both.rule, both.action, both.indicator) == ("cpic/codeine/CYP2D6", "avoid", "critical")
    assert sources(both) == [("CPIC", "Strong", "avoid"), ("DPWG", "Prescribing change: No", "standard-dose")]
    assert "(CPIC Strong; DPWG standard dosing)" in both.summary
    assert "**DPWG (differs: standard dosing):**" in both.detail


def test_cyp2c19_rapid_metabolizer_is_dpwg_normal_metabolizer():
    f = finding("escitalopram", [genotype("gt", "p1", "CYP2C19", "*1/*17")], "dpwg")
    assert f.genes["CYP2C19"].phenotype == "Rapid Metabolizer"       # the engine's (CPIC's) word is kept
    assert f.to_contract()["recommendations"][0]["phenotype"] == {"CYP2C19": "Normal Metabolizer"}
    assert f.action == "standard-dose"


def test_a_reported_cyp2d6_ultrarapid_result_can_be_dpwg_normal_or_ultrarapid_and_the_cautious_advice_wins():
    f = finding("codeine", [reported_phenotype("ph", "p1", "CYP2D6", "Ultrarapid Metabolizer")], "dpwg")
    assert (f.action, f.indicator) == ("avoid", "critical")            # DPWG: codeine contraindicated in UM
    u = f.to_contract()["uncertainty"]
    assert u["why"] == "mapping"
    assert {p["dpwgPhenotype"] for p in u["possibilities"]} == {"Ultrarapid Metabolizer", "Normal Metabolizer"}
    assert u["basis"]["dpwgPhenotype"] == "Ultrarapid Metabolizer"
    assert f.summary.startswith("CYP2D6 result read two ways by DPWG: avoid codeine")
    assert "**DPWG phenotype uncertain:**" in f.detail


def test_a_reported_cyp2c9_intermediate_result_gets_dpwg_s_lowest_phenytoin_dose_it_may_need():
    # CPIC's IM includes *2/*2 (score 1.0), which DPWG doses at 50%, and decreased/decreased pairs (DPWG PM, 40-50%)
    f = finding("phenytoin", [reported_phenotype("ph", "p1", "CYP2C9", "Intermediate Metabolizer")], "dpwg")
    assert f.action == "reduce-dose"
    assert f.to_contract()["uncertainty"]["basis"]["dpwgPhenotype"] == "Poor Metabolizer"
    assert "40-50%" in f.detail


def test_phenytoin_genotype_rows_of_dpwg_apply_to_the_genotype():
    f = finding("phenytoin", [genotype("gt", "p1", "CYP2C9", "*2/*2")], "dpwg")
    assert f.to_contract()["recommendations"][0]["phenotype"] == {"CYP2C9": "*2/*2"}
    assert "use 50% of the standard dose" in f.detail and f.uncertainty is None


def test_phenoconversion_is_applied_before_dpwg_is_looked_up():
    paroxetine = medication_request("mr-parox", "p1", "32937", "paroxetine 20 MG Oral Tablet")
    f = finding("codeine", [genotype("gt", "p1", "CYP2D6", "*1/*1")], "dpwg", meds=[paroxetine])
    assert f.genes["CYP2D6"].phenoconverted_by == ("paroxetine",)
    assert (f.rule, f.action) == ("dpwg/codeine/CYP2D6", "use-alternative")       # DPWG's PM row
    assert f.to_contract()["recommendations"][0]["phenotype"] == {"CYP2D6": "Poor Metabolizer"}


# ---- both: one advice where they agree, both where they differ ---------------------------------------------------

def test_both_agree_one_advice_in_cpic_s_words_citing_both():
    [f] = cards("sertraline", [genotype("gt", "p1", "CYP2C19", "*2/*2")], "both")
    assert (f.rule, f.action, f.indicator) == ("cpic/sertraline/CYP2C19+CYP2B6", "reduce-dose", "warning")
    assert sources(f) == [("CPIC", "Moderate", "reduce-dose"), ("DPWG", "Prescribing change: Yes", "reduce-dose")]
    assert f.summary.endswith("(CPIC Moderate; DPWG agrees)")
    assert "**DPWG (agrees):**" in f.detail and "75 mg/day" in f.detail


def test_both_differ_the_more_cautious_cpic_avoid_leads_and_dpwg_is_shown():
    [f] = cards("tramadol", [genotype("gt", "p1", "CYP2D6", "*4/*4")], "both")
    assert (f.action, f.indicator, f.classification) == ("avoid", "critical", "Strong")
    assert sources(f) == [("CPIC", "Strong", "avoid"), ("DPWG", "Prescribing change: Possibly", "monitor")]
    assert "(CPIC Strong; DPWG monitor response)" in f.summary
    assert "**DPWG (differs: monitor response):**" in f.detail and "try a higher dose" in f.detail


def test_both_differ_the_more_cautious_dpwg_avoid_leads_over_cpic_s_alternative():
    [f] = cards("paroxetine", [genotype("gt", "p1", "CYP2D6", "*1/*1x≥3")], "both")
    assert (f.rule, f.action) == ("cpic/paroxetine/CYP2D6", "avoid")       # the rule stays the pair's CPIC id
    assert f.knowledge["source"] == "DPWG"
    assert sources(f)[0][0] == "CPIC" and sources(f)[1] == ("DPWG", "Prescribing change: Yes", "avoid")
    assert "(DPWG; CPIC use an alternative)" in f.summary
    assert "**CPIC (differs: use an alternative):**" in f.detail


def test_both_a_dpwg_contraindication_is_as_loud_as_cpic_s_strong_avoid():
    [f] = cards("codeine", [genotype("gt", "p1", "CYP2D6", "*1/*1x≥3")], "both")
    assert (f.action, f.indicator) == ("avoid", "critical")
    assert [s[0] for s in sources(f)] == ["CPIC", "DPWG"]


# ---- dpwg: CPIC shown where DPWG has nothing --------------------------------------------------------------------

def test_dpwg_site_a_drug_without_dpwg_data_gets_cpic_s_advice_and_is_told_so():
    [f] = cards("hydrocodone", [genotype("gt", "p1", "CYP2D6", "*4/*4")], "dpwg")
    assert (f.rule, f.knowledge["source"], f.action) == ("cpic/hydrocodone/CYP2D6", "CPIC", "monitor")
    assert sources(f) == [("CPIC", "Optional", "monitor")]
    assert "DPWG guidance for hydrocodone and CYP2D6 is not in fhir-pain's DPWG data" in f.detail


def test_dpwg_site_a_result_dpwg_has_no_row_for_gets_cpic_s_row():
    f = finding("codeine", [genotype("gt", "p1", "CYP2D6", "*1/*999")], "dpwg")
    assert f.knowledge["source"] == "CPIC" and "DPWG has no row for this CYP2D6 result" in f.detail


def test_dpwg_site_a_gene_dpwg_has_no_guidance_for_brings_cpic_beside_dpwg():
    obs = [genotype("g1", "p1", "CYP2D6", "*1/*4"), genotype("g2", "p1", "CYP2C19", "*2/*2")]
    [f] = cards("amitriptyline", obs, "dpwg")
    assert f.rule == "dpwg/amitriptyline/CYP2D6"
    assert sources(f) == [("DPWG", "Prescribing change: Yes", "reduce-dose"), ("CPIC", "Optional", "avoid")]
    assert f.action == "avoid"      # CPIC's, which weighs CYP2C19 too, is the more cautious
    assert "DPWG has no guidance for amitriptyline and CYP2C19" in f.detail


def test_cpic_site_cards_carry_no_recommendations_field():
    f = finding("codeine", [genotype("gt", "p1", "CYP2D6", "*4/*4")], "cpic")
    assert "recommendations" not in f.to_contract() and f.rule == "cpic/codeine/CYP2D6"


def test_the_service_follows_the_configured_source(app_factory):
    app = app_factory(REGISTER_CLINICAL_SERVICES=True, GUIDELINES="both", NOW=NOW.isoformat())
    order = draft("rx1", "p1", "10689", "tramadol 50 MG Oral Tablet")
    body = hook_request("order-sign", "p1", name="guidelines-both", drafts=[order],
                        prefetch=prefetch("p1", pgx=[genotype("gt", "p1", "CYP2D6", "*4/*4")]))
    response = app.test_client().post("/cds-services/pain-pgx-order-sign", json=body)
    assert response.status_code == 200
    [f] = [f for c in response.get_json()["cards"] for f in c["extension"]["io.fhir-pain.findings"]
           if f["kind"] == "drug-gene"]
    assert [r["source"] for r in f["recommendations"]] == ["CPIC", "DPWG"]


# ---- the setting --------------------------------------------------------------------------------------------------

def test_guidelines_defaults_to_cpic_and_reads_the_environment():
    assert config.load({}, environ={})["GUIDELINES"] == "cpic"
    assert config.load({}, environ={"FHIR_PAIN_GUIDELINES": "dpwg"})["GUIDELINES"] == "dpwg"
    assert config.load({"GUIDELINES": "both"}, environ={})["GUIDELINES"] == "both"


@pytest.mark.parametrize("value", ["DPWG", "cpic,dpwg", "", "nice"])
def test_a_bad_guidelines_value_is_a_clear_startup_error(value):
    with pytest.raises(ValueError, match=r"GUIDELINES must be one of cpic, dpwg, both \(FHIR_PAIN_GUIDELINES\)"):
        config.load({}, environ={"FHIR_PAIN_GUIDELINES": value})


def test_serve_with_a_bad_guidelines_value_exits_2_before_starting(monkeypatch, capsys):
    from serve_process import free_port
    from fhir_pain import cli
    monkeypatch.setenv("FHIR_PAIN_GUIDELINES", "nice")
    monkeypatch.setenv("FHIR_PAIN_DATABASE_URL", "sqlite://")
    assert server.run(cli.build_parser().parse_args(["serve", "--port", str(free_port())])) == 2
    assert "GUIDELINES must be one of cpic, dpwg, both" in capsys.readouterr().err


def test_the_patient_view_summary_names_the_source_and_dpwg_s_advice():
    data = PatientData(patient_id="p1", now=NOW, observations=[genotype("gt", "p1", "CYP2C19", "*1/*17")])
    cpic = next(f for f in evaluate(data, "patient-view", "cpic") if f.rule == "fhir-pain/pgx-summary")
    dpwg_ = next(f for f in evaluate(data, "patient-view", "dpwg") if f.rule == "fhir-pain/pgx-summary")
    assert "escitalopram" in cpic.summary          # CPIC: rapid metabolizer, escitalopram needs a look
    assert "escitalopram" not in dpwg_.summary     # DPWG: *1/*17 is a normal metabolizer, nothing to check
    assert "(DPWG; CPIC where DPWG has none)" in dpwg_.detail and dpwg_.knowledge["source"].startswith("DPWG")


def test_the_poller_follows_the_configured_source(monkeypatch):
    from fhir_pain import cli
    from fhir_pain.poller.cli import build_poller
    monkeypatch.setenv("FHIR_PAIN_GUIDELINES", "dpwg")
    args = cli.build_parser().parse_args(["poll", "--fhir-server", "http://127.0.0.1:9/fhir",
                                          "--database-url", "sqlite://", "--once"])
    poller = build_poller(args)
    try:
        paroxetine = medication_request("mr-parox", "p1", "32937", "paroxetine 20 MG Oral Tablet")
        data = PatientData(patient_id="p1", now=NOW, medication_requests=[paroxetine],
                           observations=[genotype("gt", "p1", "CYP2D6", "*1/*1x≥3")])
        [f] = [f for f in poller.evaluate(data, "patient-view") if f.kind == "drug-gene"]
        assert (f.rule, f.action) == ("dpwg/paroxetine/CYP2D6", "avoid")
    finally:
        poller.store.dispose()


def test_dpwg_site_hla_b_risk_for_phenytoin_is_never_hidden_by_dpwg_s_cyp2c9_only_guideline():
    from golden.fhir_builders import hla_genotype
    obs = [genotype("g1", "p1", "CYP2C9", "*1/*1"), hla_genotype("h1", "p1", "HLA-B", ["*15:02:01", "*40:01:02"])]
    f = finding("phenytoin", obs, "dpwg")
    assert (f.action, f.indicator) == ("avoid", "critical")
    assert sources(f) == [("DPWG", "Prescribing change: No", "standard-dose"), ("CPIC", "Strong", "avoid")]
    assert "DPWG has no guidance for phenytoin and HLA-B" in f.detail


def test_an_unstated_duplication_is_looked_up_in_dpwg_for_every_copy_number_and_the_cautious_advice_wins():
    f = finding("codeine", [genotype("gt", "p1", "CYP2D6", "*1/*41xN")], "dpwg")
    u = f.to_contract()["uncertainty"]
    assert {p["dpwgPhenotype"] for p in u["possibilities"]} >= {"Normal Metabolizer", "Ultrarapid Metabolizer"}
    assert (f.action, f.indicator, u["basis"]["dpwgPhenotype"]) == ("avoid", "critical", "Ultrarapid Metabolizer")


def test_conflicting_results_are_each_looked_up_in_dpwg():
    obs = [genotype("g1", "p1", "CYP2D6", "*1/*1", when="2024-01-10T09:00:00Z"),
           genotype("g2", "p1", "CYP2D6", "*4/*4", when="2025-01-10T09:00:00Z")]
    f = finding("codeine", obs, "dpwg")
    u = f.to_contract()["uncertainty"]
    assert u["why"] == "conflicting" and f.action == "use-alternative"       # DPWG's PM row, not its NM row
    assert {p["dpwgPhenotype"] for p in u["possibilities"]} == {"Normal Metabolizer", "Poor Metabolizer"}
