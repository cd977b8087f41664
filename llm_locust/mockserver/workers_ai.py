"""Cloudflare Workers AI native wire format: ``POST /client/v4/accounts/{account}/ai/run/{model...}``.

The model is the rest of the path (``@cf/meta/llama-3.1-8b-instruct``: slashes included); the body has
``messages`` (or ``prompt``), ``stream`` and ``max_tokens`` (256 when absent, as on Cloudflare). A stream is
SSE: one ``data: {"response": "<text>"}`` per chunk, then ``data: {"response": "", "usage":
{"prompt_tokens", "completion_tokens", "total_tokens"}}`` (not with ``--no-usage``), then ``data: [DONE]``.
A non-streamed reply is Cloudflare's envelope ``{"result": {"response", "usage"}, "success": true,
"errors": [], "messages": []}``.

With reasoning tokens (``--reasoning-tokens``) the stream takes the OpenAI chunk shape that reasoning models
(gpt-oss, ...) send on this same route: ``choices[0].delta.reasoning_content`` / ``content``, a last chunk
with ``finish_reason`` and ``usage``, then ``[DONE]``.

Errors use Cloudflare's REST envelope ``{"success": false, "errors": [{"code", "message"}], "messages": [],
"result": null}`` with Workers AI's codes (401 code 10000, 403 3041, 404 3042, 429 3040 "Out of capacity"
with ``Retry-After``, 500 3043, ...); a mid-stream error is that envelope on a ``data:`` line, then the
end of the body (no ``[DONE]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llm_locust.mockserver import script, wire
from llm_locust.mockserver.openai import OpenAIEncoder, usage_obj
from llm_locust.mockserver.wire import GenRequest, Reply, RequestError, StreamEncoder, WireProtocol

DEFAULT_MAX_TOKENS = 256

#: status -> (Cloudflare error code, default message); "{model}" is filled in.
ERRORS: dict[int, tuple[int, str]] = {
    400: (3003, "Incomplete request: the request is missing headers or body"),
    401: (10000, "Authentication error"),
    403: (3041, "The account is not allowed to access this model"),
    404: (3042, "Invalid model ID: the model name {model} is invalid"),
    405: (7001, "Method not allowed"),
    408: (3007, "Request timeout"),
    413: (3006, "Request is too large"),
    429: (3040, "Out of capacity: no more data centers to forward the request to"),
    500: (3043, "Internal server error"),
    503: (3040, "Out of capacity: no more data centers to forward the request to"),
}


def cloudflare_error(code: int, message: str) -> dict[str, Any]:
    """Cloudflare's REST error envelope."""
    return {"success": False, "errors": [{"code": code, "message": message}], "messages": [], "result": None}


class WorkersAIEncoder(StreamEncoder):
    """SSE events of one streamed ``/ai/run`` reply in the native ``{"response": ...}`` shape."""

    keepalive = wire.SSE_KEEPALIVE

    def __init__(self, req: GenRequest, reply: Reply) -> None:
        self.req = req
        self.reply = reply

    def tokens(self, text: str, reasoning: bool, completion_tokens: int, reasoning_tokens: int) -> bytes:
        return b'data: {"response":' + wire.json_str(text).encode() + b"}\n\n"

    def malformed(self) -> bytes:
        return wire.SSE_MALFORMED

    def error(self, message: str) -> bytes:
        return b"data: " + wire.dumps(cloudflare_error(3043, message)).encode() + b"\n\n"

    def closing(self, finish_reason: str, completion_tokens: int, reasoning_tokens: int) -> list[bytes]:
        if not self.req.usage:
            return [wire.SSE_DONE]
        p = self.reply.prompt_tokens
        usage = {"prompt_tokens": p, "completion_tokens": completion_tokens, "total_tokens": p + completion_tokens}
        return [b"data: " + wire.dumps({"response": "", "usage": usage}).encode() + b"\n\n", wire.SSE_DONE]


class WorkersAIChunkEncoder(OpenAIEncoder):
    """The OpenAI-shaped chunks reasoning models send on ``/ai/run``: no role chunk, usage on the last chunk."""

    def __init__(self, req: GenRequest, reply: Reply) -> None:
        super().__init__(req, reply, chat=True, continuous=False)

    def opening(self) -> list[bytes]:
        return []

    def error(self, message: str) -> bytes:
        return b"data: " + wire.dumps(cloudflare_error(3043, message)).encode() + b"\n\n"

    def closing(self, finish_reason: str, completion_tokens: int, reasoning_tokens: int) -> list[bytes]:
        choice = f'{{"index":0,"delta":{{}},"logprobs":null,"finish_reason":"{finish_reason}"}}'
        usage = b""
        if self.req.usage:
            usage = b',"usage":' + wire.dumps(usage_obj(self.reply.prompt_tokens, completion_tokens,
                                                   reasoning_tokens)).encode()
        return [self._event(choice, usage), wire.SSE_DONE]


class MockWorkersAI(WireProtocol):
    """``POST /client/v4/accounts/{account}/ai/run/{model...}``."""

    name = "workers-ai"

    def model_of(self, body: Any, params: Mapping[str, str]) -> str:
        return params.get("model") or "mock-model"

    def parse(self, body: dict[str, Any], params: Mapping[str, str]) -> GenRequest:
        messages, prompt = body.get("messages"), body.get("prompt")
        if isinstance(messages, list):
            words = sum(wire.content_words(m.get("content")) for m in messages if isinstance(m, dict))
        elif isinstance(prompt, str):
            words = script.count_words(prompt)
        else:
            raise RequestError("required properties at '/' are 'messages' or 'prompt'")
        limit = wire.int_or_none(body.get("max_tokens"), "max_tokens")
        if limit is not None and limit < 0:
            raise RequestError("max_tokens must be >= 0")
        limit = DEFAULT_MAX_TOKENS if limit is None else limit
        return GenRequest(self.model_of(body, params), bool(body.get("stream", False)), limit, words)

    def encoder(self, req: GenRequest, reply: Reply) -> StreamEncoder:
        if reply.reasoning_tokens:
            req.include_usage = False  # no "usage": null on every chunk; usage rides on the last chunk
            return WorkersAIChunkEncoder(req, reply)
        return WorkersAIEncoder(req, reply)

    def full_response(
        self, req: GenRequest, reply: Reply, text: str, reasoning_text: str, finish_reason: str,
        completion_tokens: int, reasoning_tokens: int,
    ) -> bytes:
        result: dict[str, Any] = {"response": text}
        if req.usage:
            p = reply.prompt_tokens
            result["usage"] = {"prompt_tokens": p, "completion_tokens": completion_tokens,
                               "total_tokens": p + completion_tokens}
        return wire.dumps({"result": result, "success": True, "errors": [], "messages": []}).encode()

    def error_body(
        self, status: int, model: str, message: str | None = None, code: str | None = None, seq: int = 0,
        retry_after: int | None = None,
    ) -> bytes:
        cf_code, default = ERRORS.get(status, (3043 if status >= 500 else 3003, "Error"))
        message = default.format(model=model) if message is None else message
        return wire.dumps(cloudflare_error(cf_code, message)).encode()
