"""The demo dashboard in a real headless Chromium: what is drawn is the patients' data (points, bands, marks,
labels), each chart has its table, and the page stands without any script or outside resource."""
from __future__ import annotations

import pytest

from fhir_pain.demo import catalog

NRS = "72514-3"


def _nrs_in_bundle(patient_id: str) -> list[float]:
    """The NRS values as the demo Bundle writes them (not as the engine reads them)."""
    out = []
    for entry in catalog.patient(patient_id).bundle()["entry"]:
        r = entry["resource"]
        if r["resourceType"] == "Observation" and any(c.get("code") == NRS for c in r["code"]["coding"]):
            out.append(float(r.get("valueInteger", r.get("valueQuantity", {}).get("value"))))
    return out


def _drawn(page, chart: str, cls: str) -> list[dict]:
    return page.eval_on_selector_all(f'svg[data-chart="{chart}"] g.{cls}',
                                     "els => els.map(e => Object.assign({}, e.dataset))")


def _rows(page, table: str) -> list[dict]:
    return page.eval_on_selector_all(f"#{table} tbody tr", "els => els.map(e => Object.assign({}, e.dataset))")


def test_non_responder_trend_draws_scores_gabapentin_band_trial_window_and_response_marks(page, demo_server):
    pid = "demo-13-mara-non-responder"
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(f"{demo_server.url}/dashboard/demo/{pid}")
    points = _drawn(page, "pain", "point")
    assert sorted(float(p["value"]) for p in points) == sorted(_nrs_in_bundle(pid))
    assert {p["instrument"] for p in points} == {"nrs"}
    [band] = _drawn(page, "pain", "band")
    assert band["drug"] == "gabapentin" and band["status"] == "active"
    [window] = _drawn(page, "pain", "trial-window")
    assert window["start"] == band["start"]          # the trial starts with the analgesic period
    marks = {m["pct"]: float(m["value"]) for m in _drawn(page, "pain", "response-mark")}
    assert marks == {"30": 5.6, "50": 4.0}             # baseline 8 before gabapentin: 30 % and 50 % less
    [baseline] = _drawn(page, "pain", "response-baseline")
    [latest] = _drawn(page, "pain", "response-latest")
    assert (float(baseline["value"]), float(latest["value"])) == (8, 7) and baseline["date"] < band["start"]
    assert page.locator('svg[data-chart="pain"] text', has_text="gabapentin").count() >= 1
    trial = page.locator("#trials-table tbody tr")
    assert trial.get_attribute("data-status") == "non-response"
    assert "12 % less pain" in trial.inner_text()
    # the table alternative holds the same points as the chart
    assert sorted(float(r["value"]) for r in _rows(page, "pain-table")) == sorted(_nrs_in_bundle(pid))
    assert {r["phenotype"] for r in _rows(page, "phenotypes-table")} >= {"treatment-non-response"}
    assert all(u.startswith(demo_server.url) for u in requests), requests   # no CDN, nothing from outside


def test_catastrophizing_patient_shows_psychosocial_scores_cutoffs_and_item9_flag(page, demo_server):
    page.goto(f"{demo_server.url}/dashboard/demo/demo-12-luca-catastrophizing")
    psych = {p["instrument"]: float(p["value"]) for p in _drawn(page, "psych", "point")}
    assert psych["pcs"] == 38 and psych["gad7"] == 12 and psych["phq9"] >= 10
    cutoffs = {c["instrument"]: float(c["value"]) for c in _drawn(page, "psych", "cutoff")}
    assert cutoffs == {"phq9": 10, "gad7": 10, "pcs": 30}
    [flag] = _drawn(page, "psych", "item9-flag")
    assert float(flag["value"]) > 0
    banner = page.locator("#item9-flag")
    assert banner.is_visible() and "PHQ-9 item 9" in banner.inner_text()
    assert {r["instrument"] for r in _rows(page, "psych-table")} == {"phq9", "gad7", "pcs"}
    phenotypes = {r["phenotype"] for r in _rows(page, "phenotypes-table")}
    assert {"high-catastrophizing", "depression", "anxiety"} <= phenotypes


@pytest.mark.parametrize("pid, genes, drug, action", [
    ("demo-01-ava-cyp2d6-pm", {"CYP2D6": "Poor Metabolizer"}, "codeine", "avoid"),
    ("demo-08-hugo-amitriptyline", {"CYP2D6": "Normal Metabolizer", "CYP2C19": "Poor Metabolizer"},
     "amitriptyline", "avoid"),
    ("demo-07-greta-cyp2c9-pm", {"CYP2C9": "Poor Metabolizer"}, "celecoxib", "reduce-dose"),
])
def test_pgx_profile_lists_genes_and_cpic_advice_per_pain_drug(page, demo_server, pid, genes, drug, action):
    page.goto(f"{demo_server.url}/dashboard/demo/{pid}")
    assert {r["gene"]: r["phenotype"] for r in _rows(page, "genes-table")} == genes
    advice = {r["drug"]: r["action"] for r in _rows(page, "advice-table")}
    assert advice[drug] == action
    line = page.locator(f'#advice-table tr[data-drug="{drug}"]').inner_text()
    assert "CYP" in line and len(line) < 600


def test_patient_without_pgx_says_so_and_keeps_questionnaire_link(page, demo_server):
    pid = "demo-09-ines-no-pgx"
    page.goto(f"{demo_server.url}/dashboard/demo/{pid}")
    assert page.locator("#no-pgx").is_visible()
    assert page.locator("#no-opioid").is_visible()
    links = page.eval_on_selector_all("#record-questionnaire a", "els => els.map(e => [e.dataset.instrument, "
                                      "e.getAttribute('href')])")
    # every instrument with item text, to /pro's page (scored, not saved: the demo has no FHIR server)
    assert links == [[k, f"/pro/fill/{k}?patient={pid}"] for k in ("gad7", "nrs", "peg", "phq2", "phq9")]


def test_demo_index_links_every_demo_patient(page, demo_server):
    page.goto(f"{demo_server.url}/dashboard/demo/")
    ids = page.eval_on_selector_all("#demo-patients a", "els => els.map(e => e.dataset.patient)")
    assert ids == [p.id for p in catalog.patients()]
    page.click('a[data-patient="demo-13-mara-non-responder"]')
    assert page.locator("#patient h1").inner_text().startswith("Mara")
