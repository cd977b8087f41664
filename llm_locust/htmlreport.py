"""The HTML report of a run: one self-contained file (``report.html``), readable at a glance, offline.

:func:`write` renders it at the end of a run, beside the other reports; the web UI serves it as
``llm/report.html``. No script, no CDN, no font or image to fetch: the charts are inline SVG drawn here
(:func:`line_chart`, :func:`bar_chart`, :func:`scatter_chart`), so it opens from a mail attachment or a CI artifact.

Contents, top to bottom: the verdicts (run validity, the ``--slo`` objectives, a capacity search's answer), the run's
metadata, a table per prompt, the capacity-search curve (latency against throughput per level, the knee - the
largest level that held - marked), the TTFT/TPOT/E2E distributions (p50 and p99 marked), the time series of latency
and output throughput with the user count, failed requests by error class over time, and the server's own metrics
over time when they were scraped (:func:`server_charts`, the web UI's charts). The time series come from
the records' wall-clock start times (comparable across workers) and the live view's user counts.

Nothing secret goes in: no request or response text, no error message (only error classes), no header; and every
string in ``secrets`` (the run's API keys) is replaced by ``***`` in the final text, should it appear anywhere.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

FILENAME = "report.html"
W, H = 560, 240  # chart size in px
PAD_L, PAD_R, PAD_T, PAD_B = 56, 52, 24, 36
COLORS = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#a16207", "#db2777")
GREY = "#6b7280"


def _e(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _fmt(v: Any, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "n/a"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return _e(v)


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    import math

    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step) + 1)]


def _tick_label(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 or v == int(v) else f"{v:,.3g}"


class _Frame:
    """Axes of one chart: data -> pixel mapping, grid and labels."""

    def __init__(self, x: tuple[float, float], y: tuple[float, float], y2: tuple[float, float] | None = None):
        self.x0, self.x1 = x if x[1] > x[0] else (x[0], x[0] + 1)
        self.y0, self.y1 = 0.0 if y[0] >= 0 else y[0], (y[1] * 1.08 if y[1] > 0 else 1.0)
        self.y2 = (0.0, (y2[1] * 1.08 if y2[1] > 0 else 1.0)) if y2 else None

    def px(self, x: float) -> float:
        return PAD_L + (x - self.x0) / (self.x1 - self.x0) * (W - PAD_L - PAD_R)

    def py(self, y: float, second: bool = False) -> float:
        lo, hi = self.y2 if (second and self.y2) else (self.y0, self.y1)
        return H - PAD_B - (y - lo) / (hi - lo) * (H - PAD_T - PAD_B)

    def axes(self, x_label: str, y_label: str, y2_label: str | None = None) -> list[str]:
        out = []
        for t in _ticks(self.y0, self.y1):
            y = self.py(t)
            out.append(f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>')
            out.append(f'<text x="{PAD_L - 4}" y="{y + 4:.1f}" text-anchor="end">{_tick_label(t)}</text>')
        for t in _ticks(self.x0, self.x1, 6):
            x = self.px(t)
            out.append(f'<text x="{x:.1f}" y="{H - PAD_B + 14}" text-anchor="middle">{_tick_label(t)}</text>')
        if self.y2 and y2_label:
            for t in _ticks(*self.y2):
                out.append(f'<text x="{W - PAD_R + 4}" y="{self.py(t, True) + 4:.1f}">{_tick_label(t)}</text>')
            out.append(f'<text x="{W - 4}" y="{PAD_T - 8}" text-anchor="end" fill="{GREY}">{_e(y2_label)}</text>')
        out.append(f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{H - PAD_B}" y2="{H - PAD_B}" stroke="#9ca3af"/>')
        out.append(f'<text x="{(W + PAD_L - PAD_R) / 2}" y="{H - 4}" text-anchor="middle">{_e(x_label)}</text>')
        out.append(f'<text x="{PAD_L}" y="{PAD_T - 8}" text-anchor="start">{_e(y_label)}</text>')
        return out


def _svg(title: str, body: list[str], legend: list[tuple[str, str]] = ()) -> str:
    items = "".join(
        f'<span class="key"><i style="background:{c}"></i>{_e(n)}</span>' for n, c in legend
    )
    return (
        f'<figure class="chart"><figcaption>{_e(title)}</figcaption>'
        f'<svg viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{_e(title)}">'
        + "".join(body) + f"</svg><div class=\"legend\">{items}</div></figure>"
    )


def _empty(title: str, why: str) -> str:
    return f'<figure class="chart empty"><figcaption>{_e(title)}</figcaption><p>{_e(why)}</p></figure>'


def line_chart(
    title: str, x_label: str, y_label: str, series: list[tuple[str, list[float], list[float | None]]],
    second: tuple[str, list[float], list[float]] | None = None,
) -> str:
    """Lines of ``(name, xs, ys)``; ``second``: one series on a right-hand axis (grey steps, e.g. users)."""
    xs = [x for _, sx, _ in series for x in sx] + (second[1] if second else [])
    ys = [y for _, _, sy in series for y in sy if y is not None]
    if not xs or not ys:
        return _empty(title, "no data")
    f = _Frame((min(xs), max(xs)), (min(ys), max(ys)), (0.0, max(second[2], default=1.0)) if second else None)
    body = f.axes(x_label, y_label, second[0] if second else None)
    legend = []
    if second and second[1]:
        pts = []
        sx2, sy2 = [*second[1], max(xs)], [*second[2], second[2][-1]]  # held to the end of the chart
        second = (second[0], sx2, sy2)
        for i, (x, y) in enumerate(zip(second[1], second[2], strict=True)):
            if i:
                pts.append(f"{f.px(x):.1f},{f.py(second[2][i - 1], True):.1f}")
            pts.append(f"{f.px(x):.1f},{f.py(y, True):.1f}")
        body.append(f'<polyline points="{" ".join(pts)}" fill="none" stroke="{GREY}" stroke-dasharray="4 3"/>')
        legend.append((second[0], GREY))
    for i, (name, sx, sy) in enumerate(series):
        color = COLORS[i % len(COLORS)]
        segment: list[str] = []
        for x, y in zip(sx, sy, strict=True):
            if y is None:
                if segment:
                    body.append(f'<polyline points="{" ".join(segment)}" fill="none" stroke="{color}" '
                                'stroke-width="2"/>')
                segment = []
                continue
            segment.append(f"{f.px(x):.1f},{f.py(y):.1f}")
        if segment:
            body.append(f'<polyline points="{" ".join(segment)}" fill="none" stroke="{color}" stroke-width="2"/>')
        legend.append((name, color))
    return _svg(title, body, legend)


def bar_chart(
    title: str, x_label: str, y_label: str, edges: list[float], stacks: list[tuple[str, list[float]]],
    marks: list[tuple[str, float]] = (),
    legend_always: bool = False,
) -> str:
    """Bars between ``edges`` (len(edges) - 1 bins), stacked series; ``marks``: labelled vertical lines."""
    if len(edges) < 2 or not stacks:
        return _empty(title, "no data")
    totals = [sum(s[1][i] for s in stacks) for i in range(len(edges) - 1)]
    if not any(totals):
        return _empty(title, "none")
    f = _Frame((edges[0], edges[-1]), (0.0, max(totals)))
    body = f.axes(x_label, y_label)
    legend = []
    base = [0.0] * (len(edges) - 1)
    for k, (name, counts) in enumerate(stacks):
        color = COLORS[k % len(COLORS)]
        for i, c in enumerate(counts):
            if not c:
                continue
            x, x2 = f.px(edges[i]), f.px(edges[i + 1])
            y_top, y_bot = f.py(base[i] + c), f.py(base[i])
            body.append(f'<rect x="{x:.1f}" y="{y_top:.1f}" width="{max(x2 - x - 1, 1):.1f}" '
                        f'height="{y_bot - y_top:.1f}" fill="{color}" opacity="0.85"/>')
            base[i] += c
        legend.append((name, color))
    for label, v in marks:
        x = f.px(v)
        body.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{PAD_T}" y2="{H - PAD_B}" stroke="#111827" '
                    'stroke-dasharray="3 2"/>')
        body.append(f'<text x="{x + 3:.1f}" y="{PAD_T + 10}">{_e(label)}</text>')
    return _svg(title, body, legend if len(stacks) > 1 or legend_always else [])


def scatter_chart(
    title: str, x_label: str, y_label: str, points: list[tuple[float, float, str, bool]], knee: int | None,
    limit: float | None = None,
) -> str:
    """Points ``(x, y, label, ok)`` joined in the order given; ``knee``: the index of the point to ring; ``limit``:
    a horizontal line (the objective)."""
    pts = [p for p in points if p[0] is not None and p[1] is not None]
    knee = pts.index(points[knee]) if knee is not None and points[knee] in pts else None
    if not pts:
        return _empty(title, "no level measured")
    ys = [p[1] for p in pts] + ([limit] if limit else [])
    f = _Frame((0.0, max(p[0] for p in pts) * 1.05), (0.0, max(ys)))
    body = f.axes(x_label, y_label)
    if limit:
        y = f.py(limit)
        body.append(f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{y:.1f}" y2="{y:.1f}" stroke="{COLORS[1]}" '
                    'stroke-dasharray="6 3"/>')
        body.append(f'<text x="{PAD_L + 4}" y="{y - 4:.1f}" fill="{COLORS[1]}">objective</text>')
    line = " ".join(f"{f.px(p[0]):.1f},{f.py(p[1]):.1f}" for p in pts)
    body.append(f'<polyline points="{line}" fill="none" stroke="{GREY}"/>')
    for i, (x, y, label, ok) in enumerate(pts):
        cx, cy = f.px(x), f.py(y)
        body.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="5" fill="{COLORS[2] if ok else COLORS[1]}"/>')
        body.append(f'<text x="{cx + 7:.1f}" y="{cy - 6:.1f}">{_e(label)}</text>')
        if i == knee:
            body.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="11" fill="none" stroke="#111827" stroke-width="2"/>')
            body.append(f'<text x="{cx:.1f}" y="{cy + 24:.1f}" text-anchor="middle" font-weight="bold">knee</text>')
    return _svg(title, body, [("level held", COLORS[2]), ("level broke", COLORS[1])])


# ---------------------------------------------------------------- sections


def _verdicts(summary: dict[str, Any]) -> str:
    run = summary["run"]
    out = []
    warnings = (run.get("validity") or {}).get("warnings") or []
    if run.get("valid") is False:
        out.append('<div class="badge bad">RUN INVALID</div><ul>' + "".join(f"<li>{_e(w)}</li>" for w in warnings)
                   + "</ul>")
    elif run.get("valid"):
        out.append('<div class="badge good">run valid</div> <span class="note">the load generator kept up</span>')
    if run.get("complete") is False:
        out.append('<div class="badge bad">INCOMPLETE</div> ' + _e("; ".join(run.get("incomplete_reasons") or [])))
    from . import fixedoutput, warmup

    for note in (warmup.render(summary), fixedoutput.warning(summary)):
        if note:
            out.append(f'<p class="note">{_e(note)}</p>')
    block = summary.get("slo")
    if block:
        from .slo import METRICS, format_value

        rows = "".join(
            f'<tr class="{"pass" if r["pass"] else "fail"}"><td>{_e(r["label"])}</td>'
            f'<td>{_e(format_value(r["measured"], METRICS[r["metric"]].kind))}</td><td>{r["samples"]}</td>'
            f'<td>{"pass" if r["pass"] else "FAIL"}</td></tr>'
            for r in block["objectives"]
        )
        goodput = block["goodput_rps"]
        att = block["attainment"]
        out.append(
            f'<div class="badge {"good" if block["pass"] else "bad"}">SLO {"PASS" if block["pass"] else "FAIL"}</div>'
            f'<table><tr><th>objective</th><th>measured</th><th>samples</th><th>verdict</th></tr>{rows}</table>'
            f'<p>Goodput {_fmt(goodput, 2)} req/s · {block["good_requests"]} good of {block["counted_requests"]} '
            f'requests · attainment {"n/a" if att is None else f"{att * 100:.1f}%"}</p>'
        )
    cap = summary.get("capacity")
    if cap:
        out.append(f'<div class="badge {"good" if cap["pass"] else "bad"}">capacity</div> '
                   f'<span class="answer">{_e(cap["answer"])}</span>')
    return "\n".join(out)


def _meta(summary: dict[str, Any]) -> str:
    run = summary["run"]
    keys = ("run_id", "model", "host", "api", "users", "started_at", "duration_s", "requests", "prompt_file",
            "token_limit", "fixed_output", "warmup", "locust_version", "llm_locust_version")
    cells = "".join(f"<tr><th>{_e(k)}</th><td>{_fmt(run.get(k), 2)}</td></tr>" for k in keys if k in run)
    return f'<table class="meta">{cells}</table>'


def _prompts(summary: dict[str, Any]) -> str:
    head = ("target", "prompt", "requests", "failed", "TTFT p50", "TTFT p95", "TTFT p99", "TPOT p50", "ITL p95",
            "E2E p50", "E2E p95", "tok/s", "out tokens", "cost $")
    rows = []
    for p in [*summary["prompts"], {**summary["overall"], "name": "Overall", "target": ""}]:
        cost = p["cost_usd"]["total"]
        cells = (p.get("target", ""), p["name"], p["requests"], p["failures"], p["ttft_ms"]["p50"], p["ttft_ms"]["p95"],
                 p["ttft_ms"]["p99"], p["tpot_ms"]["p50"], p["itl_ms"]["p95"], p["e2e_ms"]["p50"], p["e2e_ms"]["p95"],
                 p["output_tokens_per_s"]["mean"], p["output_tokens"]["mean"], cost)
        rows.append("<tr>" + "".join(f"<td>{_fmt(c, 6 if c is cost else 1)}</td>" for c in cells) + "</tr>")
    return ("<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>" + "".join(rows) + "</table>"
            '<p class="note">times in ms; tok/s per request (mean); out tokens: mean per request</p>')


def _distributions(df: pd.DataFrame) -> str:
    import numpy as np

    ok = df[df["status"] == "ok"]
    out = []
    for col, name in (("ttft_ms", "TTFT"), ("tpot_ms", "TPOT"), ("e2e_ms", "E2E")):
        values = ok[col].dropna().to_numpy(dtype="float64")
        title = f"{name} distribution (ms, {values.size} requests)"
        if not values.size:
            out.append(_empty(title, "no successful request"))
            continue
        hi = float(np.percentile(values, 99.5)) if values.size > 20 else float(values.max())
        lo = float(values.min())
        counts, edges = np.histogram(np.clip(values, lo, hi), bins=40, range=(lo, hi if hi > lo else lo + 1))
        marks = [("p50", float(np.percentile(values, 50))), ("p99", float(np.percentile(values, 99)))]
        out.append(bar_chart(title, "ms", "requests", edges.tolist(), [(name, counts.tolist())], marks))
    return "\n".join(out)


def _time_series(df: pd.DataFrame, history: list[dict[str, Any]], started: float | None) -> str:
    import numpy as np
    import pandas as pd

    if not len(df) or "timestamp" not in df:
        return _empty("Latency over time", "no requests")
    stamps = pd.to_datetime(df["timestamp"], utc=True, format="ISO8601")
    start = (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    t0 = min(float(start.min()), started or float("inf"))
    rel = (start - t0).to_numpy()
    end = float(rel.max()) if rel.size else 1.0
    width = max(1.0, end / 60)  # about 60 bins
    bins = np.floor(rel / width).astype(int)
    n = int(bins.max()) + 1 if bins.size else 1
    xs = [(i + 0.5) * width for i in range(n)]
    ok = (df["status"] == "ok").to_numpy()
    ttft = df["ttft_ms"].to_numpy(dtype="float64", na_value=np.nan)
    tokens = df["output_tokens"].to_numpy(dtype="float64", na_value=np.nan)
    p50, p95, tps, rps = [], [], [], []
    for i in range(n):
        sel = (bins == i) & ok
        vals = ttft[sel]
        vals = vals[~np.isnan(vals)]
        p50.append(float(np.percentile(vals, 50)) if vals.size else None)
        p95.append(float(np.percentile(vals, 95)) if vals.size else None)
        tps.append(float(np.nansum(tokens[sel])) / width)
        rps.append(float(sel.sum()) / width)
    users = None
    if history and started is not None:
        offset = started - t0
        users = ("users", [p["time"] + offset for p in history], [float(p["users"]) for p in history])
    out = [
        line_chart("TTFT over time (by request start)", "seconds", "ms", [("TTFT p50", xs, p50), ("TTFT p95", xs, p95)],
                   users),
        line_chart("Throughput over time", "seconds", "per second", [("output tokens/s", xs, tps)], users),
        line_chart("Requests over time", "seconds", "requests/s", [("successful requests/s", xs, rps)], users),
    ]
    failed = df["status"] == "failed"
    if failed.any():
        classes = sorted(df.loc[failed, "error_class"].astype(object).fillna("unknown").unique().tolist())
        cls = df["error_class"].astype(object).fillna("unknown").to_numpy()
        fail = failed.to_numpy()
        stacks = [(c, [float(((bins == i) & fail & (cls == c)).sum()) for i in range(n)]) for c in classes]
        edges = [i * width for i in range(n + 1)]
        out.append(bar_chart("Failed requests by error class over time", "seconds", "failed requests", edges, stacks,
                             legend_always=True))
    else:
        out.append(_empty("Failed requests by error class over time", "no request failed"))
    return "\n".join(out)


def server_charts(sources: list[dict[str, Any]]) -> str:
    """The server's own metrics over the run (:func:`llm_locust.servermetrics.series`), as the web UI's charts page
    draws them (:data:`llm_locust.servermetrics.CHARTS`): per source, the charts it has data for."""
    from .servermetrics import CHARTS

    out = []
    for src in sources:
        points = src.get("points") or []
        xs = [float(p["time"]) for p in points]
        where = f" · {src.get('server', 'unknown')}" + (f" ({', '.join(src['targets'])})" if len(sources) > 1 else "")
        for chart in CHARTS:
            lines = [(s["label"], xs, [p.get(s["key"]) for p in points]) for s in chart["series"]]
            lines = [line for line in lines if any(v is not None for v in line[2])]
            if lines:
                out.append(line_chart(chart["title"] + where, "seconds", "", lines))
    return "\n".join(out)


def capacity_chart(cap: dict[str, Any]) -> str:
    """Latency (TTFT p99) against throughput (output tokens/s) per level; the knee (largest level that held)."""
    levels = sorted(cap["levels"], key=lambda r: r["users"])
    points = [(r["output_tokens_per_s"], r["ttft_p99_ms"], str(r["users"]), r["holds"]) for r in levels]
    knee = next((i for i, r in enumerate(levels) if r["users"] == cap.get("max_users") and r["holds"]), None)
    limit = None
    for r in levels[:1]:
        limit = next((o["limit"] for o in r["objectives"] if o["metric"] == "ttft" and o["stat"] == "p99"), None)
    return scatter_chart("Capacity search: TTFT p99 against output throughput, per level (labels: users)",
                         "output tokens/s",
                         "TTFT p99 (ms)", points, knee, limit)


STYLE = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#111827;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #e5e7eb}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #e5e7eb;padding:3px 8px;text-align:right}
th{background:#f9fafb}td:first-child,th:first-child{text-align:left}table.meta td{text-align:left}
tr.fail td{background:#fee2e2}tr.pass td{background:#dcfce7}
.badge{display:inline-block;padding:4px 10px;border-radius:4px;font-weight:bold;margin:4px 0;color:#fff}
.good{background:#16a34a}.bad{background:#dc2626}.note{color:#6b7280}.answer{font-size:16px;font-weight:600}
.charts{display:flex;flex-wrap:wrap;gap:16px}figure.chart{margin:0;border:1px solid #e5e7eb;padding:8px}
figcaption{font-weight:600;margin-bottom:4px}svg text{font-size:11px;fill:#374151}
.legend{font-size:12px}.key{margin-right:12px}.key i{display:inline-block;width:10px;height:10px;margin-right:4px}
figure.empty{width:560px}figure.empty p{color:#6b7280}
"""


def render(
    summary: dict[str, Any], df: pd.DataFrame, history: list[dict[str, Any]], started: float | None,
    server: list[dict[str, Any]] = (),
) -> str:
    """The report's HTML text (see the module docstring); ``server``: the server's metrics series, if scraped."""
    run = summary["run"]
    title = f"llm-locust run {run.get('run_id', '')}: {run.get('model', '')} @ {run.get('host', '')}"
    parts = [
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'">',
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="note">{_fmt(run.get("requests"))} requests · {_fmt(run.get("duration_s"), 1)} s · '
        f'{_fmt(run.get("users"))} users · {_e(run.get("api", ""))}</p>',
        "<h2>Verdict</h2>", _verdicts(summary) or '<p class="note">no objectives given (--slo)</p>',
    ]
    if summary.get("capacity"):
        from .capacity import render as render_capacity

        parts += ["<h2>Capacity search</h2>", f'<div class="charts">{capacity_chart(summary["capacity"])}</div>',
                  f"<pre>{_e(render_capacity(summary['capacity']))}</pre>"]
    parts += [
        "<h2>Per prompt</h2>", _prompts(summary),
        "<h2>Distributions</h2>", f'<div class="charts">{_distributions(df)}</div>',
        "<h2>Over time</h2>", f'<div class="charts">{_time_series(df, history, started)}</div>',
    ]
    if charts := server_charts(list(server)):
        parts += ["<h2>The server's metrics</h2>", f'<div class="charts">{charts}</div>']
    parts += [
        "<h2>Run</h2>", _meta(summary),
        '<p class="note">Written by llm-locust; self-contained (no network). Definitions: docs/metrics.md, '
        "docs/slo.md.</p></body></html>",
    ]
    return "\n".join(parts)


def write(
    path: Path, summary: dict[str, Any], df: pd.DataFrame, history: list[dict[str, Any]], started: float | None,
    secrets: tuple[str, ...] = (), server: list[dict[str, Any]] = (),
) -> None:
    """Write ``report.html``; any of ``secrets`` that would appear is replaced by ``***``."""
    text = render(summary, df, history, started, server)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***").replace(_e(secret), "***")
    path.write_text(text, encoding="utf-8")
