"""The Questionnaires of profiles/questionnaires/ as forms: which items are scored, how, and into which codes.

Each file names the engine instrument it feeds (``instrument``, a key of profiles/pain/instruments.json) and its
licence. The scoring method, ranges and item codes are the engine's (fhir_pain.pain.knowledge): a Questionnaire
only says how the items are asked. tests/pro checks that every extracted code is one the engine reads.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Mapping

from fhir_pain import profiles
from fhir_pain.pain.knowledge import LOINC, Instrument, instrument

EXTRACT = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-observationExtract"
ORDINAL = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
MIN_VALUE = "http://hl7.org/fhir/StructureDefinition/minValue"
MAX_VALUE = "http://hl7.org/fhir/StructureDefinition/maxValue"


@dataclass(frozen=True, slots=True)
class Question:
    """One scored item: its linkId, the Observation code, the answer type and what each answer scores."""
    link_id: str
    code: dict                              # the item's first Coding: the Observation's code
    text: str
    type: str                               # "choice" | "integer" | "boolean"
    extract: bool                           # written as an Observation of its own (SDC observationExtract)
    options: Mapping[tuple[str, str], tuple[float, dict]]   # choice: (system, code) -> (score, Coding)
    lo: float | None = None
    hi: float | None = None
    names: tuple[str, ...] = ()            # linkIds it is known by: ours, and LOINC forms' "/<code>" and "<code>"


@dataclass(frozen=True, slots=True)
class Form:
    key: str                                # the Questionnaire id, also its file name
    title: str
    url: str
    version: str
    licence: str                            # "free" | "codes-only"
    item_text: bool                         # False: no text to show a patient (the fill page does not offer it)
    instrument: Instrument
    questionnaire: dict                     # the resource as served (the knowledge cache's: read-only)
    questions: tuple[Question, ...]         # scored items, in order (some only scored, not extracted)
    total: dict | None                      # the total item (None: the one question is the score, e.g. NRS)
    displays: Mapping[str, str]             # linkId -> text of display items, for the page
    aliases: tuple[str, ...] = ()           # other canonicals of the same form: LOINC's "http://loinc.org/q/<panel>"

    def question(self, link_id: str) -> Question | None:
        return next((q for q in self.questions if q.link_id == link_id), None)


def _ext(item: dict, url: str):
    for e in item.get("extension", ()):
        if e.get("url") == url:
            return next(v for k, v in e.items() if k.startswith("value"))
    return None


def _question(item: dict) -> Question:
    options = {}
    for opt in item.get("answerOption", ()):
        coding = opt["valueCoding"]
        score = _ext(opt, ORDINAL)
        if score is None:
            raise ValueError(f"{item['linkId']}: answer {coding.get('code')} has no ordinalValue")
        options[(coding["system"], coding["code"])] = (float(score), coding)
    return Question(item["linkId"], item["code"][0], item.get("text", ""), item["type"], _ext(item, EXTRACT) is True,
                    MappingProxyType(options), _ext(item, MIN_VALUE), _ext(item, MAX_VALUE), names_of(item))


def names_of(item: dict) -> tuple[str, ...]:
    """The linkIds an item is known by: ours, and for a LOINC-coded item the "/<code>" and "<code>" that forms built
    from LOINC panels (LHC-Forms, the NLM form builder) use."""
    code = item["code"][0]
    loinc = (f"/{code['code']}", code["code"]) if code.get("system") == LOINC else ()
    return (item["linkId"], *loinc)


def _form(relpath: str) -> Form:
    data = profiles.load(relpath)
    q = data["resource"]
    inst = instrument(data["instrument"])
    questions, total, displays = [], None, {}
    for item in q["item"]:
        if item["type"] == "display":
            displays[item["linkId"]] = item.get("text", "")
        elif item.get("readOnly"):
            total = item
        else:
            questions.append(_question(item))
    aliases = tuple(f"http://loinc.org/q/{c['code']}" for c in q.get("code", ()) if c.get("system") == LOINC)
    return Form(q["id"], q["title"], q["url"], q["version"], data["licence"], data["itemText"], inst,
                q, tuple(questions), total, MappingProxyType(displays), aliases)


@lru_cache(maxsize=1)
def forms() -> Mapping[str, Form]:
    """Every shipped form by Questionnaire id, loaded once."""
    out = {}
    for relpath in profiles.list_files("questionnaires"):
        form = _form(relpath)
        out[form.key] = form
    return MappingProxyType(out)


def form_for(canonical: object) -> Form | None:
    """The form a QuestionnaireResponse.questionnaire names: its canonical URL (``|version`` allowed),
    ``Questionnaire/<id>``, or LOINC's canonical of the panel (``http://loinc.org/q/44249-1``)."""
    if not isinstance(canonical, str):
        return None
    url, _, version = canonical.partition("|")
    for form in forms().values():
        if url in (form.url, f"Questionnaire/{form.key}") and version in ("", form.version):
            return form
        if url in form.aliases:     # LOINC's form of the panel: the items are LOINC's, whatever its version
            return form
    return None
