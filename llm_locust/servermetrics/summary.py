"""What the scrapes add up to: summary.json's ``server`` section, ``server_metrics.csv``, chart series and text.

Per source (:func:`source_section`): per metric ``mean``/``max``/``last`` (counters also ``delta`` and
``rate_per_s``), per histogram the run's ``count``, ``mean`` and :data:`PERCENTILES` interpolated from the bucket
deltas between the first and the last scrape (:func:`hist_delta`, :func:`hist_quantile`, :func:`hist_figures`; times
in ms), and ``vs_client`` (:func:`vs_client`): server-side against client-side TTFT/TPOT/E2E means and their
difference. :func:`write_csv` writes :data:`CSV_NAME`; :func:`series` is the time series for charts (the web UI's
charts page and the HTML report); :func:`render_text` is the few lines for summary.txt and the console.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .parse import Hist

if TYPE_CHECKING:
    from .scrape import Scraper, ServerMetrics

PERCENTILES = (50, 90, 95, 99)
CSV_NAME = "server_metrics.csv"


def hist_delta(first: Hist | None, last: Hist) -> Hist:
    """What was observed between two readings of a histogram (a reset counts from zero)."""
    if first is None or last.count < first.count:
        return last
    before = dict(first.buckets)
    return Hist([(le, c - before.get(le, 0.0)) for le, c in last.buckets], last.sum - first.sum,
                last.count - first.count)


def hist_quantile(h: Hist, q: float) -> float | None:
    """Prometheus's ``histogram_quantile``: linear within the bucket; the highest finite bound for +Inf."""
    if h.count <= 0 or not h.buckets:
        return None
    rank = q * h.buckets[-1][1]
    lower, below = 0.0, 0.0
    for le, cum in h.buckets:
        if cum >= rank and cum > below:
            if math.isinf(le):
                return lower
            return lower + (le - lower) * (rank - below) / (cum - below)
        if not math.isinf(le):
            lower = le
        below = cum
    return lower


def hist_figures(h: Hist, unit: str) -> dict[str, Any]:
    """``count``, ``mean`` and percentiles of a histogram delta; ms for a histogram of seconds."""
    scale = 1000.0 if unit == "s" else 1.0
    out: dict[str, Any] = {"unit": "ms" if unit == "s" else "", "count": int(round(h.count))}
    out["mean"] = h.sum / h.count * scale if h.count > 0 else None
    for p in PERCENTILES:
        v = 0.0 if h.count > 0 and h.sum == 0 else hist_quantile(h, p / 100)  # every observation 0 (a queue time)
        out[f"p{p}"] = None if v is None else v * scale
    return out


def source_section(s: Scraper) -> dict[str, Any]:
    """A scraper's entry in summary.json's ``server.sources``."""
    out: dict[str, Any] = {
        "targets": s.targets, "url": s.shown_url, "server": s.kind or "unknown",
        "scrapes": s.scrapes, "failed_scrapes": s.failed,
        "duration_s": round(s.last_t - s.first_t, 3) if s.scrapes else None, "metrics": {},
    }
    first, last = s.first, s.last
    if first is None or last is None:
        return out
    metrics = out["metrics"]
    span = s.last_t - s.first_t
    for key, v in last.scalars.items():
        kind = last.types.get(key, "gauge")
        acc = s._acc.get(key)
        entry: dict[str, Any] = {"type": kind, "metric": last.names.get(key, key)}
        entry["mean"] = acc[1] / acc[0] if acc else None
        entry["max"] = acc[2] if acc else None
        entry["last"] = None if math.isnan(v) else v
        if kind == "counter":
            v0 = first.scalars.get(key)
            delta = v - v0 if v0 is not None and not math.isnan(v0) and v >= v0 else None
            entry["delta"] = delta
            entry["rate_per_s"] = delta / span if delta is not None and span > 0 else None
        metrics[key] = entry
    for key, h in last.hists.items():
        d = hist_delta(first.hists.get(key), h)
        metrics[key] = {"type": "histogram", "metric": last.names.get(key, key),
                        **hist_figures(d, last.units.get(key, ""))}
    return out


def write_csv(scrapers: list[Scraper], folder: Path) -> Path | None:
    """``server_metrics.csv``: a row per scrape and source (``time``: unix seconds, ``targets``, ``server``, then
    every series of :func:`series`' points)."""
    active = scrapers
    if not active:
        return None
    keys: dict[str, None] = {}
    for s in active:
        for p in s.points:
            keys.update(dict.fromkeys(k for k in p if k != "t"))
    path = folder / CSV_NAME
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["time", "targets", "server", *keys])
        for s in active:
            label = ",".join(s.targets)
            for p in s.points:
                w.writerow([p["t"], label, s.kind or "unknown",
                            *("" if (v := p.get(k)) is None else round(v, 6) for k in keys)])
    return path



#: client-side summary metric -> the server histogram it compares with
COMPARED = {"ttft_ms": "ttft_seconds", "tpot_ms": "tpot_seconds", "e2e_ms": "e2e_seconds"}


def vs_client(source: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """Server-side against client-side means (and p50s) of TTFT, TPOT and E2E, in ms; ``difference`` = client -
    server (the network, the HTTP stack and the client's own overhead, plus what the server's clock leaves out)."""
    targets = {t["name"]: t for t in summary.get("targets") or ()}
    mine = [targets[n] for n in source["targets"] if n in targets]
    client = mine[0] if len(mine) == 1 else summary.get("overall")
    out: dict[str, Any] = {}
    if not client:
        return out
    for ours, theirs in COMPARED.items():
        srv = source["metrics"].get(theirs)
        cli = client.get(ours) or {}
        if not srv or not srv.get("count") or cli.get("mean") is None:
            continue
        out[ours] = {
            "server_mean": srv["mean"], "client_mean": cli["mean"], "difference_mean": cli["mean"] - srv["mean"],
            "server_p50": srv.get("p50"), "client_p50": cli.get("p50"),
        }
    return out


#: the charts of the server's time series, drawn by the web UI's charts page (sent in stats.json) and the HTML
#: report: per chart an id, a title and its series (a :func:`series` point key, a label, a colour)
CHARTS: tuple[dict[str, Any], ...] = (
    {"id": "server-queue", "title": "Server: running and waiting requests", "series": [
        {"key": "requests_running", "label": "running", "color": "#6a1b9a"},
        {"key": "requests_waiting", "label": "waiting", "color": "#c62828"}]},
    {"id": "server-latency", "title": "Server: TTFT, TPOT and queue time, mean per scrape (ms)", "series": [
        {"key": "ttft_ms", "label": "TTFT", "color": "#1976d2"},
        {"key": "tpot_ms", "label": "TPOT", "color": "#2e7d32"},
        {"key": "queue_time_ms", "label": "queue", "color": "#c62828"}]},
    {"id": "server-kv", "title": "Server: KV-cache usage (0-1) and preemptions/s", "series": [
        {"key": "kv_cache_usage", "label": "KV cache", "color": "#00838f"},
        {"key": "preemptions_per_s", "label": "preemptions/s", "color": "#d84315"}]},
    {"id": "server-tokens", "title": "Server: tokens/s (its counters)", "series": [
        {"key": "generation_tokens_per_s", "label": "generation", "color": "#ef6c00"},
        {"key": "prompt_tokens_per_s", "label": "prompt", "color": "#5d4037"}]},
)


def series(server: ServerMetrics | None, started: float | None = None) -> list[dict[str, Any]]:
    """The time series for charts: per source, its ``targets``, ``server`` and ``points`` (each with ``time``:
    seconds since ``started``, unix seconds, default the first point's; then gauges, counters, ``<counter>_per_s``
    and ``<histogram>_ms`` window means)."""
    if server is None:
        return []
    out = []
    for s in server.active:
        points = list(s.points)
        t0 = started if started is not None else (points[0]["t"] if points else 0.0)
        out.append({"targets": s.targets, "server": s.kind or "unknown", "url": s.shown_url,
                    "points": [{**p, "time": round(p["t"] - t0, 1)} for p in points]})
    return out


def render_text(section: dict[str, Any] | None) -> str:
    """A few lines for summary.txt and the console: the server's queue and KV cache, and server vs client."""
    if not section:
        return ""
    lines = []
    for src in section["sources"]:
        m = src["metrics"]
        head = f"Server metrics ({src['server']}, {src['url']}, {src['scrapes']} scrapes)"
        parts = []
        for key, label in (("requests_running", "running"), ("requests_waiting", "waiting"),
                           ("kv_cache_usage", "KV cache")):
            e = m.get(key)
            if e and e.get("mean") is not None:
                parts.append(f"{label} mean {e['mean']:.2f} max {e['max']:.2f}")
        e = m.get("preemptions")
        if e and e.get("delta") is not None:
            parts.append(f"preemptions {e['delta']:g}")
        lines.append(head + (": " + ", ".join(parts) if parts else ""))
        for ours, cmp in (src.get("vs_client") or {}).items():
            name = ours.removesuffix("_ms").upper()
            lines.append(f"- {name} mean: server {cmp['server_mean']:.2f} ms, client {cmp['client_mean']:.2f} ms, "
                         f"client - server {cmp['difference_mean']:+.2f} ms")
    return "\n".join(lines) + "\n"
