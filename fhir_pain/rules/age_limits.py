"""Age limits: codeine and tramadol are contraindicated in children under 12 (FDA 2017, cited by CPIC's opioid
guideline), whatever the genotype: a child's CYP2D6 result is often unknown and ultrarapid metabolizers are at
risk of fatal respiratory depression.

The age comes from Patient.birthDate (prefetch key ``patient``). No readable birth date: nothing is said about age.
A partial birth date (year or year-month) is an interval: the patient is under the limit when even the earliest
possible birth date is, and *may* be under it when only the latest one is (a warning that says so). The FDA's
other limits of the same drugs (tonsillectomy, breathing risk, breastfeeding) are fhir_pain.rules.fda_limits.
Knowledge: profiles/rules/age-limits.json.
"""
from __future__ import annotations

from datetime import date, timedelta

from fhir_pain import fhirdates
from fhir_pain.facts import Drug, Finding, MedicationUse
from fhir_pain.rules.context import RuleContext
from fhir_pain.rules.drug_gene import handling
from fhir_pain.rules.knowledge import age_limits
from fhir_pain.rules.text import evidence_md, fit, md, sources_md


def age_in_years(born: date, on: date) -> int:
    """Completed years on ``on`` (a 29 February birthday counts on 1 March in common years)."""
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def age_bounds(patient: dict | None, on: date) -> tuple[int, int, str] | None:
    """(youngest possible age, oldest possible age, birth date as written), or None when the birth date is missing,
    unreadable or after ``on`` (bad data: no age is claimed from it)."""
    raw = patient.get("birthDate") if isinstance(patient, dict) else None
    born = fhirdates.parse(raw)
    if born is None:
        return None
    earliest = born.earliest.date()
    latest = (born.latest - timedelta(microseconds=1)).date()   # last day the partial date can mean
    if earliest > on:
        return None
    return age_in_years(min(latest, on), on), age_in_years(earliest, on), born.isoformat()


def age_limit_finding(ctx: RuleContext, med: MedicationUse, drug: Drug) -> Finding | None:
    """The contraindication finding for ``drug`` (an ingredient of ``med``), or None when the drug has no age limit,
    the age is unknown or the patient is old enough."""
    knowledge = age_limits()
    limit = knowledge["drugs"].get(drug.name)
    if limit is None:
        return None
    bounds = age_bounds(ctx.patient, ctx.now.date())
    if bounds is None:
        return None
    youngest, oldest, born = bounds
    under = limit["underYears"]
    if youngest >= under:
        return None
    r = knowledge["rule"]
    certain = oldest < under
    age = f"{oldest}" if youngest == oldest else f"{youngest} or {oldest}"
    if certain:
        summary = fit(f"Age {age}: {drug.name} is contraindicated under {under} years (FDA), whatever the genotype",
                      f"Age {age}: {drug.name} is contraindicated under {under} years (FDA)")
        why = (f"**Why:** the patient is {md(age)} years old (born {md(born)}). The FDA contraindicates "
               f"{md(drug.name)} for {md(limit['uses'])} in children under {under} years after reports of serious "
               "breathing problems and deaths, many in CYP2D6 ultrarapid metabolizers. CPIC's opioid guideline "
               "cites this contraindication; it holds whatever the CYP2D6 result.")
    else:
        summary = fit(f"Birth date {born} on file is partial: patient may be under {under}, when {drug.name} is "
                      "contraindicated (FDA)",
                      f"Patient may be under {under} (partial birth date): {drug.name} contraindicated (FDA)")
        why = (f"**Why:** the birth date on file is partial ({md(born)}), so the patient is {md(age)} years old. "
               f"The FDA contraindicates {md(drug.name)} for {md(limit['uses'])} in children under {under} years, "
               "whatever the CYP2D6 result (CPIC's opioid guideline cites this). Check the birth date before "
               "prescribing.")
    lines = [why,
             (f"**Advised:** do not give {md(drug.name)} to this patient; choose another analgesic (codeine and "
             "tramadol carry the same limit). " + handling(med)).rstrip()]
    evidence = tuple(dict.fromkeys(ref for ref in (_patient_ref(ctx), med.ref) if ref and not ref.startswith("urn:")))
    if evidence:
        lines.append(evidence_md(evidence))
    lines.append(sources_md(r["sources"]))
    return Finding(
        rule=f"{r['id']}/{drug.name}", kind=r["kind"], indicator=r["indicator"] if certain else r["uncertainIndicator"],
        action=r["action"], summary=summary, detail="\n\n".join(lines), drug=drug, medication=med, evidence=evidence,
        knowledge=dict(r["knowledge"]),
        # one card per drug, led by this finding: the age limit outranks any genotype-based advice for the drug
        extra={"joins": "drug", "primary": True, "offerRemoval": True, "relevantMissing": ()},
    )


def _patient_ref(ctx: RuleContext) -> str | None:
    pid = (ctx.patient or {}).get("id") or ctx.patient_id
    return f"Patient/{pid}" if isinstance(pid, str) and pid else None
