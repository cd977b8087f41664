"""Metric definitions: the one place that says what every number in a report means.

Per request, with ``t0`` = ``time.perf_counter_ns()`` read immediately before the request is handed to the HTTP
client, and every stream line stamped with ``perf_counter_ns()`` the moment the line reader returns it (before
any JSON parsing). A *token event* is a stream event carrying at least one generated token: non-empty text or
reasoning. Role-only chunks, empty deltas, keep-alive comments, usage-only chunks and end markers are not.

* ``ttft_ms``   = t(first token event) - t0                    (text or reasoning; vLLM/AIPerf "TTFT")
* ``ttft_text_ms`` = t(first event with visible text) - t0     (AIPerf "TTFO", "first visible token")
* ``e2e_ms``    = t(last token event) - t0                     (vLLM "E2EL", AIPerf "request latency"; the
                  trailing usage chunk and ``[DONE]`` are excluded)
* ``elapsed_ms`` = time until the response was completely read or failed (what the wall clock saw)
* ``tpot_ms``   = (e2e - ttft) / (N_out - 1), for N_out >= 2  (vLLM/SGLang "TPOT", AIPerf "ITL")
* ``itl`` samples = the gaps between consecutive token events, one sample per gap, pooled over requests
                  (vLLM/SGLang "ITL", AIPerf "ICL"). Rule ``usage-split``: when the server sends cumulative
                  usage on every chunk, a gap before an event carrying k tokens counts as k samples of gap/k.
                  Rule ``per-event``: otherwise one sample per gap. The rule applied is recorded per request.
                  Tokens bundled in the *first* event have no gap of their own (their wait is in TTFT), so in
                  both rules the samples of a request sum to e2e - ttft.
* ``output_tokens_per_s`` = N_out / e2e                        (seed 000's "tokens per second")
* ``decode_tokens_per_s`` = (N_out - 1) / (e2e - ttft) = 1 / TPOT (per-user decode speed)
* ``N_out``, ``N_in``: server usage when the server reports it, else the local tiktoken count of the streamed
  text (of the prompt), else a character estimate; the source is recorded next to every count.

Over a run (see ``summarize``): latency statistics cover successful requests only, each request weighted
equally; ITL statistics pool all gaps; percentiles are numpy's linear interpolation over the exact per-request
values (never Locust's rounded buckets). ``duration_s`` = last request end - first request start; whole-run
``requests_per_s`` = successful requests / duration; whole-run ``output_tokens_per_s`` = sum N_out (successful)
/ duration.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PERCENTILES = (50, 90, 95, 99)
STAT_KEYS = ("mean", "min", "max", "p50", "p90", "p95", "p99")

ITL_PER_EVENT = "per-event"
ITL_USAGE_SPLIT = "usage-split"
#: token events beyond which the gaps are taken by numpy (below it, numpy's calls cost more than a comprehension)
_NUMPY_FROM = 64


class StreamClock:
    """Collects the token-event times of one streamed response (the per-chunk path: appends only)."""

    __slots__ = ("token_ns", "cumulative", "first_text_ns", "text", "reasoning", "usage", "_cum_ok")

    def __init__(self) -> None:
        self.token_ns: list[int] = []
        self.cumulative: list[int] = []
        self.first_text_ns: int | None = None
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.usage = None
        self._cum_ok = True

    def add(self, t_ns: int, text: str, reasoning: str, usage) -> None:
        if usage is not None:
            # usage is cumulative where it repeats (Anthropic's message_delta, vLLM's continuous usage): keep the
            # latest value of each field, never sum; a field a later chunk leaves out keeps its earlier value
            self.usage = usage if self.usage is None else self.usage.merged(usage)
        if not (text or reasoning):
            return
        self.token_ns.append(t_ns)
        if text:
            self.text.append(text)
            if self.first_text_ns is None:
                self.first_text_ns = t_ns
        if reasoning:
            self.reasoning.append(reasoning)
        if self._cum_ok:
            out = usage.output_tokens if usage is not None else None
            if out is None:
                self._cum_ok = False
            else:
                self.cumulative.append(out)

    @property
    def cumulative_usage(self) -> bool:
        """True when every token event carried the server's cumulative output-token count."""
        return self._cum_ok and len(self.cumulative) == len(self.token_ns) > 0


@dataclass(slots=True)
class Timing:
    ttft_ms: float | None
    ttft_text_ms: float | None
    e2e_ms: float | None
    tpot_ms: float | None
    itl_us: array  # pooled per-gap samples of this request, integer microseconds
    itl_rule: str
    token_events: int
    output_tokens_per_s: float | None
    decode_tokens_per_s: float | None


def timing(t0_ns: int, clock: StreamClock, n_out: int | None) -> Timing:
    """Apply the definitions above to one request."""
    ts = clock.token_ns
    itl = array("q")
    if not ts:
        return Timing(None, None, None, None, itl, ITL_PER_EVENT, 0, None, None)
    ttft = (ts[0] - t0_ns) / 1e6
    e2e = (ts[-1] - t0_ns) / 1e6
    ttft_text = (clock.first_text_ns - t0_ns) / 1e6 if clock.first_text_ns is not None else None
    rule = ITL_PER_EVENT
    if clock.cumulative_usage:
        rule = ITL_USAGE_SPLIT
        cum = clock.cumulative
        for i in range(1, len(ts)):
            gap_ns = ts[i] - ts[i - 1]
            k = cum[i] - cum[i - 1]
            if k <= 1:
                itl.append(gap_ns // 1000)
            else:
                itl.extend([gap_ns // (1000 * k)] * k)
    elif len(ts) > _NUMPY_FROM:  # (ts[i] - ts[i - 1]) // 1000 for every i >= 1, by numpy (a loop: 0.15-0.3 us a gap)
        itl.frombytes((np.diff(np.array(ts, dtype=np.int64)) // 1000).tobytes())
    else:
        itl.fromlist([(b - a) // 1000 for a, b in zip(ts, ts[1:], strict=False)])
    tpot = decode = None
    if n_out is not None and n_out >= 2:
        tpot = (e2e - ttft) / (n_out - 1)
        decode = 1000.0 / tpot if tpot > 0 else None
    tps = n_out / (e2e / 1000.0) if n_out and e2e > 0 else None
    return Timing(ttft, ttft_text, e2e, tpot, itl, rule, len(ts), tps, decode)


def stats(values: Sequence[float]) -> dict[str, float | None]:
    """mean, min, max and p50/p90/p95/p99 (linear interpolation) of ``values``; ``None`` each if empty."""
    arr = np.asarray(values, dtype="float64")
    if arr.size == 0:
        return dict.fromkeys(STAT_KEYS)
    pct = np.percentile(arr, PERCENTILES)
    out: dict[str, float | None] = {"mean": float(arr.mean()), "min": float(arr.min()), "max": float(arr.max())}
    for p, v in zip(PERCENTILES, pct, strict=True):
        out[f"p{p}"] = float(v)
    return out
