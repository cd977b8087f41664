"""Open-loop arrivals: the settings of ``--request-rate``, the schedule of intended send times, and their figures.

Locust-free (no locust or gevent import), so the schedule is unit-tested in a plain process. The Locust side, the
dispatcher that issues a ticket at each intended time and the senders that take them, is
:mod:`llm_locust.plugin.dispatch`.

* :class:`Arrivals`: the run's settings, from ``--request-rate R`` (requests/s for the whole run; a master's
  workers each take ``R / workers``), ``--arrival poisson|gamma|constant``, ``--burstiness B`` (the gamma shape;
  1 is Poisson, below 1 burstier, above 1 more regular: vLLM's ``--burstiness``), ``--max-concurrency C`` (at most
  C requests in flight, the rest wait in a client queue) and ``--seed``. :func:`settings` reads them from the
  options (strings from the web UI's start form too) and raises ``ValueError`` with one line naming the problem
  and the fix.
* :class:`Schedule`: the intended send times, in seconds from the timeline's start: gaps drawn from the chosen
  distribution with mean ``1 / rate`` (exponential; gamma of shape B and scale ``1 / (rate * B)``; constant),
  seeded, so the same seed gives the same timeline. :meth:`Schedule.set_rate` changes the rate from the next gap
  on (a rate stage of :class:`llm_locust.rateshape.RateShape`, a master's re-split when workers join).
* :func:`summary`: summary.json's ``overall.arrivals`` block from the records' ``intended_send_ms``,
  ``queue_wait_ms``, ``send_lag_ms`` and ``t0_ns`` columns: asked, intended and sent rates, send lag and queue
  wait percentiles (docs/metrics.md defines them).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

KINDS = ("poisson", "gamma", "constant")
#: the record fields of open-loop arrivals, in record order (None in closed-loop runs)
FIELDS = ("intended_send_ms", "queue_wait_ms", "send_lag_ms")


@dataclass(frozen=True)
class Arrivals:
    """The open-loop settings of a run (``rate`` may be None when a :class:`~llm_locust.rateshape.RateShape` sets
    it stage by stage)."""

    rate: float | None
    kind: str = "poisson"
    burstiness: float = 1.0
    max_concurrency: int | None = None
    seed: int | None = None


def _number(value: Any, flag: str, fix: str, cast: type = float) -> Any:
    """``value`` as ``cast`` (None for None or "", the web UI's empty field); ValueError naming ``flag``."""
    if value is None or value == "":
        return None
    try:
        number = cast(value)
    except (TypeError, ValueError):
        raise ValueError(f"{flag} must be a number (got {value!r}); {fix}") from None
    return number


def settings(opts: Any, shaped: bool = False) -> Arrivals | None:
    """The run's :class:`Arrivals` from its options, or None for a closed-loop run (no ``--request-rate`` and no
    rate shape: ``shaped``). ValueError with one line naming the bad value and the fix."""
    rate = _number(getattr(opts, "request_rate", None), "--request-rate",
                   "give requests per second, e.g. --request-rate 20")
    if rate is not None and not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"--request-rate must be a positive number of requests per second (got {rate:g}); "
                         "e.g. --request-rate 20, or leave it out for closed-loop users")
    kind = getattr(opts, "arrival", None) or "poisson"
    if kind not in KINDS:
        raise ValueError(f"--arrival must be one of {', '.join(KINDS)} (got {kind!r})")
    burstiness = _number(getattr(opts, "burstiness", None), "--burstiness", "e.g. --burstiness 0.5")
    burstiness = 1.0 if burstiness is None else burstiness
    if not (math.isfinite(burstiness) and burstiness > 0):
        raise ValueError(f"--burstiness must be a positive number, the gamma shape (got {burstiness:g}); "
                         "1 is Poisson, below 1 burstier, above 1 more regular")
    if burstiness != 1.0 and kind != "gamma":
        raise ValueError(f"--burstiness applies to --arrival gamma (got --arrival {kind}); add --arrival gamma")
    cap = _number(getattr(opts, "max_concurrency", None), "--max-concurrency", "give a whole number of requests",
                  int)
    if cap is not None and cap < 1:
        raise ValueError(f"--max-concurrency must be 1 or more requests in flight (got {cap}); leave it out for "
                         "no cap")
    seed = _number(getattr(opts, "seed", None), "--seed", "give a whole number", int)
    if rate is None and not shaped:
        if cap is not None:
            raise ValueError("--max-concurrency caps open-loop arrivals: add --request-rate R (closed-loop "
                             "concurrency is -u/--users)")
        return None  # --arrival and --burstiness alone change nothing (the web UI's form always has them)
    return Arrivals(rate, kind, burstiness, cap, seed)


def cap_share(cap: int | None, workers: int, index: int) -> int | None:
    """This process's part of ``--max-concurrency`` when ``workers`` share it (worker ``index`` from 0): the
    parts differ by at most one and add up to ``cap`` (at least 1 each)."""
    if cap is None or workers <= 1:
        return cap
    return max(1, cap // workers + (1 if index % workers < cap % workers else 0))


class Schedule:
    """Intended send times, seconds from the timeline's start (see the module docs)."""

    def __init__(self, rate: float, kind: str = "poisson", burstiness: float = 1.0, seed: Any = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown arrival kind {kind!r}")
        self.kind = kind
        self.burstiness = burstiness
        self.rng = random.Random(seed)
        self.rate = rate
        self.t = 0.0  # the last intended time issued
        self.n = 0

    def set_rate(self, rate: float) -> None:
        """Draw the gaps from now on at ``rate`` requests/s (0 pauses the timeline: :meth:`next` returns inf)."""
        self.rate = rate

    def gap(self) -> float:
        """One inter-arrival gap in seconds at the current rate."""
        rate = self.rate
        if rate <= 0:
            return math.inf
        if self.kind == "constant":
            return 1.0 / rate
        if self.kind == "poisson":
            return self.rng.expovariate(rate)
        return self.rng.gammavariate(self.burstiness, 1.0 / (rate * self.burstiness))

    def next(self) -> float:
        """The next intended send time (seconds from the start); the first is one gap after the start, except
        for constant arrivals, whose first is at the start."""
        if self.n == 0 and self.kind == "constant":
            self.n = 1
            return self.t
        self.n += 1
        self.t += self.gap()
        return self.t


class Ticket:
    """One arrival: its intended send time and, once a sender holds a slot for it, how long it waited.

    Times are ``perf_counter_ns()``: ``intended_ns`` on the timeline that starts at ``start_ns``, ``issued_ns``
    when the dispatcher handed it out (a little ahead of its time); ``queued`` when it found every
    ``--max-concurrency`` slot taken, and then ``slot_ns`` when a slot was free for it: its queue wait is the part
    of that wait after its intended time. :meth:`stamp` writes the record's three arrival fields."""

    __slots__ = ("intended_ns", "issued_ns", "queued", "slot_ns", "spin_ns", "start_ns")

    def __init__(self, intended_ns: int, start_ns: int, issued_ns: int, queued: bool = False,
                 spin_ns: int = 0) -> None:
        self.intended_ns = intended_ns
        self.start_ns = start_ns
        self.issued_ns = issued_ns
        self.queued = queued
        self.slot_ns = issued_ns
        self.spin_ns = spin_ns  # how long before its time the sender yields instead of sleeping (sendclock)

    def ready_ns(self) -> int:
        """When the request could be sent: its intended time, or when a slot was free if it had to wait."""
        return max(self.intended_ns, self.slot_ns) if self.queued else self.intended_ns

    def stamp(self, record: Any, t0_ns: int | None) -> None:
        """Fill ``intended_send_ms``, ``queue_wait_ms`` and ``send_lag_ms`` (None: never sent) of ``record``."""
        record["intended_send_ms"] = (self.intended_ns - self.start_ns) / 1e6
        waited = self.slot_ns - max(self.issued_ns, self.intended_ns)
        record["queue_wait_ms"] = max(0, waited) / 1e6 if self.queued else 0.0
        record["send_lag_ms"] = None if t0_ns is None else (t0_ns - self.ready_ns()) / 1e6


def cov(values: Any) -> float | None:
    """Coefficient of variation of the gaps between sorted ``values``: stdev / mean (1 Poisson, 0 constant)."""
    import numpy as np

    arr = np.sort(np.asarray(values, dtype="float64"))
    gaps = np.diff(arr)
    if gaps.size < 2 or gaps.mean() <= 0:
        return None
    return float(gaps.std(ddof=1) / gaps.mean())


def _rate(values: Any) -> float | None:
    """Events per second over the span of ``values`` (seconds): (n - 1) / span."""
    import numpy as np

    arr = np.asarray(values, dtype="float64")
    if arr.size < 2:
        return None
    span = float(arr.max() - arr.min())
    return (arr.size - 1) / span if span > 0 else None


def summary(df: pd.DataFrame, asked: Arrivals | dict[str, Any] | None) -> dict[str, Any] | None:
    """summary.json's ``overall.arrivals`` block, or None for a closed-loop run (no ``intended_send_ms``).

    Requests that were sent (they have a ``send_lag_ms``) give the sent rate (from their ``t0_ns``; one process's
    clock: in a distributed run the sum of the workers' is ``sent_rate_per_s`` only approximately); those that the
    run stopped before a slot was free count as ``unsent_at_stop``."""
    import numpy as np

    from .measure.metrics import stats

    if "intended_send_ms" not in df.columns:
        return None
    intended = df["intended_send_ms"].to_numpy(dtype="float64", na_value=math.nan)
    has = ~np.isnan(intended)
    if not has.any():
        return None
    lag = df["send_lag_ms"].to_numpy(dtype="float64", na_value=math.nan)
    wait = df["queue_wait_ms"].to_numpy(dtype="float64", na_value=math.nan)
    sent = has & ~np.isnan(lag)
    t0_s = df["t0_ns"].to_numpy(dtype="float64", na_value=math.nan)[sent] / 1e9
    a = asked if isinstance(asked, dict) else (vars(asked) if asked is not None else {})
    waits = wait[sent & ~np.isnan(wait)]
    return {
        "kind": a.get("kind"),
        "burstiness": a.get("burstiness"),
        "max_concurrency": a.get("max_concurrency"),
        "asked_rate_per_s": a.get("rate"),
        "intended_rate_per_s": _rate(intended[has] / 1000.0),
        "sent_rate_per_s": _rate(t0_s),
        "arrivals": int(has.sum()),
        "sent": int(sent.sum()),
        "unsent_at_stop": int((has & ~sent).sum()),
        "intended_cov": cov(intended[has]),
        "send_lag_ms": stats(lag[sent]),
        "queue_wait_ms": {**stats(waits), "waited": int((waits > 0).sum())},
    }


def render(block: dict[str, Any] | None) -> list[str]:
    """The text report's lines for an ``arrivals`` block (none for a closed-loop run)."""
    if not block:
        return []

    def n(v: float | None, unit: str = "", digits: int = 1) -> str:
        return "n/a" if v is None else f"{v:,.{digits}f}{unit}"

    asked = n(block["asked_rate_per_s"], " req/s", 2) if block["asked_rate_per_s"] else "by stage (rate shape)"
    kind = block["kind"] + (f", burstiness {block['burstiness']:g}" if block["kind"] == "gamma" else "")
    cap = f", max concurrency {block['max_concurrency']}" if block["max_concurrency"] else ""
    lag, wait = block["send_lag_ms"], block["queue_wait_ms"]
    lines = [
        f"- Arrivals ({kind}{cap}): asked {asked}, intended {n(block['intended_rate_per_s'], ' req/s', 2)}, "
        f"sent {n(block['sent_rate_per_s'], ' req/s', 2)}; {block['sent']} sent"
        + (f", {block['unsent_at_stop']} still queued at stop" if block["unsent_at_stop"] else ""),
        f"- Send lag (actual - intended send): p50 {n(lag['p50'], ' ms', 2)}, p90 {n(lag['p90'], ' ms', 2)}, "
        f"p99 {n(lag['p99'], ' ms', 2)}, max {n(lag['max'], ' ms', 2)}",
    ]
    if block["max_concurrency"]:
        lines.append(
            f"- Queue wait (for a concurrency slot): p50 {n(wait['p50'], ' ms')}, p90 {n(wait['p90'], ' ms')}, "
            f"p99 {n(wait['p99'], ' ms')}; {wait['waited']} of {block['sent']} requests waited"
        )
    return lines
