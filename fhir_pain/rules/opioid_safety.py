"""Opioid safety (CDC 2022 guideline; FDA 2019 for gabapentinoids): daily MME thresholds, opioids with
benzodiazepines / other CNS depressants / gabapentinoids (from either side of the order), ER/LA opioids for an
opioid-naive patient or acute pain, acute prescriptions beyond 7 days, naloxone, medication for opioid use
disorder, urine drug testing on long-term therapy. Thresholds, texts and code lists: profiles/opioid/.

Order hooks: the findings of one ordered drug join that drug's card (with its PGx advice). patient-view: the
current total MME and the findings on the active list form one opioid card. Exclusions (active cancer, palliative
or end-of-life care, sickle cell disease) silence every rule except the offer of treatment for opioid use
disorder; the MME itself is still shown. Not checked: the state PDMP (needs a state system).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from datetime import timedelta
from decimal import Decimal

from fhir_pain.facts import Drug, Finding, MedicationUse
from fhir_pain.gather import CONDITIONS, MEDICATION_HISTORY, MEDICATIONS, OPIOID_TESTS, array
from fhir_pain.opioid import MmeResult, OrderClasses, classify, daily_mme
from fhir_pain.opioid.knowledge import rules
from fhir_pain.opioid.records import latest_drug_test, matching_conditions, ref
from fhir_pain.pgx.drugs import drug_by_name
from fhir_pain.rules.context import RuleContext
from fhir_pain.rules.text import evidence_md, fit, join_and, md

KIND = "opioid-safety"
CO_CLASSES = ("benzodiazepine", "cnsDepressant", "gabapentinoid")
_CO_SET = frozenset(CO_CLASSES)
_CO_RULE = {"benzodiazepine": "benzodiazepine", "cnsDepressant": "cns-depressant", "gabapentinoid": "gabapentinoid"}
_CO_WORDS = {"benzodiazepine": "a benzodiazepine", "cnsDepressant": "another CNS depressant",
             "gabapentinoid": "a gabapentinoid"}


@dataclass
class OpioidState:
    """One patient's opioid picture, built once per evaluation."""
    orders: list[OrderClasses]          # active + drafts, classified
    history_meds: list[MedicationUse]    # earlier requests (classified only when a rule asks)
    mme: MmeResult
    exclusions: list[dict]               # Conditions that put the patient outside the guideline
    oud: list[dict]
    overdose: list[dict]

    @cached_property
    def history(self) -> list[OrderClasses]:
        return [classify(m) for m in self.history_meds]

    @cached_property
    def _by_class(self) -> dict[str, list[OrderClasses]]:
        """class -> the orders in it, in list order: the rules ask with_class some ten times per opioid draft."""
        out: dict[str, list[OrderClasses]] = {}
        for o in self.orders:
            for cls in o.classes:
                out.setdefault(cls, []).append(o)
        return out

    def with_class(self, cls: str, *, but: MedicationUse | None = None) -> list[OrderClasses]:
        return [o for o in self._by_class.get(cls, ()) if o.med is not but]


def _classified(ctx: RuleContext, med: MedicationUse) -> OrderClasses:
    """classify(med), once per medication in this evaluation: the state classifies the active list and the drafts,
    and each draft's own rules ask again."""
    memo = ctx._profiles.setdefault("opioid-classes", {})
    got = memo.get(id(med))
    if got is None or got.med is not med:
        got = memo[id(med)] = classify(med)
    return got


def state(ctx: RuleContext) -> OpioidState:
    if "opioid" not in ctx._profiles:
        orders = [_classified(ctx, m) for m in ctx.active + ctx.drafts]
        r = rules()
        found = matching_conditions(ctx.conditions, tuple(r["exclusionText"]))
        ctx._profiles["opioid"] = OpioidState(
            orders=orders, history_meds=list(ctx.history), mme=daily_mme(orders),
            exclusions=list({id(c): c for name in (*r["exclusions"], "text") for c in found.get(name, ())}.values()),
            oud=found.get("opioidUseDisorder", []), overdose=found.get("overdose", []))
    return ctx._profiles["opioid"]


# ---- entry points ---------------------------------------------------------------------------------------------

def opioid_order_findings(ctx: RuleContext, med: MedicationUse) -> list[Finding]:
    """Findings for one ordered draft: an opioid (every rule) or a benzodiazepine / CNS depressant /
    gabapentinoid ordered while an opioid is on the list (the co-prescribing rule from its side)."""
    order = _classified(ctx, med)
    if "opioid" not in order.classes and not order.classes & _CO_SET:
        return []
    st = state(ctx)
    out: list[Finding] = []
    if "opioid" in order.classes:
        drug = _opioid_drug(order)
        if st.exclusions:
            return _oud(ctx, st, order, drug)
        out += _mme(ctx, st, order, drug)
        for cls in CO_CLASSES:
            others = st.with_class(cls, but=med)
            if others:
                out.append(_co(ctx, st, order, drug, cls, others))
        out += _er(ctx, st, order, drug)
        out += _acute(ctx, order, drug)
        out += _naloxone(ctx, st, order, drug)
        out += _oud(ctx, st, order, drug)
        out += _udt(ctx, st, order, drug)
    else:
        opioids = st.with_class("opioid", but=med)
        if opioids and not st.exclusions:
            drug = _named_drug(order)
            for cls in CO_CLASSES:
                if cls in order.classes:
                    out.append(_co(ctx, st, order, drug, cls, opioids, from_other_side=True))
    return out


def opioid_patient_findings(ctx: RuleContext) -> list[Finding]:
    """patient-view: the total MME and the rules on the active list, as one opioid card."""
    st = state(ctx)
    active = [o for o in st.orders if not o.med.is_draft and "opioid" in o.classes]
    if not active:
        return []
    out = [_total(ctx, st)]
    first = active[0]
    if not st.exclusions:
        out += _mme(ctx, st, None, None)
        for cls in CO_CLASSES:
            others = st.with_class(cls)
            if others:
                out.append(_co(ctx, st, None, None, cls, others))
        out += _naloxone(ctx, st, None, None)
        out += _udt(ctx, st, first, None)
    out += _oud(ctx, st, None, None)
    for f in out:
        f.extra["joins"] = "opioid"
    return out


# ---- the rules --------------------------------------------------------------------------------------------

def _mme_words(st: OpioidState) -> str:
    by = st.mme.by_ingredient
    parts = [f"{md(n)} {v} MME/d" for n, v in by.items()]
    return join_and(parts)


def _unreadable_lines(st: OpioidState) -> list[str]:
    return [f"**Dose not readable:** {md(o.text or o.ref)} ({md(o.ref)}): {md(o.reason)}. No MME is given for it, "
            "and no total." for o in st.mme.unreadable]


def _excluded_lines(st: OpioidState) -> list[str]:
    names = sorted({n for o in st.mme.orders for n in o.excluded})
    return [f"**Not counted:** {md(join_and(names))} (CDC gives no MME factor for it)."] if names else []


def _total(ctx: RuleContext, st: OpioidState) -> Finding:
    r = rules()["rules"]["mme-total"]
    total = st.mme.total
    if total is None:
        summary = fit(f"Opioid dose: the daily MME cannot be computed ({len(st.mme.unreadable)} order(s) not "
                      "readable)", "Opioid dose: daily MME cannot be computed")
    else:
        summary = fit(f"Opioids: {total} MME/day in total ({_mme_words(st)})".replace("**", ""),
                      f"Opioids: {total} MME/day in total")
    lines = [f"**Current total:** {total} MME/day ({_mme_words(st)}), active and draft orders." if total is not None
             else "**Current total:** not computed.", *_unreadable_lines(st), *_excluded_lines(st)]
    if st.exclusions:
        lines.append(_exclusion_line(st))
    return _finding(ctx, r, None, None, summary, lines, [o.ref for o in st.mme.orders], indicator="info")


def _exclusion_line(st: OpioidState) -> str:
    what = join_and([md(_label(c)) for c in st.exclusions])
    return (f"**Guideline exclusions on record:** {what}. The CDC 2022 guideline does not cover cancer treatment, "
            "palliative or end-of-life care or sickle cell disease: its dose, co-prescribing, naloxone and testing "
            "alerts are not shown.")


def _mme(ctx, st: OpioidState, order: OrderClasses | None, drug: Drug | None) -> list[Finding]:
    rs = rules()["rules"]
    total = st.mme.total
    if total is None:
        # a draft still without a (structured) dosage is not an unreadable dose: at order-select the dose is often
        # not entered yet, so only order-sign, or an active order, says that the MME cannot be computed
        drafts = {o.med.ref for o in st.orders if o.med.is_draft}
        speak = [o for o in st.mme.unreadable
                 if not o.undosed and not (ctx.hook == "order-select" and o.ref in drafts)]
        if order is None or not speak:
            return []
        mine = next((o for o in st.mme.unreadable if o.ref == order.med.ref), None)
        summary = fit(f"Daily opioid dose (MME) cannot be computed: {st.mme.unreadable[0].text or 'an order'} "
                      "has no readable dose", "Daily opioid dose (MME) cannot be computed")
        lines = ["**Why:** the MME thresholds of the CDC 2022 guideline (50 and 90 MME/day) cannot be checked.",
                 *_unreadable_lines(st),
                 f"**What was read:** {st.mme.known_total} MME/day from the other orders (a lower bound)."]
        f = _finding(ctx, rs["mme-50"], order, drug, summary, lines, [o.ref for o in st.mme.unreadable],
                     indicator="info", rule_id="cdc2022/mme-unreadable", action="monitor")
        f.extra["unreadable"] = mine is not None
        return [f]
    r = rs["mme-90"] if total >= rs["mme-90"]["atLeast"] else rs["mme-50"] if total >= rs["mme-50"]["atLeast"] else None
    if r is None:
        return []
    summary = fit(f"{total} MME/day in total (at or above {r['atLeast']}): "
                  + ("avoid increasing, or justify" if r is rs["mme-90"] else "reassess benefits and risks"),
                  f"{total} MME/day: at or above {r['atLeast']} (CDC 2022)")
    lines = [f"**Why:** the opioids on the list and ordered come to {total} MME/day ({_mme_words(st)}); "
             f"CDC 2022 recommendation {r['recommendation']}: {r['text']}",
             "**Advised:** " + ("reduce the ordered dose or remove the draft, or document why this dose is needed; "
                                "offer naloxone." if r is rs["mme-90"] else
                                "review the benefits and risks before going higher; offer naloxone."),
             *_excluded_lines(st)]
    return [_finding(ctx, r, order, drug, summary, lines, [o.ref for o in st.mme.orders], offer_removal=order)]


def _co(ctx, st, order: OrderClasses | None, drug, cls: str, others: list[OrderClasses], *,
        from_other_side: bool = False) -> Finding:
    r = rules()["rules"][_CO_RULE[cls]]
    if from_other_side:
        opioid_names = join_and(sorted({n for o in others for n in o.opioids}))
        what = join_and(order.names) or order.med.text or "this drug"
        summary = fit(f"{what} ordered with an opioid on the list ({opioid_names}): risk of respiratory depression",
                      f"{what} with an opioid: risk of respiratory depression")
        on_list = f"{md(what)} is ordered while the patient has {md(opioid_names)}"
    else:
        co = join_and(sorted({n for o in others for n in (o.names or (o.med.text,))}))
        subject = drug.name if drug is not None else "opioids"
        summary = fit(f"{subject} with {_CO_WORDS[cls]} ({co}): risk of fatal respiratory depression"
                      if cls == "benzodiazepine" else
                      f"{subject} with {_CO_WORDS[cls]} ({co}): added risk of respiratory depression",
                      f"{subject} with {_CO_WORDS[cls]}: respiratory depression risk")
        on_list = f"the patient has {md(co)}" + ("" if order is None else f" with the {md(subject)} order")
    source = (f"CDC 2022 recommendation {r['recommendation']}" if r["recommendation"] else
              f"FDA Drug Safety Communication {r['knowledge']['version']}")
    lines = [f"**Why:** {on_list}. {source}: {r['text']}",
             "**Advised:** prefer one of the two; if both are needed, use the lowest doses, offer naloxone and "
             "monitor breathing and sedation."]
    refs = [o.med.ref for o in others]
    return _finding(ctx, r, order, drug, summary, lines, refs, offer_removal=order,
                    rule_id=r["id"])


def _opioid_in(orders: list[OrderClasses], ctx, days: int, but: MedicationUse | None) -> bool:
    since = ctx.now - timedelta(days=days)
    for o in orders:
        if o.med is but or o.med.is_draft or "opioid" not in o.classes:
            continue
        if o.med.status == "active" or (o.med.authored_on is not None and o.med.authored_on >= since):
            return True
    return False


def _er(ctx, st: OpioidState, order: OrderClasses, drug) -> list[Finding]:
    r = rules()["rules"]["er-naive"]
    if "extendedRelease" not in order.classes or not order.med.is_draft:
        return []
    acute = _course(order) == "acute"
    naive = not _opioid_in(st.orders + st.history, ctx, r["lookbackDays"], order.med)
    if not (acute or naive):
        return []
    if naive and not acute and (MEDICATIONS in ctx.missing or MEDICATION_HISTORY in ctx.missing):
        return []   # cannot tell "naive" without the medication lists: the card's missing-data line says so
    why = (f"no opioid on record in the past {r['lookbackDays']} days (opioid-naive)" if naive else "")
    if acute:
        why = join_and([w for w in (why, "the order is for acute pain") if w])
    summary = fit(f"Extended-release/long-acting {drug.name if drug else 'opioid'}: {why}",
                  f"ER/LA opioid: {why}")
    lines = [f"**Why:** {why}. CDC 2022 recommendation {r['recommendation']}: {r['text']}",
             "**Advised:** start with an immediate-release opioid at the lowest effective dose, or a non-opioid."]
    return [_finding(ctx, r, order, drug, summary, lines, [], offer_removal=order)]


def _course(order: OrderClasses) -> str | None:
    c = (order.med.resource or {}).get("courseOfTherapyType")
    for coding in array(c.get("coding") if isinstance(c, dict) else None):
        if isinstance(coding, dict) and isinstance(coding.get("code"), str):
            return coding["code"]
    return None


def _supply_days(order: OrderClasses) -> Decimal | None:
    d = ((order.med.resource or {}).get("dispenseRequest") or {})
    q = d.get("expectedSupplyDuration") if isinstance(d, dict) else None
    if not isinstance(q, dict) or not isinstance(q.get("value"), (int, float)) or isinstance(q.get("value"), bool):
        return None
    unit = next((u for u in (q.get("code"), q.get("unit")) if isinstance(u, str) and u), None)
    per = {"d": 1, "wk": 7, "h": Decimal(1) / 24, "mo": 30}.get(unit)
    return Decimal(str(q["value"])) * per if per is not None else None


def _acute(ctx, order: OrderClasses, drug) -> list[Finding]:
    r = rules()["rules"]["acute-duration"]
    days = _supply_days(order)
    if _course(order) != "acute" or days is None or days <= r["maxDays"]:
        return []
    summary = fit(f"Acute pain: {drug.name if drug else 'opioid'} for {days:g} days (more than {r['maxDays']})",
                  f"Acute opioid prescription over {r['maxDays']} days")
    lines = [f"**Why:** the order is for acute pain with a supply of {days:g} days. CDC 2022 recommendation "
             f"{r['recommendation']}: {r['text']}",
             f"**Advised:** shorten the supply to the expected days of severe pain (usually {r['maxDays']} or fewer)."]
    return [_finding(ctx, r, order, drug, summary, lines, [])]


def _naloxone(ctx, st: OpioidState, order, drug) -> list[Finding]:
    r = rules()["rules"]["naloxone"]
    if st.with_class("naloxone"):
        return []
    reasons = []
    total = st.mme.total
    if total is not None and total >= r["mmeAtLeast"]:
        reasons.append(f"{total} MME/day")
    if st.with_class("benzodiazepine"):
        reasons.append("a benzodiazepine")
    if st.overdose:
        reasons.append("a history of overdose")
    if st.oud:
        reasons.append("opioid use disorder")
    if not reasons:
        return []
    summary = fit(f"Offer naloxone: overdose risk raised ({join_and(reasons)}), none on file",
                  "Offer naloxone: overdose risk raised, none on file")
    lines = [f"**Why:** {join_and(reasons)}; no naloxone on the medication list or among the orders. CDC 2022 "
             f"recommendation {r['recommendation']}: {r['text']}",
             "**Advised:** prescribe naloxone and show the patient and family how to use it."]
    f = _finding(ctx, r, order, drug, summary, lines, [ref(c, "Condition") for c in st.overdose + st.oud])
    f.extra["naloxoneDraft"] = True
    return [f]


def _oud(ctx, st: OpioidState, order, drug) -> list[Finding]:
    r = rules()["rules"]["oud"]
    # ordering buprenorphine/methadone/naltrexone, or having one, is the treatment itself
    if not st.oud or (order is not None and "moud" in order.classes) or st.with_class("moud"):
        return []
    what = join_and([md(_label(c)) for c in st.oud])
    summary = fit("Opioid use disorder on the problem list: offer medication treatment (buprenorphine, methadone, "
                  "naltrexone)", "Opioid use disorder: offer medication treatment")
    lines = [f"**Why:** {what}; no buprenorphine, methadone or naltrexone on the list. CDC 2022 recommendation "
             f"{r['recommendation']}: {r['text']}"]
    return [_finding(ctx, r, order, drug, summary, lines, [ref(c, "Condition") for c in st.oud])]


def _udt(ctx, st: OpioidState, order: OrderClasses, drug) -> list[Finding]:
    r = rules()["rules"]["udt"]
    since = ctx.now - timedelta(days=r["longTermDays"])
    long_term = [o for o in st.orders + st.history if "opioid" in o.classes and not o.med.is_draft
                 and o.med.authored_on is not None and o.med.authored_on <= since
                 and (o.med.status == "active" or o in st.history)]
    if not long_term or not any(o.med.status == "active" for o in st.orders if "opioid" in o.classes):
        return []
    if OPIOID_TESTS in ctx.missing:
        return []   # the card's missing-data line says the tests were not checked
    if latest_drug_test(ctx.observations, ctx.now, r["lookbackDays"]) is not None:
        return []
    summary = fit("Long-term opioid therapy: no urine drug test in the past 12 months",
                  "No urine drug test in 12 months on long-term opioids")
    lines = [f"**Why:** opioids since {long_term[0].med.authored_on.date().isoformat()} or earlier; no urine drug "
             f"test result in the past 12 months. CDC 2022 recommendation {r['recommendation']}: {r['text']}",
             "**Advised:** discuss and order a urine drug test; use the result to support, not to punish."]
    return [_finding(ctx, r, order if order is not None and order.med.is_draft else None, drug, summary, lines,
                     [o.med.ref for o in long_term])]


# ---- helpers --------------------------------------------------------------------------------------------------

def _label(c: dict) -> str:
    code = c.get("code") if isinstance(c.get("code"), dict) else {}
    if isinstance(code.get("text"), str):
        return code["text"]
    for coding in array(code.get("coding")):
        if isinstance(coding, dict) and coding.get("display"):
            return str(coding["display"])
    return ref(c, "Condition") or "a condition"


def _opioid_drug(order: OrderClasses) -> Drug | None:
    for d in order.med.ingredients:
        if d.name in order.opioids:
            return d
    f = rules()["factors"].get(order.opioids[0]) if order.opioids else None
    return Drug(f["rxnorm"], order.opioids[0]) if f else None


def _named_drug(order: OrderClasses) -> Drug | None:
    for d in order.med.ingredients:
        return d
    for n in order.names:
        d = drug_by_name(n)
        if d is not None:
            return d
    return None


def _finding(ctx, r: dict, order: OrderClasses | None, drug: Drug | None, summary: str, lines: list[str],
             refs: list[str], *, indicator: str | None = None, rule_id: str | None = None, action: str | None = None,
             offer_removal: OrderClasses | None = None) -> Finding:
    evidence = [e for e in dict.fromkeys([*(refs or ()), *([order.med.ref] if order else [])])
                if e and not e.startswith("urn:")]
    if evidence:
        lines.append(evidence_md(evidence))
    rec = r.get("recommendation")
    k = r.get("knowledge") or rules()["knowledge"]
    lines.append(f"**Source:** [{md(k['source'])}" + (f" recommendation {rec}" if rec else "") + f"]({k['url']})")
    return Finding(
        rule=rule_id or r["id"], kind=KIND, indicator=indicator or r["indicator"], action=action or r["action"],
        summary=summary, detail="\n\n".join(l for l in lines if l), drug=drug,
        medication=order.med if order is not None else None, evidence=tuple(evidence),
        knowledge={"source": k["source"], "version": k["version"], "url": k["url"]},
        mme=state(ctx).mme.to_contract(),
        extra={"joins": "drug", "offerRemoval": offer_removal is not None and offer_removal.med.is_draft,
               "relevantMissing": (CONDITIONS, MEDICATIONS, MEDICATION_HISTORY, OPIOID_TESTS)},
    )
