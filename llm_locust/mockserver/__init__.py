"""Embedded mock LLM server: a fast, deterministic fake inference endpoint for load tests and benchmarks.

It speaks every wire protocol the client speaks, each from its own module:

* OpenAI chat and legacy completions (``/v1/chat/completions``, ``/v1/completions``; SSE + ``[DONE]``);
* Ollama native (``/api/chat``, ``/api/generate``; NDJSON);
* Anthropic Messages (``/v1/messages``; named SSE events, thinking blocks, ``error`` events);
* Gemini (``/v1beta/models/{model}:streamGenerateContent?alt=sse``, ``/v1/...`` too) and Vertex AI
  (``/v1/projects/{p}/locations/{l}/publishers/google/models/{model}:streamGenerateContent?alt=sse``);
  data-only SSE with ``thought`` parts and ``usageMetadata``, no end marker;
* Cloudflare Workers AI native (``/client/v4/accounts/{account}/ai/run/{model...}``; ``{"response"}`` SSE);
* a Cloudflare AI Gateway in front of them (``/v1/{account}/{gateway}/{provider}/...``, the ``compat``
  endpoint, and the universal endpoint ``/v1/{account}/{gateway}`` with fallback steps), with its
  ``cf-aig-*`` response headers and optional gateway token.

It sends N one-token words (so any tiktoken encoding counts exactly N), schedules every chunk against
absolute ``time.perf_counter_ns()`` targets (first token at ``t_recv + ttft``, then one token per ``itl``),
can inject faults (HTTP errors, mid-stream errors, malformed events, disconnects, hangs) on an exactly
predictable subset of requests, each in the answering protocol's own error shapes, can leave out every
token count (``--no-usage``) so a client's own counting is exercised, and can log the real monotonic send
time of every chunk (``--send-log``, naming the protocol and gateway step that answered) so a benchmark can
measure the client's measurement error. gevent only; one core serves well over 50,000 chunks/s.

Command line::

    python -m llm_locust.mockserver --ttft-ms 50 --itl-ms 10 --output-tokens 64
    python -m llm_locust.mockserver --port 8000 --fault status-429 --fault-every 10 --retry-after 1
    python -m llm_locust.mockserver --reasoning-tokens 16 --keepalive-ms 20 --send-log sends.jsonl
    python -m llm_locust.mockserver --fail-steps 1 --gateway-token t0k   # gateway fallback and auth
    python -m llm_locust.mockserver --no-usage --fault status-529        # no token counts; Anthropic overload
    python -m llm_locust.mockserver --help

Python, in a separate process (preferred for load tests: keeps the server off the load generator's CPU)::

    from llm_locust.mockserver import start_subprocess

    proc, url = start_subprocess(["--ttft-ms", "20", "--itl-ms", "5"], timeout=10)
    try:
        ...  # point the load test at url + "/v1/chat/completions"
    finally:
        proc.terminate()
        proc.wait()

Python, in this process::

    from llm_locust.mockserver import MockConfig, MockServer

    srv = MockServer(MockConfig(ttft_ms=20)).start()   # in this gevent hub, non-blocking
    print(srv.url, srv.stats)                          # "http://127.0.0.1:PORT", counters
    srv.stop()

    with MockServer(MockConfig(ttft_ms=20)).start(in_thread=True) as srv:  # own OS thread + hub,
        requests.post(srv.url + "/v1/chat/completions", json={...})        # for non-gevent callers

Modules: ``config`` (settings and CLI flags), ``http`` (HTTP/1.1 connection layer), ``script`` (the
words and the send schedule), ``wire`` (the shape of a wire protocol), ``openai``, ``ollama``,
``anthropic``, ``gemini`` (Gemini and Vertex) and ``workers_ai`` (one per wire protocol), ``gateway``
(the Cloudflare AI Gateway: headers, auth, universal endpoint), ``routing`` (route patterns),
``faults`` (fault kinds and counting), ``generate`` (drives one request), ``sendlog`` (the send log),
``server`` (the route tables ``ROUTES`` and ``GATEWAY_ROUTES``, and :class:`MockServer`), ``launch``
(:func:`start_subprocess`), ``__main__`` (the CLI).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llm_locust.mockserver.config import MockConfig
    from llm_locust.mockserver.launch import start_subprocess
    from llm_locust.mockserver.server import MockServer

__all__ = ["MockConfig", "MockServer", "start_subprocess"]

_EXPORTS = {
    "MockConfig": "llm_locust.mockserver.config",
    "MockServer": "llm_locust.mockserver.server",
    "start_subprocess": "llm_locust.mockserver.launch",
}


def __getattr__(name: str) -> Any:
    # Lazy, so that ``python -m llm_locust.mockserver`` can monkey-patch before gevent-using modules load.
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
