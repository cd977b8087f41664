"""Cloudflare AI Gateway's universal endpoint (``--llm-api cf-universal``): one request, a fallback chain.

``POST {gateway base}`` with a JSON array of steps ``{provider, endpoint, headers, query}``; the gateway tries them
in order (retries, then fallback) and answers in the format of the step that answered, named by the ``cf-aig-step``
response header. The model is written as a comma-separated chain of ``slug/model`` steps, primary first, e.g.
``--model "workers-ai/@cf/meta/llama-3.1-8b-instruct,openai/gpt-4o-mini"``; each step's key comes from its
provider's usual environment variable. The record names the model and API that answered, and is priced as it.

The host must be a gateway URL (see :mod:`llm_locust.protocols.cloudflare.gateway`): anything else, or a malformed
chain, is an :class:`~llm_locust.protocols.base.EndpointError` at construction.
"""

from __future__ import annotations

import os
from typing import Any

from ...prompts import Prompt
from ...reasoning import Reasoning, deep_merge
from ..anthropic import AnthropicMessages
from ..base import Delta, EndpointError, Protocol
from ..gemini import Gemini
from ..openai import OpenAIChat
from .gateway import GATEWAY_HOST, SLUG_APIS, TOKEN_ENV, URL_ENV, GatewayRoute
from .workers_ai import WorkersAI

_BY_API: dict[str, type[Protocol]] = {p.name: p for p in (OpenAIChat, AnthropicMessages, Gemini, WorkersAI)}
#: gateway provider slug -> the protocol that speaks its native API (a step of the chain)
STEP_PROTOCOLS: dict[str, type[Protocol]] = {
    slug: _BY_API[apis[0]] for slug, apis in SLUG_APIS.items() if slug not in ("", "compat") and apis[0] in _BY_API
}


class GatewayUniversal(Protocol):
    name = "cf-universal"
    path = ""
    key_env = TOKEN_ENV
    summary = "Cloudflare AI Gateway universal endpoint (--model 'slug/model,slug/model' = fallback chain)"

    def __init__(self, host: str, model: str, **kw: Any) -> None:
        super().__init__(host, model, **kw)
        route = self.route
        if not isinstance(route, GatewayRoute):
            raise EndpointError(
                f"cf-universal: {host} is not a Cloudflare AI Gateway URL; use the gateway's base URL "
                f"https://{GATEWAY_HOST}/v1/ACCOUNT_ID/GATEWAY_ID, or set {URL_ENV} to your gateway's base URL"
            )
        kw.pop("route", None)
        self.steps: list[Protocol] = []
        for step in (s.strip() for s in model.split(",")):
            slug, sep, step_model = step.partition("/")
            cls = STEP_PROTOCOLS.get(slug)
            if not sep or cls is None:
                raise EndpointError(
                    f"cf-universal: step {step!r} is not 'provider/model' with provider one of "
                    f"{', '.join(STEP_PROTOCOLS)}; e.g. --model 'workers-ai/@cf/meta/llama-3.1-8b-instruct,"
                    "openai/gpt-4o-mini'"
                )
            self.steps.append(cls(f"{route.base}/{slug}", step_model, route=route.for_slug(slug), **kw))

    def request_path(self) -> str:
        return ""

    def headers(self, api_key: str | None) -> dict[str, str]:
        return self.route.headers()

    def secrets(self, api_key: str | None) -> tuple[str, ...]:
        found = list(super().secrets(api_key))
        for step in self.steps:
            found += step.secrets(os.environ.get(step.key_env) if step.key_env else None)
        return tuple(dict.fromkeys(found))

    def body(self, prompt: Prompt, max_tokens: int | None) -> list[dict[str, Any]]:
        out = []
        for step in self.steps:
            key = os.environ.get(step.key_env) if step.key_env else None
            headers = {k: v for k, v in step.headers(key).items() if not k.startswith("cf-aig-")}
            out.append({
                "provider": step.route.slug,
                "endpoint": step.request_path().lstrip("/"),
                "headers": headers,
                "query": step.body(prompt, max_tokens),
            })
        return out

    def request_body(
        self, prompt: Prompt, max_tokens: int | None, reasoning: Reasoning | None = None,
        extra: list[dict[str, Any]] | tuple[dict[str, Any], ...] = (),
    ) -> list[dict[str, Any]]:
        """Each step's query gets its own provider's reasoning switch and the extra fields."""
        out = self.body(prompt, max_tokens)
        for step, item in zip(self.steps, out, strict=True):
            if reasoning is not None:
                step.reason(item["query"], reasoning)
            for fields in extra:
                deep_merge(item["query"], fields)
        return out

    def for_response(self, headers: Any) -> Protocol:
        try:
            index = int((headers.get("cf-aig-step") if headers is not None else None) or 0)
        except ValueError:
            index = 0
        return self.steps[index] if 0 <= index < len(self.steps) else self.steps[0]

    def parse(self, event: str, data: bytes) -> Delta:
        return self.steps[0].parse(event, data)
