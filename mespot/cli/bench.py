"""`spot-bench`: benchmarks (not tests). Each subcommand lives in mespot.bench.<name>.

A bench module provides `add_arguments(parser)` and `run(args) -> int`; it is imported only when its
subcommand is chosen, so one missing optional dependency does not break the others.
"""
from __future__ import annotations

import argparse
import importlib
import sys

BENCHES = {
    "frontend": "per-frame front-end cost (capture to features) per stage, with TV-L1 beside it",
    "latency": "the whole live loop per stage and end to end, against the physical floor",
    "streams": "how many concurrent 30 fps streams one machine sustains without drops",
    "accuracy": "held-out generated videos through the live path, scored with the MEGC rule",
    "scaling": "streams against workers (measured and simulated) and the bus load at 10-1,000 cameras",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spot-bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="bench", required=True, metavar="BENCH")
    for name, help_text in BENCHES.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        try:
            module = importlib.import_module(f"mespot.bench.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"mespot.bench.{name}":
                raise
            p.set_defaults(_missing=True)
            continue
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    args = parser.parse_args(argv)
    if getattr(args, "_missing", False):
        print(f"spot-bench: the {args.bench} benchmark is not available in this build", file=sys.stderr)
        return 2
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
