"""The send log: one JSON line per generation request with the real monotonic times of what was sent.

All ``t_*_ns`` values are ``time.perf_counter_ns()`` readings (CLOCK_MONOTONIC on Linux, comparable
across processes on one machine). A token's send time is taken just before the ``sendall`` of the
chunk that carries it; ``token_send_ns`` holds one entry per token-bearing chunk (reasoning chunks
included). A non-streamed reply is one token-bearing "chunk": its body. Lines are written when the
request ends (append + flush), so they appear in completion order, not arrival order.

Fields: ``request_id`` (the ``X-Request-Id`` header, else ``"mock-<seq>"``), ``seq``, ``path``,
``protocol`` (the wire protocol that answered: ``openai-chat``, ``anthropic``, ``gemini``, ``workers-ai``,
...; ``cf-universal`` if the gateway's universal endpoint answered by itself), ``step`` (the universal
endpoint's step that answered, else null), ``model``, ``stream``, ``fault`` (applied fault kind or
null), ``status`` (HTTP status sent; null for ``hang``), ``t_recv_ns`` (request fully read), ``t_arrive_ns``
(when its last bytes arrived on the socket: the kernel's receive stamp, Linux; null elsewhere), ``t_headers_ns``,
``t_first_token_ns``, ``t_last_token_ns``, ``t_end_ns``, ``token_send_ns``, ``tokens``
(output tokens sent, reasoning included), ``reasoning_tokens``, ``prompt_tokens``, ``chunks``
(token-bearing chunks sent), ``keepalives`` (SSE keep-alive comments sent), ``finish_reason``,
``aborted`` (the client went away), ``reasoning_asked`` (the request's reasoning switch as the mock read it, e.g.
``reasoning_effort:high``, ``thinking:6``, ``thinkingBudget:-1,includeThoughts``, ``think:true``; null: none).
``length_asked`` (the request's ``ignore_eos``/``min_tokens`` as the mock read them, e.g.
``ignore_eos,min_tokens:40``; null: neither), ``cached_tokens`` (the prompt prefix seen before, with
``--prefix-cache-blocks``; else null), ``t_admitted_ns`` (with ``--max-batch``: when the request left the queue).
Reasoning the provider does not stream (Gemini without ``includeThoughts``) counts in ``reasoning_tokens`` but
has no entry in ``token_send_ns``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any, TextIO


@dataclass(slots=True)
class SendRecord:
    """What was sent for one generation request, and when."""

    request_id: str
    seq: int
    path: str
    t_recv_ns: int
    protocol: str | None = None
    step: int | None = None
    model: str | None = None
    stream: bool | None = None
    fault: str | None = None
    status: int | None = None
    t_headers_ns: int | None = None
    t_first_token_ns: int | None = None
    t_last_token_ns: int | None = None
    t_end_ns: int | None = None
    token_send_ns: list[int] = field(default_factory=list)
    tokens: int = 0
    reasoning_tokens: int = 0
    prompt_tokens: int = 0
    chunks: int = 0
    keepalives: int = 0
    finish_reason: str | None = None
    aborted: bool = False
    reasoning_asked: str | None = None
    length_asked: str | None = None  # the request's ignore_eos / min_tokens as read ("ignore_eos,min_tokens:40")
    cached_tokens: int | None = None  # the prompt prefix seen before (--prefix-cache-blocks), else null
    t_admitted_ns: int | None = None  # --max-batch: when the request left the queue (its schedule starts then)
    t_arrive_ns: int | None = None  # with --send-log: when the request's last bytes arrived (the kernel's stamp)
    keep_times: bool = True  # record every send time in token_send_ns (not written to the log)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "keep_times"}


class SendLog:
    """Appends :class:`SendRecord` lines to a file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._file: TextIO | None = open(path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the server's life

    def write(self, record: SendRecord) -> None:
        if self._file is None:
            return
        self._file.write(json.dumps(record.to_dict(), separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
