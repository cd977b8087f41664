"""The server's own view of a run: its Prometheus metrics, scraped every second and summarised beside ours.

Inference servers expose Prometheus text at ``/metrics``; the server's figures say *why* the client's latency moved
(queueing, KV-cache pressure, preemption). A :class:`ServerMetrics` holds one :class:`Scraper` per metrics URL:

* **Which URL.** ``--server-metrics URL`` (one scraper, for every target), else each target's own ``/metrics`` at
  the root of its host (one scraper per distinct URL), used only when it answers in Prometheus text;
  ``--no-server-metrics`` turns scraping off. On a distributed run the master scrapes (once); workers never do.
* **When.** A baseline scrape at test start (before any user is spawned), one every :data:`SCRAPE_S` seconds from a
  greenlet, and a last one at test stop (after the last request), so that counter and histogram deltas between the
  first and the last scrape cover exactly the run. The GET has a :data:`TIMEOUT_S` timeout and a size cap; the
  page is parsed by ``prometheus_client``'s text parser in gevent's thread pool, so the event loop never parses
  while streams are timed (a known server's page is first cut to the lines of its metric prefix).
* **What.** A known server (detected by its metric prefix: vLLM ``vllm:``, SGLang ``sglang:``, TGI ``tgi_``,
  llama.cpp's server ``llamacpp:``) gets the curated set of :data:`SERVERS` under our names (``requests_running``,
  ``requests_waiting``, ``kv_cache_usage``, ``ttft_seconds``, ``tpot_seconds``, ``queue_time_seconds``, ...; the
  first of several metric names found wins: newer names first); any other server gets its counters and gauges
  as they are (at most :data:`MAX_SERIES`). Label sets are summed (ratios: their maximum).
* **Memory.** Per scraper: the first and the latest parsed page, running mean/max accumulators, and a time series
  of at most :data:`MAX_POINTS` points (a point per scrape: gauges, counters and their rate, each histogram's mean
  over the window since the previous scrape).
* **Bad input.** A first scrape that fails (unreachable, HTTP error, not Prometheus text) turns that scraper off:
  one warning line for an explicit ``--server-metrics``, one info line for the default URL; the run goes on.
  Later failures are counted (``failed_scrapes``) and warned about once.

Reports: :meth:`ServerMetrics.section` is summary.json's ``server`` section (see ``docs/reports.md``); per source:
per metric ``mean``/``max``/``last`` (counters also ``delta`` and ``rate_per_s``), per histogram the run's
``count``, ``mean`` and percentiles interpolated from the bucket deltas between the first and the last scrape
(times in ms), and ``vs_client``: server-side against client-side TTFT/TPOT means and their difference.
:meth:`ServerMetrics.write_csv` writes ``server_metrics.csv``; :func:`series` is the time series for charts (the
web UI's charts page and the HTML report). URLs are shown without userinfo, query or fragment.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

logger = logging.getLogger("llm_locust")

SCRAPE_S = 1.0
TIMEOUT_S = 2.0
MAX_BYTES = 8_000_000
#: points kept per scraper (2 h at one a second); the summary's means and maxima cover every scrape regardless
MAX_POINTS = 7200
#: an unknown server's counters and gauges kept, at most
MAX_SERIES = 100
PERCENTILES = (50, 90, 95, 99)
CSV_NAME = "server_metrics.csv"


@dataclass(frozen=True)
class Curated:
    """One metric of a known server: our ``key``, its metric names (first found wins), type, unit, aggregation."""

    key: str
    names: tuple[str, ...]
    type: str  # "gauge", "counter" or "histogram"
    unit: str = ""  # "s": a histogram of seconds, reported in ms
    agg: str = "sum"  # over label sets: "sum", or "max" (ratios)


def _g(key: str, *names: str, agg: str = "sum") -> Curated:
    return Curated(key, names, "gauge", agg=agg)


def _c(key: str, *names: str) -> Curated:
    return Curated(key, names, "counter")


def _h(key: str, *names: str, unit: str = "s") -> Curated:
    return Curated(key, names, "histogram", unit)


#: server kind -> (metric prefix, curated metrics)
SERVERS: dict[str, tuple[str, tuple[Curated, ...]]] = {
    "vllm": ("vllm:", (
        _g("requests_running", "vllm:num_requests_running"),
        _g("requests_waiting", "vllm:num_requests_waiting"),
        _g("kv_cache_usage", "vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", agg="max"),
        _c("preemptions", "vllm:num_preemptions_total", "vllm:num_preemptions"),
        _c("prompt_tokens", "vllm:prompt_tokens_total"),
        _c("generation_tokens", "vllm:generation_tokens_total"),
        _c("requests_finished", "vllm:request_success_total"),
        _h("ttft_seconds", "vllm:time_to_first_token_seconds"),
        _h("tpot_seconds", "vllm:request_time_per_output_token_seconds", "vllm:time_per_output_token_seconds"),
        _h("itl_seconds", "vllm:inter_token_latency_seconds"),
        _h("queue_time_seconds", "vllm:request_queue_time_seconds"),
        _h("e2e_seconds", "vllm:e2e_request_latency_seconds"),
        _h("prefill_time_seconds", "vllm:request_prefill_time_seconds"),
    )),
    "sglang": ("sglang:", (
        _g("requests_running", "sglang:num_running_reqs"),
        _g("requests_waiting", "sglang:num_queue_reqs"),
        _g("kv_cache_usage", "sglang:token_usage", agg="max"),
        _c("preemptions", "sglang:num_retracted_reqs_total", "sglang:num_retracted_reqs"),
        _c("prompt_tokens", "sglang:prompt_tokens_total"),
        _c("generation_tokens", "sglang:generation_tokens_total"),
        _h("ttft_seconds", "sglang:time_to_first_token_seconds"),
        _h("tpot_seconds", "sglang:time_per_output_token_seconds"),
        _h("itl_seconds", "sglang:inter_token_latency_seconds"),
        _h("queue_time_seconds", "sglang:queue_time_seconds"),
        _h("e2e_seconds", "sglang:e2e_request_latency_seconds"),
    )),
    "tgi": ("tgi_", (
        _g("requests_running", "tgi_batch_current_size"),
        _g("requests_waiting", "tgi_queue_size"),
        _c("requests_finished", "tgi_request_success_total", "tgi_request_success"),
        _h("tpot_seconds", "tgi_request_mean_time_per_token_duration"),
        _h("queue_time_seconds", "tgi_request_queue_duration"),
        _h("e2e_seconds", "tgi_request_duration"),
        _h("generated_tokens", "tgi_request_generated_tokens", unit=""),
        _h("input_tokens", "tgi_request_input_length", unit=""),
    )),
    "llamacpp": ("llamacpp:", (
        _g("requests_running", "llamacpp:requests_processing"),
        _g("requests_waiting", "llamacpp:requests_deferred"),
        _g("kv_cache_usage", "llamacpp:kv_cache_usage_ratio", agg="max"),
        _c("prompt_tokens", "llamacpp:prompt_tokens_total"),
        _c("generation_tokens", "llamacpp:tokens_predicted_total"),
        _g("prompt_tokens_per_s", "llamacpp:prompt_tokens_seconds"),
        _g("generation_tokens_per_s", "llamacpp:predicted_tokens_seconds"),
    )),
}  # fmt: skip


class NotPrometheus(ValueError):
    """The page is no Prometheus text."""


# ---------------------------------------------------------------- one page


@dataclass
class Hist:
    """A histogram summed over its label sets: cumulative bucket counts by upper bound (+Inf last)."""

    buckets: list[tuple[float, float]]
    sum: float
    count: float


@dataclass
class Page:
    """One parsed scrape: what each metric read (by our key), with the metric name each key came from."""

    kind: str  # a key of SERVERS, or "unknown"
    scalars: dict[str, float] = field(default_factory=dict)
    hists: dict[str, Hist] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)  # key -> "gauge" / "counter" / "histogram"
    names: dict[str, str] = field(default_factory=dict)  # key -> the server's metric name
    units: dict[str, str] = field(default_factory=dict)  # histogram key -> "s" or ""


def detect(text: str) -> str:
    """The kind of server whose page this is (a key of :data:`SERVERS`, or "unknown")."""
    for kind, (prefix, _) in SERVERS.items():
        if f"\n{prefix}" in text or text.startswith(prefix) or f" {prefix}" in text:
            return kind
    return "unknown"


def parse_page(text: str, kind: str | None = None) -> Page:
    """Parse Prometheus text into a :class:`Page`; :class:`NotPrometheus` if it is not Prometheus text.

    CPU work (milliseconds for a big page): the scraper runs it in gevent's thread pool."""
    from prometheus_client.parser import text_string_to_metric_families

    kind = kind or detect(text)
    if kind in SERVERS:
        prefix = SERVERS[kind][0]
        text = "\n".join(line for line in text.splitlines() if prefix in line) + "\n"
    try:
        families = {f.name: f for f in text_string_to_metric_families(text) if f.samples}
    except (ValueError, IndexError, KeyError, TypeError) as e:
        raise NotPrometheus(f"not Prometheus text ({' '.join(str(e).split())[:80]})") from None
    if not families:
        raise NotPrometheus("no metrics on the page")
    page = Page(kind)
    if kind in SERVERS:
        for c in SERVERS[kind][1]:
            _read_curated(page, c, families)
    else:
        for fam in families.values():
            if len(page.scalars) >= MAX_SERIES:
                break
            if fam.type in ("counter", "gauge", "unknown") and not fam.name.endswith("_created"):
                key = fam.name + "_total" if fam.type == "counter" else fam.name
                page.scalars[key] = _scalar(fam, "sum")
                page.types[key] = "counter" if fam.type == "counter" else "gauge"
                page.names[key] = key
    return page


def _family(names: Iterable[str], families: dict[str, Any]) -> tuple[str, Any] | None:
    for name in names:
        for candidate in (name, name.removesuffix("_total")):
            fam = families.get(candidate)
            if fam is not None:
                return name, fam
    return None


def _read_curated(page: Page, c: Curated, families: dict[str, Any]) -> None:
    hit = _family(c.names, families)
    if hit is None:
        return
    name, fam = hit
    if c.type == "histogram":
        if fam.type != "histogram":
            return
        page.hists[c.key] = _hist(fam)
        page.units[c.key] = c.unit
    else:
        page.scalars[c.key] = _scalar(fam, c.agg)
    page.types[c.key] = c.type
    page.names[c.key] = name


def _scalar(fam: Any, agg: str) -> float:
    values = [s.value for s in fam.samples if not s.name.endswith("_created")]
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return math.nan
    return max(values) if agg == "max" else float(sum(values))


def _hist(fam: Any) -> Hist:
    buckets: dict[float, float] = {}
    total = count = 0.0
    for s in fam.samples:
        if s.name.endswith("_bucket"):
            le = float(s.labels.get("le", "+Inf"))
            buckets[le] = buckets.get(le, 0.0) + s.value
        elif s.name.endswith("_sum"):
            total += s.value
        elif s.name.endswith("_count"):
            count += s.value
    return Hist(sorted(buckets.items()), total, count)


# ---------------------------------------------------------------- figures from pages


def hist_delta(first: Hist | None, last: Hist) -> Hist:
    """What was observed between two readings of a histogram (a reset counts from zero)."""
    if first is None or last.count < first.count:
        return last
    before = dict(first.buckets)
    return Hist([(le, c - before.get(le, 0.0)) for le, c in last.buckets], last.sum - first.sum,
                last.count - first.count)  # fmt: skip


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


def redact_url(url: str) -> str:
    """``url`` without userinfo, query or fragment: safe to show."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def default_url(host: str) -> str:
    """The ``/metrics`` at the root of a target's host (userinfo kept for the GET, never shown)."""
    parts = urlsplit(host)
    return urlunsplit((parts.scheme or "http", parts.netloc, "/metrics", "", ""))


def check_url(url: str) -> str | None:
    """Why ``--server-metrics`` cannot be a metrics URL, or None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        shown = redact_url(url)
        return f"--server-metrics must be an http(s) URL such as http://127.0.0.1:8000/metrics (got {shown!r})"
    return None


# ---------------------------------------------------------------- one source


class Scraper:
    """One metrics URL, scraped through the run (see the module docstring)."""

    def __init__(self, url: str, targets: list[str], explicit: bool) -> None:
        self.url = url
        self.shown_url = redact_url(url)
        self.targets = targets
        self.explicit = explicit
        self.kind: str | None = None
        self.on = True
        self.first: Page | None = None
        self.last: Page | None = None
        self.first_t = self.last_t = 0.0
        self.scrapes = 0
        self.failed = 0
        self.points: deque[dict[str, Any]] = deque(maxlen=MAX_POINTS)
        self._acc: dict[str, list[float]] = {}  # key -> [n, sum, max]
        self._warned = False

    def fetch(self) -> str:
        import requests

        headers = {"Accept": "text/plain;version=0.0.4, */*;q=0.1", "Accept-Encoding": "identity"}
        with requests.get(self.url, timeout=TIMEOUT_S, stream=True, headers=headers) as r:
            if r.status_code != 200:
                raise NotPrometheus(f"HTTP {r.status_code}")
            ctype = r.headers.get("Content-Type", "")
            if "html" in ctype or "json" in ctype:
                raise NotPrometheus(f"not Prometheus text (Content-Type {ctype.split(';')[0]})")
            data = r.raw.read(MAX_BYTES + 1, decode_content=True)
        if len(data) > MAX_BYTES:
            raise NotPrometheus(f"the page is over {MAX_BYTES // 1_000_000} MB")
        return data.decode("utf-8", errors="replace")

    def scrape(self, parse: Any = None) -> bool:
        """One scrape; ``parse``: how to run :func:`parse_page` (gevent's thread pool in a run). False on failure;
        a failed first scrape turns the scraper off."""
        if not self.on:
            return False
        import requests

        try:
            text = self.fetch()
            page: Page = (parse or _direct)(parse_page, text, self.kind)
        except (requests.RequestException, NotPrometheus, OSError, UnicodeError) as e:
            self._failed(e)
            return False
        self._book(page, time.time())
        return True

    def _failed(self, e: Exception) -> None:
        reason = _reason(e)
        if self.scrapes == 0:
            self.on = False
            if self.explicit:
                logger.warning("server metrics off: %s %s; the run goes on without them (check --server-metrics)",
                               self.shown_url, reason)  # fmt: skip
            else:
                logger.info("server metrics: none at %s (%s); --server-metrics URL names another", self.shown_url,
                            reason)  # fmt: skip
            return
        self.failed += 1
        if not self._warned:
            self._warned = True
            logger.warning("server metrics: a scrape of %s failed (%s); counted in failed_scrapes", self.shown_url,
                           reason)  # fmt: skip

    def _book(self, page: Page, now: float) -> None:
        prev, prev_t = self.last, self.last_t
        self.kind = page.kind
        if self.first is None:
            self.first, self.first_t = page, now
        self.last, self.last_t = page, now
        self.scrapes += 1
        point: dict[str, Any] = {"t": round(now, 3)}
        for key, v in page.scalars.items():
            if math.isnan(v):
                continue
            point[key] = v
            acc = self._acc.setdefault(key, [0, 0.0, -math.inf])
            acc[0] += 1
            acc[1] += v
            acc[2] = max(acc[2], v)
            if page.types.get(key) == "counter":
                before = prev.scalars.get(key) if prev is not None else None
                dt = now - prev_t
                rate = None
                if before is not None and dt > 0 and v >= before:
                    rate = (v - before) / dt
                point[key + "_per_s"] = rate
        for key, h in page.hists.items():
            scale = 1000.0 if page.units.get(key) == "s" else 1.0
            d = hist_delta(prev.hists.get(key) if prev is not None else None, h) if prev is not None else None
            suffix = "_ms" if page.units.get(key) == "s" else "_mean"
            point[key.removesuffix("_seconds") + suffix] = d.sum / d.count * scale if d and d.count > 0 else None
        self.points.append(point)

    def section(self) -> dict[str, Any]:
        """This source's entry in summary.json's ``server.sources``."""
        out: dict[str, Any] = {
            "targets": self.targets, "url": self.shown_url, "server": self.kind or "unknown",
            "scrapes": self.scrapes, "failed_scrapes": self.failed,
            "duration_s": round(self.last_t - self.first_t, 3) if self.scrapes else None, "metrics": {},
        }  # fmt: skip
        first, last = self.first, self.last
        if first is None or last is None:
            return out
        metrics = out["metrics"]
        span = self.last_t - self.first_t
        for key, v in last.scalars.items():
            kind = last.types.get(key, "gauge")
            acc = self._acc.get(key)
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
                            **hist_figures(d, last.units.get(key, ""))}  # fmt: skip
        return out


def _direct(fn: Any, *args: Any) -> Any:
    return fn(*args)


def _in_thread(fn: Any, *args: Any) -> Any:
    import gevent

    return gevent.get_hub().threadpool.apply(fn, args)


def _holding_the_loop(fn: Any) -> None:
    """Run ``fn`` in a native thread (its own gevent hub there) and wait for it without yielding to any greenlet."""
    from gevent import monkey

    start_new_thread = monkey.get_original("_thread", "start_new_thread")
    done = monkey.get_original("_thread", "allocate_lock")()
    done.acquire()

    def run() -> None:
        try:
            fn()
        except Exception:  # a scrape books its own failures; anything else must not leave the caller waiting
            logger.exception("server metrics: the last scrape failed")
        finally:
            done.release()

    start_new_thread(run, ())
    done.acquire()


def _reason(e: Exception) -> str:
    if isinstance(e, NotPrometheus):
        return str(e)
    name = type(e).__name__
    if "Timeout" in name:
        return f"no answer within {TIMEOUT_S:g} s"
    if "Connection" in name:
        return "cannot connect"
    return name


# ---------------------------------------------------------------- the run's sources


class ServerMetrics:
    """The run's scrapers, the greenlet that drives them, and the reports made of them."""

    def __init__(self, scrapers: list[Scraper]) -> None:
        self.scrapers = scrapers
        self._greenlet: Any = None

    @classmethod
    def for_run(cls, opts: Any, targets: list[Any]) -> ServerMetrics | None:
        """The run's scrapers per the options (``targets``: the run's, with ``name`` and ``host``), or None."""
        if getattr(opts, "no_server_metrics", False):
            return None
        url = getattr(opts, "server_metrics", None)
        try:
            import prometheus_client.parser  # noqa: F401
        except ImportError:
            log = logger.warning if url else logger.info
            log("server metrics off: prometheus_client is not installed (pip install prometheus-client)")
            return None
        if url:
            return cls([Scraper(url, [t.name for t in targets], explicit=True)])
        by_url: dict[str, list[str]] = {}
        for t in targets:
            if urlsplit(t.host).scheme in ("http", "https"):
                by_url.setdefault(default_url(t.host), []).append(t.name)
        return cls([Scraper(u, names, explicit=False) for u, names in by_url.items()]) if by_url else None

    def start(self) -> None:
        """The baseline scrape (call before users spawn), then a scrape every :data:`SCRAPE_S` s from a greenlet."""
        import gevent

        for s in self.scrapers:
            s.scrape(_in_thread)
        if any(s.on for s in self.scrapers):
            self._greenlet = gevent.spawn(self._loop)

    def _loop(self) -> None:
        import gevent

        while True:
            gevent.sleep(SCRAPE_S)
            for s in self.scrapers:
                s.scrape(_in_thread)

    def stop(self) -> None:
        """Stop the greenlet and take the last scrape (call after the last request ended).

        The last scrape holds the event loop (at most :data:`TIMEOUT_S` per source, with no stream open): the
        test-stop listener that calls it must not yield, or a second stop and the process's shutdown could run in
        between."""
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None
            scrapers = [s for s in self.scrapers if s.on]
            if scrapers:
                _holding_the_loop(lambda: [s.scrape() for s in scrapers])

    @property
    def active(self) -> list[Scraper]:
        return [s for s in self.scrapers if s.scrapes]

    def section(self, summary: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """summary.json's ``server`` section (None when no source answered); ``summary``: the client-side summary,
        for ``vs_client``."""
        sources = [s.section() for s in self.active]
        if not sources:
            return None
        if summary is not None:
            for src in sources:
                src["vs_client"] = vs_client(src, summary)
        return {"interval_s": SCRAPE_S, "sources": sources}

    def write_csv(self, folder: Path) -> Path | None:
        """``server_metrics.csv``: a row per scrape and source (``time``: unix seconds, ``targets``, ``server``, then
        every series of :func:`series`' points)."""
        active = self.active
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
                                *("" if (v := p.get(k)) is None else round(v, 6) for k in keys)])  # fmt: skip
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
        }  # fmt: skip
    return out


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
                    "points": [{**p, "time": round(p["t"] - t0, 1)} for p in points]})  # fmt: skip
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
                           ("kv_cache_usage", "KV cache")):  # fmt: skip
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
                         f"client - server {cmp['difference_mean']:+.2f} ms")  # fmt: skip
    return "\n".join(lines) + "\n"
