"""Every DPWG row fhir-pain holds, reached end to end: a site following DPWG (GUIDELINES=dpwg), an order-sign call
for the drug with a genotype whose DPWG function pair is that row's, through the service.

The genotype is built from DPWG's own allele functions (profiles/dpwg/recommendations.json, from reference/dpwg):
for each function in the row's first pair, an allele DPWG gives that function (a duplication for "Increased
function (AV 2)" / "(AV ≥3)"). The card must carry the row's action and classification, cite DPWG in the finding's
``recommendations`` and ``knowledge``, and be as loud as the row asks (critical where our wording makes DPWG's
"contraindicated" critical, warning for other actionable advice); a row that asks nothing (DPWG's normal metabolizers,
"no action needed") gives no card on an order, and the drug-gene finding behind it still carries DPWG's row.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from fhir_pain.evaluate import build_context
from fhir_pain.facts import PatientData
from fhir_pain.rules.drug_gene import drug_gene_finding
from golden.fhir_builders import draft, genotype, hook_request, prefetch

NOW = datetime(2026, 5, 1, tzinfo=timezone.utc)
PROFILE = json.loads((Path(__file__).resolve().parents[2] / "profiles" / "dpwg" / "recommendations.json")
                     .read_text(encoding="utf-8"))
QUIET = {"standard-dose"}


def allele_for(gene: str, term: str) -> str:
    """The simplest allele DPWG gives ``term`` (the pairs' wording: increased function split by copy number)."""
    functions = PROFILE["genes"][gene]["functions"]
    base, _, av = term.partition(" (AV ")
    if av:
        wanted = "x2" if av.startswith("2") else "x≥3"
        return next(a for a, f in functions.items() if f == base and a.endswith(wanted))
    return min((a for a, f in functions.items() if f == term and "x" not in a), key=lambda a: (len(a), a))


def diplotype_for(gene: str, pair: str) -> str:
    return "/".join(allele_for(gene, t) for t in pair.split("/"))


ROWS = [(drug, d["rxnorm"], g["gene"], row) for drug, d in PROFILE["drugs"].items() for g in d["guidelines"]
        for row in g["rows"]]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from fhir_pain.app import create_app
    db = tmp_path_factory.mktemp("dpwg") / "dpwg.sqlite3"
    app = create_app({"AUTH": "off", "DATABASE_URL": f"sqlite:///{db}", "NOW": NOW.isoformat(),
                      "VALIDATE_RESPONSES": True, "GUIDELINES": "dpwg"})
    yield app.test_client()
    app.extensions["fhir_pain.store"].dispose()


def test_the_sweep_covers_all_64_rows_of_the_15_files():
    assert len(ROWS) == 64
    assert len({(drug, gene) for drug, _, gene, _ in ROWS}) == 15


@pytest.mark.parametrize("drug, rxnorm, gene, row", ROWS,
                         ids=[f"{d}-{g}-{r['group']}" for d, _, g, r in ROWS])
def test_every_dpwg_row_is_what_a_patient_with_that_genotype_is_told(client, drug, rxnorm, gene, row):
    diplotype = diplotype_for(gene, row["functionPairs"][0])
    obs = [genotype("gt", "p1", gene, diplotype)]
    order = draft("rx-dpwg", "p1", rxnorm, f"{drug} oral tablet")
    request = hook_request("order-sign", "p1", name=f"dpwg-{drug}-{gene}-{row['group']}",
                           prefetch=prefetch("p1", pgx=obs), drafts=[order])
    response = client.post("/cds-services/pain-pgx-order-sign", json=request)
    assert response.status_code == 200, response.get_data(as_text=True)
    cards = [(c, f) for c in response.get_json()["cards"] for f in c["extension"]["io.fhir-pain.findings"]
             if f["kind"] == "drug-gene" and f.get("drug", {}).get("name") == drug]
    where = f"{drug} {gene} {diplotype} (DPWG {row['group']})"

    # the finding behind the card, whether or not the order shows it
    data = PatientData(patient_id="p1", now=NOW, observations=obs, draft_orders=[order])
    ctx = build_context(data, "order-sign", "dpwg")
    finding = drug_gene_finding(ctx, ctx.drafts[0], ctx.drafts[0].ingredients[0]).to_contract()
    assert finding["rule"] == f"dpwg/{drug}/{gene}", where
    assert (finding["action"], finding["classification"]) == \
        (row["action"], f"Prescribing change: {row['prescribingChange']}"), where
    assert finding["knowledge"]["source"] == "DPWG" and "uncertainty" not in finding, where
    [source] = finding["recommendations"]
    assert source["source"] == "DPWG" and source["action"] == row["action"], where
    assert source["phenotype"] == {gene: row["name"] if row["group"] not in ("PM", "IM", "NM", "UM")
                                   else {"PM": "Poor Metabolizer", "IM": "Intermediate Metabolizer",
                                         "NM": "Normal Metabolizer", "UM": "Ultrarapid Metabolizer"}[row["group"]]}, where

    if row["action"] in QUIET:
        assert cards == [], f"{where}: a card for DPWG's {row['action']}"
        return
    assert len(cards) == 1, f"{where}: {len(cards)} drug-gene cards"
    card, shown = cards[0]
    assert shown == finding
    assert card["indicator"] == row.get("indicator", "warning"), where
    assert "(DPWG)" in card["summary"] or "DPWG" in card["summary"], card["summary"]
    assert "**Classification:** DPWG Prescribing change: " + row["prescribingChange"] in card["detail"]
    assert row["gist"].split(":")[0][:40].replace("*", "\\*") in card["detail"] or row["gist"][:30] in card["detail"]
