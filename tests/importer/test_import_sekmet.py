"""``fhir-pain import pharmcat`` against a real FHIR server (sekmet-fhir, started here), then the services reading
what it wrote: PharmCAT file -> FHIR -> hook call whose data the service fetches from that server -> card.

Each test uses patients of its own, so the tests share one server.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from fhir_pain.cli import main
from golden.fhir_builders import draft, hook_request, patient
from importer.files import EXAMPLE1, EXAMPLE2, OUTSIDE_CALLS, load, with_diplotypes

pytestmark = pytest.mark.integration
NOW = "2026-12-04T12:00:00Z"
TOKEN_ENV = "FHIR_PAIN_POLL_TOKEN"
CODEINE, OXCARBAZEPINE, CARBAMAZEPINE, CITALOPRAM, SERTRALINE = \
    ("2670", "codeine"), ("32624", "oxcarbazepine"), ("2002", "carbamazepine"), ("2556", "citalopram"), \
    ("36437", "sertraline")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from integration.sekmet_server import Sekmet   # the project's sekmet-fhir harness (tests/integration)

    s = Sekmet(tmp_path_factory.mktemp("sekmet-import")).start()
    yield s
    s.stop()


@pytest.fixture
def pid(server) -> str:
    """A new patient on the server."""
    p = f"pc-{uuid.uuid4().hex[:12]}"
    server.put(patient(p))
    return p


@pytest.fixture
def token(server, monkeypatch, app_factory):
    """The importer's bearer token (set after app_factory, which clears FHIR_PAIN_* variables)."""
    monkeypatch.setenv(TOKEN_ENV, server.token)
    return server.token


@pytest.fixture
def cds(app_factory, server):
    return app_factory(REGISTER_CLINICAL_SERVICES=True, NOW=NOW, FHIR_SERVER_ALLOWLIST=[server.base_url],
                       FHIR_DEADLINE_S=15.0).test_client()


def run_import(server, path, pid, capsys, *extra) -> tuple[int, str, str]:
    code = main(["import", "pharmcat", str(path), "--patient", pid, "--fhir-server", server.base_url, *extra])
    out = capsys.readouterr()
    return code, out.out, out.err


def observations(server, pid) -> list[dict]:
    return server.search(f"Observation?patient={pid}&_count=200")


def provenances(server, observation_ids) -> list[dict]:
    refs = {f"Observation/{i}" for i in observation_ids}
    return [p for p in server.search("Provenance?_count=500")
            if any(t.get("reference") in refs for t in p.get("target", ()))]


def findings(cds, server, pid, hook, drug=None) -> list[dict]:
    """The findings of the service's cards; the service fetches the patient's data from the server itself."""
    drafts = [draft("rx1", pid, drug[0], drug[1])] if drug else []
    body = hook_request(hook, pid, name=f"import-{pid}-{hook}-{drug}", drafts=drafts)
    body["fhirServer"] = server.base_url
    body["fhirAuthorization"] = {"access_token": server.token, "token_type": "Bearer", "expires_in": 300,
                                 "scope": "patient/*.read", "subject": "fhir-pain"}
    service = {"patient-view": "pain-pgx-patient-view", "order-sign": "pain-pgx-order-sign"}[hook]
    response = cds.post(f"/cds-services/{service}", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    return [dict(f, indicator=c["indicator"]) for c in response.get_json()["cards"]
            for f in c["extension"]["io.fhir-pain.findings"]]


def cpic(found: list[dict], drug: str) -> dict:
    (f,) = [f for f in found if f["rule"].startswith(f"cpic/{drug}/")]
    return f


# ---- end to end: file -> FHIR -> card ---------------------------------------------------------------------------

def test_example1_gives_the_cards_its_genotypes_call_for(server, pid, token, cds, capsys):
    code, out, _ = run_import(server, EXAMPLE1, pid, capsys, "--pharmcat-version", "3.1.0")
    assert code == 0 and out.startswith("created 12 ")
    assert "not imported (fhir-pain has no rules for them): ABCG2" in out
    stored = observations(server, pid)
    assert len(stored) == 12
    # CYP2D6 *1/*3 (activity score 1.0): codeine at label dosing, alternative if no response (CPIC Moderate)
    f = cpic(findings(cds, server, pid, "order-sign", CODEINE), "codeine")
    assert (f["indicator"], f["action"], f["classification"]) == ("warning", "monitor", "Moderate")
    assert f["genes"]["CYP2D6"] == {"diplotype": "*1/*3", "activityScore": "1.0",
                                    "phenotype": "Intermediate Metabolizer", "source": "computed"}
    evidence = {e for e in f["evidence"] if e.startswith("Observation/")}
    assert evidence and evidence <= {f"Observation/{o['id']}" for o in stored}      # read from what was imported
    # HLA-B *15:02 positive: oxcarbazepine and carbamazepine must be avoided (CPIC Strong)
    f = cpic(findings(cds, server, pid, "order-sign", OXCARBAZEPINE), "oxcarbazepine")
    assert (f["indicator"], f["action"], f["classification"]) == ("critical", "avoid", "Strong")
    assert f["genes"]["HLA-B"]["phenotype"] == "*15:02 positive" and "uncertainty" not in f
    f = cpic(findings(cds, server, pid, "order-sign", CARBAMAZEPINE), "carbamazepine")
    assert (f["action"], f["classification"]) == ("avoid", "Strong")
    assert f["genes"]["HLA-A"]["phenotype"] == "Indeterminate"          # PharmCAT's HLA-A no call, not negative
    # the Provenance names PharmCAT and its versions, and every Observation written
    (prov,) = provenances(server, [o["id"] for o in stored])
    assert {v["type"]["text"]: v["value"] for v in prov["contained"][0]["version"]}["PharmCAT"] == "3.1.0"
    assert len(prov["target"]) == 12


def test_example2_no_calls_are_indeterminate_and_cyp2c19_poor_metabolizer_drives_the_ssris(server, pid, token, cds,
                                                                                          capsys):
    assert run_import(server, EXAMPLE2, pid, capsys)[0] == 0
    # CYP2C19 *2/*2: citalopram -> an alternative (CPIC Strong); sertraline with CYP2B6 *1/*6 -> a lower dose
    f = cpic(findings(cds, server, pid, "order-sign", CITALOPRAM), "citalopram")
    assert (f["action"], f["classification"]) == ("use-alternative", "Strong")
    assert f["genes"]["CYP2C19"]["diplotype"] == "*2/*2" and f["genes"]["CYP2C19"]["phenotype"] == "Poor Metabolizer"
    f = cpic(findings(cds, server, pid, "order-sign", SERTRALINE), "sertraline")
    assert f["action"] == "reduce-dose" and f["genes"]["CYP2B6"]["phenotype"] == "Intermediate Metabolizer"
    # CYP2D6 not called: indeterminate with a confirmatory test, never standard dosing as for a normal metabolizer
    f = cpic(findings(cds, server, pid, "order-sign", CODEINE), "codeine")
    assert f["genes"]["CYP2D6"]["phenotype"] == "Indeterminate" and f["uncertainty"]["why"] == "indeterminate"
    assert f["action"] != "standard-dose"
    # HLA-B not called: oxcarbazepine is avoided until HLA-B is known (both statuses possible)
    f = cpic(findings(cds, server, pid, "order-sign", OXCARBAZEPINE), "oxcarbazepine")
    assert (f["indicator"], f["action"]) == ("critical", "avoid")
    assert {p["phenotype"] for p in f["uncertainty"]["possibilities"]} == {"*15:02 positive", "*15:02 negative"}


def test_outside_call_example_end_to_end(server, pid, token, cds, capsys):
    code, out, _ = run_import(server, OUTSIDE_CALLS, pid, capsys)
    assert code == 0 and out.startswith("created 2 (CYP2D6 genotype, HLA-B genotype)")
    assert "not imported (fhir-pain has no rules for them): MT-RNR1" in out
    f = cpic(findings(cds, server, pid, "order-sign", OXCARBAZEPINE), "oxcarbazepine")
    assert (f["action"], f["genes"]["HLA-B"]["phenotype"]) == ("avoid", "*15:02 positive")
    summary = next(f for f in findings(cds, server, pid, "patient-view") if f["rule"] == "fhir-pain/pgx-summary")
    assert summary["genes"]["CYP2D6"]["diplotype"] == "*1/*3"


# ---- idempotent; a re-called gene updates --------------------------------------------------------------------------

def test_importing_the_same_file_twice_writes_nothing_new(server, pid, token, capsys):
    assert run_import(server, EXAMPLE1, pid, capsys)[0] == 0
    before = {o["id"]: o["meta"]["versionId"] for o in observations(server, pid)}
    provs = provenances(server, before)
    code, out, _ = run_import(server, EXAMPLE1, pid, capsys)
    assert code == 0 and out.startswith("created 0; updated 0; unchanged 12")
    assert {o["id"]: o["meta"]["versionId"] for o in observations(server, pid)} == before
    assert len(provenances(server, before)) == len(provs) == 1


def test_a_recalled_gene_updates_its_result_and_the_old_one_is_superseded(server, pid, token, cds, capsys, tmp_path):
    assert run_import(server, EXAMPLE2, pid, capsys)[0] == 0
    before = {o["id"]: o for o in observations(server, pid)}
    recalled = tmp_path / "Sample_2.rerun.phenotype.json"
    recalled.write_text(json.dumps(with_diplotypes(load(EXAMPLE2), "CYP2C19",
                                                   [("*1/*2", "Intermediate Metabolizer", None)])))
    code, out, _ = run_import(server, recalled, pid, capsys)
    assert code == 0 and out.startswith("created 0; updated 2 (CYP2C19 genotype, CYP2C19 phenotype)")
    after = {o["id"]: o for o in observations(server, pid)}
    assert after.keys() == before.keys()                         # updated in place, nothing duplicated
    changed = [i for i in after if after[i]["meta"]["versionId"] != before[i]["meta"]["versionId"]]
    assert len(changed) == 2 and all(after[i]["status"] == "amended" for i in changed)
    history = [e["resource"] for e in server.read(f"Observation/{changed[0]}/_history")["entry"]]
    assert len(history) == 2                                     # the superseded version stays in the history
    assert "*2/*2" in json.dumps(history) and "*1/*2" in json.dumps(history)
    assert len(provenances(server, after)) == 2
    summary = next(f for f in findings(cds, server, pid, "patient-view") if f["rule"] == "fhir-pain/pgx-summary")
    assert summary["genes"]["CYP2C19"] == {"diplotype": "*1/*2", "phenotype": "Intermediate Metabolizer",
                                           "source": "computed"}


# ---- what is refused writes nothing -----------------------------------------------------------------------------

VCF = (b"##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tSample_1\n"
       b"chr22\t42126611\trs16947\tG\tA\t.\tPASS\t.\tGT\t0/1\n")
BAD_FILES = {
    "sample.vcf": (VCF, "is a VCF"),
    "sample.report.json": (json.dumps({"title": "PharmCAT Report", "genes": {}, "drugs": {}}).encode(),
                           "PharmCAT report (report.json)"),
    "random.json": (json.dumps({"hello": ["world", 1, None]}).encode(), "no 'geneReports'"),
    "empty.phenotype.json": (b"", "is empty"),
    "truncated.phenotype.json": (EXAMPLE1.read_bytes()[:100_000], "not valid JSON (truncated?)"),
    "only-other-genes.tsv": (b"MT-RNR1\t1555A>G\n", "holds no result for a gene fhir-pain reads"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_a_file_that_is_no_pharmcat_result_is_refused_and_nothing_written(server, pid, token, capsys, tmp_path, name):
    data, says = BAD_FILES[name]
    path = tmp_path / name
    path.write_bytes(data)
    code, out, err = run_import(server, path, pid, capsys)
    assert code == 2 and says in err and "nothing written" in err and out == ""
    assert observations(server, pid) == []


def test_malformed_gene_report_inside_a_real_file_writes_nothing_at_all(server, pid, token, capsys, tmp_path):
    doc = load(EXAMPLE1)
    del doc["geneReports"]["TPMT"]["callSource"]          # one broken gene: the whole file is refused
    path = tmp_path / "broken.phenotype.json"
    path.write_text(json.dumps(doc))
    code, _, err = run_import(server, path, pid, capsys)
    assert code == 2 and "TPMT report lacks 'callSource'" in err
    assert observations(server, pid) == []


def test_the_console_script_exits_2_on_a_vcf(server, pid, tmp_path):
    path = tmp_path / "sample.vcf"
    path.write_bytes(VCF)
    script = os.path.join(os.path.dirname(sys.executable), "fhir-pain")
    done = subprocess.run([script, "import", "pharmcat", str(path), "--patient", pid, "--fhir-server",
                           server.base_url], capture_output=True, text=True, timeout=120,
                          env={**os.environ, TOKEN_ENV: server.token})
    assert done.returncode == 2 and "is a VCF" in done.stderr
    assert observations(server, pid) == []


def test_an_unknown_patient_is_refused_and_nothing_written(server, token, capsys):
    code, _, err = run_import(server, EXAMPLE1, "no-such-patient", capsys)
    assert code == 2 and "Patient/no-such-patient is not on the server" in err
    assert observations(server, "no-such-patient") == []


def test_a_refused_token_fails_with_exit_1_and_never_shows_the_token(server, pid, token, monkeypatch, capsys):
    monkeypatch.setenv(TOKEN_ENV, "not-the-token")
    code, out, err = run_import(server, EXAMPLE1, pid, capsys)
    assert code == 1 and "HTTP 401" in err and "not-the-token" not in out + err
    assert observations(server, pid) == []


def test_out_writes_the_transaction_and_calls_no_server(tmp_path, capsys):
    out = tmp_path / "bundle.json"
    assert main(["import", "pharmcat", str(EXAMPLE1), "--patient", "p1", "--out", str(out)]) == 0
    bundle = json.loads(out.read_text())
    assert bundle["type"] == "transaction" and len(bundle["entry"]) == 13     # 12 Observations, 1 Provenance
    assert capsys.readouterr().out.startswith("created 12 ")


# ---- the poller sees what was imported ----------------------------------------------------------------------------

def test_the_poller_writes_a_detected_issue_from_the_imported_result_and_nothing_on_a_reimport(server, pid, token,
                                                                                               capsys, tmp_path):
    from datetime import datetime, timezone

    from cds_hooks.fhir_client import FHIRClient
    from fhir_pain.poller.cycle import Poller
    from fhir_pain.store import Store
    from golden.fhir_builders import medication_request
    from integration.written_issues import issues_for

    since = datetime.now(timezone.utc)
    server.put(medication_request(f"{pid}-citalopram", pid, CITALOPRAM[0], "citalopram 20 MG Oral Tablet"))
    assert run_import(server, EXAMPLE2, pid, capsys)[0] == 0
    store = Store(f"sqlite:///{tmp_path / 'poller.sqlite3'}")
    client = FHIRClient(server.base_url, auth=server.token, timeout=(2.0, 10.0), retries=2, backoff_s=0.01,
                        max_pages=50)
    poller = Poller(client, store, cursor_name="poller:import", since=since, workers=1, page_size=50)
    try:
        stats = poller.run_cycle()
        assert stats.failed == stats.skipped == 0
        (issue,) = [i for i in issues_for(server, f"Patient/{pid}") if "citalopram" in i["detail"].lower()]
        cyp2c19 = {f"Observation/{o['id']}" for o in observations(server, pid)
                   if "CYP2C19" in json.dumps(o.get("valueCodeableConcept"))}
        assert cyp2c19 & {r["reference"] for r in issue["implicated"]}      # the imported result is the evidence
        version = issue["meta"]["versionId"]
        assert run_import(server, EXAMPLE2, pid, capsys)[1].startswith("created 0; updated 0")
        poller.run_cycle()
        (again,) = [i for i in issues_for(server, f"Patient/{pid}") if "citalopram" in i["detail"].lower()]
        assert again["meta"]["versionId"] == version
    finally:
        client.close()
        store.dispose()
