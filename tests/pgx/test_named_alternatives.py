"""CPIC's named alternatives as the rules use them: offered on the card's finding, and dropped when this patient's
own genotype argues against them (nortriptyline and desipramine are CYP2D6 drugs) or they are already prescribed.
The engine side is tested in test_recommend.py; this checks the same data through fhir_pain.evaluate."""
from __future__ import annotations

from datetime import datetime, timezone

from fhir_pain import pgx
from fhir_pain.evaluate import build_context, evaluate
from fhir_pain.facts import PatientData
from fhir_pain.rules.drug_gene import safe_alternatives
from golden.fhir_builders import draft, genotype, medication_request

NOW = datetime(2026, 5, 1, tzinfo=timezone.utc)
AMITRIPTYLINE = ("704", "amitriptyline 25 MG Oral Tablet")
ONDANSETRON = ("26225", "ondansetron 4 MG Oral Tablet")


def data(obs, drafts=(), meds=()) -> PatientData:
    return PatientData(patient_id="p1", now=NOW, observations=list(obs), medication_requests=list(meds),
                       draft_orders=list(drafts))


def drug_gene(findings, drug):
    [f] = [f for f in findings if f.kind == "drug-gene" and f.drug.name == drug]
    return f


def test_ondansetron_for_an_ultrarapid_metabolizer_offers_granisetron():
    f = drug_gene(evaluate(data([genotype("g1", "p1", "CYP2D6", "*1/*1xN")],
                                [draft("rx1", "p1", *ONDANSETRON)]), "order-sign"), "ondansetron")
    assert (f.action, f.classification) == ("use-alternative", "Moderate")
    assert [a.name for a in f.alternatives] == ["granisetron"] and "granisetron" in f.summary


def test_granisetron_already_prescribed_is_not_offered_again():
    f = drug_gene(evaluate(data([genotype("g1", "p1", "CYP2D6", "*1/*1xN")], [draft("rx1", "p1", *ONDANSETRON)],
                                meds=[medication_request("a1", "p1", "26237", "granisetron 1 MG Oral Tablet")]),
                           "order-sign"), "ondansetron")
    assert f.alternatives == () and f.extra["alternativesDropped"] == ["granisetron (already prescribed)"]


def test_amitriptyline_for_cyp2c19_poor_and_cyp2d6_normal_offers_the_secondary_amines():
    obs = [genotype("g1", "p1", "CYP2D6", "*1/*1"), genotype("g2", "p1", "CYP2C19", "*2/*2")]
    f = drug_gene(evaluate(data(obs, [draft("rx1", "p1", *AMITRIPTYLINE)]), "order-sign"), "amitriptyline")
    assert (f.action, f.classification) == ("avoid", "Moderate")
    assert [a.name for a in f.alternatives] == ["nortriptyline", "desipramine"]
    assert "**Alternatives**" in f.detail and not f.extra["alternativesDropped"]


def test_a_cyp2d6_result_that_argues_against_the_secondary_amines_drops_them():
    # amitriptyline's CYP2C19 advice names nortriptyline and desipramine; for a CYP2D6 poor metabolizer CPIC says
    # avoid both, so the rules must not offer them whatever the amitriptyline text named
    obs = [genotype("g1", "p1", "CYP2D6", "*4/*4"), genotype("g2", "p1", "CYP2C19", "*2/*2")]
    ctx = build_context(data(obs, [draft("rx1", "p1", *AMITRIPTYLINE)]), "order-sign")
    order = ctx.drafts[0]
    named = pgx.recommend(pgx.drug_by_name("amitriptyline"),
                          pgx.PgxProfile(genes={"CYP2C19": ctx.profile_for(order).genes["CYP2C19"]})).alternatives
    assert {d.name for d in named} == {"nortriptyline", "desipramine"}
    kept, dropped = safe_alternatives(ctx, order, named, ctx.profile_for(order))
    assert kept == []
    assert [d.split(" (")[0] for d in dropped] == ["nortriptyline", "desipramine"]
    assert all("poor metabolizer: avoid" in d for d in dropped)


def test_a_moderate_cyp2d6_inhibitor_leaves_intermediate_activity_and_the_alternatives_stay():
    # *1/*1 with duloxetine (moderate inhibitor): CYP2D6 activity 1.0 (intermediate); CYP2C19 *17/*17. CPIC:
    # consider a drug not metabolized by CYP2C19; nortriptyline for an intermediate metabolizer is a dose
    # reduction, not avoidance, so it stays on offer (its own card will say so when it is ordered)
    obs = [genotype("g1", "p1", "CYP2D6", "*1/*1"), genotype("g2", "p1", "CYP2C19", "*17/*17")]
    duloxetine = medication_request("a1", "p1", "72625", "duloxetine 30 MG Delayed Release Oral Capsule")
    f = drug_gene(evaluate(data(obs, [draft("rx1", "p1", *AMITRIPTYLINE)], meds=[duloxetine]), "order-sign"),
                  "amitriptyline")
    assert f.genes["CYP2D6"].phenotype == "Intermediate Metabolizer" and f.genes["CYP2D6"].phenoconverted_by
    assert f.action == "use-alternative" and [a.name for a in f.alternatives] == ["nortriptyline", "desipramine"]
