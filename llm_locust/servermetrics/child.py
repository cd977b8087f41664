"""The periodic scrapes, in a child process: fetching and parsing a metrics page never runs in the load generator.

A page of a real server (vLLM's is 30-100 KB) takes milliseconds to fetch with ``requests`` and to parse, and
parsing it in a thread of the Locust process is no better: a thread running Python holds the interpreter lock, and
the event loop waits up to ``sys.getswitchinterval()`` (5 ms) for it whenever a stream's line arrives. So the
scrapes between the first and the last one (both taken in the Locust process, with no stream open) run here::

    child = ScrapeChild.start(scrapers)   # after the baseline scrape
    ...                                   # each page, parsed, is booked by its Scraper as it arrives
    child.stop()                          # before the last scrape

Protocol: the parent writes one JSON line to the child's stdin, ``{"urls": [...], "kinds": [...], "every": s}`` (on
stdin, not in argv, where a URL's credentials would show in ``ps``); the child answers one JSON line per scrape on
stdout, ``{"i": k, "t": unix_time, "page": {...}}`` or ``{"i": k, "t": ..., "error": "reason"}``, and ends when its
stdin closes (the parent died) or when the parent kills it (the run stopped). It runs at a lower priority (``nice``
10), and writes nothing else anywhere: its stderr is discarded, and a failure is reported as a reason, never a
traceback (which could hold a URL's credentials). Reading a line in the parent is a cooperative pipe read and a
``json.loads`` of a few kilobytes.
"""

from __future__ import annotations

import json
import logging
import os
import select
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .parse import Hist, Page

logger = logging.getLogger("llm_locust")

#: the package's parent folder: the child imports llm_locust from it, installed or not
_ROOT = str(Path(__file__).resolve().parents[2])


def page_from_json(d: dict[str, Any]) -> Page:
    """A :class:`Page` from its JSON form (``dataclasses.asdict``)."""
    hists = {k: Hist([tuple(b) for b in h["buckets"]], h["sum"], h["count"]) for k, h in d["hists"].items()}
    return Page(d["kind"], d["scalars"], hists, d["types"], d["names"], d["units"])


class ScrapeChild:
    """The child process of a run's periodic scrapes and the greenlet that books what it sends."""

    def __init__(self, proc: Any, reader: Any) -> None:
        self.proc = proc
        self.reader = reader

    @classmethod
    def start(cls, scrapers: list[Any], every: float) -> ScrapeChild:
        import gevent
        from gevent import subprocess

        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (_ROOT, os.environ.get("PYTHONPATH")) if p)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "llm_locust.servermetrics.child"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
        )
        job = {"urls": [s.url for s in scrapers], "kinds": [s.kind for s in scrapers], "every": every}
        proc.stdin.write(json.dumps(job).encode() + b"\n")
        proc.stdin.flush()
        return cls(proc, gevent.spawn(_book_replies, proc, scrapers))

    def stop(self) -> None:
        """End the child now, without yielding to another greenlet (the test-stop listener that calls this must
        not yield: Locust's shutdown could run in between); gevent reaps it."""
        self.reader.kill(block=False)
        try:
            self.proc.kill()
        except OSError:  # it has ended already
            pass


def _book_replies(proc: Any, scrapers: list[Any]) -> None:
    for line in proc.stdout:
        try:
            reply = json.loads(line)
            scraper = scrapers[reply["i"]]
            if "error" in reply:
                scraper.failed_because(reply["error"])
            else:
                scraper.book(page_from_json(reply["page"]), reply["t"])
        except (ValueError, KeyError, IndexError, TypeError):
            logger.warning("server metrics: the scraping process sent something unreadable; scraping stops")
            return


def main() -> None:
    """The child: scrape every ``every`` seconds until stdin closes (see the module docs)."""
    from . import scrape

    try:
        os.nice(10)
    except OSError:
        pass
    job = json.loads(sys.stdin.readline())
    scrapers = [scrape.Scraper(url, [], explicit=False) for url in job["urls"]]
    for s, kind in zip(scrapers, job["kinds"], strict=True):
        s.kind = kind
    every = float(job["every"])
    out = sys.stdout
    due = time.monotonic() + every
    while True:
        ready, _, _ = select.select([sys.stdin], [], [], max(0.0, due - time.monotonic()))
        if ready and not sys.stdin.readline():
            return  # the parent closed our stdin: the run stopped
        if time.monotonic() < due:
            continue
        due += every
        for i, s in enumerate(scrapers):
            t = time.time()
            try:
                page = scrape.parse_page(s.fetch(), s.kind)
                reply: dict[str, Any] = {"i": i, "t": t, "page": asdict(page)}
            except Exception as e:  # noqa: BLE001 - every failure is a reason for the parent, never a traceback
                reply = {"i": i, "t": t, "error": scrape.reason(e)}
            out.write(json.dumps(reply) + "\n")
            out.flush()


if __name__ == "__main__":
    try:
        main()
    except (KeyboardInterrupt, BrokenPipeError):
        pass
