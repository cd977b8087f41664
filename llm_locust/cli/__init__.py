"""``llm-benchmark``: the seeds' plain command line, run on the same measurement core as a Locust run.

Two ways to pick what to measure:

* one endpoint (seed 000): ``llm-benchmark --endpoint http://localhost:8000/v1 --model mistral-7b --runs 5`` — every
  prompt of ``--prompt-file`` is sent ``--runs`` times; the API is inferred from the URL (or ``--api``);
* providers and models from the catalog (seed 001): ``llm-benchmark --providers openai anthropic --attempts 50``,
  ``--all-openai``, ..., ``--all-models`` — ``--attempts`` requests per model with a generated prompt
  (``--prompt-mode decode|simple``), through the Cloudflare AI Gateway when ``CLOUDFLARE_ACCOUNT_ID`` and
  ``CLOUDFLARE_GATEWAY_ID`` are set, else directly.

Either way it writes a targets file and a prompt file and runs the bundled locustfile headless with
``--max-requests`` (exact counts, one user per target with ``--parallel``, else one target after the other): the
same users, parsers, records and report writers as any Locust run. Then it prints the seed's text layout (or JSON or
CSV on stdout, nothing else there), and adds to the run's report folder the per-provider request logs
(``<provider>_requests_log.csv``), ``all_requests_log.csv``, the run log ``benchmark_<timestamp>.log`` and, with
``--plot``, PNG charts. Keys come from the environment or a ``.env`` file (``cp .env.example .env``).

Exit codes (docs/slo.md): 0 all requests succeeded, 1 some failed, 2 bad flags or missing keys (before any
request); with ``--slo`` the objectives are the verdict: 0 they held, 4 one failed.

``llm-benchmark compare RUN_A RUN_B`` compares two finished runs instead (:mod:`.compare`; exit 4 on a regression).

The modules, one job each: :mod:`.args` (flags, ``--config``, :class:`~.args.UsageError`), :mod:`.plan` (what to
run, the API of a URL from the catalog), :mod:`.launch` (the Locust run in a subprocess, its report folder from
the run-info file), :mod:`.output` (stdout and the request logs, from ``summary.json``), :mod:`.plots` (``--plot``),
:mod:`.compare` (the ``compare`` subcommand).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ..slo import EXIT_SLO_FAILED
from .args import UsageError, build_parser, load_env_file, parse_args
from .launch import run
from .output import emit, load_summary, provider_table, write_benchmark_log, write_request_logs
from .plan import BenchPlan, infer_api, plan
from .plots import plot

__all__ = ["BenchPlan", "UsageError", "build_parser", "infer_api", "main", "parse_args", "plan", "provider_table"]


def main(argv: Sequence[str] | None = None) -> int:
    from rich.console import Console

    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in[:1] == ["compare"]:
        from .compare import main as compare_main

        return compare_main(args_in[1:])
    err_console = Console(stderr=True)
    try:
        load_env_file(Path.cwd() / ".env")
        args = parse_args(args_in)
        if args.locust_options:
            from ..options import describe

            print(describe())
            return 0
        p = plan(args, dict(os.environ))
        folder, _ = run(args, p, err_console)
    except UsageError as e:
        print(f"llm-benchmark: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    write_request_logs(folder, p)
    summary = load_summary(folder)
    write_benchmark_log(folder, provider_table(summary))
    if args.plot:
        try:
            plot(folder, summary)
        except UsageError as e:
            print(f"llm-benchmark: error: {e}", file=sys.stderr)
            return 2
    emit(args.output, folder, summary, Console(width=None if sys.stdout.isatty() else 200))
    if summary.get("slo"):  # with objectives, they are the verdict (failed requests count in error_rate)
        return 0 if summary["slo"]["pass"] else EXIT_SLO_FAILED
    return 1 if summary["overall"]["failures"] else 0
