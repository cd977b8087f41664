"""``llm-benchmark compare RUN_A RUN_B``: two runs side by side, regressions flagged (see :mod:`llm_locust.compare`).

Exit codes: 0 no regression, 4 a regression beyond ``--threshold`` and the noise, 2 a run that cannot be read or
two runs that share no prompt or target (one line).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ..compare import METRICS, CompareError, compare, load, render
from ..slo import EXIT_SLO_FAILED


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="llm-benchmark compare",
        description="Compare two runs (report folders or summary.json files); RUN_A is the baseline.",
    )
    p.add_argument("run_a", metavar="RUN_A")
    p.add_argument("run_b", metavar="RUN_B")
    p.add_argument("--threshold", type=float, default=10.0,
                   help="percent a metric may get worse before it counts as a regression (default: 10)")
    p.add_argument("--metrics", default=None,
                   help=f"comma-separated metrics to compare (default: all: {', '.join(m.name for m in METRICS)})")
    p.add_argument("--output", choices=["text", "json"], default="text", help="stdout format (default: text)")
    return p


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        metrics = METRICS
        if args.metrics:
            names = [n.strip() for n in args.metrics.split(",") if n.strip()]
            known = {m.name: m for m in METRICS}
            unknown = [n for n in names if n not in known]
            if unknown or not names:
                raise CompareError(f"--metrics: unknown {unknown or names}; choose from {', '.join(known)}")
            metrics = tuple(known[n] for n in names)
        if args.threshold < 0:
            raise CompareError(f"--threshold must be >= 0 percent (got {args.threshold:g})")
        doc = compare(load(args.run_a), load(args.run_b), args.threshold, metrics)
    except CompareError as e:
        print(f"llm-benchmark compare: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(doc, indent=2) if args.output == "json" else render(doc))
    return EXIT_SLO_FAILED if doc["regressions"] else 0
