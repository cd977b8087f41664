"""The server's own view of a run: its Prometheus metrics, scraped every second and summarised beside ours.

Inference servers expose Prometheus text at ``/metrics``; the server's figures say *why* the client's latency moved
(queueing, KV-cache pressure, preemption). A :class:`ServerMetrics` holds one :class:`Scraper` per metrics URL:

* **Which URL.** ``--server-metrics URL`` (one scraper, for every target), else each target's own ``/metrics`` at
  the root of its host (one scraper per distinct URL), used only when it answers in Prometheus text;
  ``--no-server-metrics`` turns scraping off. On a distributed run the master scrapes (once); workers never do.
* **When.** A baseline scrape at test start (before any user is spawned), one every :data:`SCRAPE_S` seconds, and a
  last one at test stop (after the last request), so that counter and histogram deltas between the first and the
  last scrape cover exactly the run. The scrapes in between run in a child process (:mod:`.child`): the load
  generator never fetches or parses a page while streams are timed. The GET has a :data:`TIMEOUT_S` timeout and a
  size cap; the page is parsed by ``prometheus_client``'s text parser (a known server's page is first cut to the
  lines of its metric prefix).
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

Modules: :mod:`.curated` (the known servers' metric tables), :mod:`.parse` (a page into our keys), :mod:`.scrape`
(the scrapers, their HTTP GET and greenlet), :mod:`.summary` (the summary section, histogram percentiles, CSV,
chart series, text). Every public name is importable from here.
"""

from __future__ import annotations

from .curated import SERVERS, Curated, detect
from .parse import MAX_SERIES, Hist, NotPrometheus, Page, parse_page
from .scrape import (
                     MAX_BYTES,
                     MAX_POINTS,
                     SCRAPE_S,
                     TIMEOUT_S,
                     Scraper,
                     ServerMetrics,
                     check_url,
                     default_url,
                     redact_url,
)
from .summary import (
                     CHARTS,
                     COMPARED,
                     CSV_NAME,
                     PERCENTILES,
                     hist_delta,
                     hist_figures,
                     hist_quantile,
                     render_text,
                     series,
                     source_section,
                     vs_client,
                     write_csv,
)

__all__ = [
    "CHARTS", "COMPARED", "CSV_NAME", "MAX_BYTES", "MAX_POINTS", "MAX_SERIES", "PERCENTILES", "SCRAPE_S", "SERVERS",
    "TIMEOUT_S",
    "Curated", "Hist", "NotPrometheus", "Page", "Scraper", "ServerMetrics", "check_url", "default_url", "detect",
    "hist_delta", "hist_figures", "hist_quantile", "parse_page", "redact_url", "render_text", "series",
    "source_section", "vs_client", "write_csv",
]
