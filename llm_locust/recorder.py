"""The run's books: every request record, kept in memory and appended to ``requests.csv`` as it arrives.

The recorder listens to Locust's request event and takes the records that llm-locust users put in
``context["llm"]`` (requests of other users are not ours and are ignored). Requests cancelled by the end of a run
never reach Locust's stats; the users hand those to :meth:`Recorder.add` directly, so nothing is lost from the
books. Each row is flushed at once, so the per-request log survives a run that dies.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from .record import COLUMNS, csv_row


def _fmt(row: list[Any]) -> list[Any]:
    return [round(v, 6) if isinstance(v, float) else v for v in row]


class Recorder:
    def __init__(self, csv_path: Path | None) -> None:
        self.records: list[dict[str, Any]] = []
        self.csv_path = csv_path
        self._file = None
        self._writer = None
        if csv_path is not None:
            csv_path.parent.mkdir(parents=True, exist_ok=True)
            self._file = csv_path.open("w", newline="", encoding="utf-8")
            self._writer = csv.writer(self._file)
            self._writer.writerow(COLUMNS)
            self._file.flush()

    def add(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        if self._writer is not None:
            self._writer.writerow(_fmt(csv_row(record)))
            self._file.flush()  # type: ignore[union-attr]

    def on_request(self, context: dict[str, Any] | None = None, **_: Any) -> None:
        record = context.get("llm") if context else None
        if record is not None:
            self.add(record)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            self._writer = None
