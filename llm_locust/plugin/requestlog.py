"""One log line per LLM request at DEBUG (``locust --loglevel DEBUG``, ``llm-benchmark --verbose``).

Installed at ``init`` only when the ``llm_locust.requests`` logger is enabled for DEBUG, so a run at INFO pays
nothing per request. The line is written by the request event's listener, after the stream has ended and been
booked (never while a stream is read); its error message is the record's, keys already redacted.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger("llm_locust.requests")


def install(environment: Any) -> None:
    """Log every request of this process at DEBUG, if DEBUG is on."""
    if logger.isEnabledFor(logging.DEBUG):
        environment.events.request.add_listener(log_request)


def log_request(context: dict[str, Any] | None = None, **_: Any) -> None:
    rec = (context or {}).get("llm")
    if rec is None:
        return
    logger.debug(
        "request %s target=%s prompt=%s status=%s ttft_ms=%s e2e_ms=%s input_tokens=%s output_tokens=%s "
        "reasoning_tokens=%s tokens_per_s=%s%s",
        rec.get("request_id"), rec.get("target"), rec.get("prompt"), rec.get("status"), _r(rec.get("ttft_ms")),
        _r(rec.get("e2e_ms")), rec.get("input_tokens"), rec.get("output_tokens"), rec.get("reasoning_tokens"),
        _r(rec.get("output_tokens_per_s")),
        f" error={rec.get('error_class')}: {rec.get('error')}" if rec.get("error_class") else "",
    )


def _r(value: Any) -> Any:
    return round(value, 1) if isinstance(value, float) else value
