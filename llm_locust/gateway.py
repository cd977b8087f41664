"""Cloudflare AI Gateway: recognising a gateway URL, its per-provider paths, its headers and what it reports back.

A gateway URL is ``https://gateway.ai.cloudflare.com/v1/{account_id}/{gateway_id}`` followed by a provider slug
(``/openai``, ``/anthropic``, ``/google-ai-studio``, ``/workers-ai``, ``/mistral``, ``/deepseek`` ...), by
``/compat`` (the OpenAI-compatible endpoint, models named ``provider/model``), or by nothing (the universal
endpoint, see :mod:`llm_locust.protocols.cloudflare`). Bodies, auth and streams are the provider's own; the gateway
adds:

* request headers: ``cf-aig-authorization: Bearer $CF_AIG_TOKEN`` when that variable is set (authenticated
  gateways), and ``cf-aig-skip-cache: true`` so a benchmark measures the model, not the cache;
* response headers, recorded per request: ``cf-aig-cache-status`` (HIT/MISS), ``cf-aig-step`` (which step of a
  fallback chain answered; 0 = primary) and ``cf-aig-log-id``.

Tests point ``LLM_GATEWAY_HOSTS`` (comma-separated host[:port] list) at the mock server to treat it as a gateway.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

GATEWAY_HOST = "gateway.ai.cloudflare.com"
TOKEN_ENV = "CF_AIG_TOKEN"

#: path after the slug, where it is not the provider's own path (the gateway drops OpenAI's and DeepSeek's /v1)
SLUG_PATHS = {
    ("openai", "openai-chat"): "/chat/completions",
    ("openai", "openai-completions"): "/completions",
    ("deepseek", "openai-chat"): "/chat/completions",
    ("groq", "openai-chat"): "/chat/completions",
    ("compat", "openai-chat"): "/chat/completions",
    ("workers-ai", "openai-chat"): "/v1/chat/completions",
    ("workers-ai", "workers-ai"): "/{model}",
}

#: gateway provider slug -> genai-prices provider id
PRICE_PROVIDERS = {
    "openai": "openai",
    "anthropic": "anthropic",
    "google-ai-studio": "google",
    "google-vertex-ai": "google",
    "workers-ai": "cloudflare",
    "mistral": "mistral",
    "deepseek": "deepseek",
    "groq": "groq",
    "azure-openai": "azure",
    "aws-bedrock": "aws",
    "openrouter": "openrouter",
}

RESPONSE_HEADERS = {
    "gateway_cache": "cf-aig-cache-status",
    "gateway_step": "cf-aig-step",
    "gateway_log_id": "cf-aig-log-id",
}


def _gateway_hosts() -> set[str]:
    extra = os.environ.get("LLM_GATEWAY_HOSTS", "")
    return {GATEWAY_HOST, *(h.strip() for h in extra.split(",") if h.strip())}


def parts(host: str) -> tuple[str, str] | None:
    """``(base URL, slug)`` of a gateway URL (slug ``""`` for the universal endpoint), else ``None``."""
    u = urlsplit(host)
    if u.netloc not in _gateway_hosts():
        return None
    segs = [s for s in u.path.split("/") if s]
    # v1 / account / gateway [/ slug]
    if len(segs) < 3 or segs[0] != "v1":
        return None
    base = f"{u.scheme}://{u.netloc}/" + "/".join(segs[:3])
    return base, (segs[3] if len(segs) > 3 else "")


def is_gateway(host: str) -> bool:
    return parts(host) is not None


def path_for(host: str, protocol: str, model: str) -> str | None:
    """The request path after a gateway provider URL, where it differs from the provider's own path."""
    p = parts(host)
    if p is None:
        return None
    path = SLUG_PATHS.get((p[1], protocol))
    return path.format(model=model) if path else None


def request_headers() -> dict[str, str]:
    headers = {"cf-aig-skip-cache": "true"}
    token = os.environ.get(TOKEN_ENV)
    if token:
        headers["cf-aig-authorization"] = f"Bearer {token}"
    return headers


def response_fields(headers: Any) -> dict[str, Any]:
    if headers is None:
        return {}
    return {field: headers.get(name) for field, name in RESPONSE_HEADERS.items()}


def price_ref(host: str, model: str) -> tuple[str | None, str]:
    """(genai-prices provider id, model name) of a request through the gateway: priced by the upstream provider."""
    p = parts(host)
    slug = p[1] if p else ""
    if slug == "compat" and "/" in model:
        slug, model = model.split("/", 1)
        if slug == "google-vertex-ai" and model.startswith("google/"):
            model = model.split("/", 1)[1]
    return PRICE_PROVIDERS.get(slug), model
