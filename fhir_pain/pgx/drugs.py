"""MedicationRequest -> the ingredients it contains (RxNorm ingredient RxCUIs), however the EHR coded it.

EHRs send clinical or branded drugs (e.g. 993889 "Codeine Phosphate 60 MG") as often as ingredients. Each coding is
resolved by: an ingredient RxCUI; the product-code tables (drugs.json's own, then products.json, generated from the
Opioid MME Toolkit's RxNorm products); and the names in coding.display and text (ingredient names catch salts,
"Codeine Phosphate"; brands in drugs.json and products.json; shorthand such as APAP or COD beside it in
abbreviations.json). medicationReference is followed to a contained Medication or through ``resolve``. A coding
of another system (NDC, a local code) is not read as a code; its display still counts.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import lru_cache

from fhir_pain import fhirdates
from fhir_pain.facts import Drug, MedicationUse
from fhir_pain.memo import keep_short, short_text_memo
from fhir_pain.pgx.knowledge import drug_vocabulary, normalise_name, unverified_codes

RXNORM_SYSTEMS = frozenset({"http://www.nlm.nih.gov/research/umls/rxnorm", "urn:oid:2.16.840.1.113883.6.88",
                            "https://www.nlm.nih.gov/research/umls/rxnorm", "http://hl7.org/fhir/sid/rxnorm"})


def drug_by_name(name: str) -> Drug | None:
    """An ingredient by name, salt-free name or single-ingredient brand ("oxycodone", "Celebrex"). Memoised: the
    rules ask for the same class members and CPIC alternatives on every call; texts too long to be a drug's name
    are looked up, never kept."""
    if not isinstance(name, str):
        return None
    return _drug_by_name(name)


@short_text_memo(maxsize=2048, longest=300)
def _drug_by_name(name: str) -> Drug | None:
    vocab = drug_vocabulary()
    ings = vocab.names.get(normalise_name(name))
    if not ings or len(ings) != 1 or ings[0] not in vocab.rxnorm_of:
        return None
    return Drug(rxnorm=vocab.rxnorm_of[ings[0]], name=ings[0])


def code_verified(code: str) -> bool:
    """False for an RxCUI we could not verify: it may recognise input, but never goes into an order we suggest."""
    return code not in unverified_codes()


def drug_by_rxnorm(code: str) -> Drug | None:
    name = drug_vocabulary().by_rxnorm.get(code)
    return Drug(rxnorm=code, name=name) if name else None


def _as_list(v: object) -> list:
    if isinstance(v, list):
        return v
    return [v] if v is not None else []


def _concept_names(concept: dict, names: list[str]) -> None:
    """Ingredient names for one CodeableConcept, in order of appearance, appended to ``names``."""
    vocab = drug_vocabulary()
    by_rxnorm, products = vocab.by_rxnorm, vocab.products
    texts: list[str] = []
    for coding in _as_list(concept.get("coding")):
        if not isinstance(coding, dict):
            continue
        code, system = coding.get("code"), coding.get("system")
        if isinstance(code, str) and (system is None or (isinstance(system, str) and system in RXNORM_SYSTEMS)):
            code = code.strip()
            name = by_rxnorm.get(code)
            if name is not None:
                names.append(name)
            names.extend(products.get(code, ()))
        display = coding.get("display")
        if isinstance(display, str):
            texts.append(display)
    text = concept.get("text")
    if isinstance(text, str):
        texts.append(text)
    for text in dict.fromkeys(texts) if len(texts) > 1 else texts:     # text and display are often the same
        names.extend(vocab.names_in(text))


def _display(concept: dict) -> str:
    if isinstance(concept.get("text"), str) and concept["text"].strip():
        return concept["text"].strip()
    for coding in _as_list(concept.get("coding")):
        if isinstance(coding, dict) and isinstance(coding.get("display"), str):
            return coding["display"]
    return ""


def _medication(resource: dict, resolve: Callable[[str], dict | None] | None) -> dict | None:
    ref = resource.get("medicationReference")
    ref = ref.get("reference") if isinstance(ref, dict) else None
    if not isinstance(ref, str) or not ref:
        return None
    if ref.startswith("#"):
        for c in _as_list(resource.get("contained")):
            if isinstance(c, dict) and c.get("resourceType") == "Medication" and c.get("id") == ref[1:]:
                return c
        return None
    if resolve is None:
        return None
    try:
        med = resolve(ref)
    except Exception:  # a resolver failure must not fail the whole request: the drug stays unknown
        return None
    return med if isinstance(med, dict) else None


# (code, system, display, text) of a one-coding concept as sent -> _one_coding_view (keep_short): orders name the
# same few products, and the usual one is then one look-up
_one_codings: dict[tuple, tuple[tuple[Drug, ...], str]] = {}


def _one_coding(concept: dict) -> tuple[tuple[Drug, ...], str] | None:
    """_one_coding_view of a concept with exactly one coding; None for any other shape (read the general way)."""
    codings = concept.get("coding")
    if type(codings) is not list or len(codings) != 1 or type(codings[0]) is not dict:
        return None
    coding = codings[0]
    key = (coding.get("code"), coding.get("system"), coding.get("display"), concept.get("text"))
    try:
        return _one_codings[key]
    except (KeyError, TypeError):
        pass
    code, system, display, text = key
    if isinstance(code, str) and (system is None or (isinstance(system, str) and system in RXNORM_SYSTEMS)):
        code = code.strip()
    else:
        code = None
    view = _one_coding_view(code, display if isinstance(display, str) else None, text if isinstance(text, str) else None)
    if all(v is None or type(v) is str for v in key):    # the look-up above finds only these
        keep_short(_one_codings, key, view, maxsize=4096, longest=300)
    return view


def _one_coding_view(code: str | None, display: str | None, text: str | None) -> tuple[tuple[Drug, ...], str]:
    """(ingredients, display text) of a one-coding concept: what identify's general path makes of it."""
    concept: dict = {"coding": [{"code": code, "display": display}]}
    if text is not None:
        concept["text"] = text
    names: list[str] = []
    _concept_names(concept, names)
    return _ingredients(tuple(names)), _display(concept)


@lru_cache(maxsize=4096)
def _ingredients(names: tuple[str, ...]) -> tuple[Drug, ...]:
    """The known ingredients among ``names``, once each, in order (memoised: orders name the same drugs)."""
    vocab = drug_vocabulary()
    return tuple(Drug(rxnorm=vocab.rxnorm_of[n], name=n) for n in dict.fromkeys(names) if n in vocab.rxnorm_of)


def identify(resource: dict, *, resolve: Callable[[str], dict | None] | None = None,
             is_draft: bool = False) -> MedicationUse:
    """A MedicationRequest dict -> MedicationUse with its ingredients (empty when nothing is recognised)."""
    if not isinstance(resource, dict):
        resource = {}
    mcc = resource.get("medicationCodeableConcept")
    one = _one_coding(mcc) if "medicationReference" not in resource and type(mcc) is dict else None
    if one is not None:   # the usual order: one concept of one coding, read through the memo
        return _use(resource, one[0], one[1], is_draft)
    concepts: list[dict] = [c for c in _as_list(mcc) if isinstance(c, dict)]
    med = _medication(resource, resolve) if "medicationReference" in resource else None
    if med is not None:
        if isinstance(med.get("code"), dict):
            concepts.append(med["code"])
        for ing in _as_list(med.get("ingredient")):
            if isinstance(ing, dict) and isinstance(ing.get("itemCodeableConcept"), dict):
                concepts.append(ing["itemCodeableConcept"])
    names: list[str] = []
    for concept in concepts:
        _concept_names(concept, names)
    ingredients = _ingredients(tuple(names))
    text = ""
    for concept in concepts:
        text = _display(concept)
        if text:
            break
    if not text and isinstance(resource.get("medicationReference"), dict):
        display = resource["medicationReference"].get("display")
        text = display if isinstance(display, str) else ""
        if text and not ingredients:
            _concept_names({"text": text}, names)
            ingredients = _ingredients(tuple(names))
    return _use(resource, ingredients, text, is_draft)


def _use(resource: dict, ingredients: tuple[Drug, ...], text: str, is_draft: bool) -> MedicationUse:
    rid = resource.get("id")
    ref = f"MedicationRequest/{rid}" if isinstance(rid, str) and rid else f"urn:uuid:{uuid.uuid4()}"
    authored = fhirdates.parse(resource.get("authoredOn"))
    status = resource.get("status")
    intent = resource.get("intent")
    # positional (ref, status, intent, ingredients, text, authored_on, is_draft, resource): one per medication of
    # every call, and keywords cost twice as much
    return MedicationUse(ref, status if isinstance(status, str) else "unknown",
                         intent if isinstance(intent, str) else None, ingredients, text,
                         authored.at if authored else None, is_draft, resource)
