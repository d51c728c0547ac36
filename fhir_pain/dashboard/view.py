"""PatientData -> what the dashboard page shows: series for the charts (the same rows feed each chart's table),
the pain profile, the PGx profile and the daily MME. Everything comes from the engines the services use
(fhir_pain.evaluate.build_context: the pain profile, the PGx profile, CPIC's recommendations, the MME); nothing
here scores, phenotypes or looks up advice of its own.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal

from fhir_pain import pgx
from fhir_pain.evaluate import build_context
from fhir_pain.facts import MedicationUse, PatientData
from fhir_pain.fhirdates import utc
from fhir_pain.opioid.classify import classify
from fhir_pain.opioid.mme import daily_mme
from fhir_pain.pain.knowledge import knowledge
from fhir_pain.profiles import load
from fhir_pain.rules.knowledge import pain_rules
from fhir_pain.rules.pain_context import PHENOTYPE_WORDS
from fhir_pain.rules.text import instrument_label
from fhir_pain.rules.population import population

INTENSITY = ("nrs", "peg", "bpi-severity", "bpi-interference", "vas", "faces")
PSYCHOSOCIAL = ("phq9", "gad7", "pcs")
ACTION_WORDS = {"avoid": "Avoid", "use-alternative": "Use an alternative", "reduce-dose": "Lower starting dose",
                "monitor": "Usual dose, monitor", "standard-dose": "Standard dosing",
                "no-recommendation": "No CPIC recommendation"}
MME_DAYS = 180          # the MME chart's look-back
SUPPLY_DAYS = 30        # a finished request with no stated end is drawn for this long (a usual month's supply)


@dataclass(frozen=True)
class Point:
    instrument: str
    label: str
    when: datetime
    value: float
    ref: str


@dataclass(frozen=True)
class Band:
    """An analgesic period: a MedicationRequest from its start to its end (active: to now)."""
    ref: str
    drug: str
    start: datetime
    end: datetime
    status: str
    end_known: bool


@dataclass(frozen=True)
class Trial:
    """The engine's treatment response for one current analgesic, with the window of its adequate trial."""
    ref: str
    drug: str
    status: str
    instrument: str | None
    start: datetime | None
    adequate_end: datetime | None
    baseline: float | None
    baseline_when: datetime | None
    latest: float | None
    latest_when: datetime | None
    change_pct: float | None
    reasons: tuple[str, ...]

    @property
    def mark30(self) -> float | None:      # the score a 30 % reduction reaches (IMMPACT moderate)
        return None if self.baseline is None else round(self.baseline * 0.7, 2)

    @property
    def mark50(self) -> float | None:      # ... and a 50 % one (substantial)
        return None if self.baseline is None else round(self.baseline * 0.5, 2)


@dataclass(frozen=True)
class Cutoff:
    instrument: str
    value: float
    op: str
    meaning: str


@dataclass(frozen=True)
class GeneRow:
    gene: str
    diplotype: str | None
    activity_score: str | None
    phenotype: str
    genetic_phenotype: str | None
    phenoconverted_by: tuple[str, ...]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class DrugAdvice:
    drug: str
    genes: str
    action: str
    classification: str
    line: str


@dataclass(frozen=True)
class MmeDay:
    day: date
    total: float | None          # None: an opioid dose that day could not be read
    known: float


@dataclass
class DashboardView:
    patient_id: str
    name: str
    now: datetime
    pain: list[Point] = field(default_factory=list)
    bands: list[Band] = field(default_factory=list)
    trials: list[Trial] = field(default_factory=list)
    psych: list[Point] = field(default_factory=list)
    cutoffs: list[Cutoff] = field(default_factory=list)
    item9: dict | None = None               # the PHQ-9 item 9 answer that raises the flag
    phenotypes: list[tuple[str, str, tuple[str, ...]]] = field(default_factory=list)  # code, words, evidence
    axes: list[tuple[str, str, tuple[str, ...]]] = field(default_factory=list)        # axis, level, reasons
    modulators: list[tuple[str, str, tuple[str, ...]]] = field(default_factory=list)
    genes: list[GeneRow] = field(default_factory=list)
    advice: list[DrugAdvice] = field(default_factory=list)
    mme: list[MmeDay] = field(default_factory=list)
    missing: tuple[str, ...] = ()

    @property
    def span(self) -> tuple[datetime, datetime]:
        """The time axis shared by the pain and psychosocial charts: all their data, to now, at least 90 days."""
        times = [p.when for p in (*self.pain, *self.psych)] + [t for b in self.bands for t in (b.start, b.end)]
        end = max([self.now, *times])
        start = min([end - timedelta(days=90), *times])
        pad = (end - start) * 0.03
        return start - pad, end + pad


def _label(instrument: str) -> str:
    return instrument_label(instrument).replace("-INTERFERENCE", " interference").replace("-SEVERITY", " severity")


def _name(patient: dict | None) -> str:
    names = (patient or {}).get("name") or [{}]
    first = names[0] if isinstance(names[0], dict) else {}
    return first.get("text") or " ".join([*first.get("given", []), first.get("family", "")]).strip() or "(no name)"


def build(data: PatientData) -> DashboardView:
    ctx = build_context(data, "patient-view")
    view = DashboardView(patient_id=data.patient_id, name=_name(data.patient), now=utc(data.now),
                         missing=tuple(data.missing))
    profile = ctx.pain
    if profile is not None:
        _pain_parts(view, profile)
    meds = [*ctx.active, *ctx.history]
    view.bands = _bands(meds, view.now)
    view.trials = [_anchored(t, view.bands) for t in view.trials]
    _pgx_parts(view, ctx)
    view.mme = _mme_days(meds, view.now)
    return view


def _point(s) -> Point:
    return Point(s.instrument, _label(s.instrument), utc(s.date), float(s.value), s.ref)


def _pain_parts(view: DashboardView, profile) -> None:
    dated = [s for s in profile.scores if s.orderable]
    view.pain = [_point(s) for s in dated if s.instrument in INTENSITY]
    view.psych = [_point(s) for s in dated if s.instrument in PSYCHOSOCIAL]
    instruments = load("pain/instruments.json")["instruments"]
    for key in PSYCHOSOCIAL:
        for c in instruments[key].get("cutoffs", ()):
            view.cutoffs.append(Cutoff(key, float(c["value"]), c["op"], c["meaning"]))
    for mod in profile.modulators.values():
        answer = mod.flag_answers.get("suicidality")
        if answer is not None and answer.raised:
            view.item9 = {"value": answer.value, "when": answer.date, "ref": answer.ref}
    for r in profile.responses:
        start = view.now - timedelta(days=r.trial_days) if r.trial_days is not None else None
        end = start + timedelta(days=r.adequate_trial_days) if start and r.adequate_trial_days else None
        view.trials.append(Trial(
            ref=r.medication, drug=r.drug.name, status=r.status, instrument=r.instrument, start=start,
            adequate_end=end, baseline=r.baseline, baseline_when=_at(r.baseline_time), latest=r.latest,
            latest_when=_at(r.latest_time), change_pct=r.change_pct, reasons=tuple(r.reasons)))
    view.phenotypes = [(p, PHENOTYPE_WORDS.get(p, p), tuple(profile.evidence.get(p, ()))) for p in profile.phenotypes]
    view.axes = [(k, a.level, tuple(a.reasons)) for k, a in profile.axes.items()]
    view.modulators = [(k, m.level, tuple(m.reasons)) for k, m in profile.modulators.items()]


def _anchored(t: Trial, bands: list[Band]) -> Trial:
    """The engine counts a trial in whole days: its start is the analgesic period that began on that day."""
    if t.start is None:
        return t
    starts = [b.start for b in bands if t.drug in b.drug and timedelta(0) <= t.start - b.start < timedelta(days=1)]
    if not starts:
        return t
    shift = t.start - starts[0]
    return replace(t, start=starts[0], adequate_end=t.adequate_end - shift if t.adequate_end else None)


def _at(t) -> datetime | None:
    return utc(t.at) if t is not None and t.at is not None else None


def _end_of(m: MedicationUse, now: datetime) -> tuple[datetime, bool]:
    res = m.resource or {}
    start = utc(m.authored_on)
    if m.status == "active":
        return now, True
    dispense = res.get("dispenseRequest") if isinstance(res.get("dispenseRequest"), dict) else {}
    period = dispense.get("validityPeriod") if isinstance(dispense.get("validityPeriod"), dict) else {}
    if isinstance(period.get("end"), str):
        try:
            return utc(datetime.fromisoformat(period["end"].replace("Z", "+00:00"))), True
        except ValueError:
            pass
    supply = dispense.get("expectedSupplyDuration") if isinstance(dispense.get("expectedSupplyDuration"), dict) else {}
    if isinstance(supply.get("value"), (int, float)) and supply.get("code", "d") == "d":
        return start + timedelta(days=float(supply["value"])), True
    return min(start + timedelta(days=SUPPLY_DAYS), now), False


def _bands(meds: list[MedicationUse], now: datetime) -> list[Band]:
    kn = knowledge()
    out = []
    for m in meds:
        if m.authored_on is None or not any(kn.analgesic(d) for d in m.ingredients):
            continue
        end, known = _end_of(m, now)
        names = ", ".join(d.name for d in m.ingredients if kn.analgesic(d))
        out.append(Band(m.ref, names, utc(m.authored_on), max(end, utc(m.authored_on)), m.status, known))
    return sorted(out, key=lambda b: b.start)


def _pgx_parts(view: DashboardView, ctx) -> None:
    for gene, gp in ctx.profile_for(None).genes.items():
        view.genes.append(GeneRow(gene, gp.diplotype, gp.activity_score, gp.phenotype, gp.genetic_phenotype,
                                  tuple(gp.phenoconverted_by), tuple(gp.notes)))
    if not view.genes:
        return
    for name in pain_rules()["pgxSummaryDrugs"]:
        drug = pgx.drug_by_name(name)
        if drug is None or pgx.guideline_for(drug) is None:
            continue
        applied = population(ctx, drug)[0] if pgx.populations(drug) else None
        rec = pgx.recommend(drug, ctx.profile_for(None, drug), applied)
        if rec is None:
            continue
        view.advice.append(DrugAdvice(drug=name, genes=", ".join(rec.genes), action=rec.action,
                                      classification=rec.classification,
                                      line=f"{ACTION_WORDS.get(rec.action, rec.action)}: {rec.recommendation}"))


def _covers(m: MedicationUse, day_start: datetime, now: datetime) -> bool:
    """Whether the request is in effect at some time of the day starting at ``day_start``."""
    end, _ = _end_of(m, now)
    return utc(m.authored_on) < day_start + timedelta(days=1) and end >= day_start


def _mme_days(meds: list[MedicationUse], now: datetime) -> list[MmeDay]:
    """Daily MME of the opioid requests in effect on each day (fhir_pain.opioid's per-order MME, summed)."""
    opioids = [m for m in meds if m.authored_on is not None and "opioid" in classify(m).classes]
    if not opioids:
        return []
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    first = max(min(utc(m.authored_on) for m in opioids), now - timedelta(days=MME_DAYS))
    first = first.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    out = []
    for n in range((today - first).days + 1):
        day = first + timedelta(days=n)
        result = daily_mme([classify(m) for m in opioids if _covers(m, day, now)])
        total = result.total
        out.append(MmeDay(day.date(), float(total) if total is not None else None,
                          float(result.known_total or Decimal(0))))
    return out
