"""Cloudflare: Workers AI's native API, and the AI Gateway's universal endpoint.

``workers-ai``: ``POST {host}/ai/run/{model}`` with host ``https://api.cloudflare.com/client/v4/accounts/{id}``
(through a gateway: ``{gateway}/workers-ai/{model}``), bearer ``CLOUDFLARE_API_TOKEN``, ``max_tokens`` (default 256
on Cloudflare's side). The stream is SSE with ``{"response": "..."}`` chunks, a last chunk carrying ``usage``, and
``data: [DONE]``; some newer models send OpenAI-shaped chunks (``choices[0].delta.content`` /
``reasoning_content``) on the same route, so both shapes are read. Errors use Cloudflare's REST envelope
``{"success": false, "errors": [{"code", "message"}]}``.

``cf-universal``: ``POST {gateway base}`` with a JSON array of steps ``{provider, endpoint, headers, query}``; the
gateway tries them in order (retries, then fallback) and answers in the format of the step that answered, named by
the ``cf-aig-step`` response header. The model is written as a comma-separated chain of ``slug/model`` steps,
primary first, e.g. ``--model "workers-ai/@cf/meta/llama-3.1-8b-instruct,openai/gpt-4o-mini"``; each step's key
comes from its provider's usual environment variable. The record names the model and API that answered.
"""

from __future__ import annotations

import os
from typing import Any

from .. import gateway
from ..prompts import Prompt
from .anthropic import AnthropicMessages
from .base import DONE, NOTHING, Delta, Protocol, loads
from .gemini import Gemini
from .openai import OpenAIChat, _usage


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
        if data == b"[DONE]":
            return DONE
        obj = loads(data)
        if not isinstance(obj, dict):
            return NOTHING
        if obj.get("errors") or obj.get("error"):
            return Delta(error=self.error_message(data))
        u = obj.get("usage")
        usage = _usage(u) if u else None
        choices = obj.get("choices")
        if choices:  # OpenAI-shaped chunk on the native route
            text, reasoning = OpenAIChat.choice_text(choices[0])
            return Delta(text, reasoning, usage, False, None, choices[0].get("finish_reason"))
        return Delta(obj.get("response") or "", "", usage)


#: gateway provider slug -> the protocol that speaks its native API
STEP_PROTOCOLS: dict[str, type[Protocol]] = {
    "openai": OpenAIChat,
    "deepseek": OpenAIChat,
    "mistral": OpenAIChat,
    "groq": OpenAIChat,
    "anthropic": AnthropicMessages,
    "google-ai-studio": Gemini,
    "workers-ai": WorkersAI,
}


class GatewayUniversal(Protocol):
    name = "cf-universal"
    path = ""
    key_env = gateway.TOKEN_ENV
    summary = "Cloudflare AI Gateway universal endpoint (--model 'slug/model,slug/model' = fallback chain)"

    def __init__(self, host: str, model: str, **kw: Any) -> None:
        super().__init__(host, model, **kw)
        parts = gateway.parts(host)
        base = parts[0] if parts else host.rstrip("/")
        self.steps: list[Protocol] = []
        for step in (s.strip() for s in model.split(",")):
            slug, sep, step_model = step.partition("/")
            cls = STEP_PROTOCOLS.get(slug)
            if not sep or cls is None:
                raise ValueError(
                    f"cf-universal: step {step!r} is not 'provider/model' with provider one of "
                    f"{', '.join(STEP_PROTOCOLS)}; e.g. --model 'workers-ai/@cf/meta/llama-3.1-8b-instruct,"
                    "openai/gpt-4o-mini'"
                )
            self.steps.append(cls(f"{base}/{slug}", step_model, **kw))

    def request_path(self) -> str:
        return ""

    def headers(self, api_key: str | None) -> dict[str, str]:
        return gateway.request_headers()

    def body(self, prompt: Prompt, max_tokens: int | None) -> list[dict[str, Any]]:  # type: ignore[override]
        out = []
        for step in self.steps:
            key = os.environ.get(step.key_env) if step.key_env else None
            headers = {k: v for k, v in step.headers(key).items() if not k.startswith("cf-aig-")}
            out.append({
                "provider": gateway.parts(step.host)[1],  # type: ignore[index]
                "endpoint": step.request_path().lstrip("/"),
                "headers": headers,
                "query": step.body(prompt, max_tokens),
            })  # fmt: skip
        return out

    def for_response(self, headers: Any) -> Protocol:
        try:
            index = int((headers.get("cf-aig-step") if headers is not None else None) or 0)
        except ValueError:
            index = 0
        return self.steps[index] if 0 <= index < len(self.steps) else self.steps[0]

    def parse(self, event: str, data: bytes) -> Delta:
        return self.steps[0].parse(event, data)
