"""Anthropic Messages wire format: ``POST /v1/messages`` (named SSE events with ``"stream": true``).

A streamed reply is a sequence of named events (``event: <type>`` + ``data: <json>`` whose ``type`` repeats
the name), as the Anthropic API sends them:

1. right after the headers: ``message_start`` (the message with empty ``content`` and ``usage``:
   ``input_tokens`` = prompt words, no cache tokens, ``output_tokens: 1``), ``content_block_start`` of
   block 0 (``thinking`` if the reply has reasoning tokens, else ``text``), and one ``ping``;
2. reasoning tokens as ``content_block_delta`` / ``thinking_delta`` in block 0; with the first text token
   come a ``signature_delta`` and ``content_block_stop`` for block 0, then ``content_block_start`` of the
   ``text`` block 1;
3. text tokens as ``content_block_delta`` / ``text_delta``;
4. ``content_block_stop``, ``message_delta`` (``stop_reason`` ``end_turn`` or ``max_tokens`` and the
   cumulative ``usage.output_tokens``, reasoning tokens included), ``message_stop``.

``max_tokens`` is required (400 ``invalid_request_error`` without it), as is ``messages``; the prompt is
counted over ``system`` and the messages (string or text-block content). The keep-alive before the first
token is a ``ping`` event. ``--no-usage`` leaves ``usage`` out of ``message_start`` and ``message_delta``.
Reasoning on request: ``thinking: {type: enabled, budget_tokens: N}`` (``--thinking-tokens``, at most N; 400
``invalid_request_error`` unless ``max_tokens`` > N, as the API answers), ``{type: adaptive}``, ``{type: disabled}``.

Errors: ``{"type": "error", "error": {"type", "message"}, "request_id": "req_..."}`` with the type of the
status (401 ``authentication_error``, 403 ``permission_error``, 404 ``not_found_error``, 429
``rate_limit_error`` with ``retry-after``, 500 ``api_error``, 529 ``overloaded_error``, ...). A mid-stream
error is an ``error`` event with ``overloaded_error``; a non-streamed reply hit by it gets HTTP 529.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llm_locust.mockserver import script, wire
from llm_locust.mockserver.wire import GenRequest, Reply, RequestError, StreamEncoder, WireProtocol

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens"}
SIGNATURE = "EqQBCgIYAhIMbW9jay1zaWduYXR1cmU="  # an opaque signature of the thinking block (base64, like the real one)
PING = b'event: ping\ndata: {"type":"ping"}\n\n'
MALFORMED = b"event: content_block_delta\ndata: {not json\n\n"

#: status -> (error type, default message); "{model}" is filled in.
ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low to access the Anthropic API."),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "model: {model}"),
    405: ("invalid_request_error", "Method not allowed."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "This request would exceed the rate limit for your organization of 50 requests per "
                              "minute. Please reduce the request rate or try again later."),
    500: ("api_error", "Internal server error"),
    503: ("overloaded_error", "Overloaded"),
    504: ("timeout_error", "Request timed out"),
    529: ("overloaded_error", "Overloaded"),
}


def sse(event: str, data: str) -> bytes:
    """One named SSE event."""
    return f"event: {event}\ndata: {data}\n\n".encode()


class AnthropicEncoder(StreamEncoder):
    """Named SSE events of one streamed Messages reply, with the per-request JSON prefixes built once."""

    keepalive = PING

    def __init__(self, req: GenRequest, reply: Reply) -> None:
        self.req = req
        self.reply = reply
        self.thinking = reply.reasoning_tokens > 0  # block 0 is a thinking block still open
        self.text_index = 1 if self.thinking else 0
        self._thinking = (
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
            b'"delta":{"type":"thinking_delta","thinking":'
        )
        self._text = (
            'event: content_block_delta\ndata: {"type":"content_block_delta",'
            f'"index":{self.text_index},"delta":{{"type":"text_delta","text":'
        ).encode()
        self._end_thinking = sse(
            "content_block_delta",
            '{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"'
            + SIGNATURE + '"}}',
        ) + sse("content_block_stop", '{"type":"content_block_stop","index":0}')

    @staticmethod
    def _block_start(index: int, kind: str) -> bytes:
        block = '{"type":"thinking","thinking":""}' if kind == "thinking" else '{"type":"text","text":""}'
        return sse("content_block_start", f'{{"type":"content_block_start","index":{index},"content_block":{block}}}')

    def opening(self) -> list[bytes]:
        message: dict[str, Any] = {
            "id": f"msg_mock{self.reply.seq}", "type": "message", "role": "assistant", "model": self.req.model,
            "content": [], "stop_reason": None, "stop_sequence": None,
        }
        if self.req.usage:
            message["usage"] = {"input_tokens": self.reply.prompt_tokens, "cache_creation_input_tokens": 0,
                                "cache_read_input_tokens": 0, "output_tokens": 1}
        start = sse("message_start", wire.dumps({"type": "message_start", "message": message}))
        return [start, self._block_start(0, "thinking" if self.thinking else "text"), PING]

    def tokens(self, text: str, reasoning: bool, completion_tokens: int, reasoning_tokens: int) -> bytes:
        if reasoning:
            return self._thinking + wire.json_str(text).encode() + b"}}\n\n"
        if self.thinking:  # the first text token closes the thinking block and opens the text block
            self.thinking = False
            return b"".join((self._end_thinking, self._block_start(1, "text"), self._text, wire.json_str(text).encode(),
                             b"}}\n\n"))
        return self._text + wire.json_str(text).encode() + b"}}\n\n"

    def malformed(self) -> bytes:
        return MALFORMED

    def error(self, message: str) -> bytes:
        return sse("error", '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}')

    def closing(self, finish_reason: str, completion_tokens: int, reasoning_tokens: int) -> list[bytes]:
        if self.thinking:  # nothing but reasoning tokens
            self.thinking = False
            end = self._end_thinking
        else:
            end = sse("content_block_stop", f'{{"type":"content_block_stop","index":{self.text_index}}}')
        delta: dict[str, Any] = {
            "type": "message_delta", "delta": {"stop_reason": STOP_REASONS[finish_reason], "stop_sequence": None},
        }
        if self.req.usage:
            delta["usage"] = {"output_tokens": completion_tokens}
        return [end + sse("message_delta", wire.dumps(delta)), sse("message_stop", '{"type":"message_stop"}')]


class MockAnthropicMessages(WireProtocol):
    """``POST /v1/messages``."""

    name = "anthropic"
    midstream_status = 529

    def parse(self, body: dict[str, Any], params: Mapping[str, str]) -> GenRequest:
        if not body.get("model"):
            raise RequestError("model: Field required")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise RequestError("messages: Field required")
        limit = wire.int_or_none(body.get("max_tokens"), "max_tokens")
        if limit is None:
            raise RequestError("max_tokens: Field required")
        if limit < 1:
            raise RequestError("max_tokens: Input should be greater than or equal to 1")
        system = body.get("system")
        prompt = script.count_words(system) if isinstance(system, str) else wire.content_words(system)
        prompt += sum(wire.content_words(m.get("content")) for m in messages if isinstance(m, dict))
        greq = GenRequest(str(body["model"]), bool(body.get("stream", False)), limit, prompt)
        thinking = body.get("thinking")
        if thinking is None:
            return greq
        kind = thinking.get("type") if isinstance(thinking, dict) else None
        if kind == "enabled":
            budget = wire.int_or_none(thinking.get("budget_tokens"), "thinking.budget_tokens")
            if budget is None or budget < 1:
                raise RequestError("thinking.enabled.budget_tokens: Field required")
            if limit <= budget:
                raise RequestError("`max_tokens` must be greater than `thinking.budget_tokens`")
            greq.reasoning, greq.reasoning_asked = budget, f"thinking:{budget}"
        elif kind == "adaptive":
            greq.reasoning, greq.reasoning_asked = wire.NO_BUDGET, "thinking:adaptive"
        elif kind == "disabled":
            greq.reasoning, greq.reasoning_asked = 0, "thinking:disabled"
        else:
            raise RequestError("thinking.type: Input should be 'enabled', 'adaptive' or 'disabled'")
        return greq

    def encoder(self, req: GenRequest, reply: Reply) -> StreamEncoder:
        return AnthropicEncoder(req, reply)

    def full_response(
        self, req: GenRequest, reply: Reply, text: str, reasoning_text: str, finish_reason: str,
        completion_tokens: int, reasoning_tokens: int,
    ) -> bytes:
        content: list[dict[str, Any]] = []
        if reasoning_tokens:
            content.append({"type": "thinking", "thinking": reasoning_text, "signature": SIGNATURE})
        content.append({"type": "text", "text": text})
        obj: dict[str, Any] = {
            "id": f"msg_mock{reply.seq}", "type": "message", "role": "assistant", "model": req.model,
            "content": content, "stop_reason": STOP_REASONS.get(finish_reason, "end_turn"), "stop_sequence": None,
        }
        if req.usage:
            obj["usage"] = {"input_tokens": reply.prompt_tokens, "cache_creation_input_tokens": 0,
                            "cache_read_input_tokens": 0, "output_tokens": completion_tokens}
        return wire.dumps(obj).encode()

    def error_body(
        self, status: int, model: str, message: str | None = None, code: str | None = None, seq: int = 0,
        retry_after: int | None = None,
    ) -> bytes:
        etype, default = ERRORS.get(status, ("api_error" if status >= 500 else "invalid_request_error", "Error."))
        if message is None:
            message = default.format(model=model or "mock-model")
        return wire.dumps({"type": "error", "error": {"type": etype, "message": message},
                      "request_id": f"req_mock{seq}"}).encode()
