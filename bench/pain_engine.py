"""Benchmark of the pain phenotyping engine on one patient with 200 pain Observations over two years.

Mix, as an EHR sends it: 100 NRS (valueInteger / UCUM valueQuantity, several time zones), 30 PEG panels with
3 item components, 20 PHQ-9 panels with 9 LOINC-answer-coded items, 15 GAD-7 and 10 PHQ-2 totals, 10 PCS,
5 DN4 panels with 10 yes/no items, 5 CSI and 5 CRP results; plus 6 Conditions and 4 analgesics.
One round = build_profile (scores, conditions, intensity and trend, chronicity, axes, modulators, responses).

    .venv/bin/python -m bench.pain_engine [ROUNDS]
"""
from __future__ import annotations

import statistics
import sys
import time
from datetime import datetime, timedelta, timezone

from fhir_pain import fhirdates
from fhir_pain.facts import Drug, MedicationUse
from fhir_pain.pain import build_profile

LOINC = "http://loinc.org"
PROJECT = "https://fhir-pain.io/CodeSystem/pain-instruments"
UCUM = "http://unitsofmeasure.org"
NOW = datetime(2024, 6, 1, 12, tzinfo=timezone.utc)
ZONES = [timezone.utc, timezone(timedelta(hours=-5)), timezone(timedelta(hours=2))]
PHQ9 = ["44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3", "44260-8"]
FREQ = ["LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"]


def _obs(i: int, code: str, system: str = LOINC, **rest) -> dict:
    when = (NOW - timedelta(days=(i * 7919) % 730, minutes=i)).astimezone(ZONES[i % 3]).isoformat()
    return {"resourceType": "Observation", "id": f"p{i}", "status": "final", "effectiveDateTime": when,
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "survey"}]}],
            "code": {"coding": [{"system": system, "code": code}]}, "subject": {"reference": "Patient/p"}, **rest}


def _comp(code: str, system: str = LOINC, **value) -> dict:
    return {"code": {"coding": [{"system": system, "code": code}]}, **value}


def observations() -> list[dict]:
    out: list[dict] = []
    plan = [("nrs", 100), ("peg", 30), ("phq9", 20), ("gad7", 15), ("phq2", 10), ("pcs", 10), ("dn4", 5),
            ("csi", 5), ("crp", 5)]
    i = 0
    for kind, n in plan:
        for _ in range(n):
            i += 1
            v = i % 11
            if kind == "nrs":
                value = {"valueInteger": v} if i % 2 else {"valueQuantity": {"value": v, "unit": "score",
                                                                             "system": UCUM, "code": "{score}"}}
                out.append(_obs(i, "72514-3", **value))
            elif kind == "peg":
                out.append(_obs(i, "91148-7", component=[_comp(c, valueInteger=(v + k) % 11)
                                                         for k, c in enumerate(("75893-8", "91145-3", "91146-1"))]))
            elif kind == "phq9":
                out.append(_obs(i, "44249-1", component=[
                    _comp(c, valueCodeableConcept={"coding": [{"system": LOINC, "code": FREQ[(i + k) % 4]}]})
                    for k, c in enumerate(PHQ9)]))
            elif kind == "gad7":
                out.append(_obs(i, "70274-6", valueInteger=i % 22))
            elif kind == "phq2":
                out.append(_obs(i, "55758-7", valueInteger=i % 7))
            elif kind == "pcs":
                out.append(_obs(i, "pcs-total", PROJECT, valueInteger=(i * 3) % 53))
            elif kind == "dn4":
                out.append(_obs(i, "dn4-total", PROJECT, component=[
                    _comp(f"dn4-{k}", PROJECT, valueBoolean=bool((i + k) % 2)) for k in range(1, 11)]))
            elif kind == "csi":
                out.append(_obs(i, "csi-total", PROJECT, valueInteger=(i * 7) % 101))
            else:
                out.append(_obs(i, "1988-5", valueQuantity={"value": (i % 30) / 2, "unit": "mg/L", "system": UCUM,
                                                            "code": "mg/L"}))
    return out


def conditions() -> list[dict]:
    codes = [("E11.42", "2021-03"), ("M79.7", "2019-01-01"), ("M17.11", None), ("F33.1", None), ("I10", None),
             ("M05.79", "2020-06-01")]
    return [{"resourceType": "Condition", "id": f"c{k}",
             "clinicalStatus": {"coding": [{"code": "active"}]},
             "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": code}]},
             **({"onsetDateTime": onset} if onset else {})} for k, (code, onset) in enumerate(codes)]


def medications() -> list[MedicationUse]:
    drugs = [("25480", "gabapentin", 120), ("72625", "duloxetine", 20), ("7804", "oxycodone", 300),
             ("5640", "ibuprofen", 60)]
    return [MedicationUse(ref=f"MedicationRequest/m{k}", status="active", intent="order",
                          ingredients=(Drug(rx, name),), text=name, authored_on=NOW - timedelta(days=days))
            for k, (rx, name, days) in enumerate(drugs)]


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    rounds = int(argv[0]) if argv else 2000
    obs, conds, meds = observations(), conditions(), medications()
    for _ in range(min(100, rounds)):   # warm the knowledge cache and the interpreter
        profile = build_profile(obs, conds, meds, NOW)
    median, p99 = _measure(obs, conds, meds, rounds, cold=False)
    # FHIR dates are memoised on their text (fhir_pain.fhirdates): the same chart again reuses them, a new one not
    cold_median, cold_p99 = _measure(obs, conds, meds, rounds, cold=True)
    print(f"pain engine: {len(obs)} pain Observations + {len(conds)} Conditions + {len(meds)} analgesics -> "
          f"{len(profile.scores)} scores, phenotypes {', '.join(profile.phenotypes)}")
    print(f"  build_profile: median {median:.3f} ms, p99 {p99:.3f} ms ({rounds} rounds; target < 2 ms)")
    print(f"  same, dates never seen (date memo cleared every round): median {cold_median:.3f} ms, "
          f"p99 {cold_p99:.3f} ms")
    return {"median_ms": median, "p99_ms": p99, "cold_median_ms": cold_median, "cold_p99_ms": cold_p99,
            "scores": len(profile.scores), "phenotypes": profile.phenotypes}


def _measure(obs: list[dict], conds: list[dict], meds: list[MedicationUse], rounds: int, *, cold: bool
             ) -> tuple[float, float]:
    times = []
    for _ in range(rounds):
        if cold:
            fhirdates._parse.cache_clear()
        t0 = time.perf_counter_ns()
        build_profile(obs, conds, meds, NOW)
        times.append(time.perf_counter_ns() - t0)
    times.sort()
    return statistics.median(times) / 1e6, times[max(0, int(len(times) * 0.99) - 1)] / 1e6


if __name__ == "__main__":
    main()
