"""Capacity search: the largest number of concurrent users at which the ``--slo`` objectives hold.

``--capacity-search`` (with ``--slo``) makes :class:`CapacityShape` the run's Locust ``LoadTestShape``; it runs on
the local runner or the master (a shape always runs there), so it works distributed: the master's recorder gets
every worker's records (:mod:`llm_locust.distributed`) and the shape listens to it.

The search, level by level (a level = a user count, held until it is judged):

1. **Stepped**: ``--capacity-start`` users, then doubling, up to ``--capacity-max`` (the last step clipped to it).
2. **Bisected**, from the first level that breaks: between the highest level that held and the lowest that broke,
   until they are at most ``max(1, held // 8)`` users apart.

Each level starts once every user of it runs (the runner's user count reached it), then waits ``--level-warmup``
seconds, then measures the next ``--level-requests`` requests: those that *started* after the warm-up (by their
wall-clock start time, comparable across workers), in the order they finish. It is judged on those requests with
:func:`llm_locust.slo.evaluate`: a level holds when every objective holds. A level that cannot measure its
requests within ``--level-timeout`` seconds breaks ("timed out"). Requests cancelled by a change of level count
nowhere. The levels are bound by request counts, not by time.

Concurrency only: a request-rate search needs open-loop load, which llm-locust does not have yet.

Results (:meth:`CapacityShape.result`, summary.json's ``capacity`` block, ``capacity.csv``, summary.txt, the HTML
report): a row per level in the order run, and the answer in one line::

    max 48 users at p99 TTFT ≤ 500.0 ms; breaks at 64: p99 TTFT 612.0 ms
"""

from __future__ import annotations

import csv
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from locust import LoadTestShape

from . import slo
from .measure.record import STATUS_CANCELLED, STATUS_OK

logger = logging.getLogger("llm_locust")

#: the per-level columns of capacity.csv and the text table, after the objectives' own
LEVEL_COLUMNS = (
    "users", "holds", "requests", "failures", "duration_s", "requests_per_s", "output_tokens_per_s", "goodput_rps",
    "attainment", "ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "e2e_p95_ms", "reason",
)


def _start_s(record: dict[str, Any]) -> float:
    return datetime.fromisoformat(record["timestamp"]).timestamp()


@dataclass
class Level:
    users: int
    started: float = field(default_factory=time.time)  # when the shape asked for it
    measure_from: float | None = None  # wall time from which requests count (users all running + warm-up)
    records: list[dict[str, Any]] = field(default_factory=list)
    row: dict[str, Any] | None = None  # once judged


class CapacityShape(LoadTestShape):
    """The capacity search as a Locust ``LoadTestShape`` (see the module docstring)."""

    def __init__(self, opts: Any) -> None:
        super().__init__()
        self.slos = slo.parse(opts.slo)
        self.first = int(opts.capacity_start)
        self.limit = int(opts.capacity_max)
        self.level_requests = int(opts.level_requests)
        self.warmup = float(opts.level_warmup)
        self.level_timeout = float(opts.level_timeout)
        self.levels: list[Level] = []
        self.held: Level | None = None  # the highest level that held
        self.broke: Level | None = None  # the lowest level that broke
        self.done = False

    # ------------------------------------------------------------ records

    def attach(self, run: Any) -> None:
        """Listen to the run's records (at test start: the recorder is new)."""
        run.recorder.listeners.append(self.on_record)

    def on_record(self, record: dict[str, Any]) -> None:
        level = self.levels[-1] if self.levels else None
        if level is None or level.row is not None or level.measure_from is None:
            return
        if record["status"] == STATUS_CANCELLED or record.get("warmup") or _start_s(record) < level.measure_from:
            return
        level.records.append(record)

    # ------------------------------------------------------------ the search

    def _next_users(self) -> int | None:
        """The next level to try, or None when the search is over."""
        if self.broke is None:  # stepping
            last = self.held.users if self.held else 0
            if last >= self.limit:
                return None
            return min(self.limit, last * 2 if last else self.first)
        low = self.held.users if self.held else 0
        high = self.broke.users
        if high - low <= max(1, low // 8):
            return None
        return (low + high) // 2

    def _begin(self, users: int) -> None:
        self.levels.append(Level(users))
        logger.info("capacity search: level %d users", users)

    def tick(self) -> tuple[int, float] | None:
        if self.done:
            return None
        now = time.time()
        if not self.levels:
            self._begin(self.first)
        level = self.levels[-1]
        if level.measure_from is None and (self.get_current_user_count() or 0) == level.users:
            level.measure_from = now + self.warmup
        counted = len(level.records)
        if counted >= self.level_requests:
            self._judge(level, None)
        elif now - level.started > self.level_timeout:
            self._judge(level, f"timed out: {counted} of {self.level_requests} requests in {self.level_timeout:g} s")
        if level.row is not None:
            nxt = self._next_users()
            if nxt is None:
                self._finish()
                return None
            self._begin(nxt)
            level = self.levels[-1]
        previous = self.levels[-2].users if len(self.levels) > 1 else 0
        return level.users, float(max(1, abs(level.users - previous)))

    def _judge(self, level: Level, reason: str | None) -> None:
        from .report import frame

        records = level.records[: self.level_requests]
        level.records = records
        df = frame(records)
        ok = df[df["status"] == STATUS_OK]
        start = min((_start_s(r) for r in records), default=0.0)
        end = max((_start_s(r) + r["elapsed_ms"] / 1000.0 for r in records), default=0.0)
        duration = end - start if end > start else None
        verdict = slo.evaluate(self.slos, df, duration)
        holds = reason is None and verdict["pass"]
        if reason is None and not holds:
            failed = slo.first_failure(verdict)
            reason = slo.short(failed) if failed else "no requests"

        def pct(col: str, q: float) -> float | None:
            values = ok[col].dropna()
            return float(values.quantile(q)) if len(values) else None

        level.row = {
            "users": level.users,
            "holds": holds,
            "requests": len(records),
            "failures": int((df["status"] != STATUS_OK).sum()),
            "duration_s": duration,
            "requests_per_s": len(ok) / duration if duration else None,
            "output_tokens_per_s": float(ok["output_tokens"].fillna(0).sum()) / duration if duration else None,
            "goodput_rps": verdict["goodput_rps"],
            "attainment": verdict["attainment"],
            "ttft_p50_ms": pct("ttft_ms", 0.5),
            "ttft_p99_ms": pct("ttft_ms", 0.99),
            "tpot_p50_ms": pct("tpot_ms", 0.5),
            "e2e_p95_ms": pct("e2e_ms", 0.95),
            "reason": reason or "",
            "objectives": verdict["objectives"],
        }
        level.records = []  # judged: the row is all that is kept
        if holds and (self.held is None or level.users > self.held.users):
            self.held = level
        if not holds and (self.broke is None or level.users < self.broke.users):
            self.broke = level
        logger.info("capacity search: %d users %s%s", level.users, "hold" if holds else "break: ", reason or "")

    def _finish(self) -> None:
        """The search is over: log the answer; on a master, stop the workers first (their last records come in,
        the reports are written), then the shape's ``None`` quits."""
        self.done = True
        logger.info("capacity search: %s", self.answer())
        from locust.runners import MasterRunner

        if isinstance(self.runner, MasterRunner):
            self.runner.stop()

    # ------------------------------------------------------------ results

    def answer(self) -> str:
        labels = ", ".join(s.label() for s in self.slos)
        if self.held is None:
            if self.broke is None:
                return "capacity search interrupted before any level was judged"
            return f"no level met {labels}; breaks at {self.broke.users} users: {self.broke.row['reason']}"
        text = f"max {self.held.users} users at {labels}"
        if self.broke is not None:
            return f"{text}; breaks at {self.broke.users}: {self.broke.row['reason']}"
        if self.done:
            return f"{text}; no break up to the search limit (--capacity-max {self.limit})"
        return f"{text} (search interrupted before a level broke)"

    def result(self) -> dict[str, Any]:
        """summary.json's ``capacity`` block."""
        return {
            "pass": self.held is not None,
            "complete": self.done,
            "max_users": self.held.users if self.held else None,
            "breaks_at": self.broke.users if self.broke else None,
            "answer": self.answer(),
            "objectives": [s.text for s in self.slos],
            "level_requests": self.level_requests,
            "level_warmup_s": self.warmup,
            "levels": [lv.row for lv in self.levels if lv.row is not None],
            "load": "concurrency (users); request-rate search needs open-loop load, not available yet",
        }


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    return round(v, 6) if isinstance(v, float) else v


def write_csv(path: Path, result: dict[str, Any]) -> None:
    """capacity.csv: a row per level, the level columns and each objective's measured value."""
    specs = result["objectives"]
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow([*LEVEL_COLUMNS, *(f"slo:{s}" for s in specs)])
        for row in result["levels"]:
            measured = {o["spec"]: o["measured"] for o in row["objectives"]}
            w.writerow([*(_cell(row[c]) for c in LEVEL_COLUMNS), *(_cell(measured.get(s)) for s in specs)])


def render(result: dict[str, Any]) -> str:
    """The capacity search as text: a row per level and the answer."""

    def ms(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.1f}"

    head = ("users", "holds", "reqs", "fail", "req/s", "tok/s", "goodput/s", "TTFT p50", "TTFT p99", "TPOT p50",
            "E2E p95", "reason")
    rows = [
        (str(r["users"]), "yes" if r["holds"] else "NO", str(r["requests"]), str(r["failures"]),
         ms(r["requests_per_s"]), ms(r["output_tokens_per_s"]), ms(r["goodput_rps"]), ms(r["ttft_p50_ms"]),
         ms(r["ttft_p99_ms"]), ms(r["tpot_p50_ms"]), ms(r["e2e_p95_ms"]), r["reason"])
        for r in result["levels"]
    ]
    widths = [max(len(x[i]) for x in [head, *rows]) for i in range(len(head))]
    fmt = "  ".join(f"{{:>{w}}}" if i < len(head) - 1 else "{}" for i, w in enumerate(widths))
    lines = [f"Capacity search ({result['load']}; {result['level_requests']} requests per level, times in ms):"]
    lines += [fmt.format(*head), *(fmt.format(*r) for r in rows)]
    lines.append(f"Answer: {result['answer']}")
    return "\n".join(lines)
