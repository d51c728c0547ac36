#!/usr/bin/env python3
"""Generate profiles/rules/posttest-alerts.json from CPIC's pre- and post-test alert workbooks.

    python scripts/build_cpic_alerts.py [--workbooks DIR] [--out DIR]      (make profiles)

CPIC publishes, per guideline, an example of the clinical decision support it designs for each result: a
post-test alert with its text, or "No CDS". This script reads those rows, verbatim, from the workbooks in
reference/cpic/alerts (provenance in its README) so that the engine can stay quiet where CPIC designs no alert.

Each workbook has its own layout: LAYOUTS names every column the script reads and the header it must carry, and
WORKBOOKS the rows of each drug. Anything unexpected stops the build: a header that moved, a trigger that names
no known phenotype, a context that is neither an alert nor "No CDS", an activity score whose CPIC phenotype is
not the one the row names, two rows claiming the same result, or a CDS row outside the rows read.

Lookup keys are CPIC's recommendation-table keys (profiles/pgx/recommendations.json, so `make profiles` runs
build_cpic_profiles.py first): where the workbook gives activity scores, the table's scores in that value or
range ("1.0", ">2.25" -> "2.5", "≥3.0", ...); where it names phenotypes only, the phenotypes, which the
accessor (fhir_pain.rules.knowledge.cpic_alert) reaches from a score with CPIC's current bands.
"""
from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import openpyxl
from openpyxl.cell.rich_text import CellRichText, TextBlock
from openpyxl.utils import column_index_from_string

from fhir_pain.pgx.knowledge import NO_RESULT, drug_tables, key_phenotype, parse_score

REPO = Path(__file__).resolve().parent.parent
WORKBOOK_DIR = REPO / "reference" / "cpic" / "alerts"
OUT = REPO / "profiles" / "rules"
GENERATED_BY = "scripts/build_cpic_alerts.py"
UPSTREAM = "cpicpgx/cpic-guidelines"
COMMIT = "a73ffa73ba39"
COMMIT_DATE = "2022-01-19"


@dataclass(frozen=True)
class Layout:
    header_row: int
    columns: dict[str, tuple[str, str]]   # column letter -> (role, header text); role: trigger:<gene>, score, context, text

    def column(self, role: str) -> str | None:
        return next((c for c, (r, _) in self.columns.items() if r == role), None)

    def triggers(self) -> list[tuple[str, str]]:
        """(column, gene) of the trigger columns, in sheet order."""
        return [(c, r.split(":", 1)[1]) for c, (r, _) in self.columns.items() if r.startswith("trigger:")]


CONTEXT = "CDS Context, Relative to Genetic Testing"
OPIOID = Layout(1, {"B": ("trigger:CYP2D6", "CYP2D6 Phenotype"), "C": ("score", "Activity Score"),
                    "D": ("context", CONTEXT), "E": ("text", "CDS Alert Text")})
NSAID = Layout(1, {"A": ("trigger:CYP2C9", "Trigger Condition"), "B": ("score", "Activity Score"),
                   "C": ("context", CONTEXT), "D": ("text", "CDS Alert Text")})
ONDANSETRON = Layout(1, {"A": ("trigger:CYP2D6", "CDS Alert trigger condition"),
                         "B": ("context", "CDS Context, relative to genetic testing"), "C": ("text", "CDS Alert Text")})
PAROXETINE = Layout(3, {"A": ("context", "CDS Context, relative to genetic testing"),
                        "B": ("trigger:CYP2D6", "CDS Alert trigger condition"), "C": ("text", "CDS Alert Text")})
NORTRIPTYLINE = Layout(1, {"A": ("trigger:CYP2D6", "Trigger Condition"), "C": ("context", CONTEXT),
                           "D": ("text", "CDS Alert Text")})
AMITRIPTYLINE = Layout(1, {"A": ("trigger:CYP2D6", "Trigger Condition 1"), "B": ("trigger:CYP2C19", "Trigger Condition 2"),
                           "D": ("context", CONTEXT), "E": ("text", "CDS Alert Text")})


@dataclass(frozen=True)
class Workbook:
    upstream: str            # path in cpicpgx/cpic-guidelines; the local file is this with "/" -> "_"
    sheet: str
    layout: Layout
    rows: tuple[int, int]    # first and last data row of this drug (pre-test rows included: they are skipped)

    @property
    def local(self) -> str:
        return self.upstream.replace("/", "_")


def _nsaid(name: str, sheet: str = "Pre-and Post-Test Alerts") -> Workbook:
    return Workbook(f"NSAID/{name}_Pre_and_Post_Test_Alerts_and_Flow_Chart.xlsx", sheet, NSAID, (2, 4))


_OND = "ondansetron/2016/Ondansetron_Pre_and_Post_Test_Alerts_and_Flow_Chart.xlsx"
# The drugs of profiles/pgx/recommendations.json that have a workbook, in that file's order.
WORKBOOKS = {
    "codeine": Workbook("opioids/codeine_Pre_and_Post_Test_Alerts_and_Flow_Chart.xlsx", "population general",
                        OPIOID, (2, 14)),
    "tramadol": Workbook("opioids/tramadol_Pre_and_Post_Test_Alerts.xlsx", "population general", OPIOID, (2, 14)),
    "hydrocodone": Workbook("opioids/hydrocodone_Pre_and_Post_Test_Alerts_and_Flow_Chart.xlsx", "Hydrocodone",
                            OPIOID, (2, 14)),
    "celecoxib": _nsaid("Celecoxib"), "flurbiprofen": _nsaid("Flurbiprofen"), "ibuprofen": _nsaid("Ibuprofen"),
    "lornoxicam": _nsaid("Lornoxicam"), "meloxicam": _nsaid("Meloxicam", "Pre- and Post-Test Alerts"),
    "piroxicam": _nsaid("Piroxicam"), "tenoxicam": _nsaid("Tenoxicam"),
    "amitriptyline": Workbook("TCA/2016/Amitriptyline_Pre_and_Post_Test_Alerts_and_Flow_Chart.xlsx",
                              "Pre- and Post-test alerts", AMITRIPTYLINE, (2, 67)),
    "nortriptyline": Workbook("TCA/2016/Nortriptyline_Pre_and_Post_Test_Alerts_and_Flow_Chart.xlsx",
                              "Pre-and Post-Test Alerts", NORTRIPTYLINE, (2, 6)),
    "ondansetron": Workbook(_OND, "Pre-and Post-Test Alerts", ONDANSETRON, (3, 5)),
    "paroxetine": Workbook("SSRI/Paroxetine_Pre_and_Post_Test_Alerts_and_Flow_Chart.xlsx", "Pre- and Post-test alerts",
                           PAROXETINE, (4, 8)),
    "tropisetron": Workbook(_OND, "Pre-and Post-Test Alerts", ONDANSETRON, (7, 9)),
}
# CPIC's own slips, read as the workbook means them: four NSAID workbooks write "CYP2C19 Poor Metabolizer" in the
# poor-metabolizer row of a CYP2C9-only guideline (its text and activity score are CYP2C9's).
GENE_SLIPS = {("celecoxib", 4), ("flurbiprofen", 4), ("ibuprofen", 4), ("lornoxicam", 4)}

PRE, POST, NO_CDS = "pre-test", "post-test", "no cds"
NOT_GIVEN = {"n/a", "na", ""}
PHENOTYPES = {"ultrarapid": "Ultrarapid Metabolizer", "um": "Ultrarapid Metabolizer", "rapid": "Rapid Metabolizer",
              "rm": "Rapid Metabolizer", "normal": "Normal Metabolizer", "nm": "Normal Metabolizer",
              "intermediate": "Intermediate Metabolizer", "im": "Intermediate Metabolizer",
              "poor": "Poor Metabolizer", "pm": "Poor Metabolizer"}
_PHENOTYPE = re.compile(r"(likely\s+)?(ultrarapid|rapid|normal|intermediate|poor|um|rm|nm|im|pm)"
                        r"(\s+metab[oi]lizer)?", re.I)
_NO_RESULT = re.compile(r"no (CYP2\w+) (result|test) on file", re.I)
_GENE = re.compile(r"\bCYP2\w+\b")


def cell_text(value) -> str:
    """A cell as text without CPIC's superscript footnote letters ("pharmacist^b" -> "pharmacist"), trimmed."""
    if isinstance(value, CellRichText):
        value = "".join("" if _footnote(b) else str(b) for b in value)
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).replace("\xa0", " ").strip()


def _footnote(block) -> bool:
    return isinstance(block, TextBlock) and block.font.vertAlign == "superscript" and block.text.strip().isalpha()


def phenotypes(trigger: str, gene: str, where: str, slip: bool = False) -> list[str]:
    """CPIC phenotype names a trigger cell stands for: "CYP2D6 NM, IM  or PM and ondansetron ordered" ->
    [Normal, Intermediate, Poor Metabolizer]; "No CYP2C19 result on file" -> [No Result]."""
    text = re.sub(r"\s+and \w+ ordered$", "", trigger)
    named = set(_GENE.findall(text))
    if named - {gene} and not slip:
        raise SystemExit(f"{where}: trigger {trigger!r} names {sorted(named)}, the column is {gene}")
    if _NO_RESULT.fullmatch(text):
        return [NO_RESULT]
    if text == "Indeterminate":
        return ["Indeterminate"]
    out = []
    for part in re.split(r"\s*,\s*|\s+or\s+", _GENE.sub("", text).strip()):
        m = _PHENOTYPE.fullmatch(part.strip())
        if m is None:
            raise SystemExit(f"{where}: no phenotype in {part!r} (trigger {trigger!r})")
        name = PHENOTYPES[m.group(2).lower()]
        out.append("Likely " + name if m.group(1) else name)
    return out


def score_keys(cell: str, universe: list[str], where: str) -> list[str]:
    """The table's activity-score keys a workbook score covers: "2.25", ">2.25", "0-0.5", "n/a"."""
    if cell.lower() == "n/a":
        return ["n/a"] if "n/a" in universe else []
    if m := re.fullmatch(r">\s*(\d+(?:\.\d+)?)", cell):
        lo, lo_ex, hi = float(m.group(1)), True, None
    elif m := re.fullmatch(r"(\d+(?:\.\d+)?)\s*-\s*(\d+(?:\.\d+)?)", cell):
        lo, lo_ex, hi = float(m.group(1)), False, float(m.group(2))
    elif re.fullmatch(r"\d+(?:\.\d+)?", cell):
        lo, lo_ex, hi = float(cell), False, float(cell)
    else:
        raise SystemExit(f"{where}: activity score {cell!r} is neither a value nor a range")
    out = []
    for key in universe:
        score = parse_score(key) if key not in ("n/a", NO_RESULT) else None
        if score is None:
            continue
        value, at_least = score
        # "≥3.0" stands for any score from 3.0 up: inside only a range without an upper end
        if (value > lo if lo_ex else value >= lo) and (hi is None if at_least else hi is None or value <= hi):
            out.append(key)
    return out


def read_sheet(path: Path, sheet: str):
    with warnings.catch_warnings():   # openpyxl warns of Excel extensions it drops (none hold the table)
        warnings.simplefilter("ignore", UserWarning)
        wb = openpyxl.load_workbook(path, rich_text=True)
    ws = wb[sheet]
    merged = {}
    for rng in ws.merged_cells.ranges:   # every cell of a merged range reads as its top-left cell
        top = ws.cell(rng.min_row, rng.min_col).value
        for row in range(rng.min_row, rng.max_row + 1):
            for col in range(rng.min_col, rng.max_col + 1):
                merged[(row, col)] = (top, (rng.min_row, rng.max_row))
    return ws, merged


def records(ws, merged, book: Workbook, where: str) -> list[tuple[int, int]]:
    """(first, last) row of each result: a new value in the last trigger column starts one (amitriptyline's
    results span merged rows, one alert paragraph per row)."""
    col = column_index_from_string(book.layout.triggers()[-1][0])
    out: list[tuple[int, int]] = []
    first, last = book.rows
    row = first
    while row <= last:
        value, span = merged.get((row, col), (ws.cell(row, col).value, (row, row)))
        if cell_text(value):
            out.append((row, span[1]))
            row = span[1] + 1
        elif any(cell_text(c.value) for c in ws[row]):
            raise SystemExit(f"{where} row {row}: content outside any result")
        else:
            row += 1
    return out


def value_at(ws, merged, letter: str | None, rows: tuple[int, int]) -> str:
    """The first non-empty value of a column over a result's rows."""
    if letter is None:
        return ""
    col = column_index_from_string(letter)
    for row in range(rows[0], rows[1] + 1):
        text = cell_text(merged.get((row, col), (ws.cell(row, col).value,))[0])
        if text:
            return text
    return ""


def paragraphs(ws, letter: str, rows: tuple[int, int]) -> list[str]:
    col = column_index_from_string(letter)
    return [t for t in (cell_text(ws.cell(r, col).value) for r in range(rows[0], rows[1] + 1)) if t]


def check_header(ws, book: Workbook, where: str) -> None:
    for letter, (_, header) in book.layout.columns.items():
        found = cell_text(ws[f"{letter}{book.layout.header_row}"].value)
        if found != header:
            raise SystemExit(f"{where}: header {letter}{book.layout.header_row} is {found!r}, expected {header!r}")


def verdict(context: str, texts: list[str], where: str) -> tuple[str, str | None]:
    """("cds" | "no-cds", alert text) from the context and text columns; anything else stops the build."""
    text = "\n".join(texts)
    if NO_CDS in (context.lower(), text.lower()):
        if context.lower() not in (NO_CDS, POST, *NOT_GIVEN) or text.lower() not in (NO_CDS, *NOT_GIVEN):
            raise SystemExit(f"{where}: 'No CDS' with context {context!r} and text {text!r}")
        return "no-cds", None
    if context.lower() in (PRE, POST) and text.lower() not in NOT_GIVEN:
        return "cds", text
    raise SystemExit(f"{where}: context {context!r} with text {text[:60]!r} is neither an alert nor 'No CDS'")


def build_drug(name: str, book: Workbook, folder: Path) -> dict:
    where = f"{name} ({book.local})"
    ws, merged = read_sheet(folder / book.local, book.sheet)
    check_header(ws, book, where)
    layout = book.layout
    table = {t.name: t for t in drug_tables().values()}[name]
    genes = [g for _, g in layout.triggers()]
    if sorted(genes) != sorted(table.genes):
        raise SystemExit(f"{where}: workbook genes {genes}, CPIC table genes {list(table.genes)}")
    by_score = layout.column("score") is not None
    key_types = {g: "activityScore" if by_score else "phenotype" for g in genes}
    universe = {g: sorted({k[table.genes.index(g)] for k in table.lookup}, key=_order) for g in genes}
    results, seen = [], {}
    for rows in records(ws, merged, book, where):
        at = f"{where} row {rows[0]}"
        triggers = {g: value_at(ws, merged, c, rows) for c, g in layout.triggers()}
        named = {g: phenotypes(t, g, at, (name, rows[0]) in GENE_SLIPS) for g, t in triggers.items()}
        if all(p == [NO_RESULT] for p in named.values()):
            continue                                     # pre-test: no result at all (pretest-alerts.json)
        context = value_at(ws, merged, layout.column("context"), rows)
        cds, text = verdict(context, paragraphs(ws, layout.column("text"), rows), at)
        row = {"row": rows[0], "trigger": triggers}
        if by_score:
            (gene,) = genes
            score = value_at(ws, merged, layout.column("score"), rows)
            keys = {gene: score_keys(score, universe[gene], at)}
            wrong = [k for k in keys[gene] if key_phenotype(gene, k) not in named[gene]]
            if not keys[gene] or wrong:
                raise SystemExit(f"{at}: activity score {score!r} -> keys {keys[gene]}; not {named[gene]}: {wrong}")
            row["activityScore"] = score
        else:
            keys = {g: named[g] for g in genes}
            for g in genes:
                unknown = [p for p in keys[g] if p != NO_RESULT and p not in {key_phenotype(g, k) for k in universe[g]}]
                if unknown:
                    raise SystemExit(f"{at}: {g} {unknown} is no phenotype of CPIC's {name} table")
        for combo in itertools.product(*(keys[g] for g in genes)):
            if combo in seen:
                raise SystemExit(f"{at}: {combo} already given by row {seen[combo]}")
            seen[combo] = rows[0]
        row.update({"keys": keys, "context": context, "cds": cds})
        if text is not None:
            row["alertText"] = text
        results.append(row)
    return {"workbook": book.upstream, "sheet": book.sheet, "genes": genes, "keyTypes": key_types,
            "results": results}


def _order(key: str) -> tuple:
    score = parse_score(key) if key not in ("n/a", NO_RESULT) and key[-1].isdigit() else None
    return (0, score[0], score[1], key) if score else (1, 0.0, False, key)


def check_every_cds_row_is_read(folder: Path) -> None:
    """A row with an alert context outside the rows WORKBOOKS reads is a result this script would miss."""
    spans: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for book in WORKBOOKS.values():
        spans.setdefault((book.local, book.sheet), []).append(book.rows)
    for (local, sheet), ranges in spans.items():
        ws, _ = read_sheet(folder / local, sheet)
        for row in ws.iter_rows():
            if any(cell_text(c.value).lower() in (PRE, POST, NO_CDS) for c in row):
                r = row[0].row
                if not any(lo <= r <= hi for lo, hi in ranges):
                    raise SystemExit(f"{local} [{sheet}] row {r}: a CDS row this script does not read")


def build(folder: Path) -> dict:
    check_every_cds_row_is_read(folder)
    return {
        "schema": "rules-posttest",
        "meta": {
            "source": f"CPIC 'Pre and Post Test Alerts and Flow Chart' workbooks ({UPSTREAM} @ {COMMIT}, "
                      f"{COMMIT_DATE}): the post-test rows, per result",
            "version": "1.0.0",
            "date": COMMIT_DATE,
            "generatedBy": GENERATED_BY,
            "url": f"https://github.com/{UPSTREAM}",
            "notes": (
                "Per drug, CPIC's example decision support for each result its workbook lists: 'cds' where CPIC "
                "designs an alert (context 'Post-Test', or amitriptyline's 'Pre-test' for a CYP2D6 normal "
                "metabolizer without a CYP2C19 result), 'no-cds' where it writes 'No CDS'. 'trigger', "
                "'activityScore', 'context' and 'alertText' are the workbook's cells verbatim, trimmed, without "
                "footnote letters. 'keys' are lookup keys as CPIC's recommendation tables key them: activity "
                "scores where the workbook gives them (opioids, NSAIDs), otherwise phenotypes, reached from a "
                "score with CPIC's current bands. No workbook says whether an alert interrupts: its flow chart "
                "reads 'CDS post-test alert or notify prescriber with recommendation'. Pre-test rows (no result "
                "at all) are in pretest-alerts.json. A result a workbook does not list is not covered: the NSAID "
                "workbooks list only activity scores 1 and 0-0.5, amitriptyline lists no indeterminate result. "
                "The TCA (2016), ondansetron (2016) and paroxetine (2015 SSRI guideline) workbooks predate the "
                "2020 CYP2D6 activity-score consensus and, for paroxetine, the 2023 SSRI guideline that "
                "recommendations.json follows. Four NSAID workbooks name the poor-metabolizer row 'CYP2C19' in a "
                "CYP2C9 guideline: read as CYP2C9. tropisetron has its own rows in the ondansetron workbook."),
        },
        "drugs": {name: build_drug(name, book, folder) for name, book in WORKBOOKS.items()},
    }


def write(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path} ({path.stat().st_size} bytes)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workbooks", type=Path, default=WORKBOOK_DIR,
                        help="folder of the CPIC workbooks (default: reference/cpic/alerts)")
    parser.add_argument("--out", type=Path, default=OUT, help="where to write (default: profiles/rules)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if not args.workbooks.is_dir():
        print(f"CPIC workbook folder not found: {args.workbooks}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    write(args.out / "posttest-alerts.json", build(args.workbooks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
