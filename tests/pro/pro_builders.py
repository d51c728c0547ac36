"""QuestionnaireResponses as a form renderer (LHC-Forms, a patient app) sends them, and a Bundle as a FHIR server
stores it (urn:uuid references resolved to ids)."""
from __future__ import annotations

import copy

from fhir_pain.pro.forms import forms

PHQ = {0: ("LA6568-5", "Not at all"), 1: ("LA6569-3", "Several days"), 2: ("LA6570-1", "More than half the days"),
       3: ("LA6571-9", "Nearly every day")}
AUTHORED = "2026-11-30T09:15:00+01:00"

# one realistic administration per instrument: the answers (scores) and the total the engine must read
CASES = {
    "phq9": ([1, 2, 0, 1, 1, 0, 2, 1, 1], 9),
    "phq2": ([2, 1], 3),
    "gad7": ([2, 2, 1, 1, 2, 1, 2], 11),
    "peg": ([6, 5, 7], 6.0),
    "nrs": ([7], 7),
    "pcs": ([3, 3, 4, 3, 2, 3, 3, 3, 3, 4, 3, 3, 2], 39),
    "dn4": ([1, 1, 0, 1, 1, 0, 0, 1, 0, 0], 5),
}


def answer(key: str, link: str, score: int) -> dict:
    """The answer a renderer sends for a score: a LOINC answer Coding, an integer or a boolean."""
    q = forms()[key].question(link)
    if q.type == "choice":
        code, display = PHQ[score]
        return {"valueCoding": {"system": "http://loinc.org", "code": code, "display": display}}
    if q.type == "boolean":
        return {"valueBoolean": bool(score)}
    return {"valueInteger": score}


def response(key: str, scores: list[int] | None = None, *, pid: str = "pat-1", authored: str = AUTHORED,
             grouped: bool = False) -> dict:
    """A completed QuestionnaireResponse for form ``key``; ``grouped`` nests the items in a group, as renderers
    that keep the form's sections do."""
    form = forms()[key]
    scores = CASES[key][0] if scores is None else scores
    items = []
    for q, s in zip(form.questions, scores):
        item = {"linkId": q.link_id, "answer": [answer(key, q.link_id, s)]}
        if q.text:
            item["text"] = q.text
        items.append(item)
    if grouped:
        items = [{"linkId": "section-1", "text": form.title, "item": items}]
    return {"resourceType": "QuestionnaireResponse", "meta": {"lastUpdated": "2026-11-30T08:15:03Z"},
            "questionnaire": f"{form.url}|{form.version}", "status": "completed",
            "subject": {"reference": f"Patient/{pid}", "display": "Alex Testpatient"},
            "authored": authored, "author": {"reference": f"Patient/{pid}"}, "source": {"reference": f"Patient/{pid}"},
            "item": items}


def stored(bundle: dict, prefix: str = "x") -> list[dict]:
    """The resources of a transaction Bundle as a server stores them: ids given, urn:uuid references resolved."""
    ids = {e["fullUrl"]: f"{e['resource']['resourceType']}/{prefix}{i}" for i, e in enumerate(bundle["entry"])}
    out = []
    for entry in bundle["entry"]:
        r = copy.deepcopy(entry["resource"])
        r["id"] = ids[entry["fullUrl"]].split("/")[1]
        for field in ("derivedFrom", "hasMember"):
            for ref in r.get(field, ()):
                ref["reference"] = ids.get(ref["reference"], ref["reference"])
        out.append(r)
    return out


def observations(bundle: dict, prefix: str = "x") -> list[dict]:
    return [r for r in stored(bundle, prefix) if r["resourceType"] == "Observation"]
