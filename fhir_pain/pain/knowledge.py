"""The pain knowledge files (profiles/pain/*.json) as small typed, indexed objects.

Only interpretation lives here; every number and code comes from the files. Built once per process
(:func:`knowledge` is cached) because the indexes are read on every observation.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from types import MappingProxyType
from typing import Mapping, Sequence

from fhir_pain import profiles
from fhir_pain.facts import Drug

LOINC = "http://loinc.org"
# Other spellings of the systems we match on, as EHRs send them.
SYSTEM_ALIASES = {
    "urn:oid:2.16.840.1.113883.6.1": LOINC,
    "http://loinc.org/": LOINC,
    "https://loinc.org": LOINC,
    "urn:oid:2.16.840.1.113883.6.96": "http://snomed.info/sct",
}
UCUM = "http://unitsofmeasure.org"


def norm_system(system: object) -> str:
    if not isinstance(system, str):
        return ""
    return SYSTEM_ALIASES.get(system, system)


def as_list(value: object) -> list | tuple:
    """A JSON array element as sent, or nothing: EHR JSON sometimes has an object or a scalar there."""
    return value if isinstance(value, list) else ()


@lru_cache(maxsize=256)
def days(n: int) -> timedelta:
    """``timedelta(days=n)``, remembered: building one costs ~0.3 µs, and every profile asks for the same few
    windows (look-backs and trial lengths from the knowledge files) again and again."""
    return timedelta(days=n)


def norm_unit(unit: object) -> str:
    return unit.replace(" ", "").lower() if isinstance(unit, str) else ""


@dataclass(frozen=True, slots=True)
class Cutoff:
    level: str        # "likely" | "possible" | "features" | "positive" | "hint"
    op: str           # ">=" | ">"
    value: float
    meaning: str
    source: str
    verified: bool    # False: never drives a strong conclusion

    def met(self, v: float) -> bool:
        return v >= self.value if self.op == ">=" else v > self.value

    def describe(self) -> str:
        return f"{self.op}{self.value:g}"


@dataclass(frozen=True, slots=True)
class Items:
    codes: tuple[str, ...]                # "system|code", in questionnaire order
    lo: float
    hi: float
    method: str                           # "sum" | "mean"
    min: int                              # items needed to score
    answers: Mapping[str, Mapping[str, float]]   # answer system (and its aliases) -> code -> item value
    flags: Mapping[str, str]              # item code -> flag raised when the item is > 0


@dataclass(frozen=True, slots=True)
class Instrument:
    key: str
    name: str
    kind: str
    codes: tuple[str, ...]
    lo: float
    hi: float
    integer: bool
    units: Mapping[str, float]            # instrument-specific unit -> factor
    unit_required: bool
    items: Items | None
    cutoffs: tuple[Cutoff, ...]           # highest level first
    bands: tuple[tuple[float, float, str], ...]
    bands_verified: bool
    source: str

    def cutoff_met(self, v: float) -> Cutoff | None:
        for c in self.cutoffs:
            if v >= c.value if c.op == ">=" else v > c.value:   # Cutoff.met, without a call per cut-off
                return c
        return None

    def band(self, v: float) -> str | None:
        bands = self.bands
        for i, (lo, hi, label) in enumerate(bands):
            # bands are written with whole-number bounds: a mean like 4.5 falls in the gap and belongs below
            if lo <= v and (v <= hi or (i + 1 < len(bands) and v < bands[i + 1][0])):
                return label
        return None


@dataclass(frozen=True, slots=True)
class ItemFlag:
    """A flag an item raises when answered above 0 (PHQ-9 item 9 -> "suicidality"), and how long it stands."""
    key: str
    label: str                            # what the item asks, for reasons: "PHQ-9 item 9 (...)"
    advice: str                           # what a raised flag asks for, in a few words
    lookback_days: int                    # an answer older than this no longer raises the flag
    source: str


@dataclass(frozen=True, slots=True)
class Role:
    """What an Observation (or component) code means: an instrument's total/panel, or one of its items."""
    instrument: str
    item: str | None = None   # the item's canonical "system|code"


@dataclass(frozen=True, slots=True)
class AnalgesicClass:
    key: str
    name: str
    neuropathic_line: int | None          # NeuPSIG (Finnerup 2015): 1 first-line, 2 second, 3 third
    track_response: bool
    adequate_trial_days: int | None
    trial_source: str | None
    trial_verified: bool
    ingredients: tuple[Drug, ...]
    priority: int                         # order in the file: names a combination product


@dataclass(frozen=True, slots=True)
class AnalgesicIngredient:
    drug: Drug
    cls: AnalgesicClass
    adequate_trial_days: int | None
    trial_source: str | None
    trial_verified: bool


@dataclass(frozen=True, slots=True)
class ConditionEntry:
    group: str
    label: str
    level: str


class Knowledge:
    """Everything the engine reads from profiles/pain, indexed for the hot path."""

    def __init__(self, instruments: dict, conditions: dict, analgesics: dict, phenotyping: dict):
        self.versions = {d["schema"]: d["meta"]["version"] for d in (instruments, conditions, analgesics, phenotyping)}
        self.code_system = instruments["codeSystem"]
        self.score_units = frozenset(instruments["scoreUnits"])
        self.instruments: dict[str, Instrument] = {}
        self.code_index: dict[str, tuple[Role, ...]] = {}          # "system|code" -> roles
        self.by_system: dict[str, dict[str, tuple[Role, ...]]] = {}  # system (and its aliases) -> code -> roles
        lists = instruments["answerLists"]
        for key, d in instruments["instruments"].items():
            inst = _instrument(key, d, lists)
            self.instruments[key] = inst
            for code in inst.codes:
                self._index(code, Role(key))
            if inst.items:
                for code in inst.items.codes:
                    self._index(code, Role(key, code))
        panels = {c for c, roles in self.code_index.items() if any(r.item is None for r in roles)}
        mixed = [c for c in panels if any(r.item is not None for r in self.code_index[c])]
        if mixed:   # the engine tells a panel from an item by its code alone
            raise ValueError(f"pain/instruments.json: codes used both as a total and as an item: {mixed}")
        for key, roles in self.code_index.items():
            system, _, code = key.partition("|")
            self.by_system.setdefault(system, {})[code] = roles
        for alias, system in SYSTEM_ALIASES.items():
            if system in self.by_system:
                self.by_system[alias] = self.by_system[system]
        self.params = phenotyping
        for group in (phenotyping["intensity"], *phenotyping["axes"].values(), *phenotyping["modulators"].values()):
            unknown = set(group["instruments"]) - self.instruments.keys()
            if unknown:
                raise ValueError(f"pain/phenotyping.json names unknown instruments {sorted(unknown)}")
        self.item_flags = _item_flags(phenotyping, self.instruments)
        self._keys_of_kind: dict[tuple[str, ...], tuple[str, ...]] = {}   # the engine asks with constants only
        # modulator -> the flags its instruments' items raise (PHQ-9 item 9 -> "suicidality" for depression)
        self.modulator_flags = {
            name: frozenset(f for key in m["instruments"] if self.instruments[key].items
                            for f in self.instruments[key].items.flags.values())
            for name, m in phenotyping["modulators"].items()}
        self._conditions(conditions)
        self._analgesics(analgesics)

    def _index(self, code: str, role: Role) -> None:
        self.code_index[code] = self.code_index.get(code, ()) + (role,)
        system, _, bare = code.partition("|")
        if system == LOINC:  # LOINC codes are self-identifying: accept a coding that left out its system
            self.code_index["|" + bare] = self.code_index.get("|" + bare, ()) + (role,)

    def _conditions(self, d: dict) -> None:
        self.condition_systems = {s: kind for kind, systems in d["systems"].items() for s in systems}
        self.snomed: dict[str, list[ConditionEntry] | tuple[ConditionEntry, ...]] = {}
        self.icd_prefixes: dict[str, list[tuple[ConditionEntry, tuple[str, ...]]]] = {}
        for group, g in d["groups"].items():
            for e in g["entries"]:
                entry = ConditionEntry(group, e["label"], e["level"])
                for code in e.get("snomed", ()):
                    self.snomed.setdefault(code, []).append(entry)
                excl = tuple(_icd(x) for x in e.get("exclude", ()))
                for code in (*e.get("icd10", ()), *e.get("icd11", ())):
                    self.icd_prefixes.setdefault(_icd(code), []).append((entry, excl))
        self.snomed = {code: tuple(entries) for code, entries in self.snomed.items()}   # handed out as they are
        # the systems (as sent, aliases included) whose codes are SNOMED: one set test instead of condition_entries
        self.snomed_systems = frozenset(
            [s for s, kind in self.condition_systems.items() if kind == "snomed" and s not in SYSTEM_ALIASES]
            + [a for a, s in SYSTEM_ALIASES.items() if self.condition_systems.get(s) == "snomed"])

    def _analgesics(self, d: dict) -> None:
        self.analgesic_classes: dict[str, AnalgesicClass] = {}
        self.by_rxnorm: dict[str, AnalgesicIngredient] = {}
        self.by_name: dict[str, AnalgesicIngredient] = {}
        for priority, (key, c) in enumerate(d["classes"].items()):
            cls = AnalgesicClass(
                key=key, name=c["name"], neuropathic_line=c.get("neuropathicLine"),
                track_response=c["trackResponse"], adequate_trial_days=c.get("adequateTrialDays"),
                trial_source=c.get("trialSource"), trial_verified=c.get("trialVerified", False),
                ingredients=tuple(Drug(i["rxnorm"], i["name"]) for i in c["ingredients"]),
                priority=priority)
            self.analgesic_classes[key] = cls
            for i in c["ingredients"]:
                own = "adequateTrialDays" in i
                ing = AnalgesicIngredient(
                    drug=Drug(i["rxnorm"], i["name"]), cls=cls,
                    adequate_trial_days=i["adequateTrialDays"] if own else cls.adequate_trial_days,
                    trial_source=i.get("trialSource") if own else cls.trial_source,
                    trial_verified=i.get("trialVerified", False) if own else cls.trial_verified)
                self.by_rxnorm[i["rxnorm"]] = ing
                self.by_name[i["name"]] = ing

    # ---- look-ups ---------------------------------------------------------------------------------------

    def keys_of_kind(self, kinds: tuple[str, ...]) -> tuple[str, ...]:
        """The keys of the instruments of those kinds ("intensity", ...), in file order; computed once."""
        keys = self._keys_of_kind.get(kinds)
        if keys is None:
            keys = self._keys_of_kind[kinds] = tuple(k for k, i in self.instruments.items() if i.kind in kinds)
        return keys

    def analgesic(self, drug: Drug) -> AnalgesicIngredient | None:
        """The analgesic class entry of an ingredient, by RxNorm id, else by lower-case name."""
        return self.by_rxnorm.get(drug.rxnorm) or self.by_name.get(drug.name.lower())

    def condition_entries(self, system: str, code: str) -> Sequence[ConditionEntry]:
        kind = self.condition_systems.get(system)
        if kind == "snomed":
            return self.snomed.get(code, ())
        if kind is None:
            return ()
        c = _icd(code)
        hits = []
        for n in range(3, len(c) + 1):
            for entry, excl in self.icd_prefixes.get(c[:n], ()):
                if not any(c.startswith(x) for x in excl):
                    hits.append(entry)
        return hits


def _item_flags(phenotyping: dict, instruments: dict[str, Instrument]) -> dict[str, ItemFlag]:
    """phenotyping.json "itemFlags": every flag an instrument item raises needs its look-back there."""
    out = {}
    for key, d in (phenotyping.get("itemFlags") or {}).items():
        days = d.get("lookbackDays") if isinstance(d, dict) else None
        if isinstance(days, bool) or not isinstance(days, int) or days < 1:
            raise ValueError(f"pain/phenotyping.json itemFlags.{key}: lookbackDays must be a positive integer")
        out[key] = ItemFlag(key, d.get("item") or key, d.get("advice") or "act on it whatever the total", days,
                           d.get("source", ""))
    raised = {f for inst in instruments.values() if inst.items for f in inst.items.flags.values()}
    if raised - out.keys():
        raise ValueError(f"pain/phenotyping.json itemFlags: no look-back for {sorted(raised - out.keys())}")
    return out


def _icd(code: str) -> str:
    return code.replace(".", "").strip().upper()


def _instrument(key: str, d: dict, lists: dict) -> Instrument:
    items = None
    if "items" in d:
        it = d["items"]
        answers: dict[str, dict[str, float]] = {}
        for key_, value in (lists[it["answerList"]]["answers"] if "answerList" in it else {}).items():
            system, _, code = key_.partition("|")
            answers.setdefault(system, {})[code] = value
        for alias, system in SYSTEM_ALIASES.items():
            if system in answers:
                answers[alias] = answers[system]
        items = Items(tuple(it["codes"]), it["range"][0], it["range"][1], it["method"], it["min"],
                      MappingProxyType(answers), MappingProxyType(dict(it.get("flags", {}))))
        if it["min"] > len(it["codes"]):
            raise ValueError(f"instrument {key}: needs more items than it has")
    cutoffs = tuple(Cutoff(c["level"], c["op"], c["value"], c["meaning"], c["source"], c["verified"])
                    for c in d.get("cutoffs", ()))
    return Instrument(
        key=key, name=d["name"], kind=d["kind"], codes=tuple(d["codes"]), lo=d["range"][0], hi=d["range"][1],
        integer=d["integer"], units=MappingProxyType({norm_unit(u): f for u, f in d.get("units", {}).items()}),
        unit_required=d.get("unitRequired", False), items=items, cutoffs=cutoffs,
        bands=tuple((b["min"], b["max"], b["label"]) for b in d.get("bands", ())),
        bands_verified=d.get("bandsVerified", False), source=d["source"])


@lru_cache(maxsize=1)
def knowledge() -> Knowledge:
    """The shipped knowledge (profiles/pain), loaded once."""
    return Knowledge(profiles.load("pain/instruments.json"), profiles.load("pain/conditions.json"),
                     profiles.load("pain/analgesics.json"), profiles.load("pain/phenotyping.json"))


def instrument(key: str) -> Instrument:
    """An instrument definition by key ("phq9", "dn4", ...). KeyError for an unknown key."""
    return knowledge().instruments[key]


def analgesic_classes() -> Mapping[str, AnalgesicClass]:
    return MappingProxyType(knowledge().analgesic_classes)
