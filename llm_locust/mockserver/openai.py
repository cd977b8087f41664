"""OpenAI wire format: ``POST /v1/chat/completions`` and legacy ``POST /v1/completions``.

Streamed chat reply (SSE, one ``data: <json>\\n\\n`` event per HTTP chunk):

1. a role-only chunk right after the headers (``delta: {"role": "assistant", "content": ""}``) -- not a token;
2. content chunks (``delta.content``); reasoning tokens come first, in ``delta.reasoning_content`` (a request
   asks with ``reasoning_effort`` low/medium/high, ``none`` = off, or Mistral's ``prompt_mode: "reasoning"``);
3. a chunk with an empty delta and ``finish_reason`` ``"length"`` or ``"stop"``;
4. with ``stream_options.include_usage``: a usage chunk with ``"choices": []`` (earlier chunks carry
   ``"usage": null``); with ``stream_options.continuous_usage_stats`` (or ``--continuous-usage``) every
   chunk carries the cumulative usage instead (vLLM); never with ``--no-usage`` (nor ``usage`` in a
   non-streamed reply);
5. ``data: [DONE]``.

Both honour ``ignore_eos`` and ``min_tokens`` (see ``script.make_script``: with ``--early-eos`` or a limit above
``--output-tokens`` the reply ends before the limit unless they ask otherwise), and with ``--prefix-cache-blocks``
the usage carries ``prompt_tokens_details.cached_tokens`` (``prefixcache.py``).

Legacy completions: the same with ``object: "text_completion"`` and ``choices[0].text``, no role chunk,
and no reasoning tokens (the format has no field for them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llm_locust.mockserver import script, wire
from llm_locust.mockserver.wire import GenRequest, Reply, RequestError, StreamEncoder, WireProtocol

#: status -> (error type, error code, default message); "{model}" is filled in.
ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key",
          "Incorrect API key provided: sk-mock. You can find your API key at https://platform.openai.com/account/api-keys."),
    403: ("permission_error", "permission_denied", "You are not allowed to access the model `{model}`."),
    404: ("invalid_request_error", "model_not_found",
          "The model `{model}` does not exist or you do not have access to it."),
    405: ("invalid_request_error", "method_not_allowed", "Method not allowed."),
    429: ("requests", "rate_limit_exceeded",
          "Rate limit reached for {model} on requests per min (RPM). Please try again in a few seconds."),
    500: ("server_error", "server_error",
          "The server had an error while processing your request. Sorry about that!"),
    503: ("server_error", "service_unavailable", "The engine is currently overloaded, please try again later."),
}


def usage_obj(prompt: int, completion: int, reasoning: int, cached: int | None = None) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }
    if cached is not None:  # --prefix-cache-blocks: the prompt's prefix seen before (prefixcache.py)
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return usage


def _stream_options(body: dict[str, Any]) -> tuple[bool, bool]:
    opts = body.get("stream_options") or {}
    if not isinstance(opts, dict):
        raise RequestError("stream_options must be an object")
    return bool(opts.get("include_usage")), bool(opts.get("continuous_usage_stats"))


EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")


def _reasoning(greq: GenRequest, body: dict[str, Any]) -> GenRequest:
    """The request's reasoning switch: ``reasoning_effort`` (OpenAI, vLLM, Ollama /v1 ...) or Mistral's
    ``prompt_mode``."""
    effort = body.get("reasoning_effort")
    if effort is not None:
        if effort not in EFFORTS:
            raise RequestError(f"reasoning_effort must be one of {', '.join(EFFORTS)}")
        greq.reasoning = 0 if effort == "none" else wire.NO_BUDGET
        greq.reasoning_asked = f"reasoning_effort:{effort}"
    elif body.get("prompt_mode") is not None:
        if body["prompt_mode"] != "reasoning":
            raise RequestError("prompt_mode must be 'reasoning'")
        greq.reasoning, greq.reasoning_asked = wire.NO_BUDGET, "prompt_mode:reasoning"
    return greq


def _fixed_length(greq: GenRequest, body: dict[str, Any]) -> GenRequest:
    """The request's ``ignore_eos`` and ``min_tokens`` (vLLM, SGLang; llama.cpp ``ignore_eos``)."""
    greq.ignore_eos = bool(body.get("ignore_eos", False))
    greq.min_tokens = wire.int_or_none(body.get("min_tokens"), "min_tokens")
    if greq.min_tokens is not None and greq.min_tokens < 0:
        raise RequestError("min_tokens must be >= 0")
    return greq


def _limit(body: dict[str, Any]) -> int | None:
    limit = wire.int_or_none(body.get("max_completion_tokens"), "max_completion_tokens")
    if limit is None:
        limit = wire.int_or_none(body.get("max_tokens"), "max_tokens")
    if limit is not None and limit < 0:
        raise RequestError("max_tokens must be >= 0")
    return limit


class OpenAIEncoder(StreamEncoder):
    """SSE events of one streamed OpenAI reply, with the per-request JSON prefixes built once."""

    keepalive = wire.SSE_KEEPALIVE

    def __init__(self, req: GenRequest, reply: Reply, chat: bool, continuous: bool) -> None:
        self.req = req
        self.reply = reply
        self.chat = chat
        self.continuous = continuous
        kind = "chat.completion.chunk" if chat else "text_completion"
        prefix = "chatcmpl" if chat else "cmpl"
        self.head = (
            f'{{"id":"{prefix}-mock{reply.seq}","object":"{kind}","created":{reply.created},"model":{wire.dumps(req.model)}'
        )
        head = "data: " + self.head + ',"choices":[{"index":0,'
        if chat:
            self._content = (head + '"delta":{"content":').encode()
            self._reasoning = (head + '"delta":{"reasoning_content":').encode()
            self._tail = b'},"logprobs":null,"finish_reason":null}]'
        else:
            self._content = self._reasoning = (head + '"text":').encode()
            self._tail = b',"logprobs":null,"finish_reason":null}]'
        self._usage_null = b',"usage":null' if req.include_usage else b""

    def _usage(self, completion: int, reasoning: int) -> bytes:
        if self.continuous:
            usage = usage_obj(self.reply.prompt_tokens, completion, reasoning, self.reply.cached_tokens)
            return (',"usage":' + wire.dumps(usage)).encode()
        return self._usage_null

    def _event(self, choice: str, usage: bytes) -> bytes:
        return b"data: " + self.head.encode() + b',"choices":[' + choice.encode() + b"]" + usage + b"}\n\n"

    def opening(self) -> list[bytes]:
        if not self.chat:
            return []
        choice = '{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}'
        return [self._event(choice, self._usage(0, 0))]

    def tokens(self, text: str, reasoning: bool, completion_tokens: int, reasoning_tokens: int) -> bytes:
        return b"".join((
            self._reasoning if reasoning else self._content, wire.json_str(text).encode(), self._tail,
            self._usage(completion_tokens, reasoning_tokens) if self.continuous else self._usage_null, b"}\n\n",
        ))

    def malformed(self) -> bytes:
        return wire.SSE_MALFORMED

    def error(self, message: str) -> bytes:
        error = {"error": {"message": message, "type": "server_error", "code": 500}}
        return b"data: " + wire.dumps(error).encode() + b"\n\n"

    def closing(self, finish_reason: str, completion_tokens: int, reasoning_tokens: int) -> list[bytes]:
        if self.chat:
            choice = f'{{"index":0,"delta":{{}},"logprobs":null,"finish_reason":"{finish_reason}"}}'
        else:
            choice = f'{{"index":0,"text":"","logprobs":null,"finish_reason":"{finish_reason}"}}'
        events = [self._event(choice, self._usage(completion_tokens, reasoning_tokens))]
        if self.req.include_usage:
            usage = wire.dumps(usage_obj(self.reply.prompt_tokens, completion_tokens, reasoning_tokens,
                                        self.reply.cached_tokens))
            events.append(b"data: " + self.head.encode() + b',"choices":[],"usage":' + usage.encode() + b"}\n\n")
        events.append(wire.SSE_DONE)
        return events


class _MockOpenAIBase(WireProtocol):
    chat = True

    def encoder(self, req: GenRequest, reply: Reply) -> StreamEncoder:
        return OpenAIEncoder(req, reply, self.chat, req.continuous_usage)

    def _full_body(
        self, req: GenRequest, reply: Reply, choice: dict[str, Any], finish_reason: str, completion_tokens: int,
        reasoning_tokens: int,
    ) -> bytes:
        """A non-streamed reply with one choice (``choice``: its ``message`` or ``text``), usage unless --no-usage."""
        obj = {
            "id": f"{'chatcmpl' if self.chat else 'cmpl'}-mock{reply.seq}",
            "object": "chat.completion" if self.chat else "text_completion", "created": reply.created,
            "model": req.model, "choices": [{"index": 0, **choice, "logprobs": None, "finish_reason": finish_reason}],
        }
        if req.usage:
            obj["usage"] = usage_obj(reply.prompt_tokens, completion_tokens, reasoning_tokens, reply.cached_tokens)
        return wire.dumps(obj).encode()

    def error_body(
        self, status: int, model: str, message: str | None = None, code: str | None = None, seq: int = 0,
        retry_after: int | None = None,
    ) -> bytes:
        etype, default_code, default_message = ERRORS.get(status, ("server_error", None, "Error."))
        if message is None:
            message, code = default_message.format(model=model or "mock-model"), default_code
        return wire.dumps({"error": {"message": message, "type": etype, "param": None, "code": code}}).encode()


class MockOpenAIChat(_MockOpenAIBase):
    """``POST /v1/chat/completions``."""

    name = "openai-chat"

    def parse(self, body: dict[str, Any], params: Mapping[str, str]) -> GenRequest:
        messages = wire.messages_of(body)
        prompt = sum(wire.content_words(m.get("content")) for m in messages if isinstance(m, dict))
        include, continuous = _stream_options(body)
        model = body.get("model") or "mock-model"
        greq = GenRequest(str(model), bool(body.get("stream", False)), _limit(body), prompt, include, continuous)
        return _fixed_length(_reasoning(greq, body), body)

    def full_response(
        self, req: GenRequest, reply: Reply, text: str, reasoning_text: str, finish_reason: str,
        completion_tokens: int, reasoning_tokens: int,
    ) -> bytes:
        message = wire.assistant_message(text, "reasoning_content", reasoning_text, reasoning_tokens)
        return self._full_body(req, reply, {"message": message}, finish_reason, completion_tokens, reasoning_tokens)


class MockOpenAICompletions(_MockOpenAIBase):
    """Legacy ``POST /v1/completions``."""

    name = "openai-completions"
    chat = False
    supports_reasoning = False

    def parse(self, body: dict[str, Any], params: Mapping[str, str]) -> GenRequest:
        prompt = body.get("prompt", "")
        if isinstance(prompt, str):
            words = script.count_words(prompt)
        elif isinstance(prompt, list):  # list of strings, token ids, or lists of token ids
            count = script.count_words
            words = sum(count(p) if isinstance(p, str) else len(p) if isinstance(p, list) else 1 for p in prompt)
        else:
            raise RequestError("prompt must be a string or a list")
        include, continuous = _stream_options(body)
        model = body.get("model") or "mock-model"
        greq = GenRequest(str(model), bool(body.get("stream", False)), _limit(body), words, include, continuous)
        return _fixed_length(greq, body)

    def full_response(
        self, req: GenRequest, reply: Reply, text: str, reasoning_text: str, finish_reason: str,
        completion_tokens: int, reasoning_tokens: int,
    ) -> bytes:
        return self._full_body(req, reply, {"text": text}, finish_reason, completion_tokens, reasoning_tokens)


def models_body() -> bytes:
    """``GET /v1/models``."""
    return wire.dumps({
        "object": "list",
        "data": [{"id": "mock-model", "object": "model", "created": 1700000000, "owned_by": "llm-locust"}],
    }).encode()
