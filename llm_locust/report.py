"""Run reports: the summary of a run's records, written as text, JSON and CSV, and printed on one screen.

``summarize()`` applies the run-level definitions of :mod:`llm_locust.measure.metrics` to the records with pandas
(exact percentiles over per-request values; ITL pooled over every gap). It reads one DataFrame whose columns are
the record fields ``REPORT_FIELDS`` (:func:`frame` makes it from records), grouped by (target, prompt), by target
and overall. The gaps come either as the records' ``itl_us`` column, or, from the run's columnar store
(:class:`llm_locust.table.RecordTable`), as a column ``itl_n`` (gaps per request) and one array of every gap in
record order (``itl=``). ``write_reports()`` writes ``summary.txt`` (seed
000's layout), ``summary.json`` and ``summary.csv`` beside the ``requests.csv`` that the recorder wrote during the
run. The schema is documented in ``docs/reports.md``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import arrivals, fixedoutput, warmup
from .errors import redact
from .measure.metrics import STAT_KEYS, stats
from .measure.record import FIELDS, STATUS_CANCELLED, STATUS_FAILED, STATUS_OK, Record

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

LATENCY_METRICS = ("ttft_ms", "ttft_text_ms", "tpot_ms", "e2e_ms", "output_tokens_per_s")
TOKEN_METRICS = ("input_tokens", "output_tokens", "total_tokens", "reasoning_tokens")
#: the record fields (:class:`~llm_locust.measure.record.Record`) a summary reads: the columns of its frame
REPORT_FIELDS = (
    "target", "api", "prompt", "status", "error_class", "error", *LATENCY_METRICS, *TOKEN_METRICS, "cost_usd",
    "cost_source", "itl_us", "itl_rule", "token_events", "input_tokens_source", "output_tokens_source", "t0_ns",
    "elapsed_ms", "timestamp", "backoff_s", "warmup", "output_tokens_asked", "intended_send_ms", "queue_wait_ms",
    "send_lag_ms", "turn", "cached_tokens",
)
_unknown = set(REPORT_FIELDS) - set(FIELDS)
if _unknown:  # a renamed record field must be renamed here too
    raise ImportError(f"report fields not in the record: {sorted(_unknown)}")


def frame(records: list[Record]) -> pd.DataFrame:
    """The records as one DataFrame of ``REPORT_FIELDS`` (any other source of the same columns will do)."""
    import pandas as pd

    return pd.DataFrame.from_records(records, columns=REPORT_FIELDS)


def _pooled_gaps(df: pd.DataFrame, gaps: np.ndarray) -> np.ndarray:
    """The gaps (µs) of the rows of ``df``: slices ``itl_off``, ``itl_n`` of ``gaps``, concatenated."""
    import numpy as np

    n = df["itl_n"].to_numpy(dtype=np.int64)
    off = df["itl_off"].to_numpy(dtype=np.int64)
    keep = n > 0
    n, off = n[keep], off[keep]
    total = int(n.sum())
    if not total:
        return np.empty(0, dtype=np.int64)
    starts = np.cumsum(n) - n
    return gaps[np.repeat(off - starts, n) + np.arange(total)]


def _group_summary(df: pd.DataFrame, duration_s: float | None, gaps: np.ndarray) -> dict[str, Any]:

    status = df["status"]
    ok = df[status == STATUS_OK]
    failed = df[status == STATUS_FAILED]
    out: dict[str, Any] = {
        "requests": len(ok) + len(failed),
        "successes": len(ok),
        "failures": len(failed),
        "cancelled": int((status == STATUS_CANCELLED).sum()),
        "error_classes": {},
        "error_messages": {},  # the first message of each error class, keys redacted
    }
    for c, message in zip(failed["error_class"].tolist(), failed["error"].tolist(), strict=True):
        out["error_classes"][c] = out["error_classes"].get(c, 0) + 1
        if c not in out["error_messages"]:
            out["error_messages"][c] = redact(message) if isinstance(message, str) else ""
    for m in LATENCY_METRICS:
        out[m] = stats(ok[m].dropna().to_numpy(dtype="float64"))
    itl = _pooled_gaps(ok, gaps) / 1000.0
    out["itl_ms"] = stats(itl)
    out["itl_ms"]["samples"] = int(itl.size)
    for m in TOKEN_METRICS:
        col = ok[m].dropna()
        out[m] = {"mean": float(col.mean()) if len(col) else None, "total": int(col.sum()) if len(col) else None}
    cost = ok["cost_usd"].dropna()
    out["cost_usd"] = {
        "mean": float(cost.mean()) if len(cost) else None,
        "total": float(cost.sum()) if len(cost) else None,
        "priced_requests": int(len(cost)),
    }
    out["token_sources"] = {
        "input": sorted({v for v in ok["input_tokens_source"].tolist() if isinstance(v, str) and v}),
        "output": sorted({v for v in ok["output_tokens_source"].tolist() if isinstance(v, str) and v}),
    }
    events = ok["token_events"].tolist()
    out["itl_rule"] = sorted({rule for rule, n in zip(ok["itl_rule"].tolist(), events, strict=True) if n > 1})
    out["cost_sources"] = sorted({v for v in ok["cost_source"].tolist() if isinstance(v, str) and v})
    out["backoff_s"] = {"total": float(df["backoff_s"].fillna(0.0).sum())}
    out["output_shortfall"] = fixedoutput.shortfall(ok)
    out["cached_tokens"] = cache_share(ok)
    out_tokens = out["output_tokens"]["total"] or 0
    in_tokens = out["input_tokens"]["total"] or 0
    if duration_s:
        out["throughput"] = {
            "requests_per_s": len(ok) / duration_s,
            "output_tokens_per_s": out_tokens / duration_s,
            "total_tokens_per_s": (in_tokens + out_tokens) / duration_s,
        }
    else:
        out["throughput"] = {"requests_per_s": None, "output_tokens_per_s": None, "total_tokens_per_s": None}
    return out


def cache_share(ok: pd.DataFrame) -> dict[str, Any]:
    """Cached input tokens of successful requests (where the server reported them): mean, total and ``share``
    (cached / input tokens of those requests: the prefix-cache hit share)."""
    reported = ok[ok["cached_tokens"].notna()]
    if not len(reported):
        return {"mean": None, "total": None, "share": None, "reported_requests": 0}
    cached, inputs = float(reported["cached_tokens"].sum()), float(reported["input_tokens"].fillna(0).sum())
    return {"mean": cached / len(reported), "total": int(cached), "share": cached / inputs if inputs else None,
            "reported_requests": int(len(reported))}


def turn_summaries(df: pd.DataFrame, duration_s: float | None, gaps: np.ndarray) -> list[dict[str, Any]]:
    """One summary per turn of multi-turn sessions (``turn`` 1, 2, ...; llm_locust/sessions.py), [] without them."""
    turns = df["turn"]
    if not turns.notna().any():
        return []
    return [
        {"turn": int(k), **_group_summary(df[turns == k], duration_s, gaps)}
        for k in sorted(turns.dropna().unique())
    ]


def run_window(df: pd.DataFrame) -> float | None:
    """Benchmark duration: last request end minus first request start, in seconds (from monotonic times)."""
    import numpy as np

    t0 = df["t0_ns"].to_numpy(dtype=np.float64, na_value=np.nan)
    elapsed = df["elapsed_ms"].to_numpy(dtype=np.float64, na_value=np.nan)
    done = ~np.isnan(t0) & ~np.isnan(elapsed) & (df["status"] != STATUS_CANCELLED).to_numpy()
    if not done.any():
        return None
    t0_ns = df["t0_ns"][done].to_numpy(dtype=np.int64)
    start = int(t0_ns.min())
    end = float((t0_ns - start + elapsed[done] * 1e6).max())  # relative to the start: exact in a double
    return end / 1e9 if end > 0 else None


def backoff_share(total_s: float, users: Any, duration_s: float | None) -> float | None:
    """The share of the run's user time spent backing off: ``total_s / (users × duration_s)``, at most 1."""
    if not total_s:
        return 0.0
    if not users or not duration_s:
        return None
    return min(1.0, total_s / (float(users) * duration_s))


def backoff_warning(summary: dict[str, Any]) -> str | None:
    """One line saying how much of the run its users spent backing off, or None when they never did."""
    b = summary["overall"].get("backoff_s") or {}
    if not b.get("total"):
        return None
    share = b.get("share")
    part = f" ({share:.0%} of the users' time)" if share is not None else ""
    return (
        f"WARNING: users spent {b['total']:.1f} s backing off after failures{part}: the load was lower than "
        "configured (per request: backoff_s in requests.csv; --no-backoff turns it off)"
    )


def summarize(
    records: list[Record] | pd.DataFrame,
    run: dict[str, Any],
    prompt_order: list[str] | None = None,
    itl: np.ndarray | None = None,
) -> dict[str, Any]:
    """The summary.json document: ``run``; ``prompts``, one entry per (target, prompt), by target, then in
    ``prompt_order`` (the prompt file's) or first-seen order; ``targets``, one entry per target; ``overall``.

    ``records``: the run's records, or their :func:`frame` (the columns ``REPORT_FIELDS``), or a frame with
    ``itl_n`` in place of ``itl_us`` and ``itl`` the gaps of all its rows in order (see the module docs).

    Warm-up rows (``warmup``, :mod:`llm_locust.warmup`) are left out of every figure; ``run.window`` states the
    measured window the run-level throughput is over. Each group's ``output_shortfall`` counts the requests whose
    output length differs from the length asked (``--fixed-output``, :mod:`llm_locust.fixedoutput`)."""
    import numpy as np
    import pandas as pd

    df = records if isinstance(records, pd.DataFrame) else frame(records)
    if "itl_us" in df.columns:
        parts = [np.frombuffer(g, dtype=np.int64) for g in df["itl_us"].tolist() if g]
        itl = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
        df = df.assign(itl_n=[len(g) // 8 if g else 0 for g in df["itl_us"].tolist()]).drop(columns=["itl_us"])
    if itl is None:
        raise ValueError("summarize: a frame without itl_us needs itl= (the gaps of its rows in order)")
    n = df["itl_n"].to_numpy(dtype=np.int64)
    df = df.assign(itl_off=np.cumsum(n) - n)
    df, warm = warmup.split(df)  # warm-up rows are in requests.csv only (llm_locust.warmup)
    if warm:
        df = df.reset_index(drop=True)  # itl_off still points into the whole run's gaps
    duration = run_window(df)
    run = {**run, "duration_s": duration, "window": warmup.window(df, duration, warm)}
    groups: dict[tuple[str, str], list[int]] = {}
    by_target: dict[str, list[int]] = {}
    names = zip(df["target"].tolist(), df["api"].tolist(), df["prompt"].tolist(), strict=True)
    for i, (target, api, prompt) in enumerate(names):
        target = target if isinstance(target, str) and target else api
        groups.setdefault((target, prompt), []).append(i)
        by_target.setdefault(target, []).append(i)
    t_order = {t: i for i, t in enumerate(by_target)}
    p_order: dict[str, int] = {name: i for i, name in enumerate(prompt_order or ())}
    for _, p in groups:
        p_order.setdefault(p, len(p_order))
    keys = sorted(groups, key=lambda k: (t_order[k[0]], p_order[k[1]]))  # by target, then prompt
    rows = df.iloc
    prompts = [{"name": p, "target": t, **_group_summary(rows[groups[(t, p)]], duration, itl)} for t, p in keys]
    targets = [{"name": t, **_group_summary(rows[idx], duration, itl)} for t, idx in by_target.items()]
    overall = _group_summary(df, duration, itl)
    overall["requests_per_s"] = overall["throughput"]["requests_per_s"]
    overall["backoff_s"]["share"] = backoff_share(overall["backoff_s"]["total"], run.get("users"), duration)
    open_loop = arrivals.summary(df, run.get("arrivals"))  # open-loop runs only (llm_locust.arrivals)
    if open_loop is not None:
        overall["arrivals"] = open_loop
    run["requests"] = overall["requests"]
    turns = turn_summaries(df, duration, itl)
    if turns:
        overall["turns"] = turns
    return {"run": run, "prompts": prompts, "targets": targets, "overall": overall}


def _label(summary: dict[str, Any], entry: dict[str, Any]) -> str:
    """A prompt's name, prefixed by its target when the run has several."""
    if len(summary.get("targets") or ()) > 1 and entry.get("target"):
        return f"{entry['target']} / {entry['name']}"
    return entry["name"]


# ---------------------------------------------------------------- text


def _ms(v: float | None) -> str:
    if v is None:
        return "n/a"
    return f"{v:.1f} ms" if v < 1000 else f"{v / 1000:.2f} s"


def _num(v: float | None, unit: str = "", digits: int = 1) -> str:
    return "n/a" if v is None else f"{v:,.{digits}f}{unit}"


def _cost(v: float | None) -> str:
    return "n/a (no price known; see --prices)" if v is None else f"${v:.6f}"


def _src(sources: list[str]) -> str:
    return f" ({', '.join(sources)})" if sources else ""


def render_text(summary: dict[str, Any]) -> str:
    """summary.txt: seed 000's layout, a block per prompt and an average block, with units everywhere."""
    run = summary["run"]
    title = f"Benchmark Results for {run['model']} @ {run['host']}"
    lines = [title, "=" * len(title), ""]
    lines.append(
        f"Run {run['run_id']} · API {run['api']} · {run.get('users') or '?'} user(s) · "
        f"{_num(run.get('duration_s'), ' s')} · {summary['overall']['requests']} requests"
    )
    if run.get("complete") is False:
        lines.append("INCOMPLETE: " + "; ".join(run.get("incomplete_reasons") or ["records are missing"]))
    for extra in (warmup.render(summary), backoff_warning(summary), fixedoutput.warning(summary)):
        if extra:
            lines.append(extra)
    for p in summary["prompts"]:
        target = f" @ target {p['target']}" if len(summary.get("targets") or ()) > 1 else ""
        lines += ["", f'Prompt: "{p["name"]}"{target}']
        lines.append(f"- Requests: {p['requests']} ({p['failures']} failed, {p['cancelled']} cancelled at stop)")
        if p["error_classes"]:
            lines.append("- Failures: " + ", ".join(f"{k} {v}" for k, v in sorted(p["error_classes"].items())))
        t, tp, itl, e2e = p["ttft_ms"], p["tpot_ms"], p["itl_ms"], p["e2e_ms"]
        lines.append(
            f"- Time to First Token: {_ms(t['mean'])} (p50 {_ms(t['p50'])}, p95 {_ms(t['p95'])}, p99 {_ms(t['p99'])})"
        )
        lines.append(f"- Time per Output Token: {_ms(tp['mean'])} (p50 {_ms(tp['p50'])}, p95 {_ms(tp['p95'])})")
        lines.append(
            f"- Inter-token Latency: p50 {_ms(itl['p50'])}, p95 {_ms(itl['p95'])}, p99 {_ms(itl['p99'])}"
            f" ({itl['samples']} gaps, rule {', '.join(p['itl_rule']) or 'n/a'})"
        )
        lines.append(f"- Total Generation Time: {_ms(e2e['mean'])} (p50 {_ms(e2e['p50'])}, p95 {_ms(e2e['p95'])})")
        lines.append(f"- Tokens Per Second: {_num(p['output_tokens_per_s']['mean'], ' tokens/s')}")
        src = p["token_sources"]
        lines.append(f"- Input Tokens: {_num(p['input_tokens']['mean'])}{_src(src['input'])}")
        lines.append(f"- Output Tokens: {_num(p['output_tokens']['mean'])}{_src(src['output'])}")
        lines.append(f"- Total Tokens: {_num(p['total_tokens']['mean'])}")
        if shortfall := fixedoutput.line(p):
            lines.append(shortfall)
        lines.append(f"- Cost Estimate: {_cost(p['cost_usd']['mean'])} per request")
    o = summary["overall"]
    lines += turn_lines(o)
    lines += ["", "Summary Metrics (Average)", "-" * 25]
    lines.append(f"- Avg Time to First Token: {_ms(o['ttft_ms']['mean'])}")
    lines.append(f"- Avg Time per Output Token: {_ms(o['tpot_ms']['mean'])}")
    lines.append(f"- Avg Tokens Per Second: {_num(o['output_tokens_per_s']['mean'], ' tokens/s')}")
    lines.append(f"- Avg Response Time: {_ms(o['e2e_ms']['mean'])}")
    lines.append(f"- Requests per Second (whole run): {_num(o['throughput']['requests_per_s'], ' req/s', 2)}")
    lines.append(f"- Output Tokens per Second (whole run): {_num(o['throughput']['output_tokens_per_s'], ' tokens/s')}")
    lines.append(f"- Total Tokens: {_num(o['total_tokens']['total'], '', 0)}")
    total_cost = o["cost_usd"]["total"]
    lines.append(f"- Total Cost: {_cost(total_cost)}" + (_src(o["cost_sources"]) if total_cost is not None else ""))
    lines += arrivals.render(o.get("arrivals"))
    return "\n".join(lines) + "\n"


def turn_lines(group: dict[str, Any]) -> list[str]:
    """The per-turn block of the text report (multi-turn sessions), empty without them."""
    if not group.get("turns"):
        return []
    out = ["", "Per turn (multi-turn sessions)", "-" * 30]
    for t in group["turns"]:
        c = t["cached_tokens"]
        share = "n/a (not reported)" if c["share"] is None else f"{c['share']:.1%}"
        out.append(
            f"- Turn {t['turn']}: {t['requests']} requests ({t['failures']} failed), "
            f"TTFT p50 {_ms(t['ttft_ms']['p50'])}, E2E p50 {_ms(t['e2e_ms']['p50'])}, "
            f"input {_num(t['input_tokens']['mean'], '', 0)} tokens, cached {share}"
        )
    return out


def error_lines(group: dict[str, Any]) -> list[str]:
    """Per error class of a summary group: ``auth 3 — HTTP 401: Incorrect API key provided`` (its first message)."""
    messages = group.get("error_messages") or {}
    return [
        f"Errors: {c} {n}" + (f" — {messages[c]}" if messages.get(c) else "")
        for c, n in sorted(group["error_classes"].items(), key=lambda item: -item[1])
    ]


def render_console(summary: dict[str, Any], folder: Path | None) -> str:
    """The one-screen summary printed at the end of a run: one row per prompt and an overall row."""
    head = (
        "prompt",
        "reqs",
        "fail",
        "TTFT p50",
        "TTFT p95",
        "TPOT p50",
        "ITL p95",
        "E2E p50",
        "tok/s",
        "in",
        "out",
        "cost $",
    )
    rows = []
    multi = len(summary.get("targets") or ()) > 1
    targets = [{**t, "target": t["name"], "name": "Overall"} for t in summary["targets"]] if multi else []
    for p in [*summary["prompts"], *targets, {**summary["overall"], "name": "Overall"}]:
        rows.append(
            (
                (_label(summary, p) if p.get("target") else p["name"])[:44],
                str(p["requests"]),
                str(p["failures"]),
                _ms(p["ttft_ms"]["p50"]),
                _ms(p["ttft_ms"]["p95"]),
                _ms(p["tpot_ms"]["p50"]),
                _ms(p["itl_ms"]["p95"]),
                _ms(p["e2e_ms"]["p50"]),
                _num(p["output_tokens_per_s"]["mean"]),
                _num(p["input_tokens"]["mean"], "", 0),
                _num(p["output_tokens"]["mean"], "", 0),
                "n/a" if p["cost_usd"]["total"] is None else f"{p['cost_usd']['total']:.4f}",
            )
        )
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    run = summary["run"]
    o = summary["overall"]
    out = [
        f"LLM summary: {run['model']} @ {run['host']} ({run['api']}), {_num(run.get('duration_s'), ' s')}, "
        f"{o['requests']} requests, {o['failures']} failed, {o['cancelled']} cancelled at stop",
        fmt.format(*head),
        *(fmt.format(*r) for r in rows),
    ]
    out.append(
        f"Whole run: {_num(o['throughput']['requests_per_s'], ' req/s', 2)}, "
        f"{_num(o['throughput']['output_tokens_per_s'], ' output tokens/s')}. "
        "TTFT/TPOT/ITL/E2E in ms (s above 1000 ms); tok/s per request; in/out = mean tokens per request."
    )
    out += [line[2:] for line in arrivals.render(o.get("arrivals"))]
    out += turn_lines(o)[3:]  # multi-turn sessions: one line per turn
    out += error_lines(o)
    for extra in (warmup.render(summary), backoff_warning(summary), fixedoutput.warning(summary)):
        if extra:
            out.append(extra)
    if run.get("complete") is False:
        out.append("INCOMPLETE: " + "; ".join(run.get("incomplete_reasons") or ["records are missing"]))
    if folder is not None:
        out.append(f"Reports: {folder}/ (summary.txt, summary.json, summary.csv, requests.csv, report.html)")
    return "\n".join(out)


# ---------------------------------------------------------------- files

CSV_STATS = ("ttft_ms", "ttft_text_ms", "tpot_ms", "itl_ms", "e2e_ms", "output_tokens_per_s")


def _csv_rows(summary: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    header = ["target", "prompt", "requests", "successes", "failures", "cancelled"]
    for m in CSV_STATS:
        header += [f"{m}_{k}" for k in STAT_KEYS]
    for m in ("input_tokens", "output_tokens", "total_tokens"):
        header += [f"{m}_mean", f"{m}_total"]
    header += ["cost_usd_mean", "cost_usd_total", "requests_per_s", "output_tokens_per_s_run"]
    header += ["output_asked", "output_missed", "output_mean_shortfall"]
    rows = []
    rows_in = [
        *summary["prompts"],
        *({**t, "target": t["name"], "name": "Overall"} for t in summary.get("targets") or ()),
        {**summary["overall"], "target": "", "name": "Overall"},
    ]
    if len(summary.get("targets") or ()) < 2:  # one target: its row would repeat the overall row
        rows_in = [*summary["prompts"], {**summary["overall"], "target": "", "name": "Overall"}]
    for p in rows_in:
        row: list[Any] = [p.get("target", ""), p["name"], p["requests"], p["successes"], p["failures"], p["cancelled"]]
        for m in CSV_STATS:
            row += [p[m][k] for k in STAT_KEYS]
        for m in ("input_tokens", "output_tokens", "total_tokens"):
            row += [p[m]["mean"], p[m]["total"]]
        row += [
            p["cost_usd"]["mean"],
            p["cost_usd"]["total"],
            p["throughput"]["requests_per_s"],
            p["throughput"]["output_tokens_per_s"],
        ]
        short = p.get("output_shortfall") or {}
        row += [short.get("asked"), short.get("missed"), short.get("mean_shortfall")]
        rows.append(["" if v is None else (round(v, 6) if isinstance(v, float) else v) for v in row])
    return header, rows


def write_reports(folder: Path, summary: dict[str, Any]) -> None:
    import csv

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.txt").write_text(render_text(summary), encoding="utf-8")
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    header, rows = _csv_rows(summary)
    with (folder / "summary.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
