"""The reports at the end of a run: ``summary.txt``, ``summary.json``, ``summary.csv``, ``report.html`` and the
console summary.

:func:`run_summary` is the summary.json document of a run's records: :func:`llm_locust.report.summarize` plus, per
target, what ``llm-benchmark``'s per-provider table shows and the per-target statistics do not hold (see
:func:`target_extras`). The web UI's ``llm/summary.json`` download is computed with it too.

:func:`write_run_reports` writes the three files into the run's folder (beside ``requests.csv``) and returns the
one-screen summary to print, with the server's metrics (``server`` in summary.json, ``server_metrics.csv``, a block
in summary.txt and the console; see :mod:`llm_locust.servermetrics`) when they were scraped, and the run's answers
(:func:`add_answers`): run validity (``run.valid``, from the processes' :mod:`~llm_locust.validity` summaries), the
``--slo`` verdict (:mod:`llm_locust.slo`) and a capacity search's levels (:mod:`llm_locust.capacity`, also
``capacity.csv``); then the self-contained ``report.html`` (:mod:`llm_locust.htmlreport`). :func:`exit_code` is the
process exit code these answers ask for. ``--run-info`` gets ``done: true`` once everything is on disk.
"""

from __future__ import annotations

from argparse import Namespace
from typing import TYPE_CHECKING, Any

import locust

from .. import __version__, capacity, htmlreport, recvclock, runinfo, servermetrics, slo, validity, warmup
from ..measure.record import STATUS_CANCELLED, STATUS_OK, Record
from ..report import REPORT_FIELDS, render_console, run_window, summarize, write_reports
from ..run import LLMRun
from ..table import RecordTable

if TYPE_CHECKING:
    import pandas as pd

#: summary.json ``targets[]`` fields added here: the target's model, and the means over successful requests of
#: the output tokens the server reported and of the local count (``n/a`` when no request had one)
EXTRA_MEANS = ("output_tokens_server", "output_tokens_local")
#: the record fields read here beyond the summary's
EXTRA_FIELDS = ("model", *EXTRA_MEANS)


def target_extras(df: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per target name: ``model`` (of its first request booked before the stop) and ``{"mean": ...}`` of each of
    :data:`EXTRA_MEANS` over its successful requests. ``df``: the records' frame with ``target``, ``api``,
    ``status``, ``model`` and the :data:`EXTRA_MEANS` columns."""
    import pandas as pd

    out: dict[str, dict[str, Any]] = {}
    names = [t if isinstance(t, str) and t else a for t, a in zip(df["target"].tolist(), df["api"].tolist(),
                                                                  strict=True)]
    status = df["status"].astype(object).to_numpy()
    models = df["model"].tolist()
    for i, name in enumerate(names):
        entry = out.setdefault(name, {"model": ""})
        if not entry["model"] and status[i] != STATUS_CANCELLED and isinstance(models[i], str):
            entry["model"] = models[i]
    ok = status == STATUS_OK
    by_name = pd.Series(names, index=df.index)
    for name, entry in out.items():
        rows = df[ok & (by_name == name).to_numpy()]
        for k in EXTRA_MEANS:
            values = pd.to_numeric(rows[k], errors="coerce").dropna()
            entry[k] = {"mean": float(values.mean()) if len(values) else None}
    return out


def run_summary(
    source: list[Record] | RecordTable, meta: dict[str, Any], prompt_order: list[str] | None = None
) -> dict[str, Any]:
    """The summary.json document: :func:`~llm_locust.report.summarize` with :func:`target_extras` per target;
    ``source`` is the run's :class:`~llm_locust.table.RecordTable` (or a list of records)."""
    import pandas as pd

    if isinstance(source, RecordTable):
        df, itl = source.frame(), source.itl()
    else:
        df, itl = pd.DataFrame.from_records(source, columns=list(dict.fromkeys((*REPORT_FIELDS, *EXTRA_FIELDS)))), None
    summary = summarize(df, meta, prompt_order, itl)
    extras = target_extras(warmup.split(df)[0])
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
        "fixed_output": any(t.fixed_output for t in run.targets),
        "warmup": run.warmup.spec.describe(),
        "prompt_source": run.prompt_source,
        "line_clock": recvclock.clock_of(t.host for t in run.targets),  # what stamped the lines (docs/metrics.md)
        "locust_version": locust.__version__,
        "llm_locust_version": __version__,
        **({"arrivals": vars(run.arrivals.settings)} if run.arrivals is not None else {}),
        **books,
    }


def add_answers(
    summary: dict[str, Any], df: Any, itl: Any, opts: Namespace, health: dict[str, Any], search: Any = None
) -> list[str]:
    """Add ``run.valid``/``run.validity``, ``slo`` and ``capacity`` to ``summary``; return their text lines.
    ``df``, ``itl``: the run's :class:`~llm_locust.table.RecordTable` frame and gaps."""
    valid, warnings = validity.verdict(health, summary["overall"].get("arrivals"))
    summary["run"]["valid"] = valid
    summary["run"]["validity"] = {"processes": health, "warnings": warnings}
    lines = [f"RUN INVALID: {w}" for w in warnings]
    if getattr(opts, "slo", None) and search is None:  # a search judges each level, not the whole run
        try:
            objectives = slo.parse(opts.slo)  # checked at init; typed into the web UI's form it is checked here
        except slo.SLOError as e:
            lines.append(f"SLO not judged: {e}")
        else:
            summary["slo"] = slo.evaluate(objectives, df, run_window(df), itl)
            lines.append(slo.render(summary["slo"]))
    if search is not None:
        summary["capacity"] = search.result()
        lines.append(capacity.render(summary["capacity"]))
    return lines


def exit_code(summary: dict[str, Any]) -> int | None:
    """The exit code the run's answers ask for: :data:`~llm_locust.slo.EXIT_SLO_FAILED` when an objective (or the
    capacity search's first level) failed, 0 when the objectives held, None without ``--slo``."""
    verdicts = [block["pass"] for block in (summary.get("slo"), summary.get("capacity")) if block]
    if not verdicts:
        return None
    return 0 if all(verdicts) else slo.EXIT_SLO_FAILED


def write_run_reports(
    run: LLMRun,
    opts: Namespace,
    users: int,
    books: dict[str, Any],
    health: dict[str, Any] | None = None,
    search: Any = None,
) -> tuple[str, dict[str, Any]]:
    """Write the run's summary files and report.html; return the console summary and the summary document.

    ``health``: per process, its :meth:`validity.Monitor.summary <llm_locust.validity.Monitor.summary>`;
    ``search``: the run's :class:`~llm_locust.capacity.CapacityShape`, if it ran one."""
    folder = run.recorder.csv_path.parent
    table = run.recorder.table
    summary = run_summary(table, run_meta(run, opts, users, books), [p.name for p in run.prompts])
    server = run.server.section(summary) if run.server is not None else None
    if server is not None:
        summary["server"] = server
        run.server.write_csv(folder)
    df, itl = warmup.measured(*((table.frame(), table.itl()) if table is not None else (None, None)))
    lines = add_answers(summary, df, itl, opts, health or {}, search)
    write_reports(folder, summary)
    server_text = servermetrics.render_text(server)
    extra = [server_text.rstrip("\n")] if server_text else []  # the server's block, after the client's figures
    extra += lines
    if extra:
        with (folder / "summary.txt").open("a", encoding="utf-8") as f:
            f.write("\n" + "\n".join(extra) + "\n")
    if search is not None:
        capacity.write_csv(folder / "capacity.csv", summary["capacity"])
    history = list(run.live.history) if run.live else []
    started = run.live.started if run.live else None
    htmlreport.write(folder / htmlreport.FILENAME, summary, df, history, started, run.secrets(),
                     servermetrics.series(run.server, started))
    if getattr(opts, "run_info", None):
        runinfo.write(opts.run_info, run.run_id, folder, done=True)
    head, _, reports_line = render_console(summary, folder).rpartition("\n")
    if server_text:
        reports_line = reports_line.replace("requests.csv", f"requests.csv, {servermetrics.CSV_NAME}", 1)
    return "\n".join([head, *extra, reports_line]), summary  # the folder's line stays the last one
