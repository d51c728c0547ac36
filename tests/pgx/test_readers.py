"""FHIR PGx results in every shape of the reference examples -> GeneResult."""
from __future__ import annotations

from fhir_pain.pgx import read_gene_results
from fhir_pain.pgx.readers import phenotype_from_text
from .conftest import pgx_fixture


def by_ref(results):
    return {r.ref.split("/", 1)[1]: r for r in results}


def test_genomics_operations_genotypes_and_text_implications():
    rs = by_ref(read_gene_results([pgx_fixture("go-tx-implications-cyp2d6-cyp2c19-amitriptyline.json")]))
    assert (rs["dv-61ccfd4a072302a0eb2115c6"].gene, rs["dv-61ccfd4a072302a0eb2115c6"].diplotype) == ("CYP2D6", "*1/*41")
    assert (rs["dv-61ccfd4a072302a0eb2115c3"].gene, rs["dv-61ccfd4a072302a0eb2115c3"].diplotype) == ("CYP2C19", "*1/*17")
    implications = [r for r in rs.values() if r.diplotype is None]
    assert {(r.gene, r.phenotype) for r in implications} == {("CYP2C19", "Rapid Metabolizer"),
                                                             ("CYP2D6", "Normal Metabolizer")}


def test_genomics_operations_nested_parameters_parts():
    rs = read_gene_results([pgx_fixture("go-specific-haplotypes-cyp2c19.json")])
    assert [(r.gene, r.diplotype, r.status) for r in rs] == [("CYP2C19", "*1/*1", "final")]
    rs = read_gene_results([pgx_fixture("go-haplotypes-cyp2c19-cyp2d6.json")])
    assert sorted((r.gene, r.diplotype) for r in rs) == [("CYP2C19", "*1/*17"), ("CYP2D6", "*1/*41")]


def test_ig_stu1_phenotype_observation_with_la_answer_and_numeric_hgnc():
    rs = by_ref(read_gene_results([pgx_fixture("ig-stu1-v1.0.0-pgxexample-bundle.json")]))
    assert set(rs) == {"med-impact-pgx-example", "genotype-pgx-example"}      # haplotypes are not results
    assert (rs["genotype-pgx-example"].gene, rs["genotype-pgx-example"].diplotype) == ("CYP2C9", "*4/*35B")
    pheno = rs["med-impact-pgx-example"]
    assert (pheno.gene, pheno.phenotype, pheno.diplotype) == ("CYP2C9", "Rapid Metabolizer", None)
    assert pheno.effective.year == 2018


def test_ig_2021_component_53040_2():
    rs = by_ref(read_gene_results([pgx_fixture("ig-2021-pgxexample-bundle.json")]))
    assert (rs["med-impact-pgx-example"].gene, rs["med-impact-pgx-example"].phenotype) == ("CYP2C9", "Rapid Metabolizer")


def test_ig_stu3_therapeutic_implication_component_and_hgnc_prefix():
    rs = by_ref(read_gene_results([pgx_fixture("ig-stu3-pgxexample-bundle.json")]))
    assert rs["genotype-pgx-example"].gene == "CYP2C9"
    assert (rs["med-impact-pgx-example"].gene, rs["med-impact-pgx-example"].phenotype) == ("CYP2C9", "Rapid Metabolizer")


def test_ig_stu2_emerge_clinvar_and_text_genotypes():
    rs = by_ref(read_gene_results([pgx_fixture("ig-stu2-emerge-bundle.json")]))
    assert (rs["Pgx-geno-1001"].gene, rs["Pgx-geno-1001"].diplotype) == ("CYP2C19", "*2/*2")
    assert (rs["Pgx-geno-1002"].gene, rs["Pgx-geno-1002"].diplotype) == ("CYP2C9", "*1/*1")
    assert "Pgx-geno-1003" not in rs                                           # VKORC1: not ours
    assert (rs["TxImp05"].gene, rs["TxImp05"].phenotype) == ("CYP2C19", "Poor Metabolizer")   # via derivedFrom


def test_lab_style_text_results_and_statuses():
    rs = by_ref(read_gene_results([pgx_fixture("lab-style-results-bundle.json")]))
    assert (rs["lab-2d6-geno"].gene, rs["lab-2d6-geno"].diplotype) == ("CYP2D6", "*1/*4")
    assert (rs["lab-2d6-pheno"].gene, rs["lab-2d6-pheno"].phenotype) == ("CYP2D6", "Intermediate Metabolizer")
    combined = rs["lab-2c19-combined"]
    assert (combined.gene, combined.diplotype, combined.phenotype) == ("CYP2C19", "*1/*2", "Intermediate Metabolizer")
    assert (rs["lab-2c9-pheno"].gene, rs["lab-2c9-pheno"].phenotype) == ("CYP2C9", "Poor Metabolizer")
    assert (rs["lab-oprm1"].gene, rs["lab-oprm1"].diplotype) == ("OPRM1", "A/G")
    for skipped in ("lab-2d6-error", "lab-2d6-cancelled", "lab-2d6-prelim", "heart-rate"):
        assert skipped not in rs
    assert rs["lab-2d6-geno"].effective.utcoffset() is not None


def test_amended_and_corrected_count():
    base = {"resourceType": "Observation", "code": {"text": "CYP2D6 genotype"}, "valueString": "*1/*2"}
    for status in ("amended", "corrected", "final"):
        assert read_gene_results([{**base, "id": status, "status": status}])[0].diplotype == "*1/*2"


def test_bad_input_never_raises():
    junk = [None, 3, "x", {}, {"resourceType": "Observation"}, {"resourceType": "Observation", "status": "final",
            "code": {"coding": "not-a-list"}}, {"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"code": "84413-4"}]}, "valueCodeableConcept": {"coding": [None, {"code": 5}]},
            "component": [None, {"code": {"coding": [{"code": "48018-6"}]}, "valueCodeableConcept": "x"}]},
            {"resourceType": "Bundle", "entry": [None, {"resource": None}]},
            {"resourceType": "Observation", "status": "final", "code": {"text": "CYP2D6"}, "valueString": "*1/*4",
             "effectiveDateTime": "not a date"}]
    rs = read_gene_results(junk)
    assert [(r.gene, r.diplotype, r.effective) for r in rs] == [("CYP2D6", "*1/*4", None)]


def test_phenotype_words():
    assert phenotype_from_text("Extensive metabolizer") == "Normal Metabolizer"
    assert phenotype_from_text("ultra-rapid metaboliser") == "Ultrarapid Metabolizer"
    assert phenotype_from_text("Likely Intermediate Metabolizer") == "Likely Intermediate Metabolizer"
    assert phenotype_from_text("Normal function") is None
    assert phenotype_from_text("Intermediate metabolizer (one normal, one no function allele)") == \
        "Intermediate Metabolizer"
    assert phenotype_from_text("Metabolizer status: poor") == "Poor Metabolizer"
    assert phenotype_from_text("Indeterminate") == "Indeterminate"


from hypothesis import given, settings, strategies as st  # noqa: E402

_LEAF = st.one_of(st.none(), st.booleans(), st.integers(), st.sampled_from(
    ["final", "84413-4", "48018-6", "HGNC:2625", "CYP2D6 *1/*4", "*1/*2xN", "therapeutic-implication", "LA9657-3",
     "Observation/x", "Poor metabolizer", "2020", "CYP2C19", ""]))
_JSON = st.recursive(_LEAF, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.sampled_from(["code", "coding", "text", "display", "system", "component", "valueString",
                                     "valueCodeableConcept", "status", "derivedFrom", "reference", "id",
                                     "effectiveDateTime", "resourceType", "entry", "resource"]), inner, max_size=5)),
    max_leaves=25)


@settings(max_examples=300, deadline=None)
@given(st.lists(_JSON.map(lambda v: {**v, "resourceType": "Observation"} if isinstance(v, dict) else v), max_size=4))
def test_arbitrary_json_never_breaks_the_reader(items):
    for r in read_gene_results(items):
        assert r.gene in ("CYP2D6", "CYP2C9", "CYP2C19", "CYP2B6", "OPRM1", "COMT", "HLA-A", "HLA-B")


def test_stu1_phenotype_sent_as_value_string_is_read():
    """Regression: a 53040-2 phenotype Observation whose value is text (valueString) was dropped."""
    obs = {
        "resourceType": "Observation", "id": "lab-pheno-1", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "53040-2",
                             "display": "Genetic variation's effect on drug metabolism"}],
                 "text": "CYP2D6 metabolizer status"},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2025-03-02T10:00:00Z",
        "valueString": "Poor metabolizer",
    }
    [result] = read_gene_results([obs])
    assert (result.gene, result.phenotype, result.diplotype) == ("CYP2D6", "Poor Metabolizer", None)
    no_gene = dict(obs, code={"coding": [{"system": "http://loinc.org", "code": "53040-2"}]})
    assert read_gene_results([no_gene]) == []          # a phenotype without a gene is not a result


def test_kind_with_a_list_code_before_the_genotype_code_still_reads_the_result():
    # a list where a coding's code belongs raised TypeError (unhashable) in _kind: the whole result was skipped
    obs = {"resourceType": "Observation", "id": "g1", "status": "final",
           "code": {"coding": [{"code": ["x"]}, {"system": "http://loinc.org", "code": "84413-4"}]},
           "component": [{"code": {"coding": [{"system": "http://loinc.org", "code": "48018-6"}]},
                          "valueCodeableConcept": {"coding": [{"code": "HGNC:2625"}]}}],
           "valueCodeableConcept": {"text": "*1/*4"}}
    [result] = read_gene_results([obs])
    assert (result.gene, result.diplotype) == ("CYP2D6", "*1/*4")


def test_implication_component_whose_code_is_a_list_is_skipped_not_the_result():
    # _roles tests each component code against a frozenset: an unhashable code must not drop the whole result
    from fhir_pain.pgx import read_gene_results
    obs = {"resourceType": "Observation", "id": "ti", "status": "final",
           "code": {"coding": [{"system": "http://loinc.org", "code": "53040-2"}]},
           "valueCodeableConcept": {"coding": [{"system": "http://loinc.org", "code": "LA10317-8"}]},
           "component": [{"code": {"coding": [{"code": ["48018-6"]}, {"code": {"x": 1}}]},
                          "valueCodeableConcept": {"coding": [{"code": "HGNC:2623"}]}},
                         {"code": {"coding": [{"system": "http://loinc.org", "code": "48018-6"}]},
                          "valueCodeableConcept": {"coding": [{"code": "HGNC:2625"}]}}]}
    [result] = read_gene_results([obs])
    assert (result.gene, result.phenotype) == ("CYP2D6", "Intermediate Metabolizer")


def _stu1_phenotype(code_text: str, value_text: str) -> dict:
    return {"resourceType": "Observation", "id": "ph", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "53040-2", "display": code_text}]},
            "valueCodeableConcept": {"coding": [{"system": "http://loinc.org", "code": "LA9657-3",
                                                 "display": value_text}], "text": value_text}}


def test_a_concept_read_again_gives_the_same_result_and_long_texts_are_never_kept():
    from fhir_pain.pgx import readers
    obs = _stu1_phenotype("Genetic variation's effect on drug metabolism", "CYP2D6 Poor Metabolizer")
    first = read_gene_results([obs])
    assert [(r.gene, r.phenotype) for r in first] == [("CYP2D6", "Poor Metabolizer")]
    assert read_gene_results([obs]) == first                                   # now from the memos
    sizes = (len(readers._concepts), len(readers._coding_kinds))
    long = _stu1_phenotype("Genetic variation " + "x" * 100_000, "CYP2D6 Poor Metabolizer " + "y" * 100_000)
    assert [(r.gene, r.phenotype) for r in read_gene_results([long])] == [("CYP2D6", "Poor Metabolizer")]
    assert (len(readers._concepts), len(readers._coding_kinds)) == sizes


def test_odd_typed_coding_fields_read_as_absent_also_after_the_memo_holds_the_usual_ones():
    obs = _stu1_phenotype("Genetic variation's effect on drug metabolism", "CYP2D6 Poor Metabolizer")
    assert read_gene_results([obs])[0].phenotype == "Poor Metabolizer"
    odd = _stu1_phenotype("x", "y")
    odd["valueCodeableConcept"] = {"coding": [{"code": ["LA9657-3"], "display": 5}], "text": "CYP2D6 Poor Metabolizer"}
    odd["code"]["coding"][0]["display"] = {"text": "CYP2D6"}
    assert [(r.gene, r.phenotype) for r in read_gene_results([odd])] == [("CYP2D6", "Poor Metabolizer")]
