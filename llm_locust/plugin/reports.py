"""The reports at the end of a run: ``summary.txt``, ``summary.json``, ``summary.csv`` and the console summary.

:func:`run_summary` is the summary.json document of a run's records: :func:`llm_locust.report.summarize` plus, per
target, what ``llm-benchmark``'s per-provider table shows and the per-target statistics do not hold (see
:func:`target_extras`). The web UI's ``llm/summary.json`` download is computed with it too.

:func:`write_run_reports` writes the three files into the run's folder (beside ``requests.csv``) and returns the
one-screen summary to print, with the server's metrics (``server`` in summary.json, ``server_metrics.csv``, a block
in summary.txt and the console; see :mod:`llm_locust.servermetrics`) when they were scraped; ``--run-info`` gets
``done: true`` once they are on disk.
"""

from __future__ import annotations

from argparse import Namespace
from typing import Any

import locust

from .. import __version__, runinfo, servermetrics
from ..measure.record import STATUS_CANCELLED, STATUS_OK, Record
from ..report import render_console, summarize, write_reports
from ..run import LLMRun

#: summary.json ``targets[]`` fields added here: the target's model, and the means over successful requests of
#: the output tokens the server reported and of the local count (``n/a`` when no request had one)
EXTRA_MEANS = ("output_tokens_server", "output_tokens_local")


def target_extras(records: list[Record]) -> dict[str, dict[str, Any]]:
    """Per target name: ``model`` (of its first request booked before the stop) and ``{"mean": ...}`` of each of
    :data:`EXTRA_MEANS` over its successful requests."""
    out: dict[str, dict[str, Any]] = {}
    sums: dict[str, dict[str, list[float]]] = {}
    for r in records:
        name = r["target"] or r["api"]
        entry = out.setdefault(name, {"model": ""})
        if r["status"] == STATUS_CANCELLED:
            continue
        if not entry["model"]:
            entry["model"] = r["model"] or ""
        if r["status"] == STATUS_OK:
            acc = sums.setdefault(name, {k: [] for k in EXTRA_MEANS})
            for k in EXTRA_MEANS:
                if r[k] is not None:
                    acc[k].append(float(r[k]))
    for name, entry in out.items():
        acc = sums.get(name, {})
        for k in EXTRA_MEANS:
            values = acc.get(k) or []
            entry[k] = {"mean": sum(values) / len(values) if values else None}
    return out


def run_summary(records: list[Record], meta: dict[str, Any], prompt_order: list[str] | None = None) -> dict[str, Any]:
    """The summary.json document: :func:`~llm_locust.report.summarize` with :func:`target_extras` per target."""
    summary = summarize(records, meta, prompt_order)
    extras = target_extras(records)
    for target in summary["targets"]:
        target.update(extras.get(target["name"], {}))
    return summary


def run_meta(run: LLMRun, opts: Namespace, users: int, books: dict[str, Any]) -> dict[str, Any]:
    """summary.json's ``run`` block before the figures (``books``: the master's per-worker accounts)."""
    return {
        "run_id": run.run_id,
        "model": run.model,
        "host": run.host,
        "api": run.api,
        "users": users,
        "started_at": run.started_at,
        "prompt_file": str(opts.prompt_file),
        "token_limit": run.token_limit,
        "locust_version": locust.__version__,
        "llm_locust_version": __version__,
        **books,
    }


def write_run_reports(run: LLMRun, opts: Namespace, users: int, books: dict[str, Any]) -> str:
    """Write the run's summary files; return the console summary."""
    folder = run.recorder.csv_path.parent
    summary = run_summary(run.recorder.records, run_meta(run, opts, users, books), [p.name for p in run.prompts])
    server = run.server.section(summary) if run.server is not None else None
    if server is not None:
        summary["server"] = server
        run.server.write_csv(folder)
    write_reports(folder, summary)
    server_text = servermetrics.render_text(server)
    if server_text:  # the server's block, after the client's figures
        with (folder / "summary.txt").open("a", encoding="utf-8") as f:
            f.write("\n" + server_text)
    if getattr(opts, "run_info", None):
        runinfo.write(opts.run_info, run.run_id, folder, done=True)
    console = render_console(summary, folder)
    if not server_text:
        return console
    head, sep, files = console.rpartition("\nReports: ")  # the server's block goes before the files line
    if not sep:
        return console + "\n" + server_text.rstrip("\n")
    files = files.replace("requests.csv)", f"requests.csv, {servermetrics.CSV_NAME})")
    return head + "\n" + server_text.rstrip("\n") + sep + files
