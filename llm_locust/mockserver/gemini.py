"""Google Gemini API and Vertex AI wire format: ``:streamGenerateContent?alt=sse`` (and ``:generateContent``).

Routes (the model is in the path): Gemini ``POST /v1beta/models/{model}:streamGenerateContent?alt=sse``
(``/v1/...`` too); Vertex ``POST /v1/projects/{project}/locations/{location}/publishers/google/models/
{model}:streamGenerateContent?alt=sse``. ``:generateContent`` answers one JSON ``GenerateContentResponse``.
Without ``alt=sse`` the real API streams a JSON array; the mock does not, and answers 400 instead.

A stream is data-only SSE (no event names, no ``[DONE]``): one ``GenerateContentResponse`` per chunk with
``candidates[0].content.parts = [{"text": ...}]`` (``"thought": true`` on reasoning tokens), ``role:
"model"``, ``usageMetadata`` (``promptTokenCount``; ``candidatesTokenCount`` = visible output tokens so far,
``thoughtsTokenCount`` = reasoning tokens so far, each left out while zero, as Google does;
``totalTokenCount``) and ``modelVersion``. The chunk carrying the last token also carries
``finishReason`` (``STOP``, or ``MAX_TOKENS`` when ``generationConfig.maxOutputTokens`` cut the reply);
then the connection's body ends. A reply without tokens is one chunk with an empty text part and the
finish reason. ``--tokens-per-chunk`` gives Gemini's sentence-sized chunks; ``--no-usage`` drops
``usageMetadata``. Reasoning on request: ``generationConfig.thinkingConfig.thinkingBudget`` (0 off, -1 dynamic,
N at most N tokens of ``--thinking-tokens``); thoughts stream as ``thought`` parts only with ``includeThoughts:
true``; without it they take their time and count in ``thoughtsTokenCount`` but are not sent, as Google does.

Errors: ``{"error": {"code", "message", "status", "details"}}``: 400 ``INVALID_ARGUMENT``, 403
``PERMISSION_DENIED``, 404 ``NOT_FOUND``, 429 ``RESOURCE_EXHAUSTED`` with a ``RetryInfo`` detail
(``retryDelay: "<s>s"``) and no ``Retry-After`` header, 500 ``INTERNAL``, 503 ``UNAVAILABLE``. A bad
credential is HTTP 400 ``INVALID_ARGUMENT`` with an ``ErrorInfo`` detail ``reason: API_KEY_INVALID`` on
the Gemini API, and 401 ``UNAUTHENTICATED`` on Vertex. A mid-stream error is a ``data: {"error": ...}``
line, then the end of the body.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llm_locust.mockserver import script, wire
from llm_locust.mockserver.wire import GenRequest, Reply, RequestError, StreamEncoder, WireProtocol

FINISH_REASONS = {"stop": "STOP", "length": "MAX_TOKENS"}

#: HTTP status -> google.rpc status name
STATUS_NAMES = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
    405: "UNIMPLEMENTED", 409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL",
    501: "UNIMPLEMENTED", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED", 529: "UNAVAILABLE",
}

#: status -> default message; "{model}" is filled in.
MESSAGES = {
    400: "Invalid request.",
    403: "The caller does not have permission",
    404: "models/{model} is not found for API version v1beta, or is not supported for generateContent. "
    "Call ListModels to see the list of available models and their supported methods.",
    405: "Method not allowed.",
    429: "You exceeded your current quota, please check your plan and billing details. For more information on "
    "this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
    500: "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
}
API_KEY_INVALID = "API key not valid. Please pass a valid API key."
UNAUTHENTICATED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid "
    "authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
)
TYPE = "type.googleapis.com/google.rpc."


def google_error(status: int, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": status, "message": message, "status": STATUS_NAMES.get(status, "UNKNOWN")}
    if details:
        err["details"] = details
    return {"error": err}


def _parts_words(obj: Any) -> int:
    if not isinstance(obj, dict):
        return 0
    parts = obj.get("parts")
    if not isinstance(parts, list):
        return 0
    return sum(script.count_words(str(p.get("text") or "")) for p in parts if isinstance(p, dict))


class GeminiEncoder(StreamEncoder):
    """SSE ``data:`` lines of one streamed ``streamGenerateContent`` reply."""

    keepalive = wire.SSE_KEEPALIVE

    def __init__(self, req: GenRequest, reply: Reply) -> None:
        self.usage = req.usage
        self.prompt = reply.prompt_tokens
        self.total = reply.tokens
        self.reason = reply.finish_reason
        self.finished = False
        self.hide = req.hide_reasoning
        self._head = b'data: {"candidates":[{"content":{"parts":[{"text":'
        self._text_end = b'}],"role":"model"},'
        self._thought_end = b',"thought":true}],"role":"model"},'
        self._tail = (',"modelVersion":' + wire.dumps(req.model) + "}\n\n").encode()

    def _usage(self, visible: int, thoughts: int) -> bytes:
        if not self.usage:
            return b""
        counts = f'"promptTokenCount":{self.prompt}'
        if visible:
            counts += f',"candidatesTokenCount":{visible}'
        if thoughts:
            counts += f',"thoughtsTokenCount":{thoughts}'
        return f',"usageMetadata":{{{counts},"totalTokenCount":{self.prompt + visible + thoughts}}}'.encode()

    def _finish(self, finish_reason: str) -> bytes:
        return f'"finishReason":"{FINISH_REASONS[finish_reason]}","index":0}}]'.encode()

    def tokens(self, text: str, reasoning: bool, completion_tokens: int, reasoning_tokens: int) -> bytes:
        if reasoning and self.hide:  # thoughts without includeThoughts: counted in usage, never streamed
            return b""
        if completion_tokens >= self.total:  # the last token: this chunk ends the reply
            self.finished = True
            candidate = self._finish(self.reason)
        else:
            candidate = b'"index":0}]'
        return b"".join((
            self._head, wire.json_str(text).encode(), self._thought_end if reasoning else self._text_end, candidate,
            self._usage(completion_tokens - reasoning_tokens, reasoning_tokens), self._tail,
        ))

    def malformed(self) -> bytes:
        return wire.SSE_MALFORMED

    def error(self, message: str) -> bytes:
        return b"data: " + wire.dumps(google_error(500, message)).encode() + b"\n\n"

    def closing(self, finish_reason: str, completion_tokens: int, reasoning_tokens: int) -> list[bytes]:
        if self.finished:
            return []
        return [b"".join((
            self._head, b'""', self._text_end, self._finish(finish_reason),
            self._usage(completion_tokens - reasoning_tokens, reasoning_tokens), self._tail,
        ))]


class MockGemini(WireProtocol):
    """``POST /v1beta/models/{model}:streamGenerateContent?alt=sse`` (``stream=False``: ``:generateContent``)."""

    name = "gemini"

    def __init__(self, stream: bool = True) -> None:
        self.stream = stream

    def model_of(self, body: Any, params: Mapping[str, str]) -> str:
        return params.get("model") or "mock-model"

    def parse(self, body: dict[str, Any], params: Mapping[str, str]) -> GenRequest:
        if self.stream and params.get("alt") != "sse":
            raise RequestError("the mock server streams only with ?alt=sse (not as a JSON array)")
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise RequestError("* GenerateContentRequest.contents: contents is not specified")
        config = body.get("generationConfig", body.get("generation_config")) or {}
        if not isinstance(config, dict):
            raise RequestError("generationConfig must be an object")
        limit = wire.int_or_none(config.get("maxOutputTokens", config.get("max_output_tokens")), "maxOutputTokens")
        if limit is not None and limit < 0:
            raise RequestError("maxOutputTokens must be >= 0")
        prompt = sum(_parts_words(c) for c in contents)
        prompt += _parts_words(body.get("systemInstruction", body.get("system_instruction")))
        greq = GenRequest(self.model_of(body, params), self.stream, limit, prompt)
        thinking = config.get("thinkingConfig", config.get("thinking_config"))
        if thinking is None:
            return greq
        if not isinstance(thinking, dict):
            raise RequestError("generationConfig.thinkingConfig must be an object")
        budget = wire.int_or_none(thinking.get("thinkingBudget", thinking.get("thinking_budget")), "thinkingBudget")
        if budget is not None and budget < -1:
            raise RequestError("thinkingBudget must be -1 (dynamic), 0 (off) or a positive number of tokens")
        greq.reasoning = wire.NO_BUDGET if budget is None or budget == -1 else budget
        greq.hide_reasoning = not thinking.get("includeThoughts", thinking.get("include_thoughts", False))
        greq.reasoning_asked = f"thinkingBudget:{budget}" + ("" if greq.hide_reasoning else ",includeThoughts")
        return greq

    def encoder(self, req: GenRequest, reply: Reply) -> StreamEncoder:
        return GeminiEncoder(req, reply)

    def full_response(
        self, req: GenRequest, reply: Reply, text: str, reasoning_text: str, finish_reason: str,
        completion_tokens: int, reasoning_tokens: int,
    ) -> bytes:
        parts: list[dict[str, Any]] = []
        if reasoning_tokens and not req.hide_reasoning:
            parts.append({"text": reasoning_text, "thought": True})
        parts.append({"text": text})
        candidate = {"content": {"parts": parts, "role": "model"}, "finishReason": FINISH_REASONS[finish_reason],
                     "index": 0}
        obj: dict[str, Any] = {"candidates": [candidate]}
        if req.usage:
            visible = completion_tokens - reasoning_tokens
            usage = {"promptTokenCount": reply.prompt_tokens, "candidatesTokenCount": visible,
                     "totalTokenCount": reply.prompt_tokens + completion_tokens}
            if reasoning_tokens:
                usage["thoughtsTokenCount"] = reasoning_tokens
            obj["usageMetadata"] = usage
        obj["modelVersion"] = req.model
        return wire.dumps(obj).encode()

    def error_body(
        self, status: int, model: str, message: str | None = None, code: str | None = None, seq: int = 0,
        retry_after: int | None = None,
    ) -> bytes:
        return wire.dumps(self._error(status, model, message, retry_after)[1]).encode()

    def _error(
        self, status: int, model: str, message: str | None, retry_after: int | None
    ) -> tuple[int, dict[str, Any]]:
        details: list[dict[str, Any]] = []
        if status == 401:
            return 400, google_error(400, message or API_KEY_INVALID, [
                {"@type": TYPE + "ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com",
                 "metadata": {"service": "generativelanguage.googleapis.com"}},
                {"@type": TYPE + "LocalizedMessage", "locale": "en-US", "message": API_KEY_INVALID},
            ])
        if status == 429:
            details = [
                {"@type": TYPE + "QuotaFailure", "violations": [
                    {"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                     "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                     "quotaDimensions": {"location": "global", "model": model or "mock-model"}, "quotaValue": "10"},
                ]},
                {"@type": TYPE + "RetryInfo", "retryDelay": f"{retry_after if retry_after is not None else 1}s"},
            ]
        if message is None:
            message = MESSAGES.get(status, "Error.").format(model=model or "mock-model")
        return status, google_error(status, message, details)

    def error_response(
        self, status: int, model: str, message: str | None = None, code: str | None = None, seq: int = 0,
        retry_after: int | None = None,
    ) -> tuple[int, bytes, list[tuple[str, str]]]:
        status, body = self._error(status, model, message, retry_after)
        return status, wire.dumps(body).encode(), []  # the retry hint is RetryInfo in the body, not a header


class MockVertex(MockGemini):
    """``POST /v1/projects/{project}/locations/{location}/publishers/google/models/{model}:streamGenerateContent``."""

    name = "vertex"

    def _error(
        self, status: int, model: str, message: str | None, retry_after: int | None
    ) -> tuple[int, dict[str, Any]]:
        if status == 401:
            return 401, google_error(401, message or UNAUTHENTICATED, [
                {"@type": TYPE + "ErrorInfo", "reason": "ACCESS_TOKEN_TYPE_UNSUPPORTED", "domain": "googleapis.com",
                 "metadata": {"service": "aiplatform.googleapis.com",
                              "method": "google.cloud.aiplatform.v1.PredictionService.StreamGenerateContent"}},
            ])
        if status == 404 and message is None:
            message = f"Publisher Model `publishers/google/models/{model or 'mock-model'}` was not found or your " \
                      "project does not have access to it."
        return super()._error(status, model, message, retry_after)
