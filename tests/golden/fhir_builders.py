"""Realistic FHIR R4 JSON for the tests: PGx results as the Genomics Reporting IG and labs send them, pain
instruments with LOINC/project codes, Conditions, MedicationRequests (active and draft) and CDS Hooks requests.

Used by tests/golden/build_requests.py (which writes the golden request.json files) and by the unit tests.
Every builder returns plain dicts; ``tests/golden/test_golden.py`` validates the fixtures with fhir.resources.
"""
from __future__ import annotations

import uuid
from datetime import date, timedelta

LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED = "http://snomed.info/sct"
PHARMVAR = "http://www.pharmvar.org"
HGNC = "http://www.genenames.org/geneId"
PAIN_CS = "https://fhir-pain.io/CodeSystem/pain-instruments"
HGNC_IDS = {"CYP2D6": "HGNC:2625", "CYP2C9": "HGNC:2623", "CYP2C19": "HGNC:2621", "CYP2B6": "HGNC:2615",
            "OPRM1": "HGNC:8156", "HLA-A": "HGNC:4931", "HLA-B": "HGNC:4932"}
GLSTRING = "http://glstring.org"
LA_PHENOTYPE = {"Ultrarapid Metabolizer": "LA10315-2", "Rapid Metabolizer": "LA25390-8",
                "Normal Metabolizer": "LA25391-6", "Intermediate Metabolizer": "LA10317-8",
                "Poor Metabolizer": "LA9657-3"}
TODAY = date(2026, 5, 1)   # the golden scenarios' clock (config NOW); dates below are relative to it


def day(offset: int) -> str:
    """An ISO date ``offset`` days from TODAY (negative: in the past)."""
    return (TODAY + timedelta(days=offset)).isoformat()


def patient(pid: str, birth: str = "1968-04-12", gender: str = "female") -> dict:
    return {"resourceType": "Patient", "id": pid, "active": True,
            "name": [{"use": "official", "family": "Testpatient", "given": ["Alex"]}],
            "gender": gender, "birthDate": birth}


def genotype(oid: str, pid: str, gene: str, diplotype: str, when: str | None = None, status: str = "final") -> dict:
    """Genomics Reporting IG genotype Observation: 84413-4 with a PharmVar diplotype and the gene component."""
    return {
        "resourceType": "Observation", "id": oid, "status": status,
        "meta": {"profile": ["http://hl7.org/fhir/uv/genomics-reporting/StructureDefinition/genotype"]},
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "laboratory"}]}],
        "code": {"coding": [{"system": LOINC, "code": "84413-4", "display": "Genotype display name"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": when or f"{day(-400)}T09:30:00Z",
        "valueCodeableConcept": {"coding": [{"system": PHARMVAR, "code": f"{gene} {diplotype}"}],
                                 "text": f"{gene} {diplotype}"},
        "component": [_gene_component(gene)],
    }


def _gene_component(gene: str) -> dict:
    return {"code": {"coding": [{"system": LOINC, "code": "48018-6", "display": "Gene studied [ID]"}]},
            "valueCodeableConcept": {"coding": [{"system": HGNC, "code": HGNC_IDS[gene], "display": gene}]}}


def hla_genotype(oid: str, pid: str, gene: str, alleles: list[str], when: str | None = None) -> dict:
    """Genomics Reporting IG genotype Observation of an HLA gene: 84413-4, the typing as a GL String
    ("hla#3.25.0#HLA-B*15:02:01+HLA-B*40:01:02"), the gene component."""
    obs = genotype(oid, pid, gene, "", when)
    obs["valueCodeableConcept"] = {"coding": [{"system": GLSTRING,
                                               "code": "hla#3.25.0#" + "+".join(f"{gene}{a}" for a in alleles)}],
                                   "text": ", ".join(f"{gene}{a}" for a in alleles)}
    return obs


def hla_presence(oid: str, pid: str, gene: str, allele: str, result: str, when: str | None = None) -> dict:
    """An allele presence result as the Genomics Reporting IG writes a variant (69548-6, LA9633-4 Present /
    LA9634-2 Absent) with the allele named in the code text: ``result`` "present" | "absent" | any other text
    (a lab's free text, sent as valueString)."""
    obs = {
        "resourceType": "Observation", "id": oid, "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "69548-6", "display": "Genetic variant assessment"}],
                 "text": f"{gene}{allele} [Presence]"},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": when or f"{day(-400)}T09:30:00Z",
        "component": [_gene_component(gene)],
    }
    if result in ("present", "absent"):
        code, display = ("LA9633-4", "Present") if result == "present" else ("LA9634-2", "Absent")
        obs["valueCodeableConcept"] = {"coding": [{"system": LOINC, "code": code, "display": display}]}
    else:
        obs["valueString"] = result
    return obs


def reported_phenotype(oid: str, pid: str, gene: str, phenotype: str, when: str | None = None) -> dict:
    """Genomics Reporting STU1-style phenotype Observation (53040-2, LA answer code), no diplotype."""
    value: dict = {"text": f"{gene} {phenotype}"}
    if phenotype in LA_PHENOTYPE:
        value["coding"] = [{"system": LOINC, "code": LA_PHENOTYPE[phenotype], "display": phenotype}]
    return {
        "resourceType": "Observation", "id": oid, "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "53040-2",
                             "display": "Genetic variation's effect on drug metabolism"}], "text": f"{gene} phenotype"},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": when or f"{day(-400)}T09:30:00Z",
        "valueCodeableConcept": value,
        "component": [{"code": {"coding": [{"system": LOINC, "code": "48018-6", "display": "Gene studied [ID]"}]},
                       "valueCodeableConcept": {"coding": [{"system": HGNC, "code": HGNC_IDS[gene],
                                                            "display": gene}]}}],
    }


def score(oid: str, pid: str, code: str, value: float, when: str, system: str = LOINC, display: str | None = None,
          unit: str | None = None) -> dict:
    """A questionnaire/instrument score Observation (category survey), valueInteger or valueQuantity."""
    obs = {
        "resourceType": "Observation", "id": oid, "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "survey"}]}],
        "code": {"coding": [{"system": system, "code": code, **({"display": display} if display else {})}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": when if "T" in when else f"{when}T10:00:00+02:00",
    }
    if unit is None and float(value).is_integer():
        obs["valueInteger"] = int(value)
    else:
        obs["valueQuantity"] = {"value": value, "system": "http://unitsofmeasure.org", "code": unit or "{score}"}
    return obs


def nrs(oid, pid, value, when):
    return score(oid, pid, "72514-3", value, when,
                 display="Pain severity - 0-10 verbal numeric rating [Score] - Reported")


def phq9(oid, pid, value, when):
    return score(oid, pid, "44261-6", value, when, display="Patient Health Questionnaire 9 item total score")


PHQ9_ITEMS = ("44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3", "44260-8")
FREQUENCY = ("LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9")   # LL358-3: not at all ... nearly every day


def phq9_panel(oid, pid, answers, when):
    """A PHQ-9 panel (44249-1) with its nine items as components (LOINC answers), no total: scored from items."""
    obs = score(oid, pid, "44249-1", 0, when, display="PHQ-9 quick depression assessment panel")
    del obs["valueInteger"]
    obs["component"] = [{"code": {"coding": [{"system": LOINC, "code": c}]},
                         "valueCodeableConcept": {"coding": [{"system": LOINC, "code": FREQUENCY[a]}]}}
                        for c, a in zip(PHQ9_ITEMS, answers, strict=True)]
    return obs


def phq9_item9(oid, pid, answer, when):
    """PHQ-9 item 9 (44260-8) sent on its own, as some EHRs file each item: answer 0-3 (LL358-3)."""
    obs = score(oid, pid, "44260-8", 0, when,
                display="Thoughts that you would be better off dead, or of hurting yourself in some way")
    del obs["valueInteger"]
    obs["valueCodeableConcept"] = {"coding": [{"system": LOINC, "code": FREQUENCY[answer]}]}
    return obs


def vital(oid: str, pid: str, code: str, display: str, value: float, unit: str, when: str) -> dict:
    """A vital-signs Observation (US Core style: BMI 39156-5 in kg/m2, BMI-for-age percentile 59576-9 in %)."""
    return {
        "resourceType": "Observation", "id": oid, "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "vital-signs"}]}],
        "code": {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": when if "T" in when else f"{when}T09:00:00+02:00",
        "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
    }


def bmi(oid, pid, value, when):
    return vital(oid, pid, "39156-5", "Body mass index (BMI) [Ratio]", value, "kg/m2", when)


def bmi_percentile(oid, pid, value, when):
    return vital(oid, pid, "59576-9", "Body mass index (BMI) [Percentile] Per age and sex", value, "%", when)


def breastfeeding_status(oid, pid, breastfeeding: bool, when):
    """LOINC 63895-7 Breastfeeding status with its LOINC answer (LA29252-6 / LA29253-4)."""
    answer = ("LA29252-6", "Currently breastfeeding") if breastfeeding else ("LA29253-4", "Not currently breastfeeding")
    return {
        "resourceType": "Observation", "id": oid, "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "social-history"}]}],
        "code": {"coding": [{"system": LOINC, "code": "63895-7", "display": "Breastfeeding status"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": when if "T" in when else f"{when}T11:00:00+02:00",
        "valueCodeableConcept": {"coding": [{"system": LOINC, "code": answer[0], "display": answer[1]}],
                                 "text": answer[1]},
    }


def procedure(prid: str, pid: str, code: str | None, display: str, performed: str | None,
              system: str = SNOMED, status: str = "completed") -> dict:
    """A Procedure as an EHR files a surgery (code may be SNOMED CT, CPT or ICD-10-PCS, or text only)."""
    pr = {"resourceType": "Procedure", "id": prid, "status": status,
          "code": {"coding": [{"system": system, "code": code, "display": display}] if code else [],
                   "text": display},
          "subject": {"reference": f"Patient/{pid}"}}
    if not pr["code"]["coding"]:
        del pr["code"]["coding"]
    if performed:
        pr["performedDateTime"] = performed if "T" in performed else f"{performed}T08:30:00+02:00"
    return pr


def gad7(oid, pid, value, when):
    return score(oid, pid, "70274-6", value, when, display="Generalized anxiety disorder 7 item total score")


def project_score(oid, pid, code, value, when):
    """Instruments without LOINC (PCS, DN4, painDETECT, LANSS, CSI ...) under the project CodeSystem."""
    return score(oid, pid, code, value, when, system=PAIN_CS)


def condition(cid: str, pid: str, code: str, display: str, onset: str, system: str = SNOMED) -> dict:
    return {
        "resourceType": "Condition", "id": cid,
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                       "code": "active"}]},
        "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                                           "code": "confirmed"}]},
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category",
                                  "code": "problem-list-item"}]}],
        "code": {"coding": [{"system": system, "code": code, "display": display}], "text": display},
        "subject": {"reference": f"Patient/{pid}"},
        "onsetDateTime": onset,
    }


def medication_request(mid: str, pid: str, rxcui: str, display: str, *, status: str = "active",
                       authored: str | None = None, dose_mg: float | None = None, per_day: int = 1,
                       dose_unit: str = "mg", prior: str | None = None) -> dict:
    mr = {
        "resourceType": "MedicationRequest", "id": mid, "status": status, "intent": "order",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category",
                                  "code": "community"}]}],
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": rxcui, "display": display}],
                                      "text": display},
        "subject": {"reference": f"Patient/{pid}"},
        "authoredOn": authored or day(-200),
    }
    if prior:   # the request this one renews
        mr["priorPrescription"] = {"reference": f"MedicationRequest/{prior}"}
    if dose_mg is not None:
        mr["dosageInstruction"] = [{
            "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
            "doseAndRate": [{"doseQuantity": {"value": dose_mg, "unit": dose_unit,
                                              "system": "http://unitsofmeasure.org", "code": dose_unit}}]}]
    return mr


def draft(mid: str, pid: str, rxcui: str, display: str, **kw) -> dict:
    kw.setdefault("authored", day(0))
    return medication_request(mid, pid, rxcui, display, status="draft", **kw)


def searchset(*resources: dict) -> dict:
    return {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
            "entry": [{"fullUrl": f"https://ehr.example.org/fhir/{r['resourceType']}/{r['id']}", "resource": r,
                       "search": {"mode": "match"}} for r in resources]}


def hook_request(hook: str, pid: str, *, name: str, prefetch: dict | None = None, drafts: list[dict] = (),
                 selections: list[str] | None = None, user: str = "Practitioner/example",
                 encounter: str | None = "enc-1") -> dict:
    """A CDS Hooks 2.0 request; hookInstance is derived from the scenario name so files are stable."""
    context: dict = {"userId": user, "patientId": pid}
    if encounter:
        context["encounterId"] = encounter
    if hook != "patient-view":
        context["draftOrders"] = {"resourceType": "Bundle", "type": "collection",
                                  "entry": [{"resource": d} for d in drafts]}
    if hook == "order-select":
        context["selections"] = selections if selections is not None else \
            [f"MedicationRequest/{d['id']}" for d in drafts]
    body = {"hookInstance": str(uuid.uuid5(uuid.NAMESPACE_URL, f"https://fhir-pain.io/golden/{name}")),
            "hook": hook, "fhirServer": "https://ehr.example.org/fhir", "context": context}
    if prefetch is not None:
        body["prefetch"] = prefetch
    return body


def prefetch(pid: str, *, pgx=(), pain=(), conditions=(), meds=(), history=(), omit=(), birth: str | None = None,
             gender: str | None = None, procedures=None, safety_obs=None) -> dict:
    """Every prefetch key of the services filled as an EHR would (searchsets, possibly empty); keys in ``omit``
    are left out (the EHR could not fill them). ``history``: completed/stopped/on-hold MedicationRequests.
    ``birth``: the Patient's birthDate (default: an adult's). ``procedures`` and ``safety_obs`` (BMI, breastfeeding
    status) fill the FDA-limit keys; left None, those keys are absent (older scenarios, written before them)."""
    from fhir_pain.gather import (CONDITIONS, MEDICATION_HISTORY, MEDICATIONS, PAIN, PATIENT, PGX, PROCEDURES,
                                  SAFETY_OBSERVATIONS)
    person = patient(pid, **({"birth": birth} if birth else {}), **({"gender": gender} if gender else {}))
    out = {PATIENT: person, PGX: searchset(*pgx), PAIN: searchset(*pain),
           CONDITIONS: searchset(*conditions), MEDICATIONS: searchset(*meds), MEDICATION_HISTORY: searchset(*history)}
    if procedures is not None:
        out[PROCEDURES] = searchset(*procedures)
    if safety_obs is not None:
        out[SAFETY_OBSERVATIONS] = searchset(*safety_obs)
    return {k: v for k, v in out.items() if k not in omit}
