"""The live view of a run: mergeable per-prompt summaries and a time series, for the console and the web UI.

Reports at the end of a run use the exact per-request records (:mod:`llm_locust.report`). While a run goes, the
web UI and the console want cheap answers every second or two, so :class:`LiveView` keeps, per prompt: counts,
sums, min/max and log-bucket histograms (2 % relative resolution, so 0.02 ms at 1 ms: sub-millisecond) of TTFT,
TPOT, ITL and E2E. Summaries merge by adding counts, so views from several processes combine exactly as far as the
buckets go. A sampler adds a point every ``SAMPLE_S`` seconds to a time series of windowed TTFT p50/p95, TPOT p50,
output tokens/s and the user count, which is what shows the knee of a ramp. The window is kept as per-second
bucket counts (:class:`Window`), so a sample costs the same at 10 and at 10,000 requests/s (it ran while streams
were open: percentiles of every value of the window took 0.3-12 ms of the event loop at 76 requests/s).
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .measure.record import STATUS_CANCELLED, STATUS_OK

SAMPLE_S = 2.0
WINDOW_S = 10.0
MAX_POINTS = 3600
_GROWTH = math.log(1.02)
_FLOOR_MS = 0.001
#: pending values a histogram buckets at once (a fold of 8,192 values holds the event loop for about 0.1 ms; one of
#: 2,048 *gap arrays*, 260,000 values at 128 tokens, held it for 20 ms)
FOLD_AT = 8192


def bucket_of(v: float) -> int | None:
    """The log bucket of a value in ms (2 % wide); None for a NaN or an infinity."""
    if not math.isfinite(v):
        return None
    return int(math.log(max(v, _FLOOR_MS) / _FLOOR_MS) / _GROWTH)


def bucket_mid(k: int) -> float:
    """The midpoint of bucket ``k``, in ms."""
    return _FLOOR_MS * math.exp((k + 0.5) * _GROWTH)


def bucket_at(counts: dict[int, int], n: int, q: float) -> int | None:
    """The bucket holding quantile ``q`` of the ``n`` values counted in ``counts`` (bucket -> count), or None."""
    rank = q * (n - 1)
    seen = 0
    for k in sorted(counts):
        seen += counts[k]
        if seen > rank:
            return k
    return None


class Histogram:
    """Log-bucket histogram of positive values in ms; ``quantile`` answers within 2 % of the exact value.

    Adding is an append (values, or the raw bytes of an ``array("q")`` of microseconds): the bucketing happens in
    one vectorised step when a quantile is asked for or ``FOLD_AT`` values are pending, so the request path pays
    almost nothing and the memory stays bounded however long nobody asks."""

    __slots__ = ("counts", "n", "_values", "_us", "_pending")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.n = 0
        self._values: list[float] = []
        self._us: list[bytes] = []
        self._pending = 0

    def add(self, v: float) -> None:
        self._values.append(v)
        self._pending += 1
        if self._pending >= FOLD_AT:
            self._fold()

    def add_us_bytes(self, data: bytes) -> None:
        self._us.append(data)
        self._pending += len(data) >> 3
        if self._pending >= FOLD_AT:
            self._fold()

    def _fold(self) -> None:
        if not (self._values or self._us):
            return
        parts = [np.asarray(self._values, dtype=np.float64)]
        if self._us:
            parts.append(np.frombuffer(b"".join(self._us), dtype=np.int64) / 1000.0)
        self._values, self._us, self._pending = [], [], 0
        values = np.concatenate(parts)
        values = values[np.isfinite(values)]  # a NaN or inf has no bucket (and would make bincount's range absurd)
        if not len(values):
            return
        buckets = (np.log(np.maximum(values, _FLOOR_MS) / _FLOOR_MS) / _GROWTH).astype(np.int64)
        lo = int(buckets.min())
        counts = np.bincount(buckets - lo)  # linear; the buckets span a few hundred values
        keys = np.flatnonzero(counts)
        for k, c in zip((keys + lo).tolist(), counts[keys].tolist(), strict=True):
            self.counts[k] = self.counts.get(k, 0) + c
        self.n += int(len(values))

    def merge(self, other: Histogram) -> None:
        self._fold()
        other._fold()
        for k, c in other.counts.items():
            self.counts[k] = self.counts.get(k, 0) + c
        self.n += other.n

    def quantile(self, q: float) -> float | None:
        self._fold()
        if not self.n:
            return None
        k = bucket_at(self.counts, self.n, q)
        return None if k is None else bucket_mid(k)


class Window:
    """The last ``WINDOW_S`` seconds of successful requests, as one slot of bucket counts per second: adding is a
    dict increment, a quantile reads at most ``WINDOW_S`` slots of a few hundred buckets each."""

    def __init__(self) -> None:
        # (second, TTFT bucket counts, TPOT bucket counts, output tokens), oldest first
        self._slots: deque[tuple[int, dict[int, int], dict[int, int], list[int]]] = deque()

    def add(self, now: float, ttft_ms: float | None, tpot_ms: float | None, tokens: int) -> None:
        sec = int(now)
        if not self._slots or self._slots[-1][0] != sec:
            self._slots.append((sec, {}, {}, [0]))
        _, ttft, tpot, out = self._slots[-1]
        for counts, v in ((ttft, ttft_ms), (tpot, tpot_ms)):
            k = bucket_of(v) if v is not None else None
            if k is not None:
                counts[k] = counts.get(k, 0) + 1
        out[0] += tokens

    def trim(self, now: float) -> None:
        """Drop the slots that ended before ``now - WINDOW_S``."""
        while self._slots and self._slots[0][0] + 1 <= now - WINDOW_S:
            self._slots.popleft()

    def quantiles(self, which: int, qs: tuple[float, ...]) -> list[float | None]:
        """Quantiles ``qs`` of TTFT (``which`` 1) or TPOT (2) over the window, from the buckets' midpoints."""
        counts: dict[int, int] = {}
        for slot in self._slots:
            for k, c in slot[which].items():
                counts[k] = counts.get(k, 0) + c
        n = sum(counts.values())
        out = []
        for q in qs:
            k = bucket_at(counts, n, q) if n else None
            out.append(None if k is None else bucket_mid(k))
        return out

    def tokens(self) -> int:
        """Output tokens of the window's requests."""
        return sum(slot[3][0] for slot in self._slots)

    def span(self, now: float) -> float:
        """Seconds the window covers at ``now`` (from the start of its oldest slot; ``WINDOW_S`` when empty)."""
        return now - self._slots[0][0] if self._slots else WINDOW_S


@dataclass
class Summary:
    """Live summary of one group of requests (a prompt, or all of them)."""

    requests: int = 0
    failures: int = 0
    cancelled: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    priced: int = 0
    tps_sum: float = 0.0
    tps_n: int = 0
    ttft: Histogram = field(default_factory=Histogram)
    tpot: Histogram = field(default_factory=Histogram)
    itl: Histogram = field(default_factory=Histogram)
    e2e: Histogram = field(default_factory=Histogram)

    def add(self, r: dict[str, Any]) -> None:
        status = r["status"]
        if status == STATUS_CANCELLED:
            self.cancelled += 1
            return
        self.requests += 1
        if status != STATUS_OK:
            self.failures += 1
            return
        self.input_tokens += r["input_tokens"] or 0
        self.output_tokens += r["output_tokens"] or 0
        if r["cost_usd"] is not None:
            self.cost_usd += r["cost_usd"]
            self.priced += 1
        if r["output_tokens_per_s"] is not None:
            self.tps_sum += r["output_tokens_per_s"]
            self.tps_n += 1
        for hist, key in ((self.ttft, "ttft_ms"), (self.tpot, "tpot_ms"), (self.e2e, "e2e_ms")):
            if r[key] is not None:
                hist.add(r[key])
        if r["itl_us"]:
            self.itl.add_us_bytes(r["itl_us"])

    def merge(self, other: Summary) -> None:
        for name in ("requests", "failures", "cancelled", "input_tokens", "output_tokens", "cost_usd", "priced",
                     "tps_sum", "tps_n"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("ttft", "tpot", "itl", "e2e"):
            getattr(self, name).merge(getattr(other, name))

    def row(self, name: str, elapsed_s: float | None) -> dict[str, Any]:
        ok = self.requests - self.failures
        return {
            "name": name,
            "requests": self.requests,
            "failures": self.failures,
            "ttft_p50_ms": self.ttft.quantile(0.5),
            "ttft_p95_ms": self.ttft.quantile(0.95),
            "ttft_p99_ms": self.ttft.quantile(0.99),
            "tpot_p50_ms": self.tpot.quantile(0.5),
            "tpot_p95_ms": self.tpot.quantile(0.95),
            "itl_p95_ms": self.itl.quantile(0.95),
            "e2e_p50_ms": self.e2e.quantile(0.5),
            "tokens_per_s_request": self.tps_sum / self.tps_n if self.tps_n else None,
            "tokens_per_s_run": self.output_tokens / elapsed_s if elapsed_s else None,
            "input_tokens_mean": self.input_tokens / ok if ok else None,
            "output_tokens_mean": self.output_tokens / ok if ok else None,
            "cost_usd": self.cost_usd if self.priced else None,
        }


class LiveView:
    """Per-prompt live summaries plus the windowed time series; feed it records with :meth:`add`."""

    def __init__(self, prompts: list[str] | None = None, targets: list[str] | None = None) -> None:
        self.groups: dict[str, Summary] = {}
        self.total = Summary()
        self.started = time.time()
        self.stopped: float | None = None
        #: with several targets a group is "target / prompt"; rows come in target, then prompt-file order
        self.multi = len(targets or ()) > 1
        names = [f"{t} / {p}" for t in targets or () for p in prompts or ()] if self.multi else list(prompts or ())
        self.order = {name: i for i, name in enumerate(names)}
        self.history: deque[dict[str, Any]] = deque(maxlen=MAX_POINTS)
        self._window = Window()

    def add(self, r: dict[str, Any]) -> None:
        if r.get("warmup"):  # --warmup: left out of every figure (llm_locust.warmup)
            return
        key = f"{r['target']} / {r['prompt']}" if self.multi else r["prompt"]
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = Summary()
        group.add(r)
        self.total.add(r)
        if r["status"] == STATUS_OK:
            self._window.add(time.time(), r["ttft_ms"], r["tpot_ms"], r["output_tokens"] or 0)

    def stop(self) -> None:
        """The run has stopped: whole-run rates stay as they were at the stop."""
        self.stopped = time.time()

    def rows(self) -> list[dict[str, Any]]:
        """One row per group (prompt, or target / prompt) in file order, then ``Overall``."""
        elapsed = (self.stopped or time.time()) - self.started
        names = sorted(self.groups, key=lambda n: self.order.get(n, len(self.order)))
        rows = [self.groups[name].row(name, elapsed) for name in names]
        rows.append(self.total.row("Overall", elapsed))
        return rows

    def sample(self, users: int) -> dict[str, Any]:
        """Add and return one time-series point over the last ``WINDOW_S`` seconds."""
        now = time.time()
        window = self._window
        window.trim(now)
        ttft_p50, ttft_p95 = window.quantiles(1, (0.5, 0.95))
        (tpot_p50,) = window.quantiles(2, (0.5,))
        span = min(window.span(now), now - self.started) or 1.0
        point = {
            "time": round(now - self.started, 1),
            "users": users,
            "ttft_p50_ms": ttft_p50,
            "ttft_p95_ms": ttft_p95,
            "tpot_p50_ms": tpot_p50,
            "output_tokens_per_s": window.tokens() / span,
        }
        self.history.append(point)
        return point
