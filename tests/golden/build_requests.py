"""Writes the golden scenarios' request.json and about.json (run: .venv/bin/python tests/golden/build_requests.py).

Each scenario is a realistic CDS Hooks request plus a hand-written ``about.json``: what the scenario is for and the
cards a clinician must see (indicator, rules, suggested resource types, in order). ``expected.json`` (the full
response) is written by the golden test's update step, never by this script; ``about.json`` is never touched by
that step, so a regenerated expected.json can not silently change what a scenario asserts.

Spec and sandbox requests are read from tests/fixtures (hook-library 1.0.1 context examples, sandbox captures).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from golden.fhir_builders import (  # noqa: E402
    bmi_percentile, breastfeeding_status, condition, day, draft, gad7, genotype, hla_genotype, hla_presence,
    hook_request, medication_request, nrs, patient, phq9, phq9_item9, phq9_panel, prefetch, procedure, project_score,
    reported_phenotype,
)

FIXTURES = HERE.parent / "fixtures"  # spec examples and sandbox captures, with their provenance READMEs
SCENARIOS: dict[str, tuple[dict, dict]] = {}


def scenario(name: str, description: str, request: dict, cards: list[dict]) -> None:
    SCENARIOS[name] = (request, {"description": description, "cards": cards})


def card(indicator: str, *rules: str, creates: tuple[str, ...] = (), removes: bool = False) -> dict:
    """``removes``: the card offers a delete-only suggestion (remove the draft, no replacement)."""
    return {"indicator": indicator, "rules": sorted(rules), "creates": sorted(creates),
            **({"removesDraft": True} if removes else {})}


CODEINE = ("2670", "codeine phosphate 30 MG Oral Tablet")
TRAMADOL = ("10689", "tramadol hydrochloride 50 MG Oral Tablet")
OXYCODONE = ("7804", "oxycodone hydrochloride 5 MG Oral Tablet")
CELECOXIB = ("140587", "celecoxib 200 MG Oral Capsule")
MELOXICAM = ("41493", "meloxicam 15 MG Oral Tablet")
IBUPROFEN = ("5640", "ibuprofen 400 MG Oral Tablet")
PIROXICAM = ("8356", "piroxicam 20 MG Oral Capsule")
AMITRIPTYLINE = ("704", "amitriptyline hydrochloride 10 MG Oral Tablet")
NORTRIPTYLINE = ("7531", "nortriptyline 25 MG Oral Capsule")
ONDANSETRON = ("26225", "ondansetron 4 MG Oral Tablet")
PAROXETINE = ("32937", "paroxetine 20 MG Oral Tablet")
VENLAFAXINE = ("39786", "venlafaxine 75 MG Oral Tablet")
DULOXETINE = ("72625", "duloxetine 30 MG Delayed Release Oral Capsule")
GABAPENTIN = ("25480", "gabapentin 300 MG Oral Capsule")
FLUOXETINE = ("4493", "fluoxetine 20 MG Oral Capsule")
TERBINAFINE = ("37801", "terbinafine 250 MG Oral Tablet")
CLOMIPRAMINE = ("2597", "clomipramine hydrochloride 25 MG Oral Capsule")
DOXEPIN = ("3638", "doxepin 25 MG Oral Capsule")
IMIPRAMINE = ("5691", "imipramine hydrochloride 25 MG Oral Tablet")
TRIMIPRAMINE = ("10834", "trimipramine 25 MG Oral Capsule")
CARBAMAZEPINE = ("2002", "carbamazepine 200 MG Oral Tablet")
OXCARBAZEPINE = ("32624", "oxcarbazepine 300 MG Oral Tablet")
PHENYTOIN = ("8183", "phenytoin 100 MG Extended Release Oral Capsule")
SERTRALINE = ("36437", "sertraline 50 MG Oral Tablet")
CITALOPRAM = ("2556", "citalopram 20 MG Oral Tablet")
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
CPT = "http://www.ama-assn.org/go/cpt"


def sign(name, pid, drafts, **kw):
    return hook_request("order-sign", pid, name=name, drafts=drafts, prefetch=prefetch(pid, **kw))


def select(name, pid, drafts, selections=None, **kw):
    return hook_request("order-select", pid, name=name, drafts=drafts, selections=selections,
                        prefetch=prefetch(pid, **kw))


def view(name, pid, **kw):
    return hook_request("patient-view", pid, name=name, prefetch=prefetch(pid, **kw))


def d(mid, pid, drug, **kw):
    return draft(mid, pid, drug[0], drug[1], **kw)


def active(mid, pid, drug, **kw):
    return medication_request(mid, pid, drug[0], drug[1], **kw)


def neuropathic(pid):
    """Painful diabetic neuropathy with DN4 6: neuropathic pain likely."""
    return {"conditions": [condition("dpn", pid, "230572002", "Diabetic neuropathy", day(-600))],
            "pain": [project_score("dn4", pid, "dn4-total", 6, day(-30)), nrs("nrs1", pid, 7, day(-10))]}


def build() -> None:
    # ---- opioids x CYP2D6 -----------------------------------------------------------------------------------
    p = "pgx-pm"
    scenario("sign-codeine-cyp2d6-pm", "Codeine for a CYP2D6 poor metabolizer (*4/*4): CPIC Strong avoid; CPIC "
             "names a class (a non-tramadol opioid or another analgesic), not a drug, so no replacement order is "
             "drafted; a delete-only suggestion (not recommended) removes the draft.",
             sign("sign-codeine-cyp2d6-pm", p, [d("rx1", p, CODEINE)], pgx=[genotype("g1", p, "CYP2D6", "*4/*4")]),
             [card("critical", "cpic/codeine/CYP2D6", removes=True)])
    p = "pgx-um"
    scenario("sign-codeine-cyp2d6-um", "Codeine for a CYP2D6 ultrarapid metabolizer (*1/*2x2, AS 3.0): toxicity "
             "risk, CPIC Strong avoid; delete-only suggestion (CPIC names no drug to replace it with).",
             sign("sign-codeine-cyp2d6-um", p, [d("rx1", p, CODEINE)], pgx=[genotype("g1", p, "CYP2D6", "*1/*2x2")]),
             [card("critical", "cpic/codeine/CYP2D6", removes=True)])
    p = "pgx-im"
    scenario("sign-codeine-cyp2d6-im", "Codeine for a CYP2D6 intermediate metabolizer (*1/*4): label dosing, "
             "consider an alternative if no response (CPIC Moderate): warning, no suggestion.",
             sign("sign-codeine-cyp2d6-im", p, [d("rx1", p, CODEINE)], pgx=[genotype("g1", p, "CYP2D6", "*1/*4")]),
             [card("warning", "cpic/codeine/CYP2D6")])
    p = "pgx-nm"
    scenario("sign-codeine-cyp2d6-nm", "Codeine for a CYP2D6 normal metabolizer: standard dosing, no card.",
             sign("sign-codeine-cyp2d6-nm", p, [d("rx1", p, CODEINE)], pgx=[genotype("g1", p, "CYP2D6", "*1/*1")]),
             [])
    p = "pgx-nm-parox"
    scenario("sign-tramadol-phenoconverted-paroxetine", "Tramadol for a genetic CYP2D6 normal metabolizer taking "
             "paroxetine (strong inhibitor): converted to poor metabolizer, CPIC Strong avoid; delete-only suggestion.",
             sign("sign-tramadol-phenoconverted-paroxetine", p, [d("rx1", p, TRAMADOL)],
                  pgx=[genotype("g1", p, "CYP2D6", "*1/*1")], meds=[active("a1", p, PAROXETINE)]),
             [card("critical", "cpic/tramadol/CYP2D6", removes=True)])
    p = "pgx-nm-dulox"
    scenario("sign-tramadol-moderate-inhibitor-duloxetine", "Tramadol for a CYP2D6 *1/*1 patient on duloxetine "
             "(moderate inhibitor): activity score halved to 1.0, intermediate metabolizer (CPIC Optional).",
             sign("sign-tramadol-moderate-inhibitor-duloxetine", p, [d("rx1", p, TRAMADOL)],
                  pgx=[genotype("g1", p, "CYP2D6", "*1/*1")], meds=[active("a1", p, DULOXETINE)]),
             [card("warning", "cpic/tramadol/CYP2D6")])
    p = "no-pgx"
    scenario("sign-codeine-no-result-pretest", "Codeine ordered, no CYP2D6 result on file: CPIC pre-test alert with "
             "a draft CYP2D6 genotype order.",
             sign("sign-codeine-no-result-pretest", p, [d("rx1", p, CODEINE)]),
             [card("warning", "cpic-pretest/codeine/CYP2D6", creates=("ServiceRequest",))])
    p = "pgx-missing"
    scenario("sign-codeine-pgx-unavailable", "Codeine ordered but the EHR could not fill the PGx prefetch and there "
             "is no FHIR access: the card says the check was not possible (never 'no result on file').",
             sign("sign-codeine-pgx-unavailable", p, [d("rx1", p, CODEINE)], omit=("pgxResults",)),
             [card("info", "fhir-pain/pgx-unavailable/codeine")])
    p = "pgx-dup"
    scenario("sign-codeine-ambiguous-duplication", "CYP2D6 *1/*4xN: the duplicated allele and copy number are not "
             "stated, so the activity score is 1.0 (IM), 2.0 (NM) or >= 3.0 (UM). The UM possibility carries CPIC's "
             "Strong avoid: the card says avoid (never softened by the benign possibilities), lists each one, and "
             "offers a confirmatory test and removing the draft.",
             sign("sign-codeine-ambiguous-duplication", p, [d("rx1", p, CODEINE)],
                  pgx=[genotype("g1", p, "CYP2D6", "*1/*4xN")]),
             [card("critical", "cpic/codeine/CYP2D6", creates=("ServiceRequest",), removes=True)])
    p = "pgx-indet"
    scenario("sign-codeine-indeterminate", "CYP2D6 *1/*22 (allele of uncertain function): Indeterminate; CPIC's "
             "own n/a row for codeine says no recommendation, and the card says so, with a confirmatory test.",
             sign("sign-codeine-indeterminate", p, [d("rx1", p, CODEINE)],
                  pgx=[genotype("g1", p, "CYP2D6", "*1/*22")]),
             [card("info", "cpic/codeine/CYP2D6", creates=("ServiceRequest",))])
    p = "pgx-conflict"
    scenario("sign-codeine-conflicting-results", "Two CYP2D6 genotypes on file disagree (*1/*1 in 2023, *4/*4 in "
             "2025): one of them is wrong; the poor-metabolizer possibility carries CPIC's Strong avoid, so the card "
             "says avoid, names the result it comes from, and offers a confirmatory test.",
             sign("sign-codeine-conflicting-results", p, [d("rx1", p, CODEINE)],
                  pgx=[genotype("g1", p, "CYP2D6", "*1/*1", when="2023-02-01T09:00:00Z"),
                       genotype("g2", p, "CYP2D6", "*4/*4", when="2025-06-01T09:00:00Z")]),
             [card("critical", "cpic/codeine/CYP2D6", creates=("ServiceRequest",), removes=True)])
    p = "pgx-dup-newest"
    scenario("sign-codeine-newest-duplication-vs-older-normal", "Newest CYP2D6 result *1/*1x2 (ultrarapid) vs an "
             "older *1/*1 (normal): the benign older result must not hide the Strong avoid.",
             sign("sign-codeine-newest-duplication-vs-older-normal", p, [d("rx1", p, CODEINE)],
                  pgx=[genotype("g1", p, "CYP2D6", "*1/*1", when="2019-02-01T09:00:00Z"),
                       genotype("g2", p, "CYP2D6", "*1/*1x2", when="2025-06-01T09:00:00Z")]),
             [card("critical", "cpic/codeine/CYP2D6", creates=("ServiceRequest",), removes=True)])
    p = "pgx-reported-pm-um"
    scenario("sign-tramadol-reported-poor-vs-ultrarapid", "Reported Poor Metabolizer (2020) vs reported Ultrarapid "
             "(2024), tramadol: both possibilities say avoid (CPIC Strong), so the card says avoid without hedging, "
             "and offers a confirmatory test for the conflict.",
             sign("sign-tramadol-reported-poor-vs-ultrarapid", p, [d("rx1", p, TRAMADOL)],
                  pgx=[reported_phenotype("r1", p, "CYP2D6", "Poor Metabolizer", when="2020-03-01T09:00:00Z"),
                       reported_phenotype("r2", p, "CYP2D6", "Ultrarapid Metabolizer", when="2024-03-01T09:00:00Z")]),
             [card("critical", "cpic/tramadol/CYP2D6", creates=("ServiceRequest",), removes=True)])
    p = "pgx-geno-vs-newer-reported"
    scenario("sign-codeine-genotype-vs-newer-reported-ultrarapid", "Genotype *1/*1 (2019) and a newer reported "
             "Ultrarapid phenotype (2024): a conflict, never overruled silently by the older genotype; avoid.",
             sign("sign-codeine-genotype-vs-newer-reported-ultrarapid", p, [d("rx1", p, CODEINE)],
                  pgx=[genotype("g1", p, "CYP2D6", "*1/*1", when="2019-02-01T09:00:00Z"),
                       reported_phenotype("r1", p, "CYP2D6", "Ultrarapid Metabolizer", when="2024-03-01T09:00:00Z")]),
             [card("critical", "cpic/codeine/CYP2D6", creates=("ServiceRequest",), removes=True)])
    p = "pgx-none-fluox"
    scenario("sign-codeine-fluoxetine-no-genotype", "Codeine for a patient on fluoxetine (strong CYP2D6 inhibitor) "
             "with no CYP2D6 result: CPIC treats them as a poor metabolizer whatever the genotype: avoid now, not "
             "only a test that could not change the advice.",
             sign("sign-codeine-fluoxetine-no-genotype", p, [d("rx1", p, CODEINE)], meds=[active("a1", p, FLUOXETINE)]),
             [card("critical", "cpic/codeine/CYP2D6", removes=True)])
    p = "pgx-nm-terbinafine"
    scenario("sign-tramadol-terbinafine-uncertain-strength", "Tramadol for a CYP2D6 *1/*1 patient on terbinafine "
             "(strong in one source, moderate in another): the strong possibility (poor metabolizer) says avoid, "
             "so the card does; no genotype test is offered (it cannot settle an inhibitor's strength).",
             sign("sign-tramadol-terbinafine-uncertain-strength", p, [d("rx1", p, TRAMADOL)],
                  pgx=[genotype("g1", p, "CYP2D6", "*1/*1")], meds=[active("a1", p, TERBINAFINE)]),
             [card("critical", "cpic/tramadol/CYP2D6", removes=True)])
    p = "pgx-um-fluox"
    scenario("sign-codeine-ultrarapid-on-fluoxetine", "Codeine for a genetic CYP2D6 ultrarapid metabolizer (*1/*1x2) "
             "on fluoxetine: poor metabolizer while the inhibitor is taken (avoid); the card says that stopping "
             "fluoxetine brings the ultrarapid toxicity risk back.",
             sign("sign-codeine-ultrarapid-on-fluoxetine", p, [d("rx1", p, CODEINE)],
                  pgx=[genotype("g1", p, "CYP2D6", "*1/*1x2")], meds=[active("a1", p, FLUOXETINE)]),
             [card("critical", "cpic/codeine/CYP2D6", removes=True)])
    p = "pgx-nm-parox-renewal"
    scenario("sign-paroxetine-renewal-cyp2d6-nm", "Renewing paroxetine (active paroxetine on the list) for a genetic "
             "CYP2D6 normal metabolizer: paroxetine is not its own phenoconverter, CPIC's normal-metabolizer advice "
             "(Strong, usual starting dose) applies: no card.",
             sign("sign-paroxetine-renewal-cyp2d6-nm", p, [d("rx1", p, PAROXETINE)],
                  pgx=[genotype("g1", p, "CYP2D6", "*1/*1")], meds=[active("a1", p, PAROXETINE)]),
             [])
    # ---- tertiary-amine TCAs: CPIC's rows for CYP2C19 Indeterminate and CYP2D6 n/a (multi-gene keys) ---------
    for tca, rx in (("amitriptyline", AMITRIPTYLINE), ("clomipramine", CLOMIPRAMINE), ("doxepin", DOXEPIN),
                    ("imipramine", IMIPRAMINE), ("trimipramine", TRIMIPRAMINE)):
        p = f"tca-um-indet-{tca}"
        scenario(f"sign-{tca}-cyp2d6-um-cyp2c19-indeterminate", f"{tca.capitalize()} for a CYP2D6 ultrarapid "
                 "metabolizer (*1/*1x3, AS >= 3.0) whose CYP2C19 result is Indeterminate (*1/*99, unknown allele): "
                 "CPIC's row for that key is Strong avoid, never 'no recommendation'.",
                 sign(f"sign-{tca}-cyp2d6-um-cyp2c19-indeterminate", p, [d("rx1", p, rx)],
                      pgx=[genotype("g1", p, "CYP2D6", "*1/*1x3"), genotype("g2", p, "CYP2C19", "*1/*99")]),
                 # CPIC extends the amitriptyline table to the other tertiary amines as Optional (Strong for NMs)
                 [card("critical" if tca == "amitriptyline" else "warning", f"cpic/{tca}/CYP2D6+CYP2C19",
                       creates=("ServiceRequest",), removes=True)])
    for name, d6, c19, indicator, why, removes in (
            ("cyp2d6-pm-cyp2c19-indeterminate", "*4/*4", "*1/*99", "critical", "Strong avoid (AS 0.0)", True),
            ("cyp2d6-im-cyp2c19-indeterminate", "*1/*4", "*1/*99", "warning", "Moderate, lower dose (AS 1.0)", False),
            ("cyp2d6-indeterminate-cyp2c19-pm", "*1/*22", "*2/*2", "warning", "Moderate avoid (CYP2D6 n/a)", True)):
        p = f"tca-{name}"
        scenario(f"sign-amitriptyline-{name}", f"Amitriptyline, CYP2D6 {d6} + CYP2C19 {c19}: CPIC's multi-gene row "
                 f"for this key applies ({why}); the card gives its advice and a confirmatory test.",
                 sign(f"sign-amitriptyline-{name}", p, [d("rx1", p, AMITRIPTYLINE)],
                      pgx=[genotype("g1", p, "CYP2D6", d6), genotype("g2", p, "CYP2C19", c19)]),
                 [card(indicator, "cpic/amitriptyline/CYP2D6+CYP2C19", creates=("ServiceRequest",), removes=removes)])
    p = "pgx-reported"
    scenario("sign-tramadol-reported-phenotype", "Only a lab-reported phenotype (STU1 53040-2, LA9657-3 poor "
             "metabolizer) and tramadol ordered: CPIC Strong avoid from the reported phenotype.",
             sign("sign-tramadol-reported-phenotype", p, [d("rx1", p, TRAMADOL)],
                  pgx=[reported_phenotype("ph1", p, "CYP2D6", "Poor Metabolizer")]),
             [card("critical", "cpic/tramadol/CYP2D6", removes=True)])
    # ---- age limits (FDA, cited by CPIC): whatever the genotype ------------------------------------------------
    for name, p, pgx, why in (
            ("sign-codeine-child-cyp2d6-nm", "child-nm", [genotype("g1", "child-nm", "CYP2D6", "*1/*1")],
             "a CYP2D6 normal metabolizer: CPIC's label dosing is silent, but"),
            ("sign-codeine-child-no-result", "child-none", [],
             "no CYP2D6 result: no genotype test is proposed for a drug the age rules out;")):
        scenario(name, f"Codeine for a 7-year-old, {why} codeine is contraindicated under 12 years whatever the "
                 "genotype (FDA 2017, cited by CPIC): critical card with a delete-only suggestion; the tonsillectomy "
                 "limit is named in the text only.",
                 sign(name, p, [d("rx1", p, CODEINE)], birth="2018-09-14", pgx=pgx),
                 [card("critical", "fhir-pain/age-limit/codeine", removes=True)])
    p = "combo"
    combo = ("993781", "Acetaminophen 300 MG / Codeine Phosphate 30 MG Oral Tablet")
    scenario("sign-acetaminophen-codeine-combination-pm", "A combination product (acetaminophen/codeine) for a "
             "CYP2D6 poor metabolizer: the codeine ingredient is found and advised on; no automatic replacement "
             "(it would drop the acetaminophen), not even a delete-only one: the detail says to replace it by hand.",
             sign("sign-acetaminophen-codeine-combination-pm", p, [d("rx1", p, combo)],
                  pgx=[genotype("g1", p, "CYP2D6", "*5/*5")]),
             [card("critical", "cpic/codeine/CYP2D6")])
    # ---- NSAIDs x CYP2C9 ------------------------------------------------------------------------------------
    p = "c9-pm"
    scenario("sign-celecoxib-cyp2c9-pm", "Celecoxib for a CYP2C9 poor metabolizer (*3/*3): start at 25-50% of the "
             "lowest dose (CPIC Moderate); the dose advice is in the detail, no dose is changed by a suggestion.",
             sign("sign-celecoxib-cyp2c9-pm", p, [d("rx1", p, CELECOXIB)], pgx=[genotype("g1", p, "CYP2C9", "*3/*3")]),
             [card("warning", "cpic/celecoxib/CYP2C9")])
    scenario("sign-meloxicam-cyp2c9-pm", "Meloxicam for a CYP2C9 poor metabolizer: choose an alternative NSAID not "
             "metabolized by CYP2C9 (CPIC Moderate).",
             sign("sign-meloxicam-cyp2c9-pm", p, [d("rx1", p, MELOXICAM)], pgx=[genotype("g1", p, "CYP2C9", "*3/*3")]),
             [card("warning", "cpic/meloxicam/CYP2C9", creates=("MedicationRequest",))])
    p = "c9-im"
    scenario("sign-ibuprofen-cyp2c9-im-as1", "Ibuprofen for CYP2C9 *2/*2 (activity score 1.0, intermediate): "
             "lowest starting dose, titrate with caution (CPIC Moderate).",
             sign("sign-ibuprofen-cyp2c9-im-as1", p, [d("rx1", p, IBUPROFEN)],
                  pgx=[genotype("g1", p, "CYP2C9", "*2/*2")]),
             [card("warning", "cpic/ibuprofen/CYP2C9")])
    p = "c9-nm"
    scenario("sign-piroxicam-cyp2c9-nm", "Piroxicam for a CYP2C9 normal metabolizer: standard dosing, no card.",
             sign("sign-piroxicam-cyp2c9-nm", p, [d("rx1", p, PIROXICAM)], pgx=[genotype("g1", p, "CYP2C9", "*1/*1")]),
             [])
    p = "c9-none"
    scenario("sign-ibuprofen-no-result-pretest", "Ibuprofen without a CYP2C9 result: CPIC's pre-test alert says the "
             "genotype 'may be important': informational card with a test order.",
             sign("sign-ibuprofen-no-result-pretest", p, [d("rx1", p, IBUPROFEN)]),
             [card("info", "cpic-pretest/ibuprofen/CYP2C9", creates=("ServiceRequest",))])
    # ---- tricyclics -----------------------------------------------------------------------------------------
    p = "tca-pm"
    pgx_tca = [genotype("g1", p, "CYP2D6", "*4/*4"), genotype("g2", p, "CYP2C19", "*1/*1")]
    scenario("sign-amitriptyline-cyp2d6-pm", "Amitriptyline (no neuropathic pain on record) for a CYP2D6 poor / "
             "CYP2C19 normal metabolizer: CPIC Strong avoid; CPIC names no drug, so a delete-only suggestion.",
             sign("sign-amitriptyline-cyp2d6-pm", p, [d("rx1", p, AMITRIPTYLINE, dose_mg=75)], pgx=pgx_tca),
             [card("critical", "cpic/amitriptyline/CYP2D6+CYP2C19", removes=True)])
    n = neuropathic(p)
    scenario("sign-amitriptyline-cyp2d6-pm-neuropathic-low-dose", "Amitriptyline 10 mg/day for painful diabetic "
             "neuropathy in a CYP2D6 poor metabolizer: CPIC's avoid applies to depression doses; at this dose monitor "
             "side effects (warning), and first-line options independent of CYP2D6 are offered.",
             sign("sign-amitriptyline-cyp2d6-pm-neuropathic-low-dose", p, [d("rx1", p, AMITRIPTYLINE, dose_mg=10)],
                  pgx=pgx_tca, **n),
             [card("warning", "cpic/amitriptyline/CYP2D6+CYP2C19", "fhir-pain/tca-neuropathic-pain/CYP2D6",
                   creates=("MedicationRequest",))])
    p = "tca-c19-pm-low"
    n = neuropathic(p)
    scenario("sign-amitriptyline-cyp2c19-pm-neuropathic-low-dose", "Amitriptyline 10 mg/day for painful diabetic "
             "neuropathy in a CYP2C19 poor metabolizer (CYP2D6 normal): the low-dose exception applies the same way "
             "as for CYP2D6 (regression: CYP2D6 PM at 10 mg got 'monitor' but CYP2C19 PM at 10 mg got 'avoid').",
             sign("sign-amitriptyline-cyp2c19-pm-neuropathic-low-dose", p,
                  [d("rx1", p, AMITRIPTYLINE, dose_mg=10)],
                  pgx=[genotype("g1", p, "CYP2D6", "*1/*1"), genotype("g2", p, "CYP2C19", "*2/*2")], **n),
             [card("warning", "cpic/amitriptyline/CYP2D6+CYP2C19", "fhir-pain/tca-neuropathic-pain/CYP2C19",
                   creates=("MedicationRequest",))])
    p = "tca-pm-nodose"
    n = neuropathic(p)
    scenario("sign-amitriptyline-cyp2d6-pm-neuropathic-unreadable-dose", "Amitriptyline for painful diabetic "
             "neuropathy in a CYP2D6 poor metabolizer, with no readable dose on the order: an unreadable dose is not "
             "a low dose, so CPIC's Strong avoid stands (critical).",
             sign("sign-amitriptyline-cyp2d6-pm-neuropathic-unreadable-dose", p, [d("rx1", p, AMITRIPTYLINE)],
                  pgx=[genotype("g1", p, "CYP2D6", "*4/*4"), genotype("g2", p, "CYP2C19", "*1/*1")], **n),
             [card("critical", "cpic/amitriptyline/CYP2D6+CYP2C19", removes=True)])
    p = "tca-um"
    scenario("sign-nortriptyline-cyp2d6-um", "Nortriptyline for a CYP2D6 ultrarapid metabolizer (*1/*1x3): lack of "
             "efficacy, CPIC Strong avoid; delete-only suggestion.",
             sign("sign-nortriptyline-cyp2d6-um", p, [d("rx1", p, NORTRIPTYLINE)],
                  pgx=[genotype("g1", p, "CYP2D6", "*1/*1x3")]),
             [card("critical", "cpic/nortriptyline/CYP2D6", removes=True)])
    p = "tca-c19-missing"
    scenario("sign-amitriptyline-cyp2c19-missing", "Amitriptyline with a CYP2D6 result (*1/*1) but no CYP2C19 "
             "result: one card for the drug with the pre-test alert for CYP2C19.",
             sign("sign-amitriptyline-cyp2c19-missing", p, [d("rx1", p, AMITRIPTYLINE)],
                  pgx=[genotype("g1", p, "CYP2D6", "*1/*1")]),
             [card("info", "cpic-pretest/amitriptyline/CYP2C19", creates=("ServiceRequest",))])
    # ---- ondansetron, SSRIs/SNRIs ---------------------------------------------------------------------------
    p = "ond-um"
    scenario("sign-ondansetron-cyp2d6-um", "Ondansetron for a CYP2D6 ultrarapid metabolizer: choose a drug not "
             "predominantly metabolized by CYP2D6, e.g. granisetron (CPIC Moderate). Granisetron's RxCUI is not verified "
             "(drugs.json meta.unverifiedCodes), so the card names it but offers no coded draft; a delete-only "
             "suggestion removes the ondansetron draft.",
             sign("sign-ondansetron-cyp2d6-um", p, [d("rx1", p, ONDANSETRON)],
                  pgx=[genotype("g1", p, "CYP2D6", "*1/*2x2")]),
             [card("warning", "cpic/ondansetron/CYP2D6", removes=True)])
    p = "parox-pm"
    scenario("sign-paroxetine-cyp2d6-pm", "Paroxetine for a CYP2D6 poor metabolizer: CPIC advises an alternative "
             "or a 50% lower starting dose.",
             sign("sign-paroxetine-cyp2d6-pm", p, [d("rx1", p, PAROXETINE)], pgx=[genotype("g1", p, "CYP2D6", "*4/*4")]),
             [card("warning", "cpic/paroxetine/CYP2D6")])
    p = "parox-nm"
    scenario("sign-paroxetine-cyp2d6-nm-no-self-conversion", "Paroxetine for a CYP2D6 normal metabolizer: paroxetine "
             "is itself a strong CYP2D6 inhibitor, but it must not phenoconvert the patient before its own CPIC "
             "lookup: standard dosing, no card.",
             sign("sign-paroxetine-cyp2d6-nm-no-self-conversion", p, [d("rx1", p, PAROXETINE)],
                  pgx=[genotype("g1", p, "CYP2D6", "*1/*1")]),
             [])
    p = "venla-pm"
    scenario("sign-venlafaxine-cyp2d6-pm", "Venlafaxine for a CYP2D6 poor metabolizer: consider an alternative not "
             "predominantly metabolized by CYP2D6 (CPIC Optional); CPIC names no drug, so a delete-only suggestion.",
             sign("sign-venlafaxine-cyp2d6-pm", p, [d("rx1", p, VENLAFAXINE)],
                  pgx=[genotype("g1", p, "CYP2D6", "*4/*4")]),
             [card("warning", "cpic/venlafaxine/CYP2D6", removes=True)])
    # ---- pain phenotypes ------------------------------------------------------------------------------------
    p = "neuro-pm"
    n = neuropathic(p)
    scenario("sign-oxycodone-neuropathic-cyp2d6-pm", "Oxycodone for likely neuropathic pain (diabetic neuropathy, "
             "DN4 6) in a CYP2D6 poor metabolizer: opioids are not first line; first-line classes filtered by PGx "
             "(no tricyclic and no venlafaxine for a CYP2D6 PM).",
             sign("sign-oxycodone-neuropathic-cyp2d6-pm", p, [d("rx1", p, OXYCODONE)],
                  pgx=[genotype("g1", p, "CYP2D6", "*4/*4")], **n),
             [card("warning", "fhir-pain/opioid-for-neuropathic-pain", creates=("MedicationRequest",))])
    p = "neuro-nm"
    n = neuropathic(p)
    scenario("sign-tramadol-neuropathic-nm", "Tramadol for likely neuropathic pain in a CYP2D6 normal metabolizer "
             "already on gabapentin: tramadol is second line; SNRIs and TCAs offered (gabapentinoids already used).",
             sign("sign-tramadol-neuropathic-nm", p, [d("rx1", p, TRAMADOL)],
                  pgx=[genotype("g1", p, "CYP2D6", "*1/*1")], meds=[active("a1", p, GABAPENTIN, authored=day(-20))],
                  **n),
             [card("warning", "fda2019/opioid-gabapentinoid", "fhir-pain/opioid-for-neuropathic-pain",
                   creates=("MedicationRequest",))])
    p = "psych"
    scenario("sign-oxycodone-catastrophizing-depression", "Oxycodone ordered for a patient with high pain "
             "catastrophizing (PCS 36) and depression (PHQ-9 15), CYP2D6 normal metabolizer: no card. The referral "
             "to pain psychology is not about the ordered drug: it stays on patient-view (alert fatigue).",
             sign("sign-oxycodone-catastrophizing-depression", p, [d("rx1", p, OXYCODONE)],
                  pgx=[genotype("g1", p, "CYP2D6", "*1/*1")],
                  pain=[project_score("pcs", p, "pcs-total", 36, day(-14)), phq9("phq", p, 15, day(-14)),
                        nrs("nrs1", p, 6, day(-14))]),
             [])
    p = "gaba-nr"
    gaba_history = [nrs("nrs0", p, 7, day(-130)), nrs("nrs1", p, 7, day(-60)), nrs("nrs2", p, 7, day(-7))]
    scenario("sign-gabapentin-renewal-non-response", "Renewing gabapentin after 4 months with no change in pain "
             "(NRS 7 -> 7): non-response after an adequate trial.",
             sign("sign-gabapentin-renewal-non-response", p, [d("rx1", p, GABAPENTIN)],
                  meds=[active("a1", p, GABAPENTIN, authored=day(-120))], pain=gaba_history,
                  conditions=[condition("phn", p, "2177002", "Postherpetic neuralgia", day(-400))]),
             [card("warning", "fhir-pain/analgesic-non-response")])
    # ---- several drafts, order-select semantics -------------------------------------------------------------
    p = "multi"
    pgx_multi = [genotype("g1", p, "CYP2D6", "*4/*4"), genotype("g2", p, "CYP2C9", "*3/*3")]
    drafts = [d("rx1", p, CODEINE), d("rx2", p, CELECOXIB)]
    scenario("sign-two-drafts-codeine-celecoxib", "order-sign with codeine and celecoxib drafts for a CYP2D6 PM and "
             "CYP2C9 PM: one card per drug, most severe first.",
             sign("sign-two-drafts-codeine-celecoxib", p, drafts, pgx=pgx_multi),
             [card("critical", "cpic/codeine/CYP2D6", removes=True),
              card("warning", "cpic/celecoxib/CYP2C9")])
    scenario("select-codeine-selected-celecoxib-context", "order-select with the same two drafts but only codeine "
             "selected: advice on the selection only.",
             select("select-codeine-selected-celecoxib-context", p, drafts, ["MedicationRequest/rx1"], pgx=pgx_multi),
             [card("critical", "cpic/codeine/CYP2D6", removes=True)])
    p = "sel-parox"
    scenario("select-codeine-with-paroxetine-draft", "order-select: codeine selected while a paroxetine draft is in "
             "the same session (context): the other draft phenoconverts the patient.",
             select("select-codeine-with-paroxetine-draft", p, [d("rx1", p, CODEINE), d("rx2", p, PAROXETINE)],
                    ["MedicationRequest/rx1"], pgx=[genotype("g1", p, "CYP2D6", "*1/*1")]),
             [card("critical", "cpic/codeine/CYP2D6", removes=True)])
    # ---- patient-view ---------------------------------------------------------------------------------------
    p = "pv-multi"
    scenario("view-pgx-summary-three-genes", "patient-view with CYP2D6 PM, CYP2C9 IM and CYP2C19 RM results and no "
             "medications: one concise PGx summary card.",
             view("view-pgx-summary-three-genes", p,
                  pgx=[genotype("g1", p, "CYP2D6", "*4/*4"), genotype("g2", p, "CYP2C9", "*1/*3"),
                       genotype("g3", p, "CYP2C19", "*1/*17")]),
             [card("info", "fhir-pain/pgx-summary")])
    p = "pv-tram"
    scenario("view-active-tramadol-cyp2d6-pm", "patient-view: the patient takes tramadol and is a CYP2D6 poor "
             "metabolizer: an alert for the active medication (no automatic change), then the PGx summary.",
             view("view-active-tramadol-cyp2d6-pm", p, pgx=[genotype("g1", p, "CYP2D6", "*4/*4")],
                  meds=[active("a1", p, TRAMADOL)]),
             [card("critical", "cpic/tramadol/CYP2D6"), card("info", "fhir-pain/pgx-summary"),
              card("info", "cdc2022/mme-total")])
    p = "pv-fluox"
    scenario("view-active-codeine-fluoxetine-phenoconversion", "patient-view: codeine with fluoxetine (strong "
             "CYP2D6 inhibitor) in a genetic normal metabolizer: phenoconverted to poor metabolizer.",
             view("view-active-codeine-fluoxetine-phenoconversion", p, pgx=[genotype("g1", p, "CYP2D6", "*1/*2")],
                  meds=[active("a1", p, CODEINE), active("a2", p, FLUOXETINE)]),
             [card("critical", "cpic/codeine/CYP2D6"), card("info", "fhir-pain/pgx-summary"),
              card("info", "cdc2022/mme-total")])
    p = "pv-noci"
    scenario("view-pain-profile-nociplastic-depression-anxiety", "patient-view: fibromyalgia with CSI 58, chronic "
             "pain, PHQ-9 12 and GAD-7 11, no PGx: the pain profile card and referrals (psychology, physiotherapy).",
             view("view-pain-profile-nociplastic-depression-anxiety", p,
                  conditions=[condition("fm", p, "203082005", "Fibromyalgia", day(-900))],
                  pain=[project_score("csi", p, "csi-total", 58, day(-20)), phq9("phq", p, 12, day(-20)),
                        gad7("gad", p, 11, day(-20)), nrs("n0", p, 6, day(-200)), nrs("n1", p, 7, day(-20))]),
             [card("info", "fhir-pain/pain-profile"),
              card("info", "fhir-pain/referral/pain-psychology", "fhir-pain/referral/physiotherapy",
                   creates=("ServiceRequest",))])
    p = "pv-nr"
    scenario("view-gabapentin-non-response", "patient-view: gabapentin for 4 months without a 30% reduction in pain: "
             "non-response card with the pain profile.",
             view("view-gabapentin-non-response", p, meds=[active("a1", p, GABAPENTIN, authored=day(-120))],
                  pain=gaba_history_for(p), conditions=[condition("phn", p, "2177002", "Postherpetic neuralgia",
                                                                  day(-400))]),
             [card("warning", "fhir-pain/analgesic-non-response"), card("info", "fhir-pain/pain-profile")])
    p = "pv-item9"
    scenario("view-phq9-item9-low-total", "patient-view: PHQ-9 total 4 (no depression flagged) but item 9 answered "
             "'several days': a warning card asks for a same-day risk assessment, above the pain profile.",
             view("view-phq9-item9-low-total", p,
                  pain=[phq9_panel("phq", p, [1, 0, 1, 0, 0, 1, 0, 0, 1], day(-2)), nrs("n1", p, 5, day(-2))]),
             [card("warning", "fhir-pain/safety/phq9-item9"), card("info", "fhir-pain/pain-profile")])
    safety_scenarios()
    product_scenarios()
    opioid_scenarios()
    p = "pv-renew"
    renewed = [active("a2", p, GABAPENTIN, authored=day(-30), prior="a1")]
    first = [medication_request("a1", p, *GABAPENTIN, status="completed", authored=day(-120))]
    scenario("view-gabapentin-renewal-linked-by-history", "patient-view: gabapentin renewed a month ago; the first "
             "request (4 months ago, completed) comes in medicationHistory, so the trial counts from it: "
             "non-response (NRS 7 -> 7).",
             view("view-gabapentin-renewal-linked-by-history", p, meds=renewed, history=first,
                  pain=gaba_history_for(p)),
             [card("warning", "fhir-pain/analgesic-non-response"), card("info", "fhir-pain/pain-profile")])
    scenario("view-gabapentin-renewal-history-missing", "patient-view: the same renewal, but the EHR could not fill "
             "medicationHistory: the renewed request's predecessor is not on hand, so response is not assessed "
             "(no guessed trial start); the pain profile says so.",
             view("view-gabapentin-renewal-history-missing", p, meds=renewed, pain=gaba_history_for(p),
                  omit=("medicationHistory",)),
             [card("info", "fhir-pain/pain-profile")])
    p = "pv-im"
    scenario("view-pgx-summary-cyp2d6-im", "patient-view: CYP2D6 intermediate metabolizer (reported phenotype): the "
             "summary's check list names every drug with actionable CPIC advice, codeine included (Moderate).",
             view("view-pgx-summary-cyp2d6-im", p, pgx=[reported_phenotype("g1", p, "CYP2D6",
                                                                           "Intermediate Metabolizer")]),
             [card("info", "fhir-pain/pgx-summary")])
    p = "pv-none"
    # with not even the patient (a required key) the answer is 412: tests/integration/test_required_prefetch.py
    scenario("view-pgx-unavailable", "patient-view where only the patient could be had (prefetch) and there is no "
             "FHIR access: one informational card saying PGx results could not be retrieved.",
             hook_request("patient-view", p, name="view-pgx-unavailable", prefetch={"patient": patient(p)}),
             [card("info", "fhir-pain/pgx-summary")])
    # ---- the spec's own examples and the sandbox captures ---------------------------------------------------
    for name, fname, hook in (("spec-order-select-r4", "order-select-L0050-example-r4.json", "order-select"),
                              ("spec-order-sign-r4", "order-sign-L0052-example-r4.json", "order-sign")):
        ctx = json.loads((FIXTURES / "cds-hooks" / fname).read_text())
        body = {"hookInstance": hook_request(hook, "x", name=name)["hookInstance"], "hook": hook, **ctx,
                "prefetch": {"patient": patient(ctx["context"]["patientId"])}}  # required: without it, 412
        scenario(name, f"The CDS Hooks hook library's R4 {hook} example (amoxicillin/clavulanate and a nutrition "
                 "order) with the patient prefetched: nothing pain- or PGx-related, so no cards.", body, [])
    for n in (1, 2, 3):
        body = json.loads((FIXTURES / f"sandbox/order-select-request-{n}.json").read_text())
        what = {1: "the Rx screen's first call, a draft with no medication at all",
                2: "amlodipine chosen", 3: "amlodipine with reasonCode/category as single objects"}[n]
        scenario(f"sandbox-order-select-{n}", f"CDS Hooks Sandbox capture: {what}; no cards.", body, [])
    body = json.loads((FIXTURES / "sandbox/order-select-request-3.json").read_text())
    med = body["context"]["draftOrders"]["entry"][0]["resource"]
    med["medicationCodeableConcept"] = {"text": "Codeine Phosphate 60 MG Oral Tablet", "coding": [
        {"display": "Codeine Phosphate 60 MG Oral Tablet", "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
         "code": "993889"}]}
    med["reasonCode"] = {"coding": [{"system": "http://snomed.info/sct", "code": "279039007",
                                     "display": "Low back pain"}], "text": "Low back pain"}
    body["hookInstance"] = hook_request("order-select", "pat-1", name="sandbox-order-select-codeine-pm")["hookInstance"]
    body["prefetch"]["pgxResults"] = {"resourceType": "Bundle", "type": "searchset",
                                      "entry": [{"resource": genotype("g1", "pat-1", "CYP2D6", "*4/*4")}]}
    scenario("sandbox-order-select-codeine-pm", "The sandbox's own request shape (Bundle without type, reasonCode as "
             "one object, RxNorm clinical drug 993889) with codeine and a CYP2D6 *4/*4 result in prefetch; the other "
             "keys are absent and there is no FHIR access: critical card that says what was missing.",
             body, [card("critical", "cpic/codeine/CYP2D6", removes=True)])
    body = json.loads((FIXTURES / "sandbox/patient-view-request.json").read_text())
    scenario("sandbox-patient-view", "CDS Hooks Sandbox patient-view capture (vitals only, keys of another service): "
             "our keys are absent and cannot be fetched: one card saying PGx results could not be retrieved.",
             body, [card("info", "fhir-pain/pgx-summary")])


def safety_scenarios() -> None:
    """Safety signals on the order hooks: PHQ-9 item 9 with a tricyclic or an opioid, the FDA limits of codeine and
    tramadol checked against the record, and a screening score alone (possible neuropathic pain)."""
    p = "item9-ami"
    scenario("select-amitriptyline-phq9-item9", "order-select of amitriptyline while PHQ-9 item 9 was answered "
             "'more than half the days' 6 days ago: a safety warning names the tricyclic's overdose toxicity and asks "
             "for a risk assessment and a limited supply (first). The patient is a CYP2C19 ultrarapid metabolizer, "
             "for whom CPIC names nortriptyline and desipramine: no tricyclic replacement draft is offered while item "
             "9 is endorsed, only the removal of the draft.",
             select("select-amitriptyline-phq9-item9", p, [d("rx1", p, AMITRIPTYLINE)],
                    pgx=[genotype("g1", p, "CYP2C19", "*17/*17"), genotype("g2", p, "CYP2D6", "*1/*1")],
                    pain=[phq9_panel("phq", p, [1, 1, 1, 0, 0, 1, 0, 0, 2], day(-6))], procedures=[], safety_obs=[]),
             [card("warning", "fhir-pain/safety/phq9-item9-overdose/amitriptyline"),
              card("warning", "cpic/amitriptyline/CYP2D6+CYP2C19", removes=True)])
    p = "item9-cod"
    scenario("sign-codeine-phq9-item9", "order-sign of codeine (CYP2D6 normal metabolizer: no genotype card) while "
             "PHQ-9 item 9, sent as its own Observation, was answered 'several days' 3 days ago: a safety warning "
             "about opioid overdose (risk assessment, limited supply, naloxone).",
             sign("sign-codeine-phq9-item9", p, [d("rx1", p, CODEINE)], pgx=[genotype("g1", p, "CYP2D6", "*1/*1")],
                  pain=[phq9_item9("i9", p, 1, day(-3)), phq9("phq", p, 8, day(-3))], procedures=[], safety_obs=[]),
             [card("warning", "fhir-pain/safety/phq9-item9-overdose/codeine")])
    p = "teen-tonsils"
    scenario("sign-codeine-post-tonsillectomy-15y", "order-sign of codeine for a 15-year-old two days after a "
             "tonsillectomy and adenoidectomy (Procedure, CPT 42821): FDA contraindication under 18 years for pain "
             "after these operations (codeine 2013, tramadol 2017), critical whatever the genotype (CYP2D6 normal "
             "metabolizer); a delete-only suggestion removes the draft.",
             sign("sign-codeine-post-tonsillectomy-15y", p, [d("rx1", p, CODEINE)], birth="2010-11-02",
                  pgx=[genotype("g1", p, "CYP2D6", "*1/*1")], safety_obs=[],
                  procedures=[procedure("pr1", p, "42821", "Tonsillectomy and adenoidectomy; age 12 or over", day(-2),
                                        system=CPT)]),
             [card("critical", "fhir-pain/fda-limit/tonsillectomy/codeine", removes=True)])
    p = "teen-osa"
    scenario("select-tramadol-osa-14y", "order-select of tramadol for a 14-year-old with obstructive sleep apnoea "
             "(ICD-10-CM G47.33; BMI-for-age percentile 88, not obese): the FDA recommends against it at 12 to 18 "
             "years (warning, removal offered). No CYP2D6 result: the CPIC pre-test alert joins the card.",
             select("select-tramadol-osa-14y", p, [d("rx1", p, TRAMADOL)], birth="2011-09-20", procedures=[],
                    conditions=[condition("osa", p, "G47.33", "Obstructive sleep apnea (adult) (pediatric)", day(-200),
                                          system=ICD10CM)],
                    safety_obs=[bmi_percentile("pct", p, 88, day(-60))]),
             [card("warning", "fhir-pain/fda-limit/breathing-risk/tramadol", "cpic-pretest/tramadol/CYP2D6",
                   creates=("ServiceRequest",), removes=True)])
    p = "bf-cod"
    scenario("sign-codeine-breastfeeding", "order-sign of codeine for a breastfeeding mother (LOINC 63895-7 "
             "'Currently breastfeeding' three weeks ago; CYP2D6 normal metabolizer): the FDA recommends against "
             "codeine while breastfeeding (warning, removal offered).",
             sign("sign-codeine-breastfeeding", p, [d("rx1", p, CODEINE)], gender="female", procedures=[],
                  pgx=[genotype("g1", p, "CYP2D6", "*1/*1")],
                  safety_obs=[breastfeeding_status("bf", p, True, day(-21))]),
             [card("warning", "fhir-pain/fda-limit/breastfeeding/codeine", removes=True)])
    p = "dn4-only"
    scenario("sign-oxycodone-dn4-only", "order-sign of oxycodone with a DN4 of 6 and no neuropathic diagnosis: "
             "neuropathic pain is only possible (NeuPSIG: a screening tool alone), so the card advises examination "
             "and lists the first-line options without offering any replacement draft (info).",
             sign("sign-oxycodone-dn4-only", p, [d("rx1", p, OXYCODONE)], pgx=[genotype("g1", p, "CYP2D6", "*1/*1")],
                  pain=[project_score("dn4", p, "dn4-total", 6, day(-30)), nrs("n1", p, 7, day(-10))],
                  procedures=[], safety_obs=[]),
             [card("info", "fhir-pain/opioid-for-neuropathic-pain")])


def hla_and_ssri_scenarios() -> None:
    """CPIC's HLA anticonvulsants (carbamazepine for trigeminal neuralgia) and the 2023 SSRI guideline."""
    tn = [condition("tn", "tn", "31681005", "Trigeminal neuralgia", day(-60))]
    p = "tn"
    scenario("sign-carbamazepine-hla-b-1502-positive", "Carbamazepine for trigeminal neuralgia in an HLA-B*15:02 "
             "carrier (GL String typing *15:02:01 + *40:01:02), never on carbamazepine before: CPIC Strong 'do not "
             "use' for carbamazepine-naive patients (SJS/TEN); the naive population is applied and named; CPIC names "
             "no alternative drug, so a delete-only suggestion removes the draft.",
             sign("sign-carbamazepine-hla-b-1502-positive", p, [d("rx1", p, CARBAMAZEPINE)],
                  pgx=[hla_genotype("h1", p, "HLA-B", ["*15:02:01", "*40:01:02"])], conditions=tn),
             [card("critical", "cpic/carbamazepine/HLA-B+HLA-A", removes=True)])
    scenario("sign-carbamazepine-hla-b-1502-negative", "Carbamazepine with an HLA-B*15:02 negative presence result "
             "(69548-6, Absent): CPIC's standard dosing (Strong), no card.",
             sign("sign-carbamazepine-hla-b-1502-negative", p, [d("rx1", p, CARBAMAZEPINE)],
                  pgx=[hla_presence("h1", p, "HLA-B", "*15:02", "absent")], conditions=tn),
             [])
    scenario("sign-carbamazepine-hla-b-unknown", "Carbamazepine with an HLA-B result whose value cannot be read "
             "('see scanned report'): uncertain, never negative; the advice safe whether *15:02 is present or not "
             "(CPIC Strong avoid for naive patients) and a confirmatory HLA-B test.",
             sign("sign-carbamazepine-hla-b-unknown", p, [d("rx1", p, CARBAMAZEPINE)],
                  pgx=[hla_presence("h1", p, "HLA-B", "*15:02", "see scanned report")], conditions=tn),
             [card("critical", "cpic/carbamazepine/HLA-B+HLA-A", creates=("ServiceRequest",), removes=True)])
    scenario("sign-carbamazepine-no-hla-pretest", "Carbamazepine ordered with no HLA-B result: CPIC recommends "
             "HLA-B*15:02 testing before carbamazepine in naive patients: pre-test card with a draft HLA-B test.",
             sign("sign-carbamazepine-no-hla-pretest", p, [d("rx1", p, CARBAMAZEPINE)], conditions=tn),
             [card("warning", "cpic-pretest/carbamazepine/HLA-B", creates=("ServiceRequest",))])
    scenario("sign-carbamazepine-hla-b-positive-over-3-months", "Renewing carbamazepine taken for 200 days (active "
             "on the medication list) in an HLA-B*15:02 carrier: CPIC's 'use > 3 months' population applies "
             "(Optional: cautiously consider, provided there was no cutaneous reaction); the card names the "
             "population and why.",
             sign("sign-carbamazepine-hla-b-positive-over-3-months", p, [d("rx1", p, CARBAMAZEPINE)],
                  pgx=[hla_genotype("h1", p, "HLA-B", ["*15:02:01", "*40:01:02"])], conditions=tn,
                  meds=[active("a1", p, CARBAMAZEPINE, authored=day(-200))]),
             [card("warning", "cpic/carbamazepine/HLA-B+HLA-A")])
    scenario("sign-carbamazepine-hla-a-3101-positive", "Carbamazepine for an HLA-A*31:01 carrier who is HLA-B*15:02 "
             "negative: CPIC Strong 'do not use if alternative agents are available' (naive); the card also says "
             "what CPIC advises when no alternative is available.",
             sign("sign-carbamazepine-hla-a-3101-positive", p, [d("rx1", p, CARBAMAZEPINE)],
                  pgx=[hla_genotype("h1", p, "HLA-B", ["*40:01:02", "*44:02:01"]),
                       hla_genotype("h2", p, "HLA-A", ["*31:01:02", "*02:01:01"])], conditions=tn),
             [card("critical", "cpic/carbamazepine/HLA-B+HLA-A", removes=True)])
    scenario("sign-oxcarbazepine-hla-a-3101-positive", "Oxcarbazepine for an HLA-A*31:01 carrier with no HLA-B "
             "result: CPIC's oxcarbazepine recommendations are keyed by HLA-B*15:02 only (no HLA-A*31:01 row), so "
             "the HLA-A result gives no card and the HLA-B pre-test alert asks for the test.",
             sign("sign-oxcarbazepine-hla-a-3101-positive", p, [d("rx1", p, OXCARBAZEPINE)],
                  pgx=[hla_genotype("h2", p, "HLA-A", ["*31:01:02", "*02:01:01"])], conditions=tn),
             [card("warning", "cpic-pretest/oxcarbazepine/HLA-B", creates=("ServiceRequest",))])
    p = "pht"
    scenario("sign-phenytoin-hla-b-negative-cyp2c9-pm", "Phenytoin for an HLA-B*15:02 negative CYP2C9 poor "
             "metabolizer (*3/*3, AS 0.0), phenytoin-naive: CPIC Strong, usual loading dose then about 50% less "
             "maintenance dose guided by drug levels.",
             sign("sign-phenytoin-hla-b-negative-cyp2c9-pm", p, [d("rx1", p, PHENYTOIN)],
                  pgx=[hla_presence("h1", p, "HLA-B", "*15:02", "absent"), genotype("g1", p, "CYP2C9", "*3/*3")]),
             [card("warning", "cpic/phenytoin/HLA-B+CYP2C9")])
    p = "ssri"
    scenario("sign-sertraline-cyp2c19-pm-cyp2b6-pm", "Sertraline for a CYP2C19 poor (*2/*2) and CYP2B6 poor (*6/*6) "
             "metabolizer: CPIC's combined row (Optional) says choose an antidepressant not primarily metabolized by "
             "CYP2C19 or CYP2B6; CPIC names no drug, so a delete-only suggestion.",
             sign("sign-sertraline-cyp2c19-pm-cyp2b6-pm", p, [d("rx1", p, SERTRALINE)],
                  pgx=[genotype("g1", p, "CYP2C19", "*2/*2"), genotype("g2", p, "CYP2B6", "*6/*6")]),
             [card("warning", "cpic/sertraline/CYP2C19+CYP2B6", removes=True)])
    p = "ssri-um"
    scenario("sign-citalopram-cyp2c19-um", "Citalopram for a CYP2C19 ultrarapid metabolizer (*17/*17): CPIC Strong, "
             "consider an antidepressant not predominantly metabolized by CYP2C19 (or a higher maintenance dose if "
             "citalopram is used and does not work).",
             sign("sign-citalopram-cyp2c19-um", p, [d("rx1", p, CITALOPRAM)],
                  pgx=[genotype("g1", p, "CYP2C19", "*17/*17")]),
             [card("warning", "cpic/citalopram/CYP2C19", removes=True)])


def coded_as(mid, pid, concept, **extra):
    """A draft order whose medication is exactly ``concept`` (or given by ``extra``, e.g. medicationReference)."""
    mr = draft(mid, pid, "0", "x")
    del mr["medicationCodeableConcept"]
    if concept is not None:
        mr["medicationCodeableConcept"] = concept
    mr.update(extra)
    return mr


def product_scenarios() -> None:
    """Orders coded the way EHRs code them: a product code alone, a brand with a number, pharmacy shorthand, a
    contained Medication; and an order nothing identifies."""
    pm = "*4/*4"
    p = "scd-only"
    scenario("sign-acetaminophen-codeine-scd-code-only-pm", "Acetaminophen 300 mg / codeine 30 mg ordered by its "
             "RxNorm clinical drug code alone (SCD 993781, no display, no text) for a CYP2D6 poor metabolizer: the "
             "product table (profiles/pgx/products.json, from OMTK) finds codeine; CPIC Strong avoid, critical; no "
             "replacement or removal of a combination product.",
             sign("sign-acetaminophen-codeine-scd-code-only-pm", p,
                  [coded_as("rx1", p, {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                   "code": "993781"}]})],
                  pgx=[genotype("g1", p, "CYP2D6", pm)]),
             [card("critical", "cpic/codeine/CYP2D6")])
    p = "tylenol3"
    scenario("sign-tylenol-3-text-only-pm", "An order written \"Tylenol #3\" with no code for a CYP2D6 poor "
             "metabolizer: the brand with its number (ISMP: Tylenol with codeine No. 3) is acetaminophen and codeine; "
             "critical.",
             sign("sign-tylenol-3-text-only-pm", p, [coded_as("rx1", p, {"text": "Tylenol #3"})],
                  pgx=[genotype("g1", p, "CYP2D6", pm)]),
             [card("critical", "cpic/codeine/CYP2D6")])
    p = "apap-cod"
    scenario("sign-apap-cod-shorthand-um", "An order written in pharmacy shorthand, \"APAP/COD 300-30 MG TAB\", "
             "for a CYP2D6 ultrarapid metabolizer: APAP is acetaminophen (ISMP), COD beside it codeine; critical.",
             sign("sign-apap-cod-shorthand-um", p, [coded_as("rx1", p, {"text": "APAP/COD 300-30 MG TAB"})],
                  pgx=[genotype("g1", p, "CYP2D6", "*1/*2x2")]),
             [card("critical", "cpic/codeine/CYP2D6")])
    p = "contained"
    med = {"resourceType": "Medication", "id": "med1",
           "code": {"coding": [{"system": "http://hl7.org/fhir/sid/ndc", "code": "50580-0488-01"}],
                    "text": "Local formulary item 4471"},
           "ingredient": [
               {"itemCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                    "code": "161", "display": "acetaminophen"}]}},
               {"itemCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                    "code": "2670", "display": "codeine"}]}}]}
    scenario("sign-contained-medication-pm", "A draft whose medication is a contained Medication (an NDC code and "
             "a local text that say nothing we know, and an ingredient list with RxNorm ingredient codes) for a "
             "CYP2D6 poor metabolizer: the ingredients identify codeine; critical.",
             sign("sign-contained-medication-pm", p,
                  [coded_as("rx1", p, None, contained=[med], medicationReference={"reference": "#med1"})],
                  pgx=[genotype("g1", p, "CYP2D6", pm)]),
             [card("critical", "cpic/codeine/CYP2D6")])
    p = "unidentified"
    scenario("sign-unidentified-order-beside-codeine-pm", "Codeine and an order nothing identifies (a local "
             "text) signed together for a CYP2D6 poor metabolizer: the codeine card also says which order was not "
             "identified and so not checked (finding fhir-pain/unidentified-orders); no card of its own.",
             sign("sign-unidentified-order-beside-codeine-pm", p,
                  [d("rx1", p, CODEINE), coded_as("rx2", p, {"text": "Magic mouthwash 5 mL swish and spit"})],
                  pgx=[genotype("g1", p, "CYP2D6", pm)]),
             [card("critical", "cpic/codeine/CYP2D6", "fhir-pain/unidentified-orders", removes=True)])
    scenario("sign-unidentified-order-alone", "Only an order nothing identifies (an NDC code alone): no advice, so "
             "no card; the unidentified order alone never makes one.",
             sign("sign-unidentified-order-alone", p,
                  [coded_as("rx2", p, {"coding": [{"system": "http://hl7.org/fhir/sid/ndc", "code": "0000-0000-00"}]})],
                  pgx=[genotype("g1", p, "CYP2D6", pm)]),
             [])


# ---- opioid safety (CDC 2022) ------------------------------------------------------------------------------------

def dosed(mid, pid, code, display, dose, unit, *, every_h=None, per_day=None, timing_code=None, status="active",
          authored=None, prn_max=None, course=None, supply_days=None):
    """A MedicationRequest with a realistic dosage: ``dose`` ``unit`` every ``every_h`` hours (or ``per_day``
    times a day, or a timing code), optionally as needed with a daily maximum, a course of therapy and a supply."""
    mr = medication_request(mid, pid, code, display, status=status,
                            authored=authored or (day(0) if status == "draft" else day(-200)))
    di = {"doseAndRate": [{"doseQuantity": {"value": dose, "unit": unit, "system": "http://unitsofmeasure.org",
                                            "code": unit}}]}
    if every_h:
        di["timing"] = {"repeat": {"frequency": 1, "period": every_h, "periodUnit": "h"}}
    elif per_day:
        di["timing"] = {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}}
    elif timing_code:
        di["timing"] = {"code": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation",
                                             "code": timing_code}]}}
    if prn_max:
        di["asNeededBoolean"] = True
        di["maxDosePerPeriod"] = {"numerator": {"value": prn_max, "unit": unit, "system": "http://unitsofmeasure.org",
                                                "code": unit},
                                  "denominator": {"value": 1, "unit": "d", "system": "http://unitsofmeasure.org",
                                                  "code": "d"}}
    mr["dosageInstruction"] = [di]
    if course:
        mr["courseOfTherapyType"] = {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy", "code": course}]}
    if supply_days:
        mr["dispenseRequest"] = {"expectedSupplyDuration": {"value": supply_days, "unit": "days",
                                                            "system": "http://unitsofmeasure.org", "code": "d"}}
    return mr


def prn_without_limit(mr):
    mr["dosageInstruction"][0]["asNeededBoolean"] = True
    return mr


def drug_test(oid, pid, when):
    return {"resourceType": "Observation", "id": oid, "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "laboratory"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "19295-5",
                                 "display": "Opiates [Presence] in Urine by Screen method"}]},
            "subject": {"reference": f"Patient/{pid}"}, "effectiveDateTime": when,
            "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "260385009",
                                                 "display": "Negative"}]}}


def with_tests(request, pid, *tests):
    """The opioidTests prefetch key (laboratory results) filled, as an EHR would."""
    from golden.fhir_builders import searchset
    request["prefetch"]["opioidTests"] = searchset(*tests)
    return request


MORPHINE_ER_30 = ("891885", "12 HR morphine sulfate 30 MG Extended Release Oral Tablet")
OXY_5 = ("1049621", "oxycodone hydrochloride 5 MG Oral Tablet")
OXY_APAP = ("1049221", "acetaminophen 325 MG / oxycodone hydrochloride 5 MG Oral Tablet")
TRAMADOL_50 = ("835603", "tramadol hydrochloride 50 MG Oral Tablet")
OXYCONTIN_10 = ("1049504", "Abuse-Deterrent 12 HR oxycodone hydrochloride 10 MG Extended Release Oral Tablet "
                           "[Oxycontin]")
HYDROMORPHONE_2 = ("897696", "hydromorphone hydrochloride 2 MG Oral Tablet")
FENTANYL_25 = ("245134", "72 HR fentanyl 0.025 MG/HR Transdermal System")
ALPRAZOLAM = ("308048", "alprazolam 0.5 MG Oral Tablet")
ZOLPIDEM = ("854873", "zolpidem tartrate 10 MG Oral Tablet")
PREGABALIN = ("187832", "pregabalin 75 MG Oral Capsule")
NALOXONE = ("1725059", "naloxone hydrochloride 40 MG/ML Nasal Spray")


def opioid_scenarios() -> None:
    """CDC 2022 opioid safety: MME thresholds, co-prescribing from either side, ER/LA for the opioid-naive, acute
    supply, naloxone, opioid use disorder, urine drug test, and the exclusions. Doses are realistic and each MME is
    worked in the description."""
    p = "op-um-80"
    scenario("sign-tramadol-cyp2d6-um-80mme-alprazolam",
             "order-sign of tramadol 50 mg every 6 h (200 mg x 0.2 = 40 MME/d) for a CYP2D6 ultrarapid metabolizer "
             "(*1/*2x2) already on morphine ER 30 mg every 12 h (60 mg x 1 = 60) and oxycodone 5 mg twice a day "
             "(10 mg x 1.5 = 15; 75 + 40 = 115 MME/d) and alprazolam: ONE critical card for the tramadol order with "
             "CPIC's avoid, the 90 MME threshold, the benzodiazepine, the naloxone offer (a naloxone draft) and the "
             "missing urine drug test. The suggestions agree: remove the tramadol draft (no replacement opioid is "
             "drafted), order naloxone.",
             with_tests(sign("sign-tramadol-cyp2d6-um-80mme-alprazolam", p,
                             [dosed("rx1", p, *TRAMADOL_50, 1, "{tbl}", every_h=6, status="draft")],
                             pgx=[genotype("g1", p, "CYP2D6", "*1/*2x2")],
                             meds=[dosed("a1", p, *MORPHINE_ER_30, 1, "{tbl}", every_h=12),
                                   dosed("a2", p, *OXY_5, 1, "{tbl}", timing_code="BID"),
                                   dosed("a3", p, *ALPRAZOLAM, 1, "{tbl}", timing_code="TID")],
                             procedures=[], safety_obs=[]), p),
             [card("critical", "cpic/tramadol/CYP2D6", "cdc2022/mme-90", "cdc2022/opioid-benzodiazepine",
                   "cdc2022/offer-naloxone", "cdc2022/urine-drug-test", creates=("MedicationRequest",),
                   removes=True)])
    p = "op-55"
    scenario("sign-oxycodone-apap-55mme",
             "order-sign of acetaminophen/oxycodone 325/5, 1 tablet every 4 h as needed, at most 6 a day "
             "(30 mg x 1.5 = 45 MME/d) with tramadol 50 mg twice a day on the list (100 mg x 0.2 = 20): 65 MME/d, "
             "at or above 50: reassess (warning), naloxone offered (a combination product: no removal draft, the "
             "prescriber reduces it); CYP2D6 normal metabolizer, a urine drug test 3 months ago.",
             with_tests(sign("sign-oxycodone-apap-55mme", p,
                             [dosed("rx1", p, *OXY_APAP, 1, "{tbl}", every_h=4, prn_max=6, status="draft")],
                             pgx=[genotype("g1", p, "CYP2D6", "*1/*1")],
                             meds=[dosed("a1", p, *TRAMADOL_50, 1, "{tbl}", timing_code="BID")],
                             procedures=[], safety_obs=[]), p, drug_test("udt", p, day(-90))),
             [card("warning", "cdc2022/mme-50", "cdc2022/offer-naloxone", creates=("MedicationRequest",))])
    p = "op-benzo-side"
    scenario("select-alprazolam-with-active-oxycodone",
             "order-select of alprazolam while oxycodone 5 mg every 6 h is on the list (30 MME/d): the "
             "benzodiazepine rule fires from the benzodiazepine's side (critical, removal offered).",
             with_tests(select("select-alprazolam-with-active-oxycodone", p,
                               [dosed("rx1", p, *ALPRAZOLAM, 1, "{tbl}", timing_code="BID", status="draft")],
                               meds=[dosed("a1", p, *OXY_5, 1, "{tbl}", every_h=6, authored=day(-30))],
                               procedures=[], safety_obs=[]), p),
             [card("critical", "cdc2022/opioid-benzodiazepine", removes=True)])
    p = "op-gaba-side"
    scenario("sign-pregabalin-with-active-morphine",
             "order-sign of pregabalin 75 mg twice a day while morphine ER 30 mg every 12 h (60 MME/d) is on the "
             "list: FDA 2019 warning on gabapentinoids with opioids (warning, removal offered).",
             with_tests(sign("sign-pregabalin-with-active-morphine", p,
                             [dosed("rx1", p, *PREGABALIN, 1, "{capsule}", timing_code="BID", status="draft")],
                             meds=[dosed("a1", p, *MORPHINE_ER_30, 1, "{tbl}", every_h=12, authored=day(-30))],
                             procedures=[], safety_obs=[]), p),
             [card("warning", "fda2019/opioid-gabapentinoid", removes=True)])
    p = "op-cns"
    scenario("sign-oxycodone-with-zolpidem",
             "order-sign of oxycodone 5 mg every 6 h (30 MME/d) for a patient taking zolpidem (another CNS "
             "depressant): warning, removal offered.",
             with_tests(sign("sign-oxycodone-with-zolpidem", p,
                             [dosed("rx1", p, *OXY_5, 1, "{tbl}", every_h=6, status="draft")],
                             pgx=[genotype("g1", p, "CYP2D6", "*1/*1")],
                             meds=[dosed("a1", p, *ZOLPIDEM, 1, "{tbl}", timing_code="QHS", authored=day(-30))],
                             procedures=[], safety_obs=[]), p),
             [card("warning", "cdc2022/opioid-cns-depressant", removes=True)])
    p = "op-naive"
    scenario("sign-oxycontin-opioid-naive",
             "order-sign of OxyContin 10 mg every 12 h (20 mg x 1.5 = 30 MME/d) for a patient with no opioid in the "
             "past 90 days (an oxycodone course completed 200 days ago): ER/LA opioid for an opioid-naive patient "
             "(critical, removal offered).",
             with_tests(sign("sign-oxycontin-opioid-naive", p,
                             [dosed("rx1", p, *OXYCONTIN_10, 1, "{tbl}", every_h=12, status="draft")],
                             pgx=[genotype("g1", p, "CYP2D6", "*1/*1")],
                             history=[dosed("h1", p, *OXY_5, 1, "{tbl}", every_h=6, status="completed",
                                            authored=day(-200))],
                             procedures=[], safety_obs=[]), p),
             [card("critical", "cdc2022/er-la-opioid-naive", removes=True)])
    p = "op-acute"
    scenario("sign-oxycodone-acute-14-days",
             "order-sign of oxycodone 5 mg every 6 h as needed, at most 4 a day (30 MME/d), for acute pain with a "
             "14-day supply: more than 7 days (warning).",
             with_tests(sign("sign-oxycodone-acute-14-days", p,
                             [dosed("rx1", p, *OXY_5, 1, "{tbl}", every_h=6, prn_max=4, status="draft",
                                    course="acute", supply_days=14)],
                             pgx=[genotype("g1", p, "CYP2D6", "*1/*1")], procedures=[], safety_obs=[]), p),
             [card("warning", "cdc2022/acute-over-7-days")])
    p = "op-oud"
    scenario("view-opioid-use-disorder-fentanyl-patch",
             "patient-view: fentanyl 25 mcg/h patch (25 x 2.4 = 60 MME/d) and opioid use disorder (ICD-10-CM "
             "F11.20) on the problem list, no naloxone, a urine drug test 2 months ago: one opioid card with the "
             "total (60 MME/d), the 50 MME threshold, naloxone (a draft) and the offer of medication for OUD.",
             with_tests(view("view-opioid-use-disorder-fentanyl-patch", p,
                             meds=[dosed("a1", p, *FENTANYL_25, 1, "{patch}", every_h=72)],
                             conditions=[condition("oud", p, "F11.20", "Opioid dependence, uncomplicated", day(-400),
                                                   system=ICD10CM)],
                             procedures=[], safety_obs=[]), p, drug_test("udt", p, day(-60))),
             [card("warning", "cdc2022/mme-total", "cdc2022/mme-50", "cdc2022/offer-naloxone", "cdc2022/offer-moud",
                   creates=("MedicationRequest",))])
    p = "op-udt"
    scenario("view-long-term-oxycodone-no-drug-test",
             "patient-view: oxycodone 5 mg every 6 h for 200 days (30 MME/d), naloxone on file, no urine drug test "
             "in 12 months: the total and the test (info).",
             with_tests(view("view-long-term-oxycodone-no-drug-test", p,
                             meds=[dosed("a1", p, *OXY_5, 1, "{tbl}", every_h=6),
                                   dosed("a2", p, *NALOXONE, 1, "{spray}", timing_code="QD")],
                             procedures=[], safety_obs=[]), p, drug_test("old", p, day(-400))),
             [card("info", "cdc2022/mme-total", "cdc2022/urine-drug-test")])
    p = "op-cancer"
    scenario("sign-hydromorphone-cancer-excluded",
             "order-sign of hydromorphone 2 mg, 2 tablets every 4 h (24 mg x 5 = 120 MME/d) with alprazolam, for a "
             "patient with lung cancer (ICD-10-CM C34.90): outside the CDC guideline, no opioid-safety card.",
             with_tests(sign("sign-hydromorphone-cancer-excluded", p,
                             [dosed("rx1", p, *HYDROMORPHONE_2, 2, "{tbl}", every_h=4, status="draft")],
                             pgx=[genotype("g1", p, "CYP2D6", "*1/*1")],
                             meds=[dosed("a1", p, *ALPRAZOLAM, 1, "{tbl}", timing_code="BID")],
                             conditions=[condition("ca", p, "C34.90", "Malignant neoplasm of unspecified part of "
                                                   "unspecified bronchus or lung", day(-60), system=ICD10CM)],
                             procedures=[], safety_obs=[]), p),
             [])
    p = "op-sickle"
    scenario("view-sickle-cell-excluded",
             "patient-view: hydromorphone 2 mg, 2 tablets every 4 h (120 MME/d) and alprazolam, sickle cell disease "
             "(ICD-10-CM D57.1): the total is shown with the exclusion; no threshold, benzodiazepine or naloxone "
             "alert.",
             with_tests(view("view-sickle-cell-excluded", p,
                             meds=[dosed("a1", p, *HYDROMORPHONE_2, 2, "{tbl}", every_h=4),
                                   dosed("a2", p, *ALPRAZOLAM, 1, "{tbl}", timing_code="BID")],
                             conditions=[condition("scd", p, "D57.1", "Sickle-cell disease without crisis",
                                                   day(-4000), system=ICD10CM)],
                             procedures=[], safety_obs=[]), p),
             [card("info", "cdc2022/mme-total")])
    p = "op-hospice"
    scenario("sign-morphine-hospice-excluded",
             "order-sign of morphine ER 30 mg every 12 h (60 MME/d), opioid-naive, for a patient in hospice care "
             "(SNOMED CT 170935008 'Full care by hospice'): outside the CDC guideline, no opioid-safety card.",
             with_tests(sign("sign-morphine-hospice-excluded", p,
                             [dosed("rx1", p, *MORPHINE_ER_30, 1, "{tbl}", every_h=12, status="draft")],
                             pgx=[genotype("g1", p, "CYP2D6", "*1/*1")],
                             conditions=[condition("hos", p, "170935008", "Full care by hospice", day(-10))],
                             procedures=[], safety_obs=[]), p),
             [])
    p = "op-unread"
    scenario("sign-oxycodone-prn-unreadable-with-alprazolam",
             "order-sign of oxycodone 5 mg as needed with no frequency and no daily maximum, alprazolam on the list: "
             "the MME cannot be computed and the card says which order (no number); the benzodiazepine warning "
             "stands.",
             with_tests(sign("sign-oxycodone-prn-unreadable-with-alprazolam", p,
                             [prn_without_limit(dosed("rx1", p, *OXY_5, 1, "{tbl}", status="draft"))],
                             pgx=[genotype("g1", p, "CYP2D6", "*1/*1")],
                             meds=[dosed("a1", p, *ALPRAZOLAM, 1, "{tbl}", timing_code="BID")],
                             procedures=[], safety_obs=[]), p, drug_test("udt", p, day(-30))),
             [card("critical", "cdc2022/mme-unreadable", "cdc2022/opioid-benzodiazepine", "cdc2022/offer-naloxone",
                   creates=("MedicationRequest",), removes=True)])


def gaba_history_for(p):
    return [nrs("nrs0", p, 7, day(-130)), nrs("nrs1", p, 7, day(-60)), nrs("nrs2", p, 7, day(-7))]


def main() -> None:
    build()
    hla_and_ssri_scenarios()
    for name, (request, about) in SCENARIOS.items():
        folder = HERE / name
        folder.mkdir(exist_ok=True)
        (folder / "request.json").write_text(json.dumps(request, indent=2, ensure_ascii=False) + "\n")
        (folder / "about.json").write_text(json.dumps(about, indent=2, ensure_ascii=False) + "\n")
    print(f"{len(SCENARIOS)} scenarios written to {HERE}")


if __name__ == "__main__":
    main()
