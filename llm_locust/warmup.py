"""Warm-up: the first requests of a run, sent and logged but left out of every statistic (``--warmup``).

``--warmup N`` (a request count) or ``--warmup 30s`` (a duration with its unit: ``ms``, ``s``, ``m`` or ``h``;
``0`` for none). :func:`parse` checks the value (a :class:`ValueError` naming the problem and the fix).

Which requests are warm-up is decided when a request is sent, by the process that sends it (:class:`Warmup`,
one per run, on :attr:`llm_locust.run.LLMRun.warmup`), and booked in the record's ``warmup`` field:

* a count: the first N requests this load-generator process sends (like ``--max-requests``, per process: with W
  workers, W × N requests are warm-up; ``--max-requests`` counts them too);
* a duration: every request sent within that long of the first request this process sent (counted from the
  first request rather than the test start, so that a slow spawn does not eat the warm-up; on a master/worker run
  each worker counts from its own first request, which the master's spawn message starts at about the same
  moment).

Warm-up records go to ``requests.csv`` (``warmup`` = ``True``) and fire their Locust request event like every
request, so Locust's own request statistics include them; everything llm-locust computes leaves them out: the
summaries (:func:`llm_locust.report.summarize` drops them with :func:`split`), the ``--slo`` verdict, the HTML
report and the live view (:func:`measured`), the capacity search. Run-level throughput is over the *measured
window*: from the first measured request's send to the last measured request's end (:func:`window`, in
summary.json's ``run.window``).
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

_SPEC = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*$", re.IGNORECASE)
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
FIX = "give a request count (--warmup 100) or a duration with its unit (--warmup 30s, 500ms, 2m)"


@dataclass(frozen=True)
class Spec:
    """What ``--warmup`` asks for: ``requests`` or ``seconds`` (both 0: no warm-up)."""

    requests: int = 0
    seconds: float = 0.0

    def __bool__(self) -> bool:
        return bool(self.requests or self.seconds)

    def describe(self) -> str:
        if self.requests:
            return f"{self.requests} request(s)"
        return f"{self.seconds:g} s" if self.seconds else "none"


def parse(value: Any) -> Spec:
    """The ``--warmup`` value as a :class:`Spec`; ``None`` or ``""`` (an empty web-UI field) is no warm-up."""
    if value is None or value == "":
        return Spec()
    if isinstance(value, Spec):
        return value
    m = _SPEC.match(str(value))
    if not m:
        raise ValueError(f"--warmup {value!r} is neither a request count nor a duration: {FIX}")
    number, unit = m.group(1), m.group(2)
    if unit is None:
        if "." in number:
            raise ValueError(f"--warmup {value!r}: a request count is a whole number; for a duration add its unit "
                             "(--warmup 1.5s)")
        return Spec(requests=int(number))
    seconds = float(number) * _UNIT_S[unit.lower()]
    if not math.isfinite(seconds):
        raise ValueError(f"--warmup {value!r} is too long: {FIX}")
    return Spec(seconds=seconds)


class Warmup:
    """One process's warm-up of one run: :meth:`take` when a request is sent says whether it is warm-up."""

    def __init__(self, spec: Spec | None = None) -> None:
        self.spec = spec or Spec()
        self._left = self.spec.requests
        self._until_ns: int | None = None  # a duration's end, set by the first request
        self.taken = 0  # warm-up requests sent so far

    def take(self) -> bool:
        """Whether the request being sent now is a warm-up request (counts it if so)."""
        if self._left > 0:
            self._left -= 1
        elif self.spec.seconds:
            now = time.perf_counter_ns()
            if self._until_ns is None:
                self._until_ns = now + int(self.spec.seconds * 1e9)
            if now >= self._until_ns:
                return False
        else:
            return False
        self.taken += 1
        return True


# ---------------------------------------------------------------- the reports' side


def split(df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """(the measured rows of a record frame, the number of warm-up rows); a frame without ``warmup`` is all measured.
    Row labels are kept, so columns computed over the whole frame (e.g. offsets into the gaps) stay right."""
    if "warmup" not in df.columns or not len(df):
        return df, 0
    warm = df["warmup"].fillna(False).astype(bool).to_numpy()
    n = int(warm.sum())
    return (df[~warm], n) if n else (df, 0)


def measured(df: pd.DataFrame | None, itl: np.ndarray | None) -> tuple[pd.DataFrame | None, np.ndarray | None]:
    """The run's frame (with ``itl_n``) and gaps without the warm-up rows and their gaps, renumbered from 0: what
    :mod:`llm_locust.slo` and :mod:`llm_locust.htmlreport` read."""
    if df is None or "warmup" not in df.columns:
        return df, itl
    import numpy as np

    warm = df["warmup"].fillna(False).astype(bool).to_numpy()
    if not warm.any():
        return df, itl
    if itl is not None and "itl_n" in df.columns:
        n = df["itl_n"].fillna(0).to_numpy(dtype=np.int64)
        itl = itl[np.repeat(~warm, n)]
    return df[~warm].reset_index(drop=True), itl


def window(df: pd.DataFrame, duration_s: float | None, warmup_requests: int) -> dict[str, Any]:
    """summary.json's ``run.window``: the measured window's ``start`` (UTC, the first measured request's send),
    ``end``, ``duration_s`` (what the run-level throughput divides by) and ``warmup_requests`` left out."""
    import pandas as pd

    start = end = None
    if len(df) and duration_s is not None:
        stamps = pd.to_datetime(df["timestamp"], utc=True, format="ISO8601", errors="coerce").dropna()
        if len(stamps):
            first = stamps.min()
            start = first.isoformat(timespec="milliseconds")
            end = (first + pd.Timedelta(seconds=duration_s)).isoformat(timespec="milliseconds")
    return {"start": start, "end": end, "duration_s": duration_s, "warmup_requests": warmup_requests}


def render(summary: dict[str, Any]) -> str | None:
    """One line stating the measured window when the run had a warm-up, else None."""
    w = summary["run"].get("window") or {}
    if not w.get("warmup_requests"):
        return None
    duration = w.get("duration_s")
    span = f"{w['start']} to {w['end']} ({duration:.1f} s)" if duration is not None else "no measured request"
    return (f"Measured window: {span}; {w['warmup_requests']} warm-up request(s) left out of every figure "
            "(they are in requests.csv, warmup = True)")
