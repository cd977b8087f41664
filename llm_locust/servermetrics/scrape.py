"""Scraping: one :class:`Scraper` per metrics URL, the run's :class:`ServerMetrics` and the greenlet driving them.

* **Which URL.** ``--server-metrics URL`` (one scraper, for every target; :func:`check_url` validates it), else each
  target's own ``/metrics`` at the root of its host (:func:`default_url`; one scraper per distinct URL), used only
  when it answers in Prometheus text, and never for a hosted API's host (a catalog provider's, Vertex AI's,
  Cloudflare's: :func:`llm_locust.targets.hosted_api`; name its metrics URL with ``--server-metrics`` if it has
  one); ``--no-server-metrics`` turns scraping off (:meth:`ServerMetrics.for_run`).
* **When.** A baseline scrape at test start (:meth:`ServerMetrics.start`, before any user is spawned), one every
  :data:`SCRAPE_S` seconds, and a last one at test stop (:meth:`ServerMetrics.stop`, after the last request,
  holding the event loop), so that counter and histogram deltas between the first and the last scrape cover exactly
  the run. On a local run the scrapes in between run in a child process (:mod:`.child`), so the load generator
  never fetches or parses a page while streams are timed (in a thread of its own it would: a thread running Python
  holds the interpreter lock); a master, which times no stream, scrapes in a greenlet. The GET has a
  :data:`TIMEOUT_S` timeout and a :data:`MAX_BYTES` cap.
* **Memory.** Per scraper: the first and the latest parsed page, running mean/max accumulators, and a time series
  of at most :data:`MAX_POINTS` points (a point per scrape: gauges, counters and their rate, each histogram's mean
  over the window since the previous scrape).
* **Bad input.** A first scrape that fails turns that scraper off (one warning line for an explicit
  ``--server-metrics``, one info line for the default URL); later failures are counted and warned about once.
URLs are shown without userinfo, query or fragment (:func:`redact_url`).
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..targets import hosted_api
from .parse import NotPrometheus, Page, parse_page
from .summary import hist_delta, source_section, vs_client, write_csv

logger = logging.getLogger("llm_locust")

SCRAPE_S = 1.0
TIMEOUT_S = 2.0
MAX_BYTES = 8_000_000
#: points kept per scraper (2 h at one a second); the summary's means and maxima cover every scrape regardless
MAX_POINTS = 7200


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

    def scrape(self) -> bool:
        """One scrape, here (the first and the last of a run; the others run in :mod:`.child`). False on failure;
        a failed first scrape turns the scraper off."""
        if not self.on:
            return False
        import requests

        try:
            text = self.fetch()
            page: Page = parse_page(text, self.kind)
        except (requests.RequestException, NotPrometheus, OSError, UnicodeError) as e:
            self.failed_because(reason(e))
            return False
        self.book(page, time.time())
        return True

    def failed_because(self, reason: str) -> None:
        """Book a failed scrape (``reason``: one line, no URL): the first turns the scraper off."""
        if self.scrapes == 0:
            self.on = False
            if self.explicit:
                logger.warning("server metrics off: %s %s; the run goes on without them (check --server-metrics)",
                               self.shown_url, reason)
            else:
                logger.info("server metrics: none at %s (%s); --server-metrics URL names another", self.shown_url,
                            reason)
            return
        self.failed += 1
        if not self._warned:
            self._warned = True
            logger.warning("server metrics: a scrape of %s failed (%s); counted in failed_scrapes", self.shown_url,
                           reason)

    def book(self, page: Page, now: float) -> None:
        """Book one scrape's page, taken at ``now`` (unix time)."""
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
        """This source's entry in summary.json's ``server.sources`` (:func:`.summary.source_section`)."""
        return source_section(self)


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


def reason(e: Exception) -> str:
    """A failed scrape's reason in a few words (never the URL)."""
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
        self._child: Any = None
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
            parts = urlsplit(t.host)
            if parts.scheme in ("http", "https") and not hosted_api(parts.hostname or ""):
                by_url.setdefault(default_url(t.host), []).append(t.name)
        return cls([Scraper(u, names, explicit=False) for u, names in by_url.items()]) if by_url else None

    def start(self, streams_here: bool = True) -> None:
        """The baseline scrape (call before users spawn), then a scrape every :data:`SCRAPE_S` s of the sources that
        answered: in a child process (:mod:`.child`) where this process times streams (``streams_here``: a local
        run), else (a master) in a greenlet here."""
        import gevent

        from .child import ScrapeChild

        for s in self.scrapers:
            s.scrape()
        answered = [s for s in self.scrapers if s.on]
        if answered and streams_here:
            self._child = ScrapeChild.start(answered, SCRAPE_S)
        elif answered:
            self._greenlet = gevent.spawn(self._loop, answered)

    @staticmethod
    def _loop(scrapers: list[Scraper]) -> None:
        import gevent

        while True:
            gevent.sleep(SCRAPE_S)
            for s in scrapers:
                s.scrape()

    def stop(self) -> None:
        """Stop the greenlet and take the last scrape (call after the last request ended).

        The last scrape holds the event loop (at most :data:`TIMEOUT_S` per source, with no stream open): the
        test-stop listener that calls it must not yield, or a second stop and the process's shutdown could run in
        between."""
        if self._child is not None or self._greenlet is not None:
            if self._child is not None:
                self._child.stop()
            if self._greenlet is not None:
                self._greenlet.kill(block=False)
            self._child = self._greenlet = None
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
        """``server_metrics.csv``: a row per scrape and source (:func:`.summary.write_csv`)."""
        return write_csv(self.active, folder)
