"""The shape every wire-protocol module follows (``openai.py``, ``ollama.py``, ...).

A wire protocol is a :class:`WireProtocol` object, one per route, that

* parses the JSON request body into a :class:`GenRequest` (model, stream?, output limit, prompt size),
* makes a :class:`StreamEncoder` that turns the events of one streamed reply (opening, token chunks,
  faults, closing) into the bytes of one HTTP chunk each (an SSE event, an NDJSON line, ...),
* renders the non-streamed reply and error bodies.

The protocol-independent driver (``generate.py``) decides what to send and when; a protocol only
decides how it looks on the wire. Adding a protocol (Anthropic, Gemini, ...) = one module with
``WireProtocol`` subclasses plus one line per route in ``server.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


class RequestError(Exception):
    """The request body is unacceptable: answer 400 with ``message`` in the protocol's error shape."""


@dataclass(slots=True)
class GenRequest:
    """What the driver needs to know about one generation request."""

    model: str
    stream: bool
    limit: int | None  # the request's cap on output tokens, if any
    prompt_tokens: int  # whitespace-separated words of the prompt
    include_usage: bool = False  # send a final usage chunk (OpenAI stream_options.include_usage)
    continuous_usage: bool = False  # usage in every chunk (vLLM stream_options.continuous_usage_stats)


@dataclass(slots=True)
class Reply:
    """Facts about one reply that encoders may show: ids, counts and real send times (ns)."""

    seq: int
    request_id: str
    created: int  # unix seconds
    prompt_tokens: int
    t_recv_ns: int
    t_first_token_ns: int | None = None
    t_last_token_ns: int | None = None


class StreamEncoder:
    """Turns the events of one streamed reply into wire bytes; each return value is one HTTP chunk."""

    #: Sent every ``keepalive_ms`` while waiting for the first token; None = the format has no comments.
    keepalive: bytes | None = None

    def opening(self) -> list[bytes]:
        """Sent right after the response head (e.g. OpenAI's role-only chunk). Not tokens."""
        return []

    def tokens(self, text: str, reasoning: bool, completion_tokens: int, reasoning_tokens: int) -> bytes:
        """A chunk carrying ``text``; the counts are cumulative, this chunk included."""
        raise NotImplementedError

    def malformed(self) -> bytes:
        """A broken event (fault ``malformed``)."""
        raise NotImplementedError

    def error(self, message: str) -> bytes:
        """An in-stream error event (fault ``midstream-error``)."""
        raise NotImplementedError

    def closing(self, finish_reason: str, completion_tokens: int, reasoning_tokens: int) -> list[bytes]:
        """The events that end a normal stream (finish reason, usage, ``[DONE]``, ...)."""
        raise NotImplementedError


class WireProtocol:
    """One route's wire format. Subclasses set the class attributes and implement the methods."""

    name: str = ""
    stream_content_type: str = "text/event-stream"
    supports_reasoning: bool = True
    stream_by_default: bool = False

    def parse(self, body: dict[str, Any]) -> GenRequest:
        raise NotImplementedError

    def encoder(self, req: GenRequest, reply: Reply) -> StreamEncoder:
        raise NotImplementedError

    def full_response(
        self, req: GenRequest, reply: Reply, text: str, reasoning_text: str, finish_reason: str,
        completion_tokens: int, reasoning_tokens: int,
    ) -> bytes:  # fmt: skip
        """The body of a non-streamed reply."""
        raise NotImplementedError

    def error_body(self, status: int, model: str, message: str | None = None, code: str | None = None) -> bytes:
        """An error body for ``status``; ``message=None`` means the protocol's usual text (and code) for it."""
        raise NotImplementedError


def dumps(obj: Any) -> str:
    """Compact JSON, as servers send it."""
    return json.dumps(obj, separators=(",", ":"))


def json_str(text: str) -> str:
    """``text`` as a JSON string literal; fast for plain text (like the mock's words)."""
    if text.isprintable() and '"' not in text and "\\" not in text:
        return '"' + text + '"'
    return json.dumps(text, ensure_ascii=False)


def int_or_none(value: Any, field: str) -> int | None:
    """``value`` as an int (None stays None); RequestError if it is not an integer."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise RequestError(f"{field} must be an integer")
    return int(value)
