"""Ollama native wire format: ``POST /api/chat`` and ``POST /api/generate`` (NDJSON).

Ollama streams by default (``"stream": false`` gives one JSON object). A stream is one JSON object
per line (``application/x-ndjson``), one line per HTTP chunk, with no role-only line:

* ``/api/chat``: ``{"model", "created_at", "message": {"role": "assistant", "content": ...}, "done": false}``;
  reasoning tokens go in ``message.thinking`` (with ``content: ""``);
* ``/api/generate``: ``{"model", "created_at", "response": ..., "done": false}``; reasoning in ``thinking``;
  the prompt is counted over ``prompt`` and ``system``;
* the last line has ``"done": true``, ``"done_reason": "stop" | "length"``, empty content,
  ``prompt_eval_count``, ``eval_count`` (output tokens) and the durations in nanoseconds, taken from
  the real times: ``prompt_eval_duration`` = first token - request read, ``eval_duration`` = last
  token - first token, ``total_duration`` = now - request read, ``load_duration`` = 0 (with ``--no-usage``
  the counts are left out, the durations stay).

The output limit is ``options.num_predict`` (negative = no limit, as in Ollama). Reasoning on request: ``think:
true`` (or ``"low"`` ... ``"max"``) gives ``--thinking-tokens`` reasoning tokens, ``think: false`` none.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from llm_locust.mockserver import script, wire
from llm_locust.mockserver.wire import GenRequest, Reply, RequestError, StreamEncoder, WireProtocol

MALFORMED = b"{not json\n"

#: status -> default error message; "{model}" is filled in.
ERRORS: dict[int, str] = {
    400: "invalid request",
    401: "unauthorized",
    403: "forbidden",
    404: 'model "{model}" not found, try pulling it first',
    405: "method not allowed",
    429: "too many requests, please slow down",
    500: "an error was encountered while running the model",
    503: "server busy, please try again.  maximum pending requests exceeded",
}

_last_second = -1
_last_prefix = ""


def created_at() -> str:
    """The current UTC time as Ollama writes it (RFC 3339 with nanoseconds)."""
    global _last_second, _last_prefix
    ns = time.time_ns()
    sec, frac = divmod(ns, 1_000_000_000)
    if sec != _last_second:
        _last_second, _last_prefix = sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    return f"{_last_prefix}.{frac:09d}Z"


def durations(reply: Reply, eval_count: int, counts: bool = True) -> dict[str, int]:
    """Ollama's timing fields (ns) from the real times of the reply; ``counts=False`` (--no-usage): no eval counts."""
    now = time.perf_counter_ns()
    first = reply.t_first_token_ns or now
    last = reply.t_last_token_ns or first
    out = {
        "total_duration": now - reply.t_recv_ns,
        "load_duration": 0,
        "prompt_eval_count": reply.prompt_tokens,
        "prompt_eval_duration": first - reply.t_recv_ns,
        "eval_count": eval_count,
        "eval_duration": last - first,
    }
    if not counts:
        del out["prompt_eval_count"], out["eval_count"]
    return out


class OllamaEncoder(StreamEncoder):
    """NDJSON lines of one streamed Ollama reply."""

    def __init__(self, req: GenRequest, reply: Reply, chat: bool) -> None:
        self.reply = reply
        self.model = req.model
        self.usage = req.usage
        self.chat = chat
        self._head = '{"model":' + wire.dumps(req.model) + ',"created_at":"'
        if chat:
            self._content = '","message":{"role":"assistant","content":'
            self._thinking = '","message":{"role":"assistant","content":"","thinking":'
            self._tail = '},"done":false}\n'
        else:
            self._content = '","response":'
            self._thinking = '","response":"","thinking":'
            self._tail = ',"done":false}\n'

    def tokens(self, text: str, reasoning: bool, completion_tokens: int, reasoning_tokens: int) -> bytes:
        mid = self._thinking if reasoning else self._content
        return (self._head + created_at() + mid + wire.json_str(text) + self._tail).encode()

    def malformed(self) -> bytes:
        return MALFORMED

    def error(self, message: str) -> bytes:
        return (wire.dumps({"error": message}) + "\n").encode()

    def closing(self, finish_reason: str, completion_tokens: int, reasoning_tokens: int) -> list[bytes]:
        obj: dict[str, Any] = {"model": self.model, "created_at": created_at()}
        if self.chat:
            obj["message"] = {"role": "assistant", "content": ""}
        else:
            obj["response"] = ""
        obj.update(done=True, done_reason=finish_reason, **durations(self.reply, completion_tokens, self.usage))
        return [(wire.dumps(obj) + "\n").encode()]


class _MockOllamaBase(WireProtocol):
    chat = True
    stream_content_type = "application/x-ndjson"
    stream_by_default = True

    def _common(self, body: dict[str, Any], prompt_tokens: int) -> GenRequest:
        options = body.get("options") or {}
        if not isinstance(options, dict):
            raise RequestError("options must be an object")
        limit = wire.int_or_none(options.get("num_predict"), "num_predict")
        if limit is not None and limit < 0:
            limit = None  # -1 = infinite, -2 = fill the context
        model = body.get("model") or "mock-model"
        greq = GenRequest(str(model), bool(body.get("stream", True)), limit, prompt_tokens)
        think = body.get("think")
        if think is not None:
            if think not in (True, False, "low", "medium", "high", "max"):
                raise RequestError("think must be true, false, or one of low, medium, high, max")
            greq.reasoning = wire.NO_BUDGET if think else 0
            greq.reasoning_asked = f"think:{str(think).lower()}"
        return greq

    def encoder(self, req: GenRequest, reply: Reply) -> StreamEncoder:
        return OllamaEncoder(req, reply, self.chat)

    def error_body(
        self, status: int, model: str, message: str | None = None, code: str | None = None, seq: int = 0,
        retry_after: int | None = None,
    ) -> bytes:
        if message is None:
            message = ERRORS.get(status, "error").format(model=model or "mock-model")
        return wire.dumps({"error": message}).encode()


class MockOllamaChat(_MockOllamaBase):
    """``POST /api/chat``."""

    name = "ollama-chat"

    def parse(self, body: dict[str, Any], params: Mapping[str, str]) -> GenRequest:
        messages = wire.messages_of(body)
        prompt = sum(script.count_words(m.get("content") or "") for m in messages if isinstance(m, dict))
        return self._common(body, prompt)

    def full_response(
        self, req: GenRequest, reply: Reply, text: str, reasoning_text: str, finish_reason: str,
        completion_tokens: int, reasoning_tokens: int,
    ) -> bytes:
        message = wire.assistant_message(text, "thinking", reasoning_text, reasoning_tokens)
        return wire.dumps({
            "model": req.model, "created_at": created_at(), "message": message, "done": True,
            "done_reason": finish_reason, **durations(reply, completion_tokens, req.usage),
        }).encode()


class MockOllamaGenerate(_MockOllamaBase):
    """``POST /api/generate``."""

    name = "ollama-generate"
    chat = False

    def parse(self, body: dict[str, Any], params: Mapping[str, str]) -> GenRequest:
        prompt, system = body.get("prompt") or "", body.get("system") or ""
        if not isinstance(prompt, str) or not isinstance(system, str):
            raise RequestError("prompt and system must be strings")
        return self._common(body, script.count_words(prompt) + script.count_words(system))

    def full_response(
        self, req: GenRequest, reply: Reply, text: str, reasoning_text: str, finish_reason: str,
        completion_tokens: int, reasoning_tokens: int,
    ) -> bytes:
        obj: dict[str, Any] = {"model": req.model, "created_at": created_at(), "response": text}
        if reasoning_tokens:
            obj["thinking"] = reasoning_text
        obj.update(done=True, done_reason=finish_reason, **durations(reply, completion_tokens, req.usage))
        return wire.dumps(obj).encode()
