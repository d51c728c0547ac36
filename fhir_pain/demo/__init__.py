"""``fhir-pain demo``: synthetic patients run through the three CDS services, in-process.

  fhir-pain demo                      every scenario, a readable summary (patient, hook, each card)
  fhir-pain demo --json               the same as JSON (full cards)
  fhir-pain demo --request NAME       one ready-made CDS Hooks request (e.g. for curl against `make run`)
  fhir-pain demo --list               the scenario names
  fhir-pain demo --load URL [--token T]   put the patients into a FHIR server (e.g. for the CDS Hooks Sandbox)

The patients are FHIR R4 transaction Bundles in ``fhir_pain/demo/patients/``; ``scenarios.json`` says which hook
and draft order shows each one's point. Their dates are moved so that the demo "now" is today (see ``catalog``);
in-process runs pin the services' clock to that moment, so the cards are the same whenever the demo runs.
"""
from __future__ import annotations

import argparse
import sys
from datetime import date

import orjson

from fhir_pain.demo import catalog

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--json", action="store_true", help="print the results as JSON")
    mode.add_argument("--request", metavar="NAME", help="print the CDS Hooks request of one scenario")
    mode.add_argument("--list", action="store_true", help="list the demo patients and scenarios")
    mode.add_argument("--load", metavar="URL", help="load the demo patients into the FHIR server at URL")
    parser.add_argument("--token", help="bearer token for --load")
    parser.add_argument("--scenario", action="append", metavar="NAME", help="run only this scenario (repeatable)")
    parser.add_argument("--date", type=date.fromisoformat, metavar="YYYY-MM-DD",
                        help="the day the demo data is moved to (default: today in UTC, or yesterday before the "
                             "demo hour, 09:00 UTC, so that no date is in the future); in-process runs also pin the "
                             "services' clock to it")


def run(args: argparse.Namespace) -> int:
    try:
        if args.list:
            return _list()
        if args.request:
            return _request(args.request, args.date)
        if args.load:
            return _load(args.load, args.token, args.date)
        selected = None
        if args.scenario:
            wanted = {catalog.scenario(n).name for n in args.scenario}   # KeyError for an unknown name
            selected = [s for s in catalog.scenarios() if s.name in wanted]  # catalog order: grouped by patient
    except KeyError as exc:
        print(f"fhir-pain demo: unknown scenario {exc.args[0]!r} (see --list)", file=sys.stderr)
        return 2
    from fhir_pain.demo.runner import run_scenarios

    try:
        results = run_scenarios(selected, today=args.date)
    except RuntimeError as exc:
        print(f"fhir-pain demo: {exc}", file=sys.stderr)
        return 1
    if args.json:
        out = {"demoNow": catalog.demo_now().isoformat(), "shiftDays": catalog.shift_days(args.date),
               "now": catalog.now_on(args.date).isoformat(),
               "results": [r.to_dict() for r in results]}
        sys.stdout.write(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(format_summary(results))
    return 0 if all(r.ok for r in results) else 1


def _list() -> int:
    for p in catalog.patients():
        print(f"{p.id}  {p.name()}\n    {p.about}")
        for s in p.scenarios:
            order = f"  {s.order.display}" if s.order else ""
            print(f"    {s.name:<22} {s.hook}{order}")
    return 0


def _request(name: str, today: date | None) -> int:
    from fhir_pain.demo.hook_requests import build_request
    from fhir_pain.demo.runner import discover, make_app

    scenario = catalog.scenario(name)
    try:
        built = build_request(scenario, discover(make_app().test_client()), today=today)
    except LookupError as exc:   # no service for the hook in this build
        print(f"fhir-pain demo --request: {exc}", file=sys.stderr)
        return 1
    for warning in built.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"# POST /cds-services/{built.service_id}", file=sys.stderr)
    sys.stdout.write(orjson.dumps(built.body, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def _load(url: str, token: str | None, today: date | None) -> int:
    from cds_hooks.fhir_client import URLNotAllowed

    from fhir_pain.demo.loader import load_patients

    try:
        results = load_patients(url, token=token, today=today)
    except URLNotAllowed as exc:
        print(f"fhir-pain demo --load: {exc}", file=sys.stderr)
        return 2
    for r in results:
        print(f"{r.patient_id:<32} {'FAILED ' + r.error if r.error else f'{r.resources} resources'}")
    failed = [r for r in results if r.error]
    print(f"loaded {len(results) - len(failed)} of {len(results)} demo patients into {url}")
    return 1 if failed else 0


def format_summary(results) -> str:
    """The readable summary: per patient, each hook call and its cards (indicator, summary, rule ids)."""
    from fhir_pain.demo.runner import card_rules

    lines = [f"fhir-pain demo: {len({r.scenario.patient_id for r in results})} synthetic patients, "
             f"{len(results)} hook calls, in-process (auth off)", ""]
    current = None
    for r in results:
        if r.scenario.patient_id != current:
            current = r.scenario.patient_id
            if len(lines) > 2:
                lines.append("")
            lines.append(f"{r.patient_name}  [{current}]")
        order = f"  {r.scenario.order.display}" if r.scenario.order else ""
        lines.append(f"  {r.scenario.hook}{order}  ({r.scenario.name})")
        for warning in r.warnings:
            lines.append(f"    ! {warning}")
        if r.error:
            lines.append(f"    ERROR {r.error}")
        elif not r.cards:
            lines.append("    (no cards)")
        for card in r.cards:
            rules = ", ".join(card_rules(card))
            lines.append(f"    {card.get('indicator', '?').upper():<9}{card.get('summary', '')}")
            if rules:
                lines.append(f"             rules: {rules}")
    failed = sum(not r.ok for r in results)
    lines += ["", f"{len(results) - failed} of {len(results)} calls answered 200"
              + (f"; {failed} FAILED" if failed else "")]
    return "\n".join(lines) + "\n"
