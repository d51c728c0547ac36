"""PharmCAT calls -> Genomics Reporting Observations (fhir_pain.importer.fhir), checked by reading them back through
the project's own readers and engine, and the plan that writes only what changed."""
from __future__ import annotations

import json

import pytest

from fhir_pain.fhir_models import validate
from fhir_pain.importer import fhir as fhir_map
from fhir_pain.importer.pharmcat import parse
from fhir_pain.pgx import drug_by_name, read_gene_results, recommend, resolve_profile
from importer.files import EXAMPLE1, EXAMPLE2, OUTSIDE_CALLS, load, with_diplotypes

NOW = "2026-12-04T08:00:00Z"


def planned(data: bytes, existing=(), patient: str = "p1") -> fhir_map.Plan:
    return fhir_map.plan(patient, parse(data), existing, file_sha256="0" * 64, file_name="f", recorded=NOW)


def resources(plan: fhir_map.Plan, rtype: str = "Observation") -> list[dict]:
    return [e["resource"] for e in plan.bundle["entry"] if e["resource"]["resourceType"] == rtype]


def stored(plan: fhir_map.Plan) -> list[dict]:
    """The Observations as a server stores them: the urn:uuid fullUrls become ids."""
    out = []
    for e in plan.bundle["entry"]:
        r = json.loads(json.dumps(e["resource"]))
        if r["resourceType"] == "Observation":
            r["id"] = e["fullUrl"].rsplit(":", 1)[-1]
            r["meta"] = {"versionId": "1"}
            for d in r.get("derivedFrom", ()):
                d["reference"] = "Observation/" + d["reference"].rsplit(":", 1)[-1]
            out.append(r)
    return out


def profile_of(data: bytes):
    return resolve_profile(read_gene_results(resources(planned(data))), [])


def test_every_resource_is_valid_fhir_r4_and_the_bundle_one_transaction():
    for path in (EXAMPLE1, EXAMPLE2, OUTSIDE_CALLS):
        plan = planned(path.read_bytes())
        assert plan.bundle["type"] == "transaction"
        for entry in plan.bundle["entry"]:
            validate(entry["resource"])
        validate(plan.bundle)


def test_example1_reads_back_as_pharmcat_called_it():
    profile = profile_of(EXAMPLE1.read_bytes())
    g = profile.genes
    assert (g["CYP2D6"].diplotype, g["CYP2D6"].activity_score, g["CYP2D6"].phenotype) == \
        ("*1/*3", "1.0", "Intermediate Metabolizer")
    assert (g["CYP2C9"].diplotype, g["CYP2C9"].phenotype) == ("*1/*1", "Normal Metabolizer")
    assert (g["CYP2B6"].diplotype, g["CYP2B6"].phenotype) == ("*1/*1", "Normal Metabolizer")
    assert g["CYP2C19"].diplotype == "*38/*38"
    assert g["HLA-B"].phenotype == "*15:02 positive" and not g["HLA-B"].conflicting
    # HLA-A: no call -> both statuses stay possible (never negative)
    assert g["HLA-A"].phenotype == "Indeterminate" and g["HLA-A"].ambiguous
    assert not any(gp.conflicting for gp in g.values())       # genotype and phenotype Observations agree


def test_hla_phenotype_value_states_the_cpic_risk_allele_alone():
    pheno = [o for o in resources(planned(EXAMPLE1.read_bytes()))
             if o["code"]["coding"][0]["code"] == "53040-2" and "HLA-B" in o["valueCodeableConcept"]["text"]]
    assert pheno[0]["valueCodeableConcept"]["text"] == "HLA-B *15:02 positive"
    assert "*57:01 positive; *58:01 negative" in pheno[0]["note"][0]["text"]
    # read alone (without its genotype), it still says *15:02 positive
    (result,) = read_gene_results(pheno)
    assert (result.gene, result.phenotype) == ("HLA-B", "*15:02 positive")


def test_a_no_call_is_indeterminate_never_normal():
    plan = planned(EXAMPLE2.read_bytes())
    geno = [o for o in resources(plan) if o["code"]["coding"][0]["code"] == "84413-4"
            and o["component"][0]["valueCodeableConcept"]["coding"][0]["display"] == "CYP2D6"][0]
    assert "valueCodeableConcept" not in geno and geno["dataAbsentReason"]["coding"][0]["code"] == "unknown"
    gp = profile_of(EXAMPLE2.read_bytes()).genes["CYP2D6"]
    assert gp.phenotype == "Indeterminate" and gp.source == "reported"
    assert profile_of(EXAMPLE2.read_bytes()).genes["CYP2C19"].phenotype == "Poor Metabolizer"


def test_several_diplotypes_with_different_phenotypes_give_the_most_cautious_advice():
    # PharmCAT could not tell *1/*4 (IM) from *4/*4 (PM): codeine must be avoided (the PM row), with every possibility
    doc = with_diplotypes(load(EXAMPLE1), "CYP2D6", [("*1/*4", "Intermediate Metabolizer", "1.0"),
                                                      ("*4/*4", "Poor Metabolizer", "0.0")])
    data = json.dumps(doc).encode()
    obs = resources(planned(data))
    geno = next(o for o in obs if o.get("valueCodeableConcept", {}).get("text", "").startswith("CYP2D6 *"))
    assert geno["valueCodeableConcept"]["text"] == "CYP2D6 *1/*4 or *4/*4"
    pheno = next(o for o in obs if o.get("valueCodeableConcept", {}).get("text", "").startswith("CYP2D6 I"))
    assert pheno["valueCodeableConcept"]["text"] == "CYP2D6 Indeterminate"
    profile = resolve_profile(read_gene_results(obs), [])
    gp = profile.genes["CYP2D6"]
    assert (gp.phenotype, gp.diplotype, gp.ambiguous, gp.conflicting) == \
        ("Indeterminate", "*1/*4 or *4/*4", True, False)
    rec = recommend(drug_by_name("codeine"), profile)
    assert rec.action == "avoid" and rec.uncertainty["why"] == "ambiguous"
    assert {p["phenotype"] for p in rec.uncertainty["possibilities"]} == {"Intermediate Metabolizer",
                                                                         "Poor Metabolizer"}


def test_several_diplotypes_with_one_phenotype_state_it():
    doc = with_diplotypes(load(EXAMPLE1), "CYP2B6", [("*1/*6", "Intermediate Metabolizer", None),
                                                      ("*4/*9", "Intermediate Metabolizer", None)])
    gp = profile_of(json.dumps(doc).encode()).genes["CYP2B6"]
    assert (gp.phenotype, gp.diplotype) == ("Intermediate Metabolizer", "*1/*6 or *4/*9")


def test_an_activity_score_alone_gives_cpics_phenotype_for_it():
    gp = profile_of(b"CYP2C9\t\t\t1.0\n").genes["CYP2C9"]
    assert (gp.phenotype, gp.source) == ("Intermediate Metabolizer", "reported")


def test_an_hla_b_outside_phenotype_of_another_allele_says_nothing_of_15_02():
    assert "HLA-B" not in profile_of(b"HLA-B\t\t*57:01 positive\n").genes


def test_identifiers_are_stable_per_patient_gene_and_kind():
    a, b = planned(EXAMPLE1.read_bytes()), planned(EXAMPLE1.read_bytes())
    ids = [o["identifier"][0]["value"] for o in resources(a)]
    assert ids == [o["identifier"][0]["value"] for o in resources(b)] and len(set(ids)) == len(ids)
    other = planned(EXAMPLE1.read_bytes(), patient="p2")
    assert not set(ids) & {o["identifier"][0]["value"] for o in resources(other)}
    assert all(e["request"]["method"] == "PUT" and e["request"]["url"].startswith("Observation?identifier=")
               for e in a.bundle["entry"][:-1])


def test_the_same_file_again_plans_nothing():
    first = planned(EXAMPLE1.read_bytes())
    again = planned(EXAMPLE1.read_bytes(), existing=stored(first))
    assert again.bundle is None and len(again.unchanged) == 12 and not again.created


def test_a_pharmcat_rerun_with_the_same_calls_but_a_new_timestamp_plans_nothing():
    doc = load(EXAMPLE1)
    first = planned(json.dumps(doc).encode())
    doc["matcherMetadata"]["timestamp"] = "2026-01-01T00:00:00Z"
    assert planned(json.dumps(doc).encode(), existing=stored(first)).bundle is None


def test_a_recalled_gene_updates_its_observations_in_place():
    first = planned(EXAMPLE2.read_bytes())
    doc = with_diplotypes(load(EXAMPLE2), "CYP2C19", [("*1/*2", "Intermediate Metabolizer", None)])
    again = planned(json.dumps(doc).encode(), existing=stored(first))
    assert again.updated == ("CYP2C19 genotype", "CYP2C19 phenotype") and not again.created
    obs = resources(again)
    old_ids = {o["identifier"][0]["value"]: o["id"] for o in stored(first)}
    for o, entry in zip(obs, again.bundle["entry"]):
        assert o["status"] == "amended"
        assert entry["fullUrl"] == f"Observation/{old_ids[o['identifier'][0]['value']]}"   # the same resource
    (prov,) = resources(again, "Provenance")
    assert [t["reference"] for t in prov["target"]] == [e["fullUrl"] for e in again.bundle["entry"][:-1]]


def test_provenance_names_pharmcat_its_versions_and_the_file():
    plan = fhir_map.plan("p1", parse(EXAMPLE1.read_bytes()), (), file_sha256="ab" * 32,
                         file_name="Sample_1.phenotype.json", recorded=NOW, pharmcat_version="3.1.0")
    (prov,) = resources(plan, "Provenance")
    device = prov["contained"][0]
    assert {v["type"]["text"]: v["value"] for v in device["version"]} == {
        "PharmCAT": "3.1.0", "named allele matcher": "2.0.0", "phenotype data (CPIC/PharmVar)": "2025-11-05-00-25",
        "genome build": "GRCh38.p14"}
    assert prov["agent"][0]["who"]["reference"] == "#pharmcat"
    assert "ab" * 32 in prov["entity"][0]["what"]["display"] and "Sample_1" in prov["entity"][0]["what"]["display"]
    assert len(prov["target"]) == 12 and prov["recorded"] == NOW


def test_genes_fhir_pain_does_not_read_are_named_not_imported():
    plan = planned(EXAMPLE1.read_bytes())
    assert "DPYD" in plan.skipped_genes and "CYP2D6" not in plan.skipped_genes
    assert {o["component"][0]["valueCodeableConcept"]["coding"][0]["display"] for o in resources(plan)} == {
        "CYP2D6", "CYP2C19", "CYP2C9", "CYP2B6", "HLA-A", "HLA-B"}


@pytest.mark.parametrize("text, gene, expected", [
    ("CYP2D6 *1/*4 or *4/*4", "CYP2D6", "*1/*4 or *4/*4"),
    ("CYP2D6 *1/*4 or [*2 + *3]/*1", "CYP2D6", None),    # an unreadable alternative: never the first one alone
    ("CYP2D6 *1/*4 (normal or intermediate metabolizer)", "CYP2D6", "*1/*4"),   # one diplotype, "or" in words
])
def test_readers_keep_every_alternative(text, gene, expected):
    obs = {"resourceType": "Observation", "id": "g", "status": "final",
           "code": {"coding": [{"system": "http://loinc.org", "code": "84413-4"}]},
           "valueCodeableConcept": {"text": text}}
    results = read_gene_results([obs])
    assert [r.diplotype for r in results] == ([expected] if expected else [])


def test_oprm1_and_comt_outside_calls_are_imported_as_the_readers_know_them():
    profile = profile_of(b"OPRM1\trs1799971 A/G\nCOMT\trs4680 G/A\n")
    assert profile.genes["OPRM1"].diplotype == "OPRM1 rs1799971 A/G"
    assert profile.genes["COMT"].diplotype == "COMT rs4680 G/A"
