"""A patient fills the PHQ-9 in a real headless Chromium, on a real ``fhir-pain serve`` that writes to a real FHIR
server: the page shows the scored Observations, and they are on the server."""
from __future__ import annotations

import pytest

from pgx_seed import patient_entries, seed
from pro_builders import PHQ

pytestmark = pytest.mark.integration
ANSWERS = [1, 2, 0, 1, 1, 0, 2, 1, 1]     # total 9, item 9 "Several days"


def test_phq9_filled_in_the_browser_gives_the_scored_observations(page, pro_server, pro_sekmet):
    [[patient]] = seed(pro_sekmet, [patient_entries("ProBrowser")])
    pid = patient.split("/")[1]
    page.goto(f"{pro_server.url}/pro/fill/phq9?patient={pid}")
    assert page.title() == "Patient Health Questionnaire-9 (PHQ-9) · fhir-pain"
    assert page.locator("fieldset").count() == 9

    page.click("button[type=submit]")          # nothing answered: the browser's own check keeps the page
    assert page.locator("#observations").count() == 0

    for i, score in enumerate(ANSWERS, 1):
        page.locator(f"fieldset#phq9-{i}").get_by_label(PHQ[score][1], exact=True).check()
    page.click("button[type=submit]")
    page.wait_for_selector("#observations")

    rows = page.locator("#observations tbody tr").evaluate_all(
        "rows => rows.map(r => [r.dataset.code, r.dataset.value, r.className])")
    assert rows[0] == ["44261-6", "9", "total"]
    assert rows[1:] == [[code, PHQ[s][1], ""] for code, s in zip(
        ["44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3", "44260-8"], ANSWERS)]
    assert page.locator("#written").inner_text().endswith(": 11 new, 0 already there.")

    stored = pro_sekmet.search(f"Observation?subject={patient}")
    [total] = [o for o in stored if o["code"]["coding"][0]["code"] == "44261-6"]
    assert total["valueInteger"] == 9 and len(total["hasMember"]) == 9
    [item9] = [o for o in stored if o["code"]["coding"][0]["code"] == "44260-8"]
    assert item9["valueCodeableConcept"]["coding"][0]["code"] == "LA6569-3"

