"""Reading PharmCAT's outputs (fhir_pain.importer.pharmcat): the examples, fragments of them, and what is refused."""
from __future__ import annotations

import gzip
import json

import pytest

from fhir_pain.importer.pharmcat import PharmcatFormatError, Possibility, normalize_diplotype, parse
from importer.files import EXAMPLE1, EXAMPLE2, OUTSIDE_CALLS, load, with_diplotypes


def calls(path_or_bytes) -> dict:
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else path_or_bytes.read_bytes()
    return {c.gene: c for c in parse(data).calls}


def test_example1_holds_the_outside_cyp2d6_and_hla_b_calls_and_an_hla_a_no_call():
    result = parse(EXAMPLE1.read_bytes())
    got = {c.gene: c for c in result.calls}
    assert got["CYP2D6"].source == "OUTSIDE"
    assert got["CYP2D6"].possibilities == (Possibility("*1/*3", ("Intermediate Metabolizer",), "1.0"),)
    assert got["HLA-B"].possibilities == (
        Possibility("*15:02/*57:01", ("*15:02 positive", "*57:01 positive", "*58:01 negative")),)
    assert got["HLA-A"].no_call and got["HLA-A"].source == "NONE"
    assert got["CYP2C19"].possibilities[0].diplotype == "*38/*38"
    assert "absence of variants" in got["CYP2C19"].messages[0]        # PharmCAT's caveat travels along
    assert result.versions == {"namedAlleleMatcher": "2.0.0", "phenotypeData": "2025-11-05-00-25",
                               "genomeBuild": "GRCh38.p14"}
    assert (result.sample, result.timestamp) == ("Sample_1", "2025-11-14T22:36:34.883Z")


def test_example2_cyp2d6_unknown_unknown_is_a_no_call_not_a_diplotype():
    got = calls(EXAMPLE2)
    assert got["CYP2D6"].no_call and got["HLA-B"].no_call
    assert got["CYP2C19"].possibilities == (Possibility("*2/*2", ("Poor Metabolizer",)),)
    assert got["CYP2B6"].possibilities[0].diplotype == "*1/*6"


def test_several_source_diplotypes_are_several_possibilities():
    doc = with_diplotypes(load(EXAMPLE1), "CYP2B6", [("*1/*6", "Intermediate Metabolizer", None),
                                                      ("*4/*9", "Intermediate Metabolizer", None)])
    cyp2b6 = calls(json.dumps(doc).encode())["CYP2B6"]
    assert [p.diplotype for p in cyp2b6.possibilities] == ["*1/*6", "*4/*9"] and not cyp2b6.no_call


def test_outside_call_example_and_the_documented_shapes():
    got = calls(OUTSIDE_CALLS)
    assert got["CYP2D6"].possibilities == (Possibility("*1/*3"),)
    assert got["HLA-B"].possibilities == (Possibility("*15:02/*57:01"),)
    assert got["MT-RNR1"].possibilities == (Possibility("1555A>G"),)
    # the example of docs/using/Outside-Call-Format.md: an activity score alone, a phenotype alone, a comment
    doc = "# from the lab\nCYP2D6\t*1/*3\nCYP2C9\t\t\t2.0\nHLA-B\t\t*57:01 positive\nMT-RNR1\t1555A>G\n"
    got = calls(doc.encode())
    assert got["CYP2C9"].possibilities == (Possibility(None, (), "2.0"),)
    assert got["HLA-B"].possibilities == (Possibility(None, ("*57:01 positive",)),)


@pytest.mark.parametrize("label, expected", [
    ("CYP2C9*1/CYP2C9*3", "*1/*3"),       # gene prefixes PharmCAT strips too
    ("*1≥3/*4", "*1x≥3/*4"),              # CPIC's copy-number bin in the notation the engine reads
    ("*1x≥3/*4", "*1x≥3/*4"),
    ("*2x2/*4", "*2x2/*4"),
    ("HLA-B*15:02/HLA-B*57:01", "*15:02/*57:01"),
])
def test_labels_are_normalised_for_the_readers(label, expected):
    gene = "HLA-B" if "HLA" in label else ("CYP2C9" if "2C9" in label else "CYP2D6")
    assert normalize_diplotype(gene, label) == expected


VCF = (b"##fileformat=VCFv4.2\n##source=PharmCAT preprocessor\n"
       b"#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tSample_1\n"
       b"chr22\t42126611\trs16947\tG\tA\t.\tPASS\t.\tGT\t0/1\n")
REPORT_JSON = json.dumps({"title": "PharmCAT Report", "timestamp": "2025-11-14", "pharmcatVersion": "v3.1.0",
                          "genes": {"CPIC": {}}, "drugs": {"CPIC Guideline Annotation": {}}}).encode()


@pytest.mark.parametrize("data, says", [
    (b"", "is empty"),
    (b"  \n\n", "is empty"),
    (VCF, "is a VCF"),
    (gzip.compress(VCF), "gzip-compressed"),
    (REPORT_JSON, "PharmCAT report (report.json)"),
    (json.dumps({"metadata": {}, "results": []}).encode(), "named allele matcher output"),
    (json.dumps({"resourceType": "Patient", "id": "x"}).encode(), "no 'geneReports'"),
    (b"[1, 2, 3]", "not a PharmCAT phenotyper output"),
    (EXAMPLE1.read_bytes()[:5000], "not valid JSON (truncated?)"),
    (b"\xff\xfe\x00binary", "not UTF-8"),
    (json.dumps({"geneReports": {}}).encode(), "non-empty object"),
    (json.dumps({"geneReports": {"CYP2D6": {"geneSymbol": "CYP2D6"}}}).encode(), "lacks 'callSource'"),
    (json.dumps({"geneReports": {"CYP2D6": {"callSource": "MATCHER", "sourceDiplotypes": [{"x": 1}]}}}).encode(),
     "has no label"),
    (b"CYP2D6\t*1/*3\t\t\textra\n", "at most 4"),
    (b"hello world, this is not a call\n", "not an HGNC gene symbol"),
    (b"CYP2D6\t*1/*3\nCYP2D6\t*1/*4\n", "a second outside call for CYP2D6"),
    (b"CYP2D6\n", "no diplotype, phenotype or activity score"),
    (b"# only a comment\n", "holds no outside calls"),
])
def test_what_is_no_pharmcat_result_is_refused_saying_what_it_is(data, says):
    with pytest.raises(PharmcatFormatError) as err:
        parse(data, "upload")
    assert says in str(err.value)
