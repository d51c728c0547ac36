"""``fhir-pain import pharmcat``: put a PharmCAT result into the EHR's FHIR server as Genomics Reporting Observations.

    fhir-pain import pharmcat sample.phenotype.json --patient 123 --fhir-server https://fhir.example.org/r4
    fhir-pain import pharmcat outside-calls.tsv --patient 123 --out bundle.json     # the transaction, not sent

One transaction per file; only what changed is written (fhir_pain.importer.fhir). Credentials as for
``fhir-pain poll`` (a token from an environment variable, or SMART Backend Services); the only server called is
``--fhir-server``. Exit 0 when written (or nothing to write), 1 when the server failed, 2 for a file that is no
PharmCAT result or a bad option: then nothing is written.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from datetime import datetime, timezone

from fhir_pain.importer import fhir as fhir_map
from fhir_pain.importer.pharmcat import MAX_BYTES, PharmcatFormatError, parse

PATIENT_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")          # FHIR id
IMPORT_SCOPE = "system/Patient.read system/Observation.read system/Observation.write system/Provenance.write"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from fhir_pain.poller.cli import add_auth_arguments

    sub = parser.add_subparsers(dest="source", required=True)
    p = sub.add_parser("pharmcat", help="PharmCAT's *.phenotype.json or an outside-call TSV",
                       description="Put a PharmCAT result into the EHR's FHIR server as Genomics Reporting "
                                   "Observations.")
    p.add_argument("file", metavar="FILE", help="PharmCAT phenotyper output (*.phenotype.json) or outside-call TSV")
    p.add_argument("--patient", required=True, metavar="ID", help="the FHIR Patient id the results belong to")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--fhir-server", metavar="URL", help="FHIR base URL to write to (the only server called)")
    where.add_argument("--out", metavar="FILE", help="write the transaction Bundle to FILE ('-': stdout) instead")
    p.add_argument("--pharmcat-version", metavar="V", help="PharmCAT's version, for the Provenance (the phenotype "
                   "file names only its matcher and data versions), e.g. 3.1.0")
    p.add_argument("--timeout", type=float, default=30.0, metavar="S", help="read timeout per call (30)")
    p.add_argument("--retries", type=int, default=3, metavar="N", help="retries of reads on 429/5xx (3)")
    add_auth_arguments(p)


def _fail(message: str, code: int) -> int:
    print(f"fhir-pain import pharmcat: {message}", file=sys.stderr)
    return code


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read(MAX_BYTES + 1)


def run(args: argparse.Namespace) -> int:
    if not PATIENT_ID.match(args.patient):
        return _fail("--patient must be a FHIR id (letters, digits, '-', '.'; at most 64)", 2)
    if args.timeout <= 0 or args.retries < 0:
        return _fail("--timeout must be positive and --retries 0 or more", 2)
    try:
        data = _read(args.file)
    except OSError as exc:
        return _fail(f"cannot read {args.file}: {exc.strerror}", 2)
    name = os.path.basename(args.file)
    try:
        result = parse(data, name)
    except PharmcatFormatError as exc:
        return _fail(f"{exc}; nothing written", 2)
    if not any(c.gene in fhir_map.GENES for c in result.calls):
        return _fail(f"{name} holds no result for a gene fhir-pain reads ({', '.join(sorted(fhir_map.GENES))}); "
                     "nothing written", 2)
    sha = hashlib.sha256(data).hexdigest()
    recorded = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    if args.out:
        plan = fhir_map.plan(args.patient, result, (), file_sha256=sha, file_name=name, recorded=recorded,
                             pharmcat_version=args.pharmcat_version)
        text = json.dumps(plan.bundle, indent=1, ensure_ascii=False) + "\n"
        if args.out == "-":
            sys.stdout.write(text)
        else:
            with open(args.out, "w", encoding="utf-8") as f:
                f.write(text)
        _report(plan, sys.stderr if args.out == "-" else sys.stdout)
        return 0
    return _to_server(args, result, sha, name, recorded)


def _to_server(args, result, sha: str, name: str, recorded: str) -> int:
    from cds_hooks.fhir_client import (FHIRClient, FHIRError, FHIRNotFound, URLNotAllowed, is_tls_or_loopback,
                                       normalize_base)
    from fhir_pain.poller.cli import _auth

    try:
        args.fhir_server = normalize_base(args.fhir_server)
        args.smart_scope = args.smart_scope or IMPORT_SCOPE
        auth = _auth(args)
    except URLNotAllowed as exc:
        return _fail(str(exc), 2)
    except (ValueError, OSError) as exc:   # bad SMART options, unreadable key file
        return _fail(str(exc), 2)
    if auth and not is_tls_or_loopback(args.fhir_server):
        return _fail("a plain-http server that is not on this machine would get the credentials unencrypted: "
                     "use https; nothing written", 2)
    with FHIRClient(args.fhir_server, auth=auth, timeout=(3.05, args.timeout), retries=args.retries,
                    backoff_s=0.5, max_pages=20) as client:
        try:
            client.read(f"Patient/{args.patient}")
        except FHIRNotFound:
            return _fail(f"Patient/{args.patient} is not on the server; nothing written", 2)
        except FHIRError as exc:
            return _fail(f"the server could not be read ({_why(exc)}); nothing written", 1)
        try:
            query = fhir_map.existing_query(args.patient, result)
            existing = [o for o in client.search(query)
                        if (o.get("subject") or {}).get("reference") == f"Patient/{args.patient}"]
            plan = fhir_map.plan(args.patient, result, existing, file_sha256=sha, file_name=name,
                                 recorded=recorded, pharmcat_version=args.pharmcat_version)
            if plan.bundle is not None:
                client.transaction(plan.bundle)
        except FHIRError as exc:
            return _fail(f"the transaction failed ({_why(exc)}): the server applies all of it or none, and "
                         "importing the file again is safe (conditional updates)", 1)
    _report(plan, sys.stdout)
    return 0


def _why(exc) -> str:
    status = getattr(exc, "status", None)
    return f"{type(exc).__name__}{' HTTP ' + str(status) if status else ''}"


def _report(plan: fhir_map.Plan, stream) -> None:
    def listed(items) -> str:
        return f" ({', '.join(items)})" if items else ""
    print(f"created {len(plan.created)}{listed(plan.created)}; updated {len(plan.updated)}{listed(plan.updated)}; "
          f"unchanged {len(plan.unchanged)}", file=stream)
    if plan.skipped_genes:
        print(f"not imported (fhir-pain has no rules for them): {', '.join(plan.skipped_genes)}", file=stream)
