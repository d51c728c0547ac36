"""Generate profiles/opioid/vocabulary.json from reference/opioid/ (make profiles; never edit the output by hand).

- products: every OMTK opioid drug (RxNorm clinical/branded drug code -> dose form and opioid ingredients with
  strength), so that a coded order's strength is read, not guessed;
- classes: the CDC opioid CDS medication value sets (benzodiazepines, other CNS depressants, naloxone,
  extended-release opioids) as product codes;
- conditions: the CDC condition value sets (opioid use disorder, the exclusions) by code system;
- urineDrugTests: the LOINC codes of all urine drug screening tests.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REF = ROOT / "reference" / "opioid"
OUT = ROOT / "profiles" / "opioid" / "vocabulary.json"
VS = REF / "opioid-cds-valuesets"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SYSTEMS = {"http://snomed.info/sct": "snomed", "http://hl7.org/fhir/sid/icd-10-cm": "icd10"}
CLASSES = {"benzodiazepine": "benzodiazepine-medications", "cnsDepressant": "cns-depressant-medications",
           "naloxone": "naloxone-medications",
           "extendedRelease": "extended-release-opioid-with-ambulatory-misuse-potential"}
CONDITIONS = {"opioidUseDisorder": "opioid-misuse-disorders", "cancer": "cdc-malignant-cancer-conditions",
              "terminal": "conditions-likely-terminal-for-opioid-prescribing", "sickleCell": "sickle-cell-diseases",
              "hospice": "hospice-finding", "limitedLifeExpectancy": "limited-life-expectancy-conditions"}


def _valueset(name: str) -> dict:
    return json.loads((VS / f"{name}.json").read_text())


def build() -> dict:
    omtk = json.loads((REF / "omtk-drug-ingredients.json").read_text())
    products: dict[str, dict] = {}
    for row in omtk["rows"]:
        p = products.setdefault(row["drugCode"], {"display": row["drugName"], "doseForm": row["doseFormName"],
                                                  "ingredients": []})
        p["ingredients"].append({"name": row["ingredientName"].lower(), "rxnorm": row["ingredientCode"],
                                 "strength": row["strengthValue"], "unit": row["strengthUnit"]})
    classes, sources = {}, []
    for key, name in CLASSES.items():
        vs = _valueset(name)
        classes[key] = {"valueSet": vs["url"], "title": vs["title"],
                        "products": {c["code"]: c["display"] for c in vs["expansion"]["contains"]
                                     if c["system"] == RXNORM}}
    conditions = {}
    for key, name in CONDITIONS.items():
        vs = _valueset(name)
        codes: dict[str, list[str]] = {}
        for c in vs["expansion"]["contains"]:
            if c["system"] in SYSTEMS:
                codes.setdefault(SYSTEMS[c["system"]], []).append(c["code"])
        conditions[key] = {"valueSet": vs["url"], "title": vs["title"], **{k: sorted(v) for k, v in codes.items()}}
    udt = _valueset("all-urine-drug-screening-tests")
    return {
        "schema": "opioid-vocabulary",
        "meta": {"source": "OMTK (cqframework/opioid-mme-r4 @1357f45, RxNav 2020-10-20) and the CDC opioid CDS value "
                           "sets (cqframework/opioid-cds-r4 @b29bdcb)",
                 "version": "1.0.0", "date": "2026-12-04", "url": "https://github.com/cqframework/opioid-cds-r4",
                 "generatedBy": "scripts/build_opioid_profiles.py",
                 "notes": "Generated from reference/opioid/; do not edit by hand."},
        "products": dict(sorted(products.items(), key=lambda kv: int(kv[0]))),
        "classes": classes,
        "conditions": conditions,
        "urineDrugTests": {"valueSet": udt["url"],
                           "loinc": sorted(c["code"] for c in udt["expansion"]["contains"]
                                           if c["system"] == "http://loinc.org")},
    }


def render() -> str:
    return json.dumps(build(), indent=1, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT.relative_to(ROOT)}", file=sys.stderr)
