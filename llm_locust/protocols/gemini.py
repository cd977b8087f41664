"""Google Gemini API and Vertex AI: ``:streamGenerateContent?alt=sse``.

Each SSE ``data:`` line is a ``GenerateContentResponse``; there is no end marker, so the stream is complete when a
candidate reports its ``finishReason`` (the connection then closes). Text is in ``candidates[0].content.parts[*]``:
parts with ``thought: true`` are reasoning (streamed only with ``thinkingConfig.includeThoughts``).
``usageMetadata`` (trust the last one): output = ``candidatesTokenCount`` + ``thoughtsTokenCount``, reasoning =
``thoughtsTokenCount``, cached = ``cachedContentTokenCount`` (part of ``promptTokenCount``). Reasoning on request
(:mod:`llm_locust.reasoning`): ``generationConfig.thinkingConfig`` = ``{thinkingBudget: N, includeThoughts: true}``
(so thoughts stream and the first token of any kind is timed), ``off`` = ``{thinkingBudget: 0}``.

* ``gemini``: host ``https://generativelanguage.googleapis.com`` (or a gateway's ``/google-ai-studio``), key in
  ``x-goog-api-key`` (``GEMINI_API_KEY``).
* ``vertex``: host ``https://{region}-aiplatform.googleapis.com/v1/projects/{project}/locations/{region}``, an OAuth
  access token as bearer (``VERTEX_ACCESS_TOKEN``, e.g. from ``gcloud auth print-access-token``).

Errors carry ``error.status`` (``RESOURCE_EXHAUSTED``, ``INVALID_ARGUMENT`` with ``API_KEY_INVALID`` ...) and a
``RetryInfo`` detail with ``retryDelay`` (``"37s"``), which is recorded as the retry hint.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import AuthError, LLMError, from_status
from ..prompts import Prompt
from ..reasoning import Reasoning, budget_of
from .base import NOTHING, Delta, Protocol, Usage, loads, retry_after_seconds


def _usage(u: dict[str, Any]) -> Usage:
    cand = u.get("candidatesTokenCount")
    thoughts = u.get("thoughtsTokenCount")
    out = None if cand is None and thoughts is None else (cand or 0) + (thoughts or 0)
    return Usage(
        input_tokens=u.get("promptTokenCount"),
        output_tokens=out,
        reasoning_tokens=thoughts,
        cached_tokens=u.get("cachedContentTokenCount"),
    )


def _seconds(value: Any) -> float | None:
    if isinstance(value, str) and value.endswith("s"):
        try:
            return float(value[:-1])
        except ValueError:
            return None
    return None


class Gemini(Protocol):
    name = "gemini"
    literal_text = True
    path = "/v1beta/models/{model}:streamGenerateContent?alt=sse"
    key_env = "GEMINI_API_KEY"
    ends_at_close = True
    price_provider = "google"
    summary = "Google Gemini API (streamGenerateContent, SSE)"

    def headers(self, api_key: str | None) -> dict[str, str]:
        headers = super().headers(None)
        if api_key:
            headers["x-goog-api-key"] = api_key
        return headers

    def body(self, prompt: Prompt, max_tokens: int | None) -> dict[str, Any]:
        contents = [
            {"role": "model" if m["role"] == "assistant" else "user", "parts": [{"text": m["content"]}]}
            for m in prompt.chat_messages()
            if m["role"] != "system"
        ]
        body: dict[str, Any] = {"contents": contents}
        if prompt.system:
            body["systemInstruction"] = {"parts": [{"text": prompt.system}]}
        if max_tokens:
            body["generationConfig"] = {"maxOutputTokens": max_tokens}
        return body

    def reason(self, body: dict[str, Any], reasoning: Reasoning) -> None:
        config = body.setdefault("generationConfig", {})
        if reasoning == "off":  # Google's off switch (Flash models; Pro models cannot turn thinking off)
            config["thinkingConfig"] = {"thinkingBudget": 0}
        else:
            config["thinkingConfig"] = {"thinkingBudget": budget_of(reasoning), "includeThoughts": True}

    def parse(self, event: str, data: bytes) -> Delta:
        obj = loads(data)
        if isinstance(obj, list):  # a JSON-array stream (no alt=sse) is not what we ask for; take its first item
            obj = obj[0] if obj else {}
        if not isinstance(obj, dict):
            return NOTHING
        if obj.get("error"):
            err = obj["error"]
            return Delta(error=err.get("message", str(err)) if isinstance(err, dict) else str(err))
        u = obj.get("usageMetadata")
        usage = _usage(u) if u else None
        text, reasoning, finish = [], [], None
        for cand in (obj.get("candidates") or [])[:1]:
            for part in (cand.get("content") or {}).get("parts") or ():
                t = part.get("text")
                if t:
                    (reasoning if part.get("thought") else text).append(t)
            finish = cand.get("finishReason")
        return Delta("".join(text), "".join(reasoning), usage, finish is not None, None, finish)

    def classify(self, status: int, body: bytes, headers: Any) -> LLMError:
        message = self.error_message(body)
        retry = retry_after_seconds(headers)
        reason = ""
        try:
            err = json.loads(body).get("error") or {}
            for detail in err.get("details") or ():
                retry = retry if retry is not None else _seconds(detail.get("retryDelay"))
                reason = reason or detail.get("reason") or ""
        except (ValueError, AttributeError):
            pass
        if status == 400 and "API_KEY_INVALID" in (reason or message):
            return AuthError(message, status)
        return from_status(status, message, retry)


class Vertex(Gemini):
    name = "vertex"
    path = "/publishers/google/models/{model}:streamGenerateContent?alt=sse"
    key_env = "VERTEX_ACCESS_TOKEN"
    summary = "Google Vertex AI Gemini (host = .../v1/projects/P/locations/L)"

    def headers(self, api_key: str | None) -> dict[str, str]:
        return Protocol.headers(self, api_key)
