"""Poller throughput against a real FHIR server: patients evaluated per second.

    .venv/bin/python -m bench.poller [--patients 1000] [--workers 1 4 8]

For each worker count: starts sekmet-fhir 0.1.1 (tests/integration/sekmet_server.py: its own venv, a free
loopback port, a temporary data folder), seeds synthetic patients in transactions, then runs
  cold cycle   every patient new: feed + read (one batch per patient) + evaluate + write the DetectedIssues
  warm cycle   every patient again, from a fresh cursor: feed + read + evaluate, nothing to write
and stops the server. Everything runs on this machine: the server's own time is part of the figure.
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))  # the test suite's server harness and patient builders

from cds_hooks.fhir_client import FHIRClient  # noqa: E402
from fhir_pain.poller.cycle import Poller  # noqa: E402
from fhir_pain.store import Store  # noqa: E402
from pgx_seed import CODEINE, IBUPROFEN, OXYCODONE, TRAMADOL, patient_entries, seed  # noqa: E402
from sekmet_server import Sekmet  # noqa: E402

# A mix like a pain clinic's: most patients have a CYP2D6 result, about one in six is at risk with a drug taken.
DIPLOTYPES = ["*1/*1"] * 6 + ["*1/*4", "*4/*41", "*4/*4", "*1/*1x2", None, None]
DRUG_SETS = [(CODEINE,), (TRAMADOL, IBUPROFEN), (OXYCODONE,), (IBUPROFEN,), (CODEINE, IBUPROFEN)]


def patients(n: int, rng: random.Random) -> list[list[dict]]:
    return [patient_entries(f"Bench{i:05d}", diplotype=rng.choice(DIPLOTYPES), drugs=rng.choice(DRUG_SETS))
            for i in range(n)]


def run_cycle(server: Sekmet, store: Store, since: datetime, workers: int):
    client = FHIRClient(server.base_url, auth=server.token, timeout=(2.0, 30.0), retries=2, max_pages=50)
    poller = Poller(client, store, cursor_name=f"bench:{workers}", since=since, workers=workers, page_size=200)
    return poller.run_cycle()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.poller", description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args(argv)

    for workers in args.workers:
        # a fresh server per worker count: every cold run starts from the same empty state
        with tempfile.TemporaryDirectory(prefix="bench-poller-") as tmp:
            server = Sekmet(Path(tmp) / "sekmet").start()
            try:
                t0 = time.perf_counter()
                since = datetime.now(timezone.utc)
                seeded = seed(server, patients(args.patients, random.Random(6)), per_transaction=200)
                print(f"workers={workers}: seeded {len(seeded)} patients ({sum(len(p) for p in seeded)} resources)"
                      f" in {time.perf_counter() - t0:.1f}s")
                for label in ("cold", "warm"):  # warm: a fresh cursor, every patient again, nothing to write
                    store = Store(f"sqlite:///{Path(tmp) / f'cursor-{label}.sqlite3'}")
                    stats = run_cycle(server, store, since, workers)
                    print(f"workers={workers} {label}: {stats.evaluated} patients in {stats.seconds:.2f}s = "
                          f"{stats.patients_per_second:.0f} patients/s ({stats.created} created, "
                          f"{stats.unchanged} unchanged, {stats.failed} failed)", flush=True)
                    store.dispose()
            finally:
                server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
