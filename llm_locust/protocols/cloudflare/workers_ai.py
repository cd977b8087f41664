"""Cloudflare Workers AI's native API (``--llm-api workers-ai``).

``POST {host}/ai/run/{model}`` with host ``https://api.cloudflare.com/client/v4/accounts/{account_id}`` (through a
gateway: ``{gateway}/workers-ai/{model}``, see :mod:`llm_locust.protocols.cloudflare.gateway`), bearer
``CLOUDFLARE_API_TOKEN``, ``max_tokens`` (default 256 on Cloudflare's side). The stream is SSE with
``{"response": "..."}`` chunks, a last chunk carrying ``usage``, and ``data: [DONE]``; some newer models send
OpenAI-shaped chunks (``choices[0].delta.content`` / ``reasoning_content``) on the same route, so both shapes are
read. Errors use Cloudflare's REST envelope ``{"success": false, "errors": [{"code", "message"}]}``.
"""

from __future__ import annotations

from typing import Any

from ...prompts import Prompt
from ..base import Delta, Protocol, sse_object
from ..openai import OpenAIChat, _usage


class WorkersAI(Protocol):
    name = "workers-ai"
    path = "/ai/run/{model}"
    key_env = "CLOUDFLARE_API_TOKEN"
    summary = "Cloudflare Workers AI native (/ai/run/@cf/..., SSE)"
    price_provider = "cloudflare"

    def body(self, prompt: Prompt, max_tokens: int | None) -> dict[str, Any]:
        body: dict[str, Any] = {"messages": prompt.chat_messages(), "stream": True}
        if max_tokens:
            body["max_tokens"] = max_tokens
        return body

    def parse(self, event: str, data: bytes) -> Delta:
        obj = sse_object(data)
        if isinstance(obj, Delta):
            return obj
        if obj.get("errors") or obj.get("error"):
            return Delta(error=self.error_message(data))
        u = obj.get("usage")
        usage = _usage(u) if u else None
        choices = obj.get("choices")
        if choices:  # OpenAI-shaped chunk on the native route
            text, reasoning = OpenAIChat.choice_text(choices[0])
            return Delta(text, reasoning, usage, False, None, choices[0].get("finish_reason"))
        return Delta(obj.get("response") or "", "", usage)
