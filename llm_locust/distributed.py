"""Lossless master/worker aggregation: workers ship every request record to the master, which waits for all of them.

Locust's own stats travel in rounded buckets, and at quit the master gives workers only 0.5 s. llm-locust sends
its raw records instead, so the master's reports have exact percentiles over every request:

* **Worker.** At test start it says hello (``llm_hello``), so the master knows it takes part. Every report to the
  master (each ``WORKER_REPORT_INTERVAL``, 3 s) carries the records finished since the last one, as compact rows
  (``data["llm"]``). When the worker stops it sends ``llm_final`` with the last records and the total it recorded
  in this run (on the same socket, before Locust's ``client_stopped``).
* **Master.** It adds incoming records to its recorder (so its ``requests.csv`` grows during the run) and counts
  them per worker. At test stop it waits, bounded by ``FINAL_WAIT_S``, until every worker that took part has sent
  its final count and the count of records received matches it, or has gone away. Otherwise the report says which
  worker is missing how many records, and the run is marked incomplete.
* **Stop paths.** A headless ``-t`` run normally ends with ``runner.quit()``, which fires the master's test_stop
  before the workers are even told to stop. The plugin takes the run time over and calls ``runner.stop()`` first
  (workers stop, their finals arrive, the report is written), then ``runner.quit()``. Ctrl-C/SIGTERM on the master
  do the same through a ``quitting`` listener registered ahead of the master's own.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import gevent

from .measure.record import WIRE_COLUMNS, Record

logger = logging.getLogger(__name__)

#: seconds the master waits at test stop for the workers' final counts (workers that go away are not waited for)
FINAL_WAIT_S = 15.0
MSG_HELLO = "llm_hello"
MSG_FINAL = "llm_final"
REPORT_KEY = "llm"


def pack(records: list[Record]) -> list[list[Any]]:
    """Records as rows in ``WIRE_COLUMNS`` order (every record field): no key names repeated on the wire."""
    return [[r.get(c) for c in WIRE_COLUMNS] for r in records]


def unpack(rows: list[list[Any]]) -> list[Record]:
    return [dict(zip(WIRE_COLUMNS, row, strict=True)) for row in rows]


@dataclass
class WorkerBooks:
    received: int = 0
    expected: int | None = None  # the worker's final count, once it has arrived


class Collector:
    """Master side: per-worker counts of the current run, and the end-of-run barrier."""

    def __init__(self) -> None:
        self.workers: dict[str, WorkerBooks] = {}
        self.sink = None  # the current run's Recorder

    def reset(self, sink: Any) -> None:
        self.workers = {}
        self.sink = sink

    def _books(self, client_id: str) -> WorkerBooks:
        books = self.workers.get(client_id)
        if books is None:
            books = self.workers[client_id] = WorkerBooks()
        return books

    def hello(self, client_id: str) -> None:
        self._books(client_id)

    def ingest(self, client_id: str, rows: list[list[Any]]) -> None:
        if not rows:
            return
        if self.sink is None:
            logger.warning("%d records from worker %s arrived outside a run and are not counted", len(rows), client_id)
            return
        self._books(client_id).received += len(rows)
        self.sink.add_many(unpack(rows))

    def final(self, client_id: str, rows: list[list[Any]], total: int) -> None:
        self.ingest(client_id, rows)
        self._books(client_id).expected = total

    def missing(self, alive: set[str] | None = None) -> dict[str, dict[str, Any]]:
        """Workers whose books do not balance: no final count yet, or fewer records than their count."""
        out = {}
        for cid, b in self.workers.items():
            if b.expected is None or b.received < b.expected:
                out[cid] = {
                    "received": b.received,
                    "expected": b.expected,
                    "gone": alive is not None and cid not in alive,
                }
        return out

    def wait(self, alive_ids: Any, timeout: float = FINAL_WAIT_S) -> dict[str, dict[str, Any]]:
        """Wait until every taking-part worker's books balance or the worker is gone; return what is missing."""
        deadline = time.monotonic() + timeout
        while True:
            alive = set(alive_ids())
            missing = self.missing(alive)
            if not missing or all(m["gone"] for m in missing.values()) or time.monotonic() >= deadline:
                return missing
            gevent.sleep(0.05)

    def summary(self, missing: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """The ``run.workers`` block of the report."""
        workers = {
            cid: {"records": b.received, "final_count": b.expected, "complete": cid not in missing}
            for cid, b in self.workers.items()
        }
        notes = []
        for cid, m in missing.items():
            if m["expected"] is None:
                notes.append(f"worker {cid}: no final count arrived (worker lost?); kept its {m['received']} records "
                             "up to its last report")
            else:
                notes.append(f"worker {cid}: {m['expected'] - m['received']} of its {m['expected']} records missing")
        return {"workers": workers, "complete": not missing, "incomplete_reasons": notes}


def alive_worker_ids(runner: Any) -> set[str]:
    """Workers the master still hears from (not missing, not removed)."""
    from locust.runners import STATE_MISSING

    return {c.id for c in runner.clients.values() if c.state != STATE_MISSING}
