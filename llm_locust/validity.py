"""Run validity: did the load generator itself distort the run? Event-loop lag and CPU of every process.

Every llm-locust process (local runner, master, each worker) runs a :class:`Monitor` greenlet from test start to
test stop. It sleeps :data:`TICK_S` and books how late it woke up, once for every tick due in that time (the
*event-loop lag*, sampled every :data:`TICK_S` of wall time: while the loop is busy with other greenlets, every
stream's next line waits that long before it is read: lines stamped by the reader's clock (TLS) are late by up to
that; with the kernel's arrival stamps (:mod:`llm_locust.recvclock`) a lag longer than the gap between two chunks
makes one read take both, and the first is stamped with the second's arrival),
and about every :data:`CPU_EVERY_S` s the process's CPU use (``psutil``, % of one core).
Each late tick is also split: the part of its lateness the process's own CPU time over the tick cannot explain is
*CPU wait* (``cpu_wait_ms``): the process was ready to run but other processes held the cores (on a machine it
shares with the server, or a session that Linux's autogroup scheduling gives less than its due). Busy and starved
get different fixes. Memory is bounded: lag goes into log-bucket histograms (:class:`LagHistogram`, 10 %
resolution), CPU into a fixed array of per-percent counts.

A worker sends its :meth:`Monitor.summary` to the master (message :data:`MSG_HEALTH`, just before its final
records); :func:`verdict` judges every process and gives summary.json's ``run.valid`` and ``run.validity``::

    "valid": false,
    "validity": {"processes": {"worker a1b2": {"loop_lag_ms": {"p50": 0.2, "p99": 21.3, "max": 40.1, ...},
                                              "cpu_wait_ms": {"p99": 0.0, ...},
                                              "cpu_percent": {"mean": 98.2, "p95": 100.0, ...}}, ...},
                 "warnings": ["worker a1b2 at 98% CPU, loop lag p99 21.3 ms: TTFT figures may be late by up to
                               that; add worker processes (--processes N or more workers)"]}

A process is distorting the run when its mean CPU is at least :data:`CPU_LIMIT` % of a core (its loop is never
idle, so every measurement waits its turn) or its loop-lag p99 is at least :data:`LAG_LIMIT_MS`; when at least half
of that p99 is CPU wait, the warning says the process was starved (give it cores of its own), not busy (add
processes). ``run.valid`` does
not change the exit code; CI checks it (``jq -e .run.valid summary.json``). With open-loop load (``--request-rate``)
the run's send lag is judged too: a p99 of :data:`LAG_LIMIT_MS` or more makes the run invalid.
"""

from __future__ import annotations

import math
import time
from typing import Any

import gevent

from .live import bucket_at

TICK_S = 0.1
TICK_MS = TICK_S * 1000.0
CPU_EVERY_S = 1.0  # CPU is sampled at the first tick at least this long after the last sample
CPU_LIMIT = 90.0
LAG_LIMIT_MS = 10.0
MSG_HEALTH = "llm_health"
_GROWTH = math.log(1.1)
_FLOOR_MS = 0.01


class LagHistogram:
    """Counts of values (ms) in log buckets 10 % wide from 0.01 ms: a quantile is within 10 % (rounded up)."""

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.n = 0
        self.max = 0.0
        self.total = 0.0

    def add(self, ms: float) -> None:
        key = int(math.log(max(ms, _FLOOR_MS) / _FLOOR_MS) / _GROWTH)
        self.counts[key] = self.counts.get(key, 0) + 1
        self.n += 1
        self.total += ms
        self.max = max(self.max, ms)

    def quantile(self, q: float) -> float | None:
        if not self.n:
            return None
        key = bucket_at(self.counts, self.n, q)
        return self.max if key is None else min(_FLOOR_MS * math.exp((key + 1) * _GROWTH), self.max)

    def summary(self) -> dict[str, Any]:
        return {
            "samples": self.n,
            "mean": self.total / self.n if self.n else None,
            "p50": self.quantile(0.5),
            "p99": self.quantile(0.99),
            "max": self.max if self.n else None,
        }


class Monitor:
    """The sampling greenlet of one process; :meth:`stop` ends it and returns :meth:`summary`."""

    def __init__(self) -> None:
        import psutil

        self.lag = LagHistogram()
        self.cpu_wait = LagHistogram()
        self.cpu = [0] * 101  # counts of samples per whole percent of one core (clipped at 100)
        self._process = psutil.Process()
        self._process.cpu_percent(None)  # the first call starts the interval
        self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        last_cpu = time.perf_counter()
        while True:
            before, cpu_before = time.perf_counter(), time.process_time()
            gevent.sleep(TICK_S)
            now, cpu_now = time.perf_counter(), time.process_time()
            late_ms = max(0.0, (now - before - TICK_S) * 1000.0)
            cpu_ms = (cpu_now - cpu_before) * 1000.0
            # lateness as sampled every TICK_S of wall time: a stall of 1 s is the 10 ticks due in it, late by
            # 1000, 900, ... ms (one sample would let a second's stall hide under the p99 of a short run)
            for k in range(int(late_ms // TICK_MS) + 1):
                due_late = late_ms - k * TICK_MS
                self.lag.add(due_late)
                # the part the process's own CPU time cannot explain: it was ready, but not running
                self.cpu_wait.add(max(0.0, due_late - cpu_ms))
            if now - last_cpu >= CPU_EVERY_S:
                self.cpu[min(100, round(self._process.cpu_percent(None)))] += 1
                last_cpu = now

    def cpu_summary(self) -> dict[str, Any]:
        n = sum(self.cpu)
        if not n:
            return {"samples": 0, "mean": None, "p95": None, "max": None}
        mean = sum(p * c for p, c in enumerate(self.cpu)) / n
        seen, p95 = 0, 0
        for p, c in enumerate(self.cpu):
            seen += c
            if seen >= 0.95 * n:
                p95 = p
                break
        top = max(p for p, c in enumerate(self.cpu) if c)
        return {"samples": n, "mean": mean, "p95": float(p95), "max": float(top)}

    def summary(self) -> dict[str, Any]:
        return {"loop_lag_ms": self.lag.summary(), "cpu_wait_ms": self.cpu_wait.summary(),
                "cpu_percent": self.cpu_summary()}

    def stop(self) -> dict[str, Any]:
        self._greenlet.kill(block=False)
        return self.summary()


def start() -> Monitor:
    return Monitor()


def verdict(
    processes: dict[str, dict[str, Any]], arrivals: dict[str, Any] | None = None
) -> tuple[bool, list[str]]:
    """``(valid, warnings)`` for the per-process summaries (name -> :meth:`Monitor.summary`) and, in open loop, the
    run's ``overall.arrivals`` block (:func:`llm_locust.arrivals.summary`): a send-lag p99 of
    :data:`LAG_LIMIT_MS` or more means the requests left later than the schedule asked."""
    warnings = []
    lag99 = ((arrivals or {}).get("send_lag_ms") or {}).get("p99")
    if lag99 is not None and lag99 >= LAG_LIMIT_MS:
        warnings.append(
            f"send lag p99 {lag99:.1f} ms: requests left up to that much later than their arrival times (the load "
            "generator fell behind the rate); add worker processes (--processes N, or more workers)"
        )
    for name, health in processes.items():
        if not health:
            continue
        cpu = (health.get("cpu_percent") or {}).get("mean")
        lag = (health.get("loop_lag_ms") or {}).get("p99")
        wait = (health.get("cpu_wait_ms") or {}).get("p99")
        busy = cpu is not None and cpu >= CPU_LIMIT
        late = lag is not None and lag >= LAG_LIMIT_MS
        if not (busy or late):
            continue
        cpu_text = "n/a" if cpu is None else f"{cpu:.0f}%"
        lag_text = "n/a" if lag is None else f"{lag:.1f} ms"
        if late and not busy and wait is not None and wait >= 0.5 * lag:
            warnings.append(
                f"{name} at {cpu_text} CPU, loop lag p99 {lag_text}, {wait:.1f} ms of it waiting for a CPU other "
                "processes held: TTFT and ITL figures may be late by up to that; give the load generator cores of "
                "its own (another machine, or taskset), and on the server's machine start it in the server's "
                "session (Linux shares CPU time between sessions)"
            )
            continue
        fix = ("add worker processes (--processes N, or more workers) or fewer users per process"
               if name != "master" else "give the master its own core (it should run no users)")
        warnings.append(
            f"{name} at {cpu_text} CPU, loop lag p99 {lag_text}: TTFT and ITL figures may be late by up to "
            f"that; {fix}"
        )
    return not warnings, warnings
