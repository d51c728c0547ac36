"""The FDA's limits of codeine and tramadol beyond the age of 12, checked against the patient's records
(FDA Drug Safety Communication 2017-04-20; codeine after tonsillectomy since 2013-02-20):

- tonsillectomy:  contraindicated under 18 years for pain after tonsillectomy and/or adenoidectomy. A procedure
                  (or a "status post" condition) dated within recentDays of now counts: the labels contraindicate
                  postoperative pain management. Undated: a warning that says so.
- breathing-risk: not recommended at 12 to 17 years with obesity, obstructive sleep apnoea or severe lung disease
                  (coded conditions; obesity also from BMI-for-age percentile >= 95, or BMI).
- breastfeeding:  not recommended while breastfeeding (status Observation, else a lactation Condition).

Under 12 the age contraindication (fhir_pain.rules.age_limits) speaks and these stay silent. Each finding joins
the drug's card, offers removing the draft (never an active medication) and is kind "safety".
Knowledge, code lists and their sources: profiles/rules/age-limits.json ("restrictions", "codeLists").
"""
from __future__ import annotations

from datetime import timedelta
from functools import lru_cache

from fhir_pain.facts import Drug, Finding, MedicationUse
from fhir_pain.gather import CONDITIONS, PATIENT, PROCEDURES, SAFETY_OBSERVATIONS
from fhir_pain.rules.age_limits import age_bounds
from fhir_pain.rules.context import RuleContext
from fhir_pain.rules.drug_gene import handling
from fhir_pain.rules.knowledge import age_limits
from fhir_pain.codesystems import LOINC_SYSTEM
from fhir_pain.rules.records import Reading, Record, conditions_in, latest, procedures_in, within
from fhir_pain.rules.text import evidence_md, fit, join_and, md, sources_md


def observation_codes() -> tuple[str, ...]:
    """The Observation codes these rules read (without system, for the services' prefetch template)."""
    r = age_limits()["restrictions"]
    codes = [r["breathing-risk"]["bmiPercentile"]["loinc"], r["breathing-risk"]["bmi"]["loinc"],
             *(c.rsplit("|", 1)[-1] for c in r["breastfeeding"]["statusObservation"]["codes"])]
    return tuple(dict.fromkeys(codes))


def fda_limit_findings(ctx: RuleContext, med: MedicationUse, drug: Drug) -> list[Finding]:
    """Every FDA limit that ``drug`` (an ingredient of ``med``) meets for this patient, most severe first."""
    if drug.name not in _limited_drugs():
        return []
    bounds = age_bounds(ctx.patient, ctx.now.date())
    out = [f for f in (_tonsillectomy(ctx, med, drug, bounds), _breathing_risk(ctx, med, drug, bounds),
                       _breastfeeding(ctx, med, drug)) if f is not None]
    return out


@lru_cache(maxsize=1)
def _limited_drugs() -> frozenset[str]:
    """Every drug some restriction names (most ordered drugs have none: one look-up says so)."""
    return frozenset(d for r in age_limits()["restrictions"].values() for d in r["drugs"])


@lru_cache(maxsize=1)
def _status_codes() -> frozenset[str]:
    """The breastfeeding status Observation codes, "system|code" and bare "|code" (a coding without system)."""
    codes = age_limits()["restrictions"]["breastfeeding"]["statusObservation"]["codes"]
    return frozenset(codes) | {f"|{c.rsplit('|', 1)[-1]}" for c in codes}


# ---- the three limits -------------------------------------------------------------------------------------------

def _adolescent(r: dict, bounds) -> tuple[bool, str] | None:
    """(certainly in [fromYears, underYears), age words) or None when the patient is not (or may not be) in it:
    under fromYears the age limit speaks; with no readable birth date nothing is said about age."""
    if bounds is None:
        return None
    youngest, oldest, born = bounds
    if youngest < r["fromYears"] or youngest >= r["underYears"]:
        return None
    age = f"{oldest}" if youngest == oldest else f"{youngest} or {oldest}"
    return oldest < r["underYears"], age


def _adolescent_limit(name: str, drug: Drug, bounds) -> tuple[dict, bool, str] | None:
    """(the restriction, age certain, age words) when restriction ``name`` covers ``drug`` at this age."""
    r = age_limits()["restrictions"][name]
    if drug.name not in r["drugs"]:
        return None
    adolescent = _adolescent(r, bounds)
    return None if adolescent is None else (r, *adolescent)


def _tonsillectomy(ctx: RuleContext, med: MedicationUse, drug: Drug, bounds) -> Finding | None:
    limit = _adolescent_limit("tonsillectomy", drug, bounds)
    if limit is None:
        return None
    r, age_certain, age = limit
    records = _records(ctx, r["codeLists"], procedures=True)
    dated = [x for x in records if within(x.when, ctx.now, r["recentDays"], r["recentDays"])]
    undated = [x for x in records if x.when is None]
    found = dated or undated
    if not found:
        return None
    certain = age_certain and bool(dated) and any(x.confirmed for x in dated)
    what = _listed(found)
    under = r["underYears"]
    if dated:
        summary = fit(f"Age {age}, tonsillectomy/adenoidectomy on record: {drug.name} is contraindicated for pain "
                      f"after it under {under} (FDA)",
                      f"Age {age}, after tonsillectomy/adenoidectomy: {drug.name} contraindicated under {under} (FDA)")
        when = (f"The operation is dated within {r['recentDays']} days of today, so this order may be for pain "
                "after it.")
    else:
        summary = fit(f"Age {age}, tonsillectomy/adenoidectomy on record (date not recorded): {drug.name} is "
                      f"contraindicated after it under {under} (FDA)",
                      f"Age {age}, tonsillectomy/adenoidectomy (undated): {drug.name} contraindicated after it (FDA)")
        when = ("The record carries no date: if this order is for pain after the operation, it is contraindicated.")
    lines = [
        f"**Why:** the patient is {md(age)} years old{_born(bounds)} and the record shows {what}. {when} The FDA "
        f"contraindicates codeine (since 2013) and tramadol (since 2017) in children younger than {under} years to "
        "treat pain after surgery to remove the tonsils and/or adenoids: deaths and life-threatening breathing "
        "problems were reported, several in CYP2D6 ultrarapid metabolizers, after doses in the usual range.",
        (f"**Advised:** do not give {md(drug.name)} for pain after this operation; choose another analgesic "
         "(codeine and tramadol carry the same limit). " + handling(med)).rstrip(),
    ]
    if not age_certain:
        lines.append(f"**Check:** the birth date on file is partial ({md(bounds[2])}): the patient may be {under} "
                     "already.")
    return _finding(ctx, r, med, drug, summary, lines, _refs(found), certain)


def _breathing_risk(ctx: RuleContext, med: MedicationUse, drug: Drug, bounds) -> Finding | None:
    limit = _adolescent_limit("breathing-risk", drug, bounds)
    if limit is None:
        return None
    r, age_certain, age = limit
    labels: list[str] = []      # the code lists' names, for the summary
    reasons: list[str] = []     # what the record shows, for the detail
    evidence: list[str] = []
    lists = age_limits()["codeLists"]
    for list_name in r["codeLists"]:
        current = conditions_in(ctx.conditions, list_name)
        if current:
            labels.append(lists[list_name]["label"])
            reasons.append(f"{lists[list_name]['label']}: {_listed(current)}")
            evidence += [x.ref for x in current]
    if "obesity" not in labels:
        weight = _weight_status(ctx, r)
        if weight is not None:
            labels.append("likely obesity" if weight[0].startswith("likely") else "obesity")
            reasons.append(weight[0])
            evidence.append(weight[1])
    if not reasons:
        return None
    under = r["underYears"]
    summary = fit(f"Age {age} with {join_and(labels)}: {drug.name} not recommended at 12 to 18 years (FDA)",
                  f"Age {age}, breathing risk on record: {drug.name} not recommended at 12 to 18 (FDA)")
    lines = [
        f"**Why:** the patient is {md(age)} years old{_born(bounds)}; on record: " + "; ".join(reasons) + ". The FDA "
        "recommends against codeine and tramadol in adolescents between 12 and 18 years who are obese or have "
        "conditions such as obstructive sleep apnoea or severe lung disease, which may increase the risk of "
        "serious breathing problems.",
        (f"**Advised:** choose another analgesic. If {md(drug.name)} is given all the same, use the lowest dose for "
         "the shortest time and tell the family the signs of breathing problems (slow or shallow breathing, "
         "unusual sleepiness, confusion). " + handling(med)).rstrip(),
    ]
    if not age_certain:
        lines.append(f"**Check:** the birth date on file is partial ({md(bounds[2])}): the patient may be {under} "
                     "already.")
    return _finding(ctx, r, med, drug, summary, lines, tuple(dict.fromkeys(e for e in evidence if e)), True)


def _weight_status(ctx: RuleContext, r: dict) -> tuple[str, str] | None:
    """(plain words, Observation ref) when the latest BMI-for-age percentile, else BMI, says obesity."""
    pct, bmi = r["bmiPercentile"], r["bmi"]
    reading = latest(ctx.observations, {f"{LOINC_SYSTEM}|{pct['loinc']}", f"|{pct['loinc']}"}, ctx.now,
                     r["lookbackDays"])
    if reading is not None and reading.value is not None:
        if reading.value >= pct["atLeast"]:
            return (f"obesity: {pct['label']} {reading.value:g}{_unit(reading, pct)} on {_day(reading)} "
                    f"(at or above the {pct['atLeast']:g}th percentile)"), reading.ref
        return None   # a percentile under the cut-off settles it
    reading = latest(ctx.observations, {f"{LOINC_SYSTEM}|{bmi['loinc']}", f"|{bmi['loinc']}"}, ctx.now,
                     r["lookbackDays"])
    if reading is None or reading.value is None or reading.value < bmi["atLeast"]:
        return None
    if reading.value >= bmi.get("certainAtLeast", bmi["atLeast"]):
        return (f"obesity: {bmi['label']} {reading.value:g} {bmi['unit']} on {_day(reading)} (severe obesity at "
                f"any age: {bmi.get('certainAtLeast', bmi['atLeast']):g} or more)"), reading.ref
    return (f"likely obesity: {bmi['label']} {reading.value:g} {bmi['unit']} on {_day(reading)} (no BMI-for-age "
            f"percentile on file; check it: obesity is the {pct['atLeast']:g}th percentile or above)"), reading.ref


def _breastfeeding(ctx: RuleContext, med: MedicationUse, drug: Drug) -> Finding | None:
    r = age_limits()["restrictions"]["breastfeeding"]
    if drug.name not in r["drugs"]:
        return None
    status = r["statusObservation"]
    reading = latest(ctx.observations, _status_codes(), ctx.now, r["lookbackDays"])
    says = _answer(reading, status) if reading is not None else None
    records = [x for x in conditions_in(ctx.conditions, "breastfeeding")
               if within(x.when, ctx.now, r["lookbackDays"], 1) is not False]
    if says is False:
        # a later "not breastfeeding" answer outweighs a lactation condition recorded before it
        records = [x for x in records if x.when is not None and x.when.at > reading.when.at]
    if not says and not records:
        return None
    if says:
        what, evidence = f"breastfeeding status \"currently breastfeeding\" on {_day(reading)}", (reading.ref,)
    else:
        what, evidence = _listed(records), _refs(records)
    summary = fit(f"Breastfeeding on record: {drug.name} is not recommended while breastfeeding (FDA)",
                  f"Breastfeeding: {drug.name} not recommended (FDA)")
    lines = [
        f"**Why:** the record shows {what}. The FDA recommends against {md(drug.name)} while breastfeeding: "
        "breastfed infants may get excess sleepiness, difficulty breastfeeding or serious breathing problems, "
        "which could result in death (CYP2D6 turns codeine and tramadol into more potent opioids, morphine and "
        "O-desmethyltramadol, that reach breast milk; more so in mothers who are ultrarapid metabolizers).",
        ("**Advised:** choose another analgesic. If an opioid is needed, tell the mother the signs of overdose in "
         "the infant (unusual sleepiness, difficulty breastfeeding, breathing problems, limpness). "
         + handling(med)).rstrip(),
    ]
    return _finding(ctx, r, med, drug, summary, lines, tuple(e for e in evidence if e), True)


# ---- helpers -----------------------------------------------------------------------------------------------------

def _answer(reading: Reading, status: dict) -> bool | None:
    yes = set(status["yes"]) | {"boolean|true"}
    no = set(status["no"]) | {"boolean|false"}
    if reading.answers & yes:
        return True
    if reading.answers & no:
        return False
    return None


def _records(ctx: RuleContext, lists: list[str], *, procedures: bool) -> list[Record]:
    out: list[Record] = []
    for name in lists:
        if procedures:
            out += procedures_in(ctx.procedures, name)
        out += conditions_in(ctx.conditions, name)
    return out


def _listed(records: list[Record]) -> str:
    return join_and([md(x.describe()) for x in records])


def _refs(records: list[Record]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(x.ref for x in records if x.ref))


def _born(bounds) -> str:
    return f" (born {md(bounds[2])})" if bounds else ""


def _day(reading: Reading) -> str:
    t = reading.when
    return (t.local or t.at).date().isoformat() if t.precision == "time" else t.isoformat()


def _unit(reading: Reading, spec: dict) -> str:
    return "%" if spec["unit"] == "%" else f" {spec['unit']}"


_MISSING = {"fhir-pain/fda-limit/tonsillectomy": (PATIENT, PROCEDURES, CONDITIONS),
            "fhir-pain/fda-limit/breathing-risk": (PATIENT, CONDITIONS, SAFETY_OBSERVATIONS),
            "fhir-pain/fda-limit/breastfeeding": (CONDITIONS, SAFETY_OBSERVATIONS)}


def _finding(ctx: RuleContext, r: dict, med: MedicationUse, drug: Drug, summary: str, lines: list[str],
             evidence: tuple[str, ...], certain: bool) -> Finding:
    refs = tuple(dict.fromkeys((*evidence, *([med.ref] if med.ref and not med.ref.startswith("urn:") else []))))
    if evidence:
        lines.append(evidence_md(refs))
    lines.append(sources_md(r["sources"]))
    indicator = r["indicator"] if certain else r.get("uncertainIndicator", r["indicator"])
    return Finding(
        rule=f"{r['id']}/{drug.name}", kind=r["kind"], indicator=indicator, action=r["action"], summary=summary,
        detail="\n\n".join(lines), drug=drug, medication=med, evidence=refs, knowledge=dict(r["knowledge"]),
        # the drug's card; a contraindication leads it (outranks genotype advice), a warning joins it
        extra={"joins": "drug", "primary": indicator == "critical", "offerRemoval": True,
               "relevantMissing": _MISSING.get(r["id"], ())},
    )
