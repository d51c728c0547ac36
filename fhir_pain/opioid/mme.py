"""Morphine milligram equivalents per day (MME/d) of MedicationRequests, with the CDC 2022 factors
(profiles/opioid/rules.json "factors").

Per order: the dose per administration (doseQuantity, or the high end of doseRange) in mg of each opioid ingredient
(mg or mcg directly for a single-opioid product; a count of tablets/capsules/films/sprays times the product's
strength; mL times mg/mL), times the administrations per day (timing.repeat frequency[Max] per period[Max], or a
timing code such as BID), capped by maxDosePerPeriod; as-needed orders count at their most (maxDosePerPeriod, else
the frequency). A transdermal fentanyl patch counts by its rate: mcg/h x patches x 2.4, whatever its change interval.
MME/d = mg/day x factor. Exact decimals; totals rounded half-up to 0.1 at the end.

When a dose cannot be read (no frequency, a unit that does not fit the strength, an opioid without a CDC factor)
the order gets a reason and no number; a total is given only when every opioid order was read. Never a guess.
Buprenorphine has no factor (partial agonist): it is named as excluded, and counts as nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from fhir_pain.opioid.classify import OrderClasses
from fhir_pain.opioid.knowledge import rules
from fhir_pain.pain.knowledge import as_list

TENTH = Decimal("0.1")
_DAYS = {"s": Decimal(1) / 86400, "min": Decimal(1) / 1440, "h": Decimal(1) / 24, "d": Decimal(1), "wk": Decimal(7)}
_CODES = {"QD": 1, "QOD": Decimal("0.5"), "BID": 2, "TID": 3, "QID": 4, "AM": 1, "PM": 1, "QHS": 1, "HS": 1,
          "Q4H": 6, "Q6H": 4, "Q8H": 3, "Q12H": 2, "Q3H": 8, "Q2H": 12, "Q1H": 24}
_COUNT_UNITS = {"tablet", "tablets", "tab", "tabs", "{tbl}", "{tablet}", "capsule", "capsules", "cap", "caps",
                "{capsule}", "film", "{film}", "spray", "{spray}", "actuation", "{actuation}", "{puff}", "lozenge",
                "suppository", "{suppository}", "patch", "patches", "{patch}", "1", "each", "ea", "{each}",
                "unit", "{unit}", "tbl", "tablet(s)", "capsule(s)", "{pill}", "pill", "pills", "{dose}",
                "{tbl}", "tab(s)", "{tab}", "{cap}", "{lozenge}", "{patch}", "{film}", "{puff}", "{actuat}"}


@dataclass(frozen=True)
class OrderMme:
    ref: str
    text: str
    by_ingredient: dict[str, Decimal] | None      # unrounded MME/d per opioid; None when unreadable
    reason: str | None = None                      # why no number
    undosed: bool = False                          # no structured dosage (none yet, or free text only)
    excluded: tuple[str, ...] = ()                 # opioids without an MME (buprenorphine)


@dataclass
class MmeResult:
    orders: list[OrderMme] = field(default_factory=list)

    @property
    def unreadable(self) -> list[OrderMme]:
        return [o for o in self.orders if o.by_ingredient is None]

    @property
    def by_ingredient(self) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        for o in self.orders:
            for name, v in (o.by_ingredient or {}).items():
                out[name] = out.get(name, Decimal(0)) + v
        return {k: round1(v) for k, v in out.items()}

    @property
    def total(self) -> Decimal | None:
        """None when any opioid order could not be read: a partial sum would understate the risk."""
        if self.unreadable:
            return None
        return round1(sum((v for o in self.orders for v in (o.by_ingredient or {}).values()), Decimal(0)))

    @property
    def known_total(self) -> Decimal:
        """The sum of what was read (a lower bound when some orders were not)."""
        return round1(sum((v for o in self.orders for v in (o.by_ingredient or {}).values()), Decimal(0)))

    def to_contract(self) -> dict | None:
        total = self.total
        if total is None or not self.orders:
            return None
        return {"total": float(total), "byIngredient": {k: float(v) for k, v in self.by_ingredient.items()},
                "unit": "MME/d"}


def round1(v: Decimal) -> Decimal:
    return v.quantize(TENTH, rounding=ROUND_HALF_UP)


class Unreadable(Exception):
    """The dose of an order cannot be read; the message says why (for the card)."""


def _dec(v: object) -> Decimal | None:
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        return None
    try:
        d = Decimal(str(v))
    except InvalidOperation:
        return None
    return d if d.is_finite() and d >= 0 else None


def _unit(q: dict) -> str:
    u = q.get("code") or q.get("unit") or ""
    return u.strip().lower() if isinstance(u, str) else ""


def daily_mme(orders: list[OrderClasses]) -> MmeResult:
    return MmeResult([order_mme(o) for o in orders if o.opioids])


def order_mme(o: OrderClasses) -> OrderMme:
    factors, excluded = rules()["factors"], tuple(n for n in o.opioids if n in rules()["noFactor"])
    counted = [n for n in o.opioids if n not in excluded]
    try:
        for n in counted:
            f = factors.get(n)
            if f is None:
                raise Unreadable(f"{n} has no CDC 2022 conversion factor")
            if f.get("onlyDoseForms") and not o.transdermal:
                raise Unreadable(f"{n}: CDC 2022 gives a factor for transdermal patches only")
        if not counted:
            return OrderMme(o.med.ref, o.med.text, {}, excluded=excluded)
        per_day = _per_day_amounts(o, counted)
        return OrderMme(o.med.ref, o.med.text, {n: per_day[n] * Decimal(factors[n]["factor"]) for n in counted},
                        excluded=excluded)
    except Unreadable as why:
        # no structured dose at all (no instruction, or its text only): a sig a person reads, not a dose we misread
        undosed = not any(isinstance(d, dict) and (d.get("doseAndRate") or d.get("timing"))
                          for d in as_list((o.med.resource or {}).get("dosageInstruction")))
        return OrderMme(o.med.ref, o.med.text, None, reason=str(why), excluded=excluded, undosed=undosed)


def _code(value: object) -> str | None:
    """A unit code as sent, when it is a string (a list or an object there would be unhashable in a look-up)."""
    return value if isinstance(value, str) else None


def _instructions(o: OrderClasses) -> list[dict]:
    dis = [d for d in as_list((o.med.resource or {}).get("dosageInstruction")) if isinstance(d, dict)]
    if not dis:
        raise Unreadable("no dosage instruction")
    return dis


def _per_day_amounts(o: OrderClasses, counted: list[str]) -> dict[str, Decimal]:
    """mg/day (mcg/h for a patch) per counted opioid. Instructions with the same sequence (or none) run together
    and are summed; of sequential ones (a taper) the highest counts."""
    groups: dict[object, list[dict]] = {}
    for d in _instructions(o):
        groups.setdefault(d.get("sequence"), []).append(d)
    best: dict[str, Decimal] | None = None
    for group in groups.values():
        total = {n: Decimal(0) for n in counted}
        for d in group:
            for n, v in _one_instruction(o, d, counted).items():
                total[n] += v
        if best is None or sum(total.values()) > sum(best.values()):
            best = total
    return best or {}


def _dose(d: dict) -> tuple[Decimal, str]:
    for dr in as_list(d.get("doseAndRate")):
        if not isinstance(dr, dict):
            continue
        q = dr.get("doseQuantity")
        if isinstance(q, dict) and _dec(q.get("value")) is not None:
            return _dec(q["value"]), _unit(q)
        rng = dr.get("doseRange")
        if isinstance(rng, dict):
            high = rng.get("high")
            if isinstance(high, dict) and _dec(high.get("value")) is not None:
                return _dec(high["value"]), _unit(high)
            raise Unreadable("dose range without an upper bound")
    raise Unreadable("no dose quantity")


def _amount(o: OrderClasses, n: str, value: Decimal, unit: str, counted: list[str]) -> Decimal:
    """mg of ingredient ``n`` (mg/h for a patch) in one administration."""
    strength = next((s for s in o.strengths if s.ingredient == n), None)
    if unit in ("mg", "mcg", "ug", "µg") and not o.transdermal:
        if len(counted) > 1 or len(o.med.ingredients) > 1 or " / " in o.med.text:
            # "10 mg" of acetaminophen/oxycodone could be either ingredient: count units, not mg
            raise Unreadable("a dose in mg of a combination product")
        return value if unit == "mg" else value / 1000
    if strength is None:
        raise Unreadable(f"the strength of {n} is not known (no coded product or strength in the name)")
    if unit == "ml":
        if strength.unit != "MG/ML":
            raise Unreadable(f"a dose in mL of a product whose strength is {strength.unit}")
        return value * strength.value
    if unit in _COUNT_UNITS or unit == "":
        if strength.unit == "MG/ML":
            raise Unreadable("a liquid dosed without a volume")
        if unit == "" and not o.transdermal:
            raise Unreadable("a dose without a unit")
        return value * strength.value
    if unit in ("mcg/h", "ug/h", "mcg/hr") and o.transdermal:
        return value / 1000
    raise Unreadable(f"dose unit '{unit}' does not fit the product")


def _one_instruction(o: OrderClasses, d: dict, counted: list[str]) -> dict[str, Decimal]:
    value, unit = _dose(d)
    if o.transdermal:
        # mcg/h of every patch worn at once; the change interval does not change the rate
        return {n: _amount(o, n, value, unit, counted) * 1000 for n in counted}
    per_day = _administrations(d)
    cap = _max_per_day(d)
    out = {}
    for n in counted:
        one = _amount(o, n, value, unit, counted)
        daily = one * per_day if per_day is not None else None
        if cap is not None:
            cap_value, cap_unit = cap
            capped = _amount(o, n, cap_value, cap_unit or unit, counted)
            daily = capped if daily is None else min(daily, capped)
        if daily is None:
            raise Unreadable("no frequency" + (" and no maximum per period for an as-needed dose"
                                               if d.get("asNeededBoolean") or d.get("asNeededCodeableConcept") else ""))
        out[n] = daily
    return out


def _administrations(d: dict) -> Decimal | None:
    timing = d.get("timing")
    if not isinstance(timing, dict):
        return None
    rep = timing.get("repeat")
    if isinstance(rep, dict) and (rep.get("frequency") is not None or rep.get("frequencyMax") is not None
                                  or rep.get("period") is not None):
        freq = _dec(rep.get("frequencyMax")) or _dec(rep.get("frequency")) or Decimal(1)
        period = _dec(rep.get("period"))
        if period is None or period == 0:
            if rep.get("timeOfDay") or rep.get("when"):
                return Decimal(len(rep.get("timeOfDay") or rep.get("when")))
            raise Unreadable("frequency without a period")
        # the shortest period allowed gives the most administrations (periodMax is the longest)
        days = _DAYS.get(_code(rep.get("periodUnit")))
        if days is None:
            raise Unreadable(f"period unit '{rep.get('periodUnit')}' cannot be read as days")
        return freq / (period * days)
    if isinstance(rep, dict) and (rep.get("timeOfDay") or rep.get("when")):
        return Decimal(len(rep.get("timeOfDay") or rep.get("when")))
    code = timing.get("code")
    for c in as_list(code.get("coding") if isinstance(code, dict) else None):
        if isinstance(c, dict) and str(c.get("code", "")).upper() in _CODES:
            return Decimal(_CODES[str(c["code"]).upper()])
    return None


def _max_per_day(d: dict) -> tuple[Decimal, str] | None:
    ratio = d.get("maxDosePerPeriod")
    if not isinstance(ratio, dict):
        return None
    num, den = ratio.get("numerator"), ratio.get("denominator")
    if not isinstance(num, dict) or not isinstance(den, dict):
        return None
    n, p = _dec(num.get("value")), _dec(den.get("value"))
    days = _DAYS.get(_code(den.get("code")) or _code(den.get("unit")))
    if n is None or not p or days is None:
        raise Unreadable("a maximum dose per period that cannot be read")
    return n / (p * days), _unit(num)
