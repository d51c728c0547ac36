"""What one MedicationRequest is for the opioid rules: its opioid ingredients with strengths (coded product from
OMTK, else an RxNorm-style name "oxycodone hydrochloride 5 MG"), and its classes (benzodiazepine, other CNS
depressant, gabapentinoid, naloxone, medication for opioid use disorder, extended-release opioid).

Recognition reads product codes (the CDC value sets, OMTK) and ingredient names in display/text, so a newer product
missing from the 2019-2020 expansions is still known by its ingredient. Nothing here raises on bad input.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache

from fhir_pain.facts import MedicationUse
from fhir_pain.memo import keep_short
from fhir_pain.opioid.knowledge import class_products, rules, vocabulary
from fhir_pain.pain.knowledge import as_list
from fhir_pain.pgx.drugs import RXNORM_SYSTEMS

_STRENGTH = re.compile(r"(\d+(?:\.\d+)?)\s*(mg|mcg|µg|ug)(?:\s*/\s*(ml|hr|h|actuat))?\b", re.I)


@dataclass(frozen=True)
class Strength:
    ingredient: str            # lower-case ingredient name
    value: Decimal             # mg per unit (MG), mg per mL (MG/ML), mg per hour (MG/HR), mg per actuation
    unit: str                  # "MG" | "MG/ML" | "MG/HR" | "MG/ACTUAT"


@dataclass(unsafe_hash=True)   # read-only; not frozen: one per medication per call (see facts.MedicationUse)
class OrderClasses:
    med: MedicationUse
    opioids: tuple[str, ...]                 # opioid ingredient names
    strengths: tuple[Strength, ...]          # per opioid ingredient, when the product says
    dose_form: str                           # OMTK dose form, or "" when not coded
    classes: frozenset[str] = field(default_factory=frozenset)
    names: tuple[str, ...] = ()              # the non-opioid class ingredients named (for card wording)

    @property
    def transdermal(self) -> bool:
        text = (self.dose_form + " " + self.med.text).lower()
        return "transdermal" in text or "patch" in text


_CODE_SYSTEMS = RXNORM_SYSTEMS | {None}   # a coding without a system may carry an RxNorm code


def _codes_and_texts(med: MedicationUse) -> tuple[tuple[str, ...], tuple[str, ...]]:
    res = med.resource or {}
    contained = res.get("contained")
    concepts = [res.get("medicationCodeableConcept")]
    if contained is not None:     # most orders contain nothing: no pass to make
        concepts += [c.get("code") for c in as_list(contained)
                     if isinstance(c, dict) and c.get("resourceType") == "Medication"]
    codes, texts = [], [med.text]
    for concept in concepts:
        if not isinstance(concept, dict):
            continue
        text = concept.get("text")
        if isinstance(text, str):
            texts.append(text)
        codings = concept.get("coding")
        if not isinstance(codings, list):
            continue
        for coding in codings:
            if not isinstance(coding, dict):
                continue
            code, display, system = coding.get("code"), coding.get("display"), coding.get("system")
            # a system that is not a string (a list, an object) is no RxNorm system, and is unhashable
            if isinstance(code, str) and (system is None or isinstance(system, str) and system in _CODE_SYSTEMS):
                codes.append(code.strip())
            if isinstance(display, str):
                texts.append(display)
    # as sent: _classes lower-cases them (on a miss only)
    return tuple(codes), tuple([t for t in dict.fromkeys(texts) if t and isinstance(t, str)])


def _text_strengths(texts: list[str], opioids: tuple[str, ...]) -> tuple[Strength, ...]:
    """RxNorm-style names: "acetaminophen 325 MG / oxycodone hydrochloride 5 MG Oral Tablet"."""
    for text in texts:
        out = []
        for part in text.split(" / "):
            name = next((o for o in opioids if o in part), None)
            m = _STRENGTH.search(part)
            if name is None or m is None:
                continue
            value, unit, per = Decimal(m.group(1)), m.group(2).lower(), (m.group(3) or "").lower()
            if unit in ("mcg", "µg", "ug"):
                value /= 1000
            out.append(Strength(name, value, "MG" + {"ml": "/ML", "hr": "/HR", "h": "/HR", "actuat": "/ACTUAT"}
                                .get(per, "")))
        if out and {s.ingredient for s in out} == set(opioids):
            return tuple(out)
    return ()


@lru_cache(maxsize=None)
def _words(key: str) -> re.Pattern:
    """One pattern for a list of names (the opioids, or a class): whole words, in lower-case text."""
    names = rules()["opioids"] if key == "opioid" else rules()["classNames"][key]
    return re.compile(r"\b(" + "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)) + r")\b")


# (code, system, display, text) of an order's one coding, its own text and its ingredients -> _classes' answer
# (keep_short): every active medication and draft is classified on each call, and the usual order, one coding and
# nothing contained, is then one look-up
_one_coding_classes: dict[tuple, tuple] = {}


def classify(med: MedicationUse) -> OrderClasses:
    key = _one_coding_key(med)
    if key is not None:
        try:
            return OrderClasses(med, *_one_coding_classes[key])
        except KeyError:
            pass
    codes, texts = _codes_and_texts(med)
    # an order's texts are the sender's: overly long ones are classified each time, never kept in the memo
    memo = _classes if sum(map(len, texts)) + sum(map(len, codes)) <= 2000 else _classes.__wrapped__
    # positional, in field order: (opioids, strengths, dose_form, classes, names)
    found = memo(codes, texts, frozenset([d.name for d in med.ingredients]))
    if key is not None:
        keep_short(_one_coding_classes, key, found, maxsize=4096, longest=300)
    return OrderClasses(med, *found)


def _one_coding_key(med: MedicationUse) -> tuple | None:
    """What _codes_and_texts reads of an order with one coding and nothing contained, when each of it is a text or
    absent (a hashable key); None for any other shape (read the general way)."""
    res = med.resource
    if type(res) is not dict or "contained" in res:
        return None
    concept = res.get("medicationCodeableConcept")
    codings = concept.get("coding") if type(concept) is dict else None
    if type(codings) is not list or len(codings) != 1 or type(coding := codings[0]) is not dict:
        return None
    key = (coding.get("code"), coding.get("system"), coding.get("display"), concept.get("text"), med.text,
           med.ingredients)
    for text in key[:5]:
        if text is not None and type(text) is not str:
            return None
    return key


@lru_cache(maxsize=4096)
def _classes(codes: tuple[str, ...], texts: tuple[str, ...], ingredients: frozenset[str]) -> tuple:
    """What an order's codes, texts and identified ingredients say, as a pure function of them: every draft and
    active medication is classified on each call, and the same products recur (bounded: keys come from requests)."""
    r = rules()
    names = set(ingredients)
    texts = tuple([t.lower() for t in texts])
    joined = " ".join(texts)
    products = vocabulary()["products"]
    product = next((products[c] for c in codes if c in products), None)
    if product is not None:
        names |= {i["name"] for i in product["ingredients"]}
    found = names | set(_words("opioid").findall(joined))
    opioids = tuple(n for n in r["opioids"] if n in found)
    if product is not None:
        strengths = tuple(Strength(i["name"], Decimal(str(i["strength"])), i["unit"]) for i in product["ingredients"]
                          if i["name"] in opioids)
        dose_form = product["doseForm"]
    else:
        strengths, dose_form = _text_strengths(list(texts), opioids), ""
    classes: set[str] = set()
    named: list[str] = []
    by_code = class_products()
    for cls in ("benzodiazepine", "cnsDepressant", "gabapentinoid", "naloxone", "moud"):
        hits = names | set(_words(cls).findall(joined))
        words = [w for w in r["classNames"][cls] if w in hits]
        if words or any(c in by_code.get(cls, ()) for c in codes):
            classes.add(cls)
            named += words
    if "naloxone" in classes and opioids:
        # buprenorphine/naloxone (sublingual) and pentazocine/naloxone are in CDC's naloxone value set, but their
        # naloxone only deters misuse: they are not an overdose rescue kit on file
        classes.discard("naloxone")
    if cls_er(list(codes), joined, dose_form, opioids):
        classes.add("extendedRelease")
    if opioids:
        classes.add("opioid")
    return opioids, strengths, dose_form, frozenset(classes), tuple(dict.fromkeys(named))


def cls_er(codes: list[str], joined: str, dose_form: str, opioids: tuple[str, ...]) -> bool:
    """An extended-release or long-acting opioid: the CDC value set, an ER dose form or words, or methadone
    (long-acting whatever its form)."""
    if not opioids:
        return False
    if any(c in class_products()["extendedRelease"] for c in codes) or "extended release" in dose_form.lower():
        return True
    if "methadone" in opioids or "transdermal" in dose_form.lower():
        return True
    padded = f" {joined} "
    return any(w in padded for w in rules()["classNames"]["extendedReleaseWords"])
