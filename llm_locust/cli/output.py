"""``llm-benchmark``'s output: stdout as text, JSON or CSV, and the per-provider request logs.

Every figure comes from the run's ``summary.json`` (written by the run, :mod:`llm_locust.plugin.reports`); nothing
is recomputed here. :func:`provider_table` is one row per target (requests, failures by class, TTFT mean, output
tokens/s mean and median, token means with the server's and the local output count, total cost), the
``providers`` list of ``--output json`` and the "Per provider / model" table of the text output (:func:`print_text`,
after ``summary.txt``). :func:`write_request_logs` copies ``requests.csv``'s rows into
``<provider>_requests_log.csv`` per provider (or target) and ``all_requests_log.csv``: the only use of the
per-request rows.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path
from typing import Any

from ..report import error_lines
from .plan import BenchPlan


def load_summary(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "summary.json").read_text(encoding="utf-8"))


def write_request_logs(folder: Path, p: BenchPlan) -> None:
    """``<provider>_requests_log.csv`` per provider (or target) and ``all_requests_log.csv``."""
    with (folder / "requests.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    provider_of = {t["name"]: t.get("provider") or t["name"] for t in p.targets}
    fields = list(rows[0])
    with (folder / "all_requests_log.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fields)
        w.writeheader()
        w.writerows(rows)
    by_provider: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_provider.setdefault(provider_of.get(r["target"], r["target"]), []).append(r)
    for provider, group in by_provider.items():
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in provider)
        with (folder / f"{safe}_requests_log.csv").open("w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fields)
            w.writeheader()
            w.writerows(group)


def provider_table(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Per target of ``summary.json``: requests, failures with classes, TTFT, tokens/s, token means, cost."""
    return [
        {
            "target": t["name"],
            "model": t.get("model", ""),
            "requests": t["requests"],
            "failures": t["failures"],
            "errors": t["error_classes"],
            "error_messages": t.get("error_messages") or {},
            "ttft_ms_mean": t["ttft_ms"]["mean"],
            "tokens_per_s_mean": t["output_tokens_per_s"]["mean"],
            "tokens_per_s_median": t["output_tokens_per_s"]["p50"],
            "total_tokens_mean": t["total_tokens"]["mean"],
            "prompt_tokens_mean": t["input_tokens"]["mean"],
            "completion_tokens_mean": t["output_tokens"]["mean"],
            "completion_tokens_api_mean": t["output_tokens_server"]["mean"],
            "completion_tokens_local_mean": t["output_tokens_local"]["mean"],
            "cost_usd_total": t["cost_usd"]["total"],
        }
        for t in summary["targets"]
    ]


def _fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return "n/a"
    return f"{v:,.{digits}f}" if isinstance(v, float) else str(v)


def print_text(folder: Path, table: list[dict[str, Any]], console: Any) -> None:
    from rich.table import Table

    print((folder / "summary.txt").read_text(encoding="utf-8"), flush=True)
    t = Table(title="Per provider / model", title_justify="left")
    for col in ("target", "reqs", "failed", "TTFT ms", "tok/s avg", "tok/s median", "total tok", "prompt tok",
                "completion tok (API / local)", "cost $", "errors"):
        t.add_column(col, justify="left" if col in ("target", "errors") else "right")
    for row in table:
        t.add_row(
            row["target"], str(row["requests"]), str(row["failures"]), _fmt(row["ttft_ms_mean"]),
            _fmt(row["tokens_per_s_mean"]), _fmt(row["tokens_per_s_median"]), _fmt(row["total_tokens_mean"]),
            _fmt(row["prompt_tokens_mean"]),
            f"{_fmt(row['completion_tokens_api_mean'])} / {_fmt(row['completion_tokens_local_mean'])}",
            "n/a" if row["cost_usd_total"] is None else f"{row['cost_usd_total']:.6f}",
            ", ".join(f"{k} {v}" for k, v in row["errors"].items()),
        )
    console.print(t)
    for row in table:
        for line in error_lines({"error_classes": row["errors"], "error_messages": row["error_messages"]}):
            console.print(f"{row['target']}: {line}", markup=False, highlight=False)
    console.print(f"Reports: {folder}/", markup=False, highlight=False)


def write_benchmark_log(folder: Path, table: list[dict[str, Any]]) -> None:
    """Append seed 001's figures per provider / model to the run log ``benchmark_<timestamp>.log``: average and
    median tokens/s, average total tokens, prompt vs completion tokens, API-reported vs locally counted tokens."""
    logs = sorted(folder.glob("benchmark_*.log"))
    if not logs:
        return
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    lines = []
    for row in table:
        head = f"[{stamp}] llm-benchmark/INFO: {row['target']} ({row['model']}):"
        lines += [
            f"{head} requests {row['requests']}, failed {row['failures']}",
            f"{head} tokens/s average {_fmt(row['tokens_per_s_mean'])}, median {_fmt(row['tokens_per_s_median'])}",
            f"{head} average total tokens {_fmt(row['total_tokens_mean'])} = prompt {_fmt(row['prompt_tokens_mean'])}"
            f" + completion {_fmt(row['completion_tokens_mean'])}",
            f"{head} completion tokens API-reported {_fmt(row['completion_tokens_api_mean'])}, locally estimated "
            f"{_fmt(row['completion_tokens_local_mean'])} (averages)",
        ]
        lines += [f"{head} {line}" for line in error_lines({"error_classes": row["errors"],
                                                             "error_messages": row["error_messages"]})]
    with logs[-1].open("a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def emit(output: str, folder: Path, summary: dict[str, Any], console: Any) -> None:
    """Print the run on stdout as ``text``, ``json`` (summary.json plus ``providers``) or ``csv`` (summary.csv)."""
    table = provider_table(summary)
    if output == "json":
        print(json.dumps({**summary, "providers": table}, indent=2))
    elif output == "csv":
        sys.stdout.write((folder / "summary.csv").read_text(encoding="utf-8"))
    else:
        print_text(folder, table, console)
        if summary.get("slo"):
            from ..slo import render

            print(render(summary["slo"]))
