"""The run's books: every request record, appended to ``requests.csv`` as it arrives and kept for the summary.

The records themselves are not kept: what the summary reads goes into :attr:`Recorder.table`, a
:class:`~llm_locust.table.RecordTable` of compact columns (about 100 bytes per request; the inter-token gaps on
disk), which the reports read at the end (and the web UI's downloads during the run).

The recorder listens to Locust's request event and takes the records that llm-locust users put in
``context["llm"]`` (requests of other users are not ours and are ignored). Requests cancelled by the end of a run
never reach Locust's stats; the users hand those to :meth:`Recorder.add` directly, so nothing is lost from the
books. Rows are flushed at least every ``FLUSH_S`` seconds (and at the end), so a run that is killed loses at most
that much of its per-request log, without a system call on every request.

On a worker the recorder also keeps an *outbox*: the records not yet shipped to the master
(:mod:`llm_locust.distributed` drains it), and keeps no table, only the count.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .measure.record import COLUMNS, Record, csv_row
from .table import RecordTable

FLUSH_S = 0.5


class Recorder:
    def __init__(self, csv_path: Path | None, *, keep: bool = True, ship: bool = False) -> None:
        #: the report fields of every record added (None on a worker: ``keep=False``)
        self.table: RecordTable | None = RecordTable() if keep else None
        self.count = 0
        self.csv_path = csv_path
        self.keep = keep
        self.outbox: list[Record] | None = [] if ship else None
        #: called with every record added (the live view listens here)
        self.listeners: list[Callable[[Record], None]] = []
        self._file = None
        self._writer = None
        self._flushed = time.monotonic()
        if csv_path is not None:
            csv_path.parent.mkdir(parents=True, exist_ok=True)
            self._file = csv_path.open("w", newline="", encoding="utf-8")
            self._writer = csv.writer(self._file)
            self._writer.writerow(COLUMNS)
            self._file.flush()

    def add(self, record: Record) -> None:
        self.count += 1
        if self.table is not None:
            self.table.add(record)
        if self.outbox is not None:
            self.outbox.append(record)
        if self._writer is not None:
            self._writer.writerow(csv_row(record))
            now = time.monotonic()
            if now - self._flushed >= FLUSH_S:
                self._file.flush()
                self._flushed = now
        for listener in self.listeners:
            listener(record)

    def add_many(self, records: list[Record]) -> None:
        for record in records:
            self.add(record)

    def flush(self) -> None:
        """Write every row booked so far to the file now."""
        if self._file is not None:
            self._file.flush()
            self._flushed = time.monotonic()

    def drain(self) -> list[Record]:
        """The records added since the last drain (worker side)."""
        out = self.outbox or []
        if self.outbox is not None:
            self.outbox = []
        return out

    def on_request(self, context: dict[str, Any] | None = None, **_: Any) -> None:
        record = context.get("llm") if context else None
        if record is not None:
            self.add(record)

    def close(self) -> None:
        """Close the CSV file (the table stays readable)."""
        if self._file is not None:
            self._file.close()
            self._file = None
            self._writer = None
