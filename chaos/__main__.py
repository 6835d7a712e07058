"""``python -m chaos``: run the chaos scenarios and print their figures (``make chaos``).

    python -m chaos [--quick] [--only kills,restarts,pause,disk,poison]
                    [--backends sqlite,postgres] [--postgres-dsn DSN] [--seed N]

Exits 1 when a scenario broke a guarantee, 0 otherwise (a skipped scenario says why).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time

from .harness import DEFAULT_POSTGRES_DSN
from .report import format_table
from .suite import SCENARIOS, run_scenario


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the short version (make test's)")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="scenarios to run")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--postgres-dsn", default=DEFAULT_POSTGRES_DSN)
    parser.add_argument("--seed", type=int, default=None, help="the kill scenario's seed")
    return parser.parse_args(argv)


async def main(argv: list[str]) -> int:
    args = parse_args(argv)
    # The harness's own pool would report every connection a PostgreSQL restart broke; the
    # workers keep their logs in files (named in the report when something fails).
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    names = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        print(f"unknown scenarios: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    reports = []
    started = time.monotonic()
    for name in names:
        for backend in SCENARIOS[name].backends:
            if backend not in backends:
                continue
            print(f"-- {name} [{backend}] ...", flush=True)
            report = await run_scenario(
                name, backend, quick=args.quick, postgres_dsn=args.postgres_dsn, seed=args.seed
            )
            print("\n".join(report.details()), flush=True)
            reports.append(report)
    print()
    print(format_table(reports))
    print(f"\n{len(reports)} runs in {time.monotonic() - started:.0f} s")
    return 0 if all(report.passed for report in reports) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
