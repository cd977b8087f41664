"""The reports at the end of a run: ``summary.txt``, ``summary.json``, ``summary.csv`` and the console summary.

:func:`run_summary` is the summary.json document of a run's records: :func:`llm_locust.report.summarize` plus, per
target, what ``llm-benchmark``'s per-provider table shows and the per-target statistics do not hold (see
:func:`target_extras`). The web UI's ``llm/summary.json`` download is computed with it too.

:func:`write_run_reports` writes the three files into the run's folder (beside ``requests.csv``) and returns the
one-screen summary to print; ``--run-info`` gets ``done: true`` once they are on disk.
"""

from __future__ import annotations

from argparse import Namespace
from typing import TYPE_CHECKING, Any

import locust

from .. import __version__, runinfo
from ..measure.record import STATUS_CANCELLED, STATUS_OK, Record
from ..report import REPORT_FIELDS, render_console, summarize, write_reports
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
                                                                  strict=True)]  # fmt: skip
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
    extras = target_extras(df)
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
    summary = run_summary(run.recorder.table, run_meta(run, opts, users, books), [p.name for p in run.prompts])
    write_reports(folder, summary)
    if getattr(opts, "run_info", None):
        runinfo.write(opts.run_info, run.run_id, folder, done=True)
    return render_console(summary, folder)
