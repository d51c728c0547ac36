"""The ``fhir-pain`` console script. Each subcommand lives in the module that owns its work:

  serve    -> fhir_pain.server       (the CDS Hooks service over HTTP)
  evaluate -> fhir_pain.services     (one CDS Hooks request, offline, response JSON on stdout)
  poll     -> fhir_pain.poller.cli   (proactive evaluation with DetectedIssue write-back)
  demo     -> fhir_pain.demo         (the demo patients through the three services)
  subscribe -> fhir_pain.subscriptions.subscribe (register rest-hook Subscriptions on a FHIR server)
  worker   -> fhir_pain.population.worker (evaluate queued patients from the shared PostgreSQL queue)

This module only parses arguments and dispatches; it holds no logic of its own.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module, help). The module exposes add_arguments(parser) and run(args) -> int.
SUBCOMMANDS = {
    "serve": ("fhir_pain.server", "run the CDS Hooks service"),
    "evaluate": ("fhir_pain.services", "print the service's response for one CDS Hooks request (offline)"),
    "poll": ("fhir_pain.poller.cli", "evaluate patients on a FHIR server and write DetectedIssues"),
    "demo": ("fhir_pain.demo", "run the demo patients through the services"),
    "import": ("fhir_pain.importer.cli", "import a lab pipeline's PGx results (PharmCAT) into a FHIR server"),
    # population scale: Subscriptions and the PostgreSQL work queue
    "subscribe": ("fhir_pain.subscriptions.subscribe", "register rest-hook Subscriptions on a FHIR server"),
    "worker": ("fhir_pain.population.worker", "evaluate queued patients (shared PostgreSQL queue)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fhir-pain", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:  # a part not built yet must not break the others
            if exc.name and module_name.startswith(exc.name):
                p.set_defaults(_module=None, _missing=module_name)
                continue
            raise
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args._module is None:
        print(f"fhir-pain {args.command}: not available in this build ({args._missing})", file=sys.stderr)
        return 2
    return int(args._module.run(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
