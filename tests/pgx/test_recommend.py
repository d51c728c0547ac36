"""The CPIC lookup: every key of every CPIC recommendation export, derived drugs, ambiguity, None cases."""
from __future__ import annotations

import json

import pytest

from fhir_pain.facts import Drug, GenePhenotype, GeneResult
from fhir_pain.pgx import PgxProfile, drug_by_name, guideline_for, informational_recommendations, recommend
from fhir_pain.pgx import resolve_profile
from fhir_pain.pgx.knowledge import key_phenotype
from fhir_pain.profiles import load
from .conftest import CPIC_DIR, cpic_json

EXPORTS = ["amitriptyline", "carbamazepine", "celecoxib", "citalopram", "codeine", "escitalopram", "flurbiprofen",
           "fluvoxamine", "fosphenytoin", "hydrocodone", "ibuprofen", "lornoxicam", "meloxicam", "nortriptyline",
           "ondansetron", "oxcarbazepine", "paroxetine", "phenytoin", "piroxicam", "sertraline", "tenoxicam",
           "tramadol", "venlafaxine", "vortioxetine"]
# CPIC's populations (HLA anticonvulsants) -> the population recommend() is asked for
POPULATION = {"general": None, "CBZ naive": "naive", "CBZ use >3mos ": "use-over-3-months",
              "CBZ-no alternatives": "naive-no-alternatives", "OXC naive": "naive", "OXC use >3 mos": "use-over-3-months",
              "PHT naive": "naive", "PHT use >3mos": "use-over-3-months"}
WORDING = load("pgx/wording.json")["texts"]


def profile_for_key(lookupkey: dict) -> PgxProfile:
    """A profile whose genes carry exactly CPIC's lookup key ("No Result" = no result for that gene)."""
    genes = {}
    for gene, key in lookupkey.items():
        if key == "No Result":
            continue
        score = key if key[-1].isdigit() or key == "n/a" else None
        genes[gene] = GenePhenotype(gene=gene, phenotype=key_phenotype(gene, key), activity_score=score)
    return PgxProfile(genes=genes)


def test_the_cpic_exports_are_all_covered():
    on_disk = sorted(p.name[len("recommendations_cpic_"):-5] for p in CPIC_DIR.glob("recommendations_cpic_*.json"))
    assert on_disk == sorted(EXPORTS)


@pytest.mark.parametrize("name", EXPORTS)
def test_every_lookup_key_of_the_export_gives_cpics_classification_and_our_wording(name):
    export = cpic_json(f"recommendations_cpic_{name}.json")
    drug = Drug(export["drugid"].split(":")[1], name)
    assert drug_by_name(name) == drug
    checked = 0
    for row in export["recommendations"]:
        population = POPULATION[row.get("population", "general")]
        rec = recommend(drug, profile_for_key(row["lookupkey"]), population)
        key = json.dumps(row["lookupkey"], ensure_ascii=False) + f" ({population})"
        if all(v == "No Result" for v in row["lookupkey"].values()):
            assert rec is None, key
            continue
        assert rec is not None, key
        assert rec.classification == {"n/a": "No Recommendation"}.get(row["classification"], row["classification"]), key
        assert rec.population == population, key
        assert not rec.ambiguous, key
        wording = WORDING[row["drugrecommendation"]]
        assert rec.action == wording["action"], key
        assert rec.recommendation == wording["gist"].replace("{drug}", name), key
        for gene, implication in row["implications"].items():
            if implication != "n/a":
                assert implication in rec.implication, key
        assert rec.knowledge == {"source": "CPIC", "version": guideline_for(drug).version, "url": export["url"]}
        checked += 1
    assert checked == len(export["recommendations"])


def gp(gene, phenotype, score=None, **kw):
    return GenePhenotype(gene=gene, phenotype=phenotype, activity_score=score, **kw)


def test_rule_ids_and_guideline_genes():
    ami = drug_by_name("amitriptyline")
    assert guideline_for(ami).genes == ("CYP2D6", "CYP2C19")
    rec = recommend(ami, PgxProfile(genes={"CYP2D6": gp("CYP2D6", "Normal Metabolizer", "2.0"),
                                           "CYP2C19": gp("CYP2C19", "Poor Metabolizer")}))
    assert rec.rule == "cpic/amitriptyline/CYP2D6+CYP2C19"
    assert (rec.classification, rec.action) == ("Moderate", "avoid")
    assert recommend(drug_by_name("codeine"), PgxProfile(genes={"CYP2D6": gp("CYP2D6", "Poor Metabolizer", "0.0")})
                     ).rule == "cpic/codeine/CYP2D6"


def test_none_when_not_covered_or_no_result_for_the_guideline_genes():
    only_2c9 = PgxProfile(genes={"CYP2C9": gp("CYP2C9", "Poor Metabolizer", "0.0")})
    assert recommend(drug_by_name("codeine"), only_2c9) is None
    assert recommend(drug_by_name("morphine"), only_2c9) is None
    assert guideline_for(drug_by_name("morphine")) is None
    assert recommend(Drug("0", "nothing"), only_2c9) is None


def test_codeine_avoid_names_the_class_cpic_names_and_no_drug():
    # CPIC: "If opioid use is warranted, consider a non-tramadol opioid": a class, so no drug is offered by name
    rec = recommend(drug_by_name("codeine"), PgxProfile(genes={"CYP2D6": gp("CYP2D6", "Ultrarapid Metabolizer", "3.0")}))
    assert rec.action == "avoid" and rec.classification == "Strong"
    assert rec.alternatives == () and "other than tramadol" in rec.recommendation


def test_nsaid_poor_metabolizer_names_cpic_alternatives():
    rec = recommend(drug_by_name("meloxicam"), PgxProfile(genes={"CYP2C9": gp("CYP2C9", "Poor Metabolizer", "0.5")}))
    assert rec.action == "use-alternative" and {d.name for d in rec.alternatives} == {"aspirin", "naproxen"}


@pytest.mark.parametrize("drug, phenotype, classification, action", [
    ("oxycodone", "Normal Metabolizer", "Strong", "standard-dose"),
    ("oxycodone", "Poor Metabolizer", "No Recommendation", "no-recommendation"),
    ("oxycodone", "Ultrarapid Metabolizer", "No Recommendation", "no-recommendation"),
    ("methadone", "Intermediate Metabolizer", "No Recommendation", "no-recommendation"),
    ("methadone", "Normal Metabolizer", "Strong", "standard-dose"),
])
def test_hand_encoded_opioids(drug, phenotype, classification, action):
    rec = recommend(drug_by_name(drug), PgxProfile(genes={"CYP2D6": gp("CYP2D6", phenotype)}))
    assert (rec.classification, rec.action) == (classification, action)
    assert "33387367" in rec.knowledge["version"]


def test_tropisetron_follows_ondansetron_and_other_tcas_take_the_other_tca_classification():
    um = PgxProfile(genes={"CYP2D6": gp("CYP2D6", "Ultrarapid Metabolizer", "3.0")})
    ond, tro = recommend(drug_by_name("ondansetron"), um), recommend(drug_by_name("tropisetron"), um)
    assert (tro.classification, tro.action) == (ond.classification, ond.action) == ("Moderate", "use-alternative")
    pm = PgxProfile(genes={"CYP2D6": gp("CYP2D6", "Poor Metabolizer", "0.0")})
    assert recommend(drug_by_name("nortriptyline"), pm).classification == "Strong"
    des = recommend(drug_by_name("desipramine"), pm)
    assert (des.classification, des.action) == ("Optional", "avoid") and "desipramine" in des.rule
    nm = PgxProfile(genes={"CYP2D6": gp("CYP2D6", "Normal Metabolizer", "2.0"),
                           "CYP2C19": gp("CYP2C19", "Normal Metabolizer")})
    assert recommend(drug_by_name("imipramine"), nm).classification == "Strong"
    rm = PgxProfile(genes={"CYP2D6": gp("CYP2D6", "Normal Metabolizer", "2.0"),
                           "CYP2C19": gp("CYP2C19", "Rapid Metabolizer")})
    imi = recommend(drug_by_name("imipramine"), rm)
    assert (imi.classification, imi.action) == ("Optional", "use-alternative") and "imipramine" in imi.recommendation


def test_amitriptyline_with_one_gene_missing_uses_cpics_no_result_key():
    rec = recommend(drug_by_name("amitriptyline"), PgxProfile(genes={"CYP2C19": gp("CYP2C19", "Poor Metabolizer")}))
    assert (rec.classification, rec.action) == ("Moderate", "avoid")
    assert {d.name for d in rec.alternatives} == {"nortriptyline", "desipramine"}


def test_indeterminate_gives_no_recommendation_not_none():
    rec = recommend(drug_by_name("codeine"), PgxProfile(genes={"CYP2D6": gp("CYP2D6", "Indeterminate", "n/a")}))
    assert (rec.classification, rec.action, rec.ambiguous) == ("No Recommendation", "no-recommendation", False)


@pytest.mark.parametrize("diplotype, drug, ambiguous, action, classification", [
    ("*1/*4xN", "codeine", True, "avoid", "Strong"),          # IM, NM or UM: UM says avoid, so the card does
    ("*1/*10xN", "codeine", True, "avoid", "Strong"),         # NM or UM
    ("*1/*2xN", "codeine", False, "avoid", "Strong"),         # UM whichever allele is duplicated
    ("*4/*4xN", "tramadol", False, "avoid", "Strong"),        # PM in every case
    ("*1/*4xN", "oxycodone", True, "no-recommendation", "No Recommendation"),   # CPIC: no advice but for NM
    ("(*1/*4)3N", "ondansetron", True, "no-recommendation", "No Recommendation"),  # IM (no rec.) or NM (standard)
])
def test_ambiguous_duplications_give_the_advice_safe_under_every_possibility(diplotype, drug, ambiguous, action,
                                                                             classification):
    profile = resolve_profile([GeneResult("CYP2D6", "Observation/dup", diplotype)], [])
    rec = recommend(drug_by_name(drug), profile)
    assert (rec.ambiguous, rec.action, rec.classification) == (ambiguous, action, classification)
    if ambiguous:
        assert rec.uncertainty["why"] == "ambiguous" and len(rec.uncertainty["possibilities"]) > 1
        assert rec.uncertainty["basis"]["action"] == action
        assert profile.genes["CYP2D6"].phenotype == "Indeterminate" and profile.genes["CYP2D6"].ambiguous


def test_options_that_differ_only_in_classification_take_the_weaker():
    # nortriptyline IM: AS 0.25-0.5 Moderate, 0.75-1.0 Optional, same advice; a reported IM has no score
    rec = recommend(drug_by_name("nortriptyline"),
                    PgxProfile(genes={"CYP2D6": gp("CYP2D6", "Intermediate Metabolizer", source="reported")}))
    assert (rec.action, rec.classification, rec.ambiguous) == ("reduce-dose", "Optional", False)


def test_reported_cyp2c9_intermediate_without_score_takes_the_lower_dose_advice_for_nsaids():
    # AS 1.5 -> usual dose, AS 1.0 -> lowest dose: the phenotype alone cannot decide, so the lower dose is advised
    rec = recommend(drug_by_name("celecoxib"),
                    PgxProfile(genes={"CYP2C9": gp("CYP2C9", "Intermediate Metabolizer", source="reported")}))
    assert rec.ambiguous and rec.action == "reduce-dose" and rec.uncertainty["basis"]["action"] == "reduce-dose"
    assert {p["action"] for p in rec.uncertainty["possibilities"]} == {"reduce-dose", "standard-dose"}


def test_oprm1_and_comt_are_information_only():
    profile = PgxProfile(genes={"OPRM1": gp("OPRM1", "Indeterminate", diplotype="rs1799971 A/G", source="reported")})
    recs = informational_recommendations(drug_by_name("codeine"), profile)
    assert [(r.rule, r.classification, r.action) for r in recs] == [
        ("cpic/codeine/OPRM1", "No Recommendation", "informational")]
    assert informational_recommendations(drug_by_name("celecoxib"), profile) == []


def test_ambiguous_recommendations_say_where_each_possibility_comes_from():
    dup = recommend(drug_by_name("codeine"), resolve_profile([GeneResult("CYP2D6", "Observation/d", "*1/*4xN")], []))
    phenotypes = {p["phenotype"] for p in dup.uncertainty["possibilities"]}
    assert phenotypes == {"Intermediate Metabolizer", "Normal Metabolizer", "Ultrarapid Metabolizer"}
    assert all("Observation/d" in p["source"] and "*1/*4xN" in p["source"] for p in dup.uncertainty["possibilities"])
    assert dup.uncertainty["basis"]["phenotype"] == "Ultrarapid Metabolizer"


def test_a_phenotype_cpic_has_no_entry_for_gives_no_advice():
    rec = recommend(drug_by_name("codeine"), PgxProfile(genes={"CYP2D6": gp("CYP2D6", "Rapid Metabolizer")}))
    assert (rec.action, rec.classification, rec.ambiguous) == ("no-recommendation", "No Recommendation", True)
    assert "no row" in rec.recommendation


# ---- named alternatives: only what CPIC names, and every one resolvable ------------------------------------

def test_every_named_alternative_is_a_known_drug():
    # recommend() silently skips a name drug_by_name cannot resolve: that is how granisetron went missing
    named = {a for w in WORDING.values() for a in w.get("alternatives", ())}
    assert named and all(drug_by_name(a) is not None for a in named), named


@pytest.mark.parametrize("drug", ["ondansetron", "tropisetron"])
def test_5ht3_antagonists_in_cyp2d6_ultrarapid_metabolizers_name_granisetron(drug):
    um = recommend(drug_by_name(drug), PgxProfile(genes={"CYP2D6": gp("CYP2D6", "Ultrarapid Metabolizer", "3.0")}))
    assert (um.action, um.classification) == ("use-alternative", "Moderate")
    assert um.alternatives == (Drug("26237", "granisetron"),) and "granisetron" in um.recommendation
    pm = recommend(drug_by_name(drug), PgxProfile(genes={"CYP2D6": gp("CYP2D6", "Poor Metabolizer", "0.0")}))
    # CPIC: "Insufficient evidence ...", classified No Recommendation
    assert (pm.action, pm.classification) == ("no-recommendation", "No Recommendation") and pm.alternatives == ()


TERTIARY_AMINES = ["amitriptyline", "clomipramine", "doxepin", "imipramine", "trimipramine"]
SECONDARY_AMINES = {Drug("7531", "nortriptyline"), Drug("3247", "desipramine")}


@pytest.mark.parametrize("drug", TERTIARY_AMINES)
@pytest.mark.parametrize("cyp2d6, cyp2c19, named", [
    (("Normal Metabolizer", "2.0"), "Poor Metabolizer", True),
    (("Normal Metabolizer", "1.25"), "Likely Poor Metabolizer", True),
    (("Normal Metabolizer", "2.0"), "Ultrarapid Metabolizer", True),
    (("Normal Metabolizer", "2.0"), "Rapid Metabolizer", True),
    (None, "Poor Metabolizer", True),
    (None, "Ultrarapid Metabolizer", True),
    (("Intermediate Metabolizer", "1.0"), "Ultrarapid Metabolizer", True),
    # both genes abnormal: CPIC names no drug (nortriptyline and desipramine are CYP2D6 drugs themselves)
    (("Poor Metabolizer", "0.0"), "Poor Metabolizer", False),
    (("Ultrarapid Metabolizer", "3.0"), "Ultrarapid Metabolizer", False),
    (("Intermediate Metabolizer", "1.0"), "Poor Metabolizer", False),
    (("Normal Metabolizer", "2.0"), "Normal Metabolizer", False),
])
def test_tertiary_amine_tcas_name_the_secondary_amines_where_cyp2c19_is_the_reason(drug, cyp2d6, cyp2c19, named):
    genes = {"CYP2C19": gp("CYP2C19", cyp2c19)}
    if cyp2d6:
        genes["CYP2D6"] = gp("CYP2D6", *cyp2d6)
    rec = recommend(drug_by_name(drug), PgxProfile(genes=genes))
    assert not rec.ambiguous
    if named:
        assert rec.action in ("avoid", "use-alternative") and set(rec.alternatives) == SECONDARY_AMINES
        assert "nortriptyline" in rec.recommendation and "desipramine" in rec.recommendation
    else:
        assert rec.alternatives == ()


def test_advice_of_is_the_action_and_recommendation_recommend_gives_for_every_result():
    from fhir_pain.pgx.recommend import advice_of
    checked = 0
    for name in EXPORTS:
        drug = drug_by_name(name)
        for diplotypes in (("*1/*1", "*1/*1"), ("*4/*4", "*2/*2"), ("*1/*4", "*1/*17"), ("*1/*4 or *1x2/*4", "*1/*3"),
                           ("*1/*999", "*17/*17")):
            results = [GeneResult(gene=g, ref=f"Observation/{g}", diplotype=d)
                       for g, d in zip(("CYP2D6", "CYP2C19"), diplotypes)]
            results.append(GeneResult(gene="CYP2C9", ref="Observation/CYP2C9", diplotype=diplotypes[1]))
            profile = resolve_profile(results, [])
            rec = recommend(drug, profile)
            assert advice_of(drug, profile) == (None if rec is None else (rec.action, rec.recommendation))
            checked += rec is not None
    assert advice_of(drug_by_name("codeine"), PgxProfile(genes={})) is None
    assert checked > 20
