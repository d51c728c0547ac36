"""Treatment response per current analgesic: responder, substantial responder, non-responder, too early,
missing baseline or follow-up, renewals, combination products and confounding."""
from __future__ import annotations

import pytest

from fhir_pain.pain import build_profile
from tests.pain.fhir import (ACETAMINOPHEN, DULOXETINE, GABAPENTIN, IBUPROFEN, NOW, OXYCODONE, PREGABALIN, med,
                             nrs, obs, peg)


def responses(observations, medications):
    return build_profile(list(observations), [], list(medications), NOW).responses


def only(observations, medications):
    rs = responses(observations, medications)
    assert len(rs) == 1, rs
    return rs[0]


DULOX = med("MedicationRequest/dlx", DULOXETINE, started_days_ago=60)


@pytest.mark.parametrize("latest, status, pct", [
    (4, "response", 42.9), (3, "substantial-response", 57.1), (5, "non-response", 28.6), (7, "non-response", 0.0),
    (8, "non-response", -14.3),
])
def test_response_categories(latest, status, pct):
    r = only([nrs(7, 70, oid="base"), nrs(latest, 5, oid="last")], [DULOX])
    assert (r.status, r.change_pct, r.baseline, r.latest, r.instrument) == (status, pct, 7, latest, "nrs")
    assert (r.trial_days, r.adequate_trial_days, r.drug.name, r.analgesic_class) == (60, 28, "duloxetine", "snri")
    assert r.evidence == ("MedicationRequest/dlx", "Observation/base", "Observation/last")


def test_phenotypes_and_evidence_for_response_and_non_response():
    gaba = med("MedicationRequest/gaba", GABAPENTIN, started_days_ago=100)
    p = build_profile([nrs(8, 105, oid="b"), nrs(5, 10, oid="f")], [], [DULOX, gaba], NOW)
    statuses = {r.drug.name: (r.status, r.change_pct) for r in p.responses}
    assert statuses == {"duloxetine": ("response", 37.5), "gabapentin": ("response", 37.5)}
    assert "treatment-response" in p.phenotypes and "treatment-non-response" not in p.phenotypes
    p = build_profile([nrs(8, 70, oid="b"), nrs(8, 3, oid="f")], [], [DULOX], NOW)
    assert "treatment-non-response" in p.phenotypes
    assert p.evidence["treatment-non-response"] == ("MedicationRequest/dlx", "Observation/b", "Observation/f")


def test_too_early_uses_the_drug_specific_adequate_trial():
    gaba = med("MedicationRequest/gaba", GABAPENTIN, started_days_ago=45)     # gabapentin: about 2 months
    r = only([nrs(8, 50), nrs(8, 2)], [gaba])
    assert (r.status, r.adequate_trial_days, r.adequate_trial_verified, r.baseline) == ("too-early", 60, True, 8)
    prega = med("MedicationRequest/pg", PREGABALIN, started_days_ago=45)      # pregabalin: 4 weeks
    r = only([nrs(8, 50), nrs(8, 2)], [prega])
    assert (r.status, r.adequate_trial_days, r.adequate_trial_verified) == ("non-response", 28, False)


def test_missing_baseline():
    r = only([nrs(8, 200), nrs(4, 5)], [DULOX])         # the only earlier score is outside the baseline window
    assert r.status == "no-data" and "no baseline" in r.reasons[-1]
    r = only([nrs(4, 5)], [DULOX])
    assert r.status == "no-data" and r.baseline is None


def test_missing_follow_up_after_an_adequate_trial():
    r = only([nrs(7, 70), nrs(5, 50)], [DULOX])        # only a score 10 days into the trial
    assert r.status == "no-data" and "after an adequate trial" in r.reasons[-1] and r.baseline == 7


def test_undated_scores_are_never_baseline_or_follow_up():
    r = only([obs("72514-3", valueInteger=8), nrs(3, 5)], [DULOX])
    assert r.status == "no-data"


def test_unknown_start_and_zero_baseline():
    r = only([nrs(7, 70), nrs(3, 5)], [med("MedicationRequest/x", DULOXETINE, started_days_ago=None)])
    assert r.status == "no-data" and "start date unknown" in r.reasons[0]
    assert only([nrs(0, 70), nrs(3, 5)], [DULOX]).status == "no-data"


def test_no_trial_duration_on_file_means_no_assessment():
    r = only([nrs(7, 70), nrs(7, 5)], [med("MedicationRequest/ibu", IBUPROFEN, started_days_ago=60)])
    assert (r.status, r.analgesic_class, r.adequate_trial_days) == ("no-data", "nsaid", None)


def test_combination_product_is_named_by_its_first_class_and_uses_the_longest_trial():
    combo = med("MedicationRequest/percocet", ACETAMINOPHEN, OXYCODONE, started_days_ago=50)
    r = only([nrs(7, 55), nrs(6, 2)], [combo])
    assert (r.drug.name, r.analgesic_class, r.adequate_trial_days, r.status) == ("oxycodone", "opioid", 42,
                                                                                 "non-response")


def test_only_active_non_draft_analgesics_are_assessed():
    meds = [med("MedicationRequest/stopped", DULOXETINE, started_days_ago=60, status="stopped"),
            med("urn:uuid:draft", GABAPENTIN, started_days_ago=0, status="draft", draft=True),
            med("MedicationRequest/statin", ("36567", "simvastatin"), started_days_ago=300)]
    assert responses([nrs(7, 70), nrs(3, 5)], meds) == ()


def test_a_renewal_continues_the_trial():
    first = med("MedicationRequest/dlx-1", DULOXETINE, started_days_ago=150, status="completed")
    renewal = med("MedicationRequest/dlx-2", DULOXETINE, started_days_ago=60)
    r = only([nrs(8, 160, oid="b"), nrs(7, 65), nrs(6, 3, oid="f")], [first, renewal])
    assert (r.status, r.trial_days, r.baseline, r.change_pct) == ("non-response", 150, 8, 25.0)
    assert r.evidence[:2] == ("MedicationRequest/dlx-2", "MedicationRequest/dlx-1")
    # a gap longer than renewalGapDays starts a new trial
    old = med("MedicationRequest/dlx-0", DULOXETINE, started_days_ago=400, status="completed")
    r = only([nrs(8, 70), nrs(5, 3)], [old, med("MedicationRequest/dlx-3", DULOXETINE, started_days_ago=60)])
    assert r.trial_days == 60 and r.status == "response"


def test_a_renewal_chain_is_followed_past_other_drugs_in_between():
    # the walk back skips requests of other drugs within the gap and stops at the first one too old to continue
    chain = [med("MedicationRequest/dlx-1", DULOXETINE, started_days_ago=230, status="completed"),
             med("MedicationRequest/gaba", GABAPENTIN, started_days_ago=200, status="completed"),
             med("MedicationRequest/dlx-2", DULOXETINE, started_days_ago=150, status="completed"),
             med("MedicationRequest/ibu", IBUPROFEN, started_days_ago=100, status="completed"),
             med("MedicationRequest/dlx-3", DULOXETINE, started_days_ago=60)]
    r = only([nrs(8, 240, oid="b"), nrs(6, 3, oid="f")], chain)
    assert r.trial_days == 230 and r.status == "non-response"
    assert r.evidence[:3] == ("MedicationRequest/dlx-3", "MedicationRequest/dlx-2", "MedicationRequest/dlx-1")
    older = med("MedicationRequest/dlx-0", DULOXETINE, started_days_ago=500, status="completed")
    r = only([nrs(8, 70), nrs(5, 3)], [older, med("MedicationRequest/ibu", IBUPROFEN, started_days_ago=300,
                                                   status="completed"), chain[-1]])
    assert r.trial_days == 60


def test_another_analgesic_started_during_the_trial_is_a_confounder():
    gaba = med("MedicationRequest/gaba", GABAPENTIN, started_days_ago=40)
    p = build_profile([nrs(8, 70), nrs(4, 3)], [], [DULOX, gaba], NOW)
    dlx = next(r for r in p.responses if r.drug.name == "duloxetine")
    assert dlx.status == "substantial-response" and dlx.confounded
    assert "MedicationRequest/gaba" in dlx.reasons[-1]


def test_peg_is_preferred_when_both_peg_and_nrs_cover_the_trial():
    pegs = [peg(70, 8, oid="peg-b"), peg(4, 5, oid="peg-f")]
    r = only([nrs(8, 70), nrs(2, 5), *pegs], [DULOX])
    assert (r.instrument, r.baseline, r.latest, r.status) == ("peg", 8, 5, "response")


def test_a_renewal_of_a_request_we_do_not_have_has_no_known_start():
    renewal = med("MedicationRequest/dlx-2", DULOXETINE, started_days_ago=60)
    renewal = renewal.__class__(**{**renewal.__dict__, "resource": {
        "resourceType": "MedicationRequest", "id": "dlx-2", "status": "active",
        "priorPrescription": {"reference": "MedicationRequest/dlx-1"}}})
    r = only([nrs(8, 70), nrs(8, 3)], [renewal])
    assert r.status == "no-data" and "MedicationRequest/dlx-1" in r.reasons[0]
    first = med("MedicationRequest/dlx-1", DULOXETINE, started_days_ago=150, status="completed")
    r = only([nrs(8, 160), nrs(8, 3)], [first, renewal])          # with the earlier request the trial is known
    assert (r.status, r.trial_days) == ("non-response", 150)


@pytest.mark.parametrize("authored_on", ["0001-01-01", "9999-12-31T23:59:59.999999+14:00"])
def test_a_start_at_the_ends_of_the_calendar_is_an_unknown_start(authored_on):
    # was OverflowError in _one (start +/- the trial and baseline windows): the whole pain profile was lost
    from fhir_pain.pgx import identify
    use = identify({"resourceType": "MedicationRequest", "id": "dlx", "status": "active", "authoredOn": authored_on,
                    "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                              "code": DULOXETINE[0]}]}})
    r = only([nrs(7, 70), nrs(3, 5)], [use])
    assert r.status == "no-data" and "start date unknown" in r.reasons[0]
