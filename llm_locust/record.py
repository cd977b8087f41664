"""The per-request record: one flat dict per LLM call, the unit every report is computed from.

A record travels in the Locust request event's ``context["llm"]``, is written as one row of ``requests.csv`` the
moment the request ends, and is kept in memory for the run's summary. Fields are plain JSON/msgpack values,
except ``itl_us`` (the bytes of an ``array("q")`` of this request's inter-token gaps in microseconds), which
never goes to CSV. Only atomic values, so CPython's garbage collector does not track the records.
"""

from __future__ import annotations

from typing import Any

#: columns of requests.csv, in order (docs/reports.md describes each)
COLUMNS = (
    "timestamp",
    "request_id",
    "user",
    "target",
    "api",
    "host",
    "model",
    "prompt",
    "status",
    "error_class",
    "error",
    "http_status",
    "retry_after_s",
    "ttft_ms",
    "ttft_text_ms",
    "e2e_ms",
    "elapsed_ms",
    "tpot_ms",
    "itl_mean_ms",
    "itl_max_ms",
    "itl_rule",
    "token_events",
    "output_tokens_per_s",
    "decode_tokens_per_s",
    "input_tokens",
    "input_tokens_source",
    "input_tokens_server",
    "input_tokens_local",
    "output_tokens",
    "output_tokens_source",
    "output_tokens_server",
    "output_tokens_local",
    "local_tokens_source",
    "reasoning_tokens",
    "cached_tokens",
    "total_tokens",
    "cost_usd",
    "cost_source",
    "finish_reason",
    "gateway_cache",
    "gateway_step",
    "gateway_log_id",
    "t0_ns",
)

STATUS_OK = "ok"
STATUS_FAILED = "failed"
#: in flight when the run stopped: kept in the books, left out of latency statistics and of Locust's stats
STATUS_CANCELLED = "cancelled"


def csv_row(record: dict[str, Any]) -> list[Any]:
    return ["" if (v := record.get(c)) is None else v for c in COLUMNS]
