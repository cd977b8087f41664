"""The live time series of a run, sampled every ``SAMPLE_S`` seconds, and the live log line of headless runs.

:func:`start` spawns a greenlet that feeds :meth:`LiveView.sample <llm_locust.live.LiveView.sample>` (the web UI's
charts read it) and, when ``log`` is set, logs one line every :data:`LOG_EVERY` samples::

    LLM live: 120 requests (0 failed), last 10s: TTFT p50 12.1 ms, p95 20.3 ms, TPOT p50 1.1 ms, 950.2 output tokens/s

Kill the greenlet it returns at test stop.
"""

from __future__ import annotations

import logging
from typing import Any

import gevent

from ..live import SAMPLE_S, WINDOW_S
from ..run import LLMRun

logger = logging.getLogger("llm_locust")

#: in headless runs, a live line every LOG_EVERY samples (SAMPLE_S seconds each)
LOG_EVERY = 5


def start(run: LLMRun, runner: Any, log: bool) -> gevent.Greenlet:
    """The sampling greenlet of ``run`` (the user count read from ``runner``)."""
    return gevent.spawn(_sample, run, runner, log)


def _sample(run: LLMRun, runner: Any, log: bool) -> None:
    n = 0
    while True:
        gevent.sleep(SAMPLE_S)
        point = run.live.sample(getattr(runner, "user_count", 0) or 0)
        n += 1
        if log and n % LOG_EVERY == 0:
            total = run.live.total
            logger.info(
                "LLM live: %d requests (%d failed), last %gs: TTFT p50 %s, p95 %s, TPOT p50 %s, %.1f output tokens/s",
                total.requests, total.failures, WINDOW_S, _ms(point["ttft_p50_ms"]), _ms(point["ttft_p95_ms"]),
                _ms(point["tpot_p50_ms"]), point["output_tokens_per_s"],
            )


def _ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f} ms"
