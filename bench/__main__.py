"""``make bench`` (``python -m bench``): the services benchmark, then the engines' own benchmarks when present.

Each part is a module with a ``main()`` that prints its figures; a part that is not in this build is skipped.
"""
from __future__ import annotations

import importlib
import sys

PARTS = ("bench.services", "bench.pgx_engine", "bench.pain_engine", "bench.pro",
         "bench.bulk")   # population sweeps


def main() -> int:
    sys.argv = sys.argv[:1]      # each part reads its own optional arguments; none are passed through here
    for name in PARTS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            print(f"({name} not in this build: skipped)")
            continue
        module.main()
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
