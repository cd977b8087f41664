"""The shape every wire-protocol module follows (``openai.py``, ``ollama.py``, ...).

A wire protocol is a :class:`WireProtocol` object, one per route, that

* parses the JSON request body (and the route's path and query parameters, e.g. a model named in the path)
  into a :class:`GenRequest` (model, stream?, output limit, prompt size),
* makes a :class:`StreamEncoder` that turns the events of one streamed reply (opening, token chunks,
  faults, closing) into the bytes of one HTTP chunk each (an SSE event, an NDJSON line, ...),
* renders the non-streamed reply and the error responses (status, body and headers: some providers answer a
  given fault with another status or put the retry hint in the body instead of ``Retry-After``).

The protocol-independent driver (``generate.py``) decides what to send and when; a protocol only
decides how it looks on the wire. Adding a protocol = one module with ``WireProtocol`` subclasses plus
one line per route in ``server.py`` (``ROUTES``, or ``GATEWAY_ROUTES`` for its Cloudflare AI Gateway path).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: ``GenRequest.reasoning`` of a request that asks for reasoning without naming a budget
NO_BUDGET = 1 << 30

#: SSE bytes the OpenAI-style streams share (OpenAI, Workers AI, Gemini): the end marker, the comment sent while
#: waiting for the first token, and the ``malformed`` fault's broken event
SSE_DONE = b"data: [DONE]\n\n"
SSE_KEEPALIVE = b": keep-alive\n\n"
SSE_MALFORMED = b"data: {not json\n\n"


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
    usage: bool = True  # False (--no-usage): send no token counts at all, in any form
    #: the request's reasoning switch: None = it names none, 0 = off, N = on with at most N tokens (NO_BUDGET)
    reasoning: int | None = None
    reasoning_asked: str | None = None  # the switch as the request put it, for the send log ("thinking:6" ...)
    hide_reasoning: bool = False  # reasoning happens but is not streamed (Gemini without includeThoughts)
    ignore_eos: bool = False  # the request's ignore_eos: no early end, the reply runs to its limit (vLLM, SGLang)
    min_tokens: int | None = None  # the request's min_tokens: no end before that many tokens (vLLM, SGLang)


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
    tokens: int = 0  # output tokens the reply will carry if nothing goes wrong (reasoning included)
    reasoning_tokens: int = 0  # of which reasoning tokens (they come first)
    finish_reason: str = "stop"  # "stop", or "length" if the request's limit cuts the reply
    cached_tokens: int | None = None  # prompt tokens of a prefix seen before (--prefix-cache-blocks), else None


class StreamEncoder:
    """Turns the events of one streamed reply into wire bytes; each return value is one HTTP chunk."""

    #: Sent every ``keepalive_ms`` while waiting for the first token; None = the format has no comments.
    keepalive: bytes | None = None

    def opening(self) -> list[bytes]:
        """Sent right after the response head (e.g. OpenAI's role-only chunk). Not tokens."""
        return []

    def tokens(self, text: str, reasoning: bool, completion_tokens: int, reasoning_tokens: int) -> bytes:
        """A chunk carrying ``text``; the counts are cumulative, this chunk included. ``b""``: nothing is sent
        (reasoning the provider does not stream), the tokens still count."""
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
    #: HTTP status of a non-streamed reply hit by the ``midstream-error`` fault
    midstream_status: int = 500

    def parse(self, body: dict[str, Any], params: Mapping[str, str]) -> GenRequest:
        """``params``: the route's path parameters (``model``, ...) and the query parameters."""
        raise NotImplementedError

    def model_of(self, body: Any, params: Mapping[str, str]) -> str:
        """The model a request names (before it is parsed, for error bodies); from the body by default."""
        model = body.get("model") if isinstance(body, dict) else None
        return str(model or params.get("model") or "mock-model")

    def encoder(self, req: GenRequest, reply: Reply) -> StreamEncoder:
        raise NotImplementedError

    def full_response(
        self, req: GenRequest, reply: Reply, text: str, reasoning_text: str, finish_reason: str,
        completion_tokens: int, reasoning_tokens: int,
    ) -> bytes:
        """The body of a non-streamed reply."""
        raise NotImplementedError

    def error_body(
        self, status: int, model: str, message: str | None = None, code: str | None = None, seq: int = 0,
        retry_after: int | None = None,
    ) -> bytes:
        """An error body for ``status``; ``message=None`` means the protocol's usual text (and code) for it.

        ``seq`` numbers the request (for request ids in the body); ``retry_after`` is the retry hint in seconds."""
        raise NotImplementedError

    def error_response(
        self, status: int, model: str, message: str | None = None, code: str | None = None, seq: int = 0,
        retry_after: int | None = None,
    ) -> tuple[int, bytes, list[tuple[str, str]]]:
        """(HTTP status, body, extra headers) of an error ``status``: by default that status, :meth:`error_body`
        and, for 429, a ``Retry-After`` header. Protocols whose provider answers otherwise override it."""
        headers = [("Retry-After", str(retry_after))] if status == 429 and retry_after is not None else []
        return status, self.error_body(status, model, message, code, seq, retry_after), headers


def dumps(obj: Any) -> str:
    """Compact JSON, as servers send it."""
    return json.dumps(obj, separators=(",", ":"))


def json_str(text: str) -> str:
    """``text`` as a JSON string literal; fast for plain text (like the mock's words)."""
    if text.isprintable() and '"' not in text and "\\" not in text:
        return '"' + text + '"'
    return json.dumps(text, ensure_ascii=False)


def content_words(content: Any) -> int:
    """Prompt words of a message's content: a string, or a list of parts/blocks with ``text`` (OpenAI, Anthropic)."""
    if isinstance(content, str):
        return len(content.split())
    if isinstance(content, list):
        return sum(len(str(p.get("text") or "").split()) for p in content if isinstance(p, dict))
    return 0


def messages_of(body: dict[str, Any]) -> list[Any]:
    """A chat request's ``messages`` list; RequestError if it is not a list."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise RequestError("messages must be a list")
    return messages


def assistant_message(text: str, reasoning_key: str, reasoning_text: str, reasoning_tokens: int) -> dict[str, Any]:
    """A non-streamed chat reply's message; the reasoning under ``reasoning_key`` when there was any."""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if reasoning_tokens:
        message[reasoning_key] = reasoning_text
    return message


def int_or_none(value: Any, field: str) -> int | None:
    """``value`` as an int (None stays None); RequestError if it is not an integer."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise RequestError(f"{field} must be an integer")
    return int(value)
