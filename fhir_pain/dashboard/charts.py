"""Server-rendered SVG charts (matplotlib's SVG backend, no JavaScript): the page works inside an EHR frame
without internet. Every drawn datum is an artist with a ``gid``; after rendering, each such group gets a class
and ``data-*`` attributes (value, date, instrument, ...) so that tests and assistive tools can read what was
drawn. Each chart has a table alternative in the page, built from the same view rows.
"""
from __future__ import annotations

import io
import re
from datetime import datetime, timedelta

import matplotlib
from markupsafe import Markup, escape
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from matplotlib.figure import Figure

from fhir_pain.dashboard.view import DashboardView, Point
from fhir_pain.rules.text import instrument_label

matplotlib.rcParams.update({
    "svg.fonttype": "none",        # text stays text: labels can be read and searched
    "svg.hashsalt": "fhir-pain",   # stable clip-path ids from one render to the next
    "font.size": 9,
})

COLORS = {"nrs": "#1f5fa8", "peg": "#8a3ffc", "bpi-severity": "#b3261e", "bpi-interference": "#e07b00",
          "vas": "#2e7d32", "faces": "#6d4c41", "phq9": "#b3261e", "gad7": "#1f5fa8", "pcs": "#8a3ffc"}
_ID = re.compile(r"[^a-zA-Z0-9_-]")


class _Marks:
    """gid -> (class, data attributes) of the artists drawn, applied to the SVG after rendering."""

    def __init__(self, chart: str):
        self.chart = chart
        self.attrs: dict[str, tuple[str, dict[str, str]]] = {}

    def gid(self, cls: str, **data: object) -> str:
        gid = f"{self.chart}-{cls}-{len(self.attrs)}"
        self.attrs[gid] = (cls, {k: str(v) for k, v in data.items() if v is not None})
        return gid

    def apply(self, svg: str) -> str:
        def sub(match: re.Match) -> str:
            gid = match.group(1)
            if gid not in self.attrs:
                return match.group(0)
            cls, data = self.attrs[gid]
            extra = "".join(f' data-{_ID.sub("-", k)}="{escape(v)}"' for k, v in data.items())
            return f'<g id="{gid}" class="{cls}"{extra}>'
        return re.sub(r'<g id="([^"]+)">', sub, svg)


def _svg(fig: Figure, marks: _Marks, title: str) -> Markup:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Title": title})
    text = buf.getvalue()
    text = text[text.index("<svg"):]              # inline in HTML: no XML declaration or DOCTYPE
    text = text.replace("<svg ", f'<svg role="img" aria-label="{escape(title)}" data-chart="{marks.chart}" ', 1)
    return Markup(marks.apply(text))


def _axes(height: float = 2.8):
    fig = Figure(figsize=(8.6, height), dpi=96)
    ax = fig.add_subplot()
    ax.grid(True, axis="y", color="#e4e4e4", linewidth=0.6)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return fig, ax


def _dates(ax, span: tuple[datetime, datetime] | None = None) -> None:
    if span is not None:
        ax.set_xlim(date2num(span[0]), date2num(span[1]))
    locator = AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))


def _iso(d: datetime | None) -> str | None:
    return d.date().isoformat() if d is not None else None


def _series(ax, marks: _Marks, points: list[Point]) -> None:
    """One line per instrument and one marked dot per score, with a legend under the axes."""
    by_inst: dict[str, list[Point]] = {}
    for p in points:
        by_inst.setdefault(p.instrument, []).append(p)
    for inst, series in by_inst.items():
        color = COLORS.get(inst, "#555")
        ax.plot([date2num(p.when) for p in series], [p.value for p in series], color=color, linewidth=1.2,
                label=series[0].label, gid=marks.gid("series", instrument=inst))
        for p in series:
            ax.plot([date2num(p.when)], [p.value], "o", color=color, markersize=4,
                    gid=marks.gid("point", instrument=inst, value=f"{p.value:g}", date=_iso(p.when), ref=p.ref))
    if by_inst:
        ax.legend(loc="upper left", fontsize=7, frameon=False, ncols=4, bbox_to_anchor=(0, -0.14))


def pain_chart(view: DashboardView) -> Markup | None:
    if not view.pain and not view.bands:
        return None
    marks = _Marks("pain")
    fig, ax = _axes(3.2)
    ax.set_ylim(0, 10.5)
    ax.set_ylabel("score (0-10)")
    for i, band in enumerate(view.bands):
        ax.axvspan(date2num(band.start), date2num(band.end), ymin=0, ymax=1, color=f"C{i % 10}", alpha=0.12,
                   gid=marks.gid("band", drug=band.drug, start=_iso(band.start), end=_iso(band.end),
                                 status=band.status, ref=band.ref))
        ax.text(date2num(band.start), 10.3, band.drug, fontsize=7, va="top", color="#333",
                gid=marks.gid("band-label", drug=band.drug))
    for t in view.trials:
        if t.start is not None and t.adequate_end is not None:
            ax.axvspan(date2num(t.start), date2num(t.adequate_end), ymin=0, ymax=0.025, color="#444",
                       gid=marks.gid("trial-window", drug=t.drug, start=_iso(t.start), end=_iso(t.adequate_end)))
            ax.text(date2num(t.start), 0.45, f" adequate trial of {t.drug}", fontsize=7, color="#333")
        for role, value, when in (("baseline", t.baseline, t.baseline_when), ("latest", t.latest, t.latest_when)):
            if value is not None and when is not None:
                ax.plot([date2num(when)], [value], "o", markersize=9, markerfacecolor="none", color="#2e7d32",
                        gid=marks.gid(f"response-{role}", drug=t.drug, value=f"{value:g}", date=_iso(when)))
        if t.baseline is not None and t.start is not None:
            right = date2num(max(view.now, t.adequate_end or view.now))
            for pct, mark in (("30", t.mark30), ("50", t.mark50)):
                ax.hlines(mark, date2num(t.start), right, linestyles="dashed", linewidth=0.9,
                          color="#2e7d32" if pct == "50" else "#7cb342",
                          gid=marks.gid("response-mark", pct=pct, value=mark, drug=t.drug))
                ax.text(right, mark, f" {pct} % less", fontsize=7, va="center", color="#2e7d32")
    _series(ax, marks, view.pain)
    _dates(ax, view.span)
    return _svg(fig, marks, "Pain scores over time, analgesic periods as bands")


def psych_chart(view: DashboardView) -> Markup | None:
    if not view.psych:
        return None
    marks = _Marks("psych")
    fig, ax = _axes(2.8)
    ax.set_ylabel("score")
    present = {p.instrument for p in view.psych}
    labels: dict[tuple[float, str], list[str]] = {}     # one label for cut-offs at the same score (PHQ-9, GAD-7)
    for c in view.cutoffs:
        if c.instrument in present:
            ax.axhline(c.value, color=COLORS.get(c.instrument, "#555"), linestyle="dotted", linewidth=0.9,
                       gid=marks.gid("cutoff", instrument=c.instrument, value=f"{c.value:g}", op=c.op))
            labels.setdefault((c.value, c.op), []).append(instrument_label(c.instrument))
    for (value, op), names in labels.items():
        ax.annotate(f" {', '.join(names)} cut-off {op} {value:g}", (1, value), xycoords=("axes fraction", "data"),
                    fontsize=7, va="center", color="#444")
    _series(ax, marks, view.psych)
    if view.item9 and view.item9.get("when") is not None:
        ax.plot([date2num(view.item9["when"])], [0], marker="^", color="#b3261e", markersize=9, clip_on=False,
                gid=marks.gid("item9-flag", value=f"{view.item9['value']:g}", date=_iso(view.item9["when"])))
        ax.annotate("PHQ-9 item 9 ", (date2num(view.item9["when"]), 0), xytext=(-4, 6), textcoords="offset points",
                    ha="right", fontsize=7, color="#b3261e", fontweight="bold")
    ax.set_ylim(bottom=0)
    _dates(ax, view.span)
    return _svg(fig, marks, "PHQ-9, GAD-7 and PCS over time with their cut-offs")


def mme_chart(view: DashboardView) -> Markup | None:
    if not view.mme:
        return None
    marks = _Marks("mme")
    fig, ax = _axes(2.4)
    ax.set_ylabel("MME/day")
    for threshold in (50, 90):
        ax.axhline(threshold, color="#b3261e" if threshold == 90 else "#e07b00", linestyle="dotted", linewidth=0.9,
                   gid=marks.gid("threshold", value=threshold))
    xs = [date2num(datetime(d.day.year, d.day.month, d.day.day, 12)) for d in view.mme]
    ax.step(xs, [d.known for d in view.mme], where="mid", color="#1f5fa8", linewidth=1.3,
            gid=marks.gid("series", unit="MME/d"))
    for x, d in zip(xs, view.mme):
        if d.total is None and d.known == 0:
            continue
        ax.plot([x], [d.known], "s" if d.total is not None else "x", color="#1f5fa8", markersize=2,
                gid=marks.gid("day", date=d.day.isoformat(), value=f"{d.known:g}",
                              readable="yes" if d.total is not None else "no"))
    ax.set_ylim(bottom=0, top=max(100.0, max(d.known for d in view.mme) * 1.1))
    ax.set_xlim(xs[0] - 0.5, xs[-1] + timedelta(days=1).days)
    _dates(ax)
    return _svg(fig, marks, "Daily morphine milligram equivalents")
