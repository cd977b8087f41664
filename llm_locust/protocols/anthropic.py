"""Anthropic Messages API: ``POST /v1/messages`` with ``stream: true``, named SSE events.

Events: ``message_start`` (usage: input, cache creation and cache read tokens), ``content_block_start``,
``content_block_delta`` (``text_delta.text``, ``thinking_delta.thinking``; ``signature_delta`` and
``input_json_delta`` carry no generated text), ``content_block_stop``, ``message_delta`` (cumulative usage: keep the
latest, never sum; ``stop_reason``), ``message_stop`` (the end), ``ping`` (ignored) and ``error`` (a failure after
HTTP 200, e.g. ``overloaded_error``). Anthropic's ``input_tokens`` excludes cached tokens, so input is normalised to
input + cache creation + cache read, with the cache reads reported as cached tokens (priced at the cache rate).
``max_tokens`` is required by the API: without a limit we send ``DEFAULT_MAX_TOKENS``. Reasoning on request
(:mod:`llm_locust.reasoning`): ``thinking: {type: enabled, budget_tokens: N}``; the API requires
``budget_tokens < max_tokens``, so where the token limit is not above the budget ``max_tokens`` = budget + limit.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..prompts import Prompt
from ..reasoning import Reasoning, budget_of
from .base import DONE, NOTHING, Delta, Protocol, Usage, loads

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 1024


def _usage(u: dict[str, Any]) -> Usage:
    cache_write = u.get("cache_creation_input_tokens") or 0
    cache_read = u.get("cache_read_input_tokens") or 0
    base_in = u.get("input_tokens")
    details = u.get("output_tokens_details") or {}
    return Usage(
        input_tokens=None if base_in is None else base_in + cache_write + cache_read,
        output_tokens=u.get("output_tokens"),
        reasoning_tokens=details.get("thinking_tokens"),
        cached_tokens=cache_read if ("cache_read_input_tokens" in u) else None,
    )


class AnthropicMessages(Protocol):
    name = "anthropic"
    literal_text = True
    path = "/v1/messages"
    key_env = "ANTHROPIC_API_KEY"
    price_provider = "anthropic"
    summary = "Anthropic Messages API (named SSE events)"

    def headers(self, api_key: str | None) -> dict[str, str]:
        headers = super().headers(None)
        headers["anthropic-version"] = API_VERSION
        if api_key:
            headers["x-api-key"] = api_key
        return headers

    def body(self, prompt: Prompt, max_tokens: int | None) -> dict[str, Any]:
        turns = [m for m in prompt.chat_messages() if m["role"] != "system"]
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": max_tokens or DEFAULT_MAX_TOKENS,
            "messages": turns,
            "stream": True,
        }
        if prompt.system:
            body["system"] = prompt.system
        return body

    def reason(self, body: dict[str, Any], reasoning: Reasoning) -> None:
        if reasoning == "off":
            return  # thinking is off unless asked for
        budget = budget_of(reasoning)
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
        if body["max_tokens"] <= budget:  # the API requires budget_tokens < max_tokens: the limit is for the answer
            body["max_tokens"] = budget + body["max_tokens"]

    def parse(self, event: str, data: bytes) -> Delta:
        obj = loads(data)
        if not isinstance(obj, dict):
            return NOTHING
        kind = obj.get("type") or event
        if kind == "content_block_delta":
            d = obj.get("delta") or {}
            t = d.get("type")
            if t == "text_delta":
                return Delta(text=d.get("text") or "")
            if t == "thinking_delta":
                return Delta(reasoning=d.get("thinking") or "")
            return NOTHING
        if kind == "message_start":
            u = (obj.get("message") or {}).get("usage")
            # its output_tokens is a placeholder (about 1): only message_delta counts the output
            return Delta(usage=replace(_usage(u), output_tokens=None)) if u else NOTHING
        if kind == "message_delta":
            u = obj.get("usage")
            stop = (obj.get("delta") or {}).get("stop_reason")
            return Delta(usage=_usage(u) if u else None, finish_reason=stop)
        if kind == "message_stop":
            return DONE
        if kind == "error":
            err = obj.get("error") or {}
            return Delta(error=f"{err.get('type', 'error')}: {err.get('message', '')}".strip(": "))
        return NOTHING  # ping, content_block_start/stop
