"""Cloudflare AI Gateway: which hosts are gateway URLs, and the route requests take through one.

A gateway URL is a gateway base URL followed by a provider slug (``/openai``, ``/anthropic``,
``/google-ai-studio``, ``/workers-ai``, ``/mistral``, ``/deepseek`` ...), by ``/compat`` (the OpenAI-compatible
endpoint, models named ``provider/model``), or by nothing (the universal endpoint, see
:mod:`llm_locust.protocols.cloudflare.universal`). The base URL is ``LLM_GATEWAY_URL`` when that variable is set
(any gateway or test server: every host under it is a gateway URL), and any
``https://gateway.ai.cloudflare.com/v1/{account_id}/{gateway_id}``. Bodies, auth and streams are the provider's
own; :class:`GatewayRoute` adds what the gateway changes:

* the path after some slugs (the gateway drops OpenAI's, DeepSeek's and Groq's ``/v1``; Workers AI is
  ``/workers-ai/{model}``);
* request headers: ``cf-aig-authorization: Bearer $CF_AIG_TOKEN`` when that variable is set (authenticated
  gateways), and ``cf-aig-skip-cache: true`` so a benchmark measures the model, not the cache;
* per-request record fields from the response headers: ``gateway_cache`` (``cf-aig-cache-status``, HIT/MISS),
  ``gateway_step`` (``cf-aig-step``: which step of a fallback chain answered, 0 = primary) and ``gateway_log_id``;
* prices: a request is priced as the upstream provider (``openai``, ``anthropic``, ``google``, ``cloudflare``...;
  on ``/compat`` the model's ``provider/`` prefix names it);
* a check: a slug speaks given APIs (``/anthropic`` is Anthropic's Messages API, the bare base URL is the universal
  endpoint), so a wrong ``--llm-api`` is one line at start-up, not a run of 404s.

:func:`find_gateway` is registered in :data:`llm_locust.protocols.base.ROUTE_FINDERS`; :func:`gateway_base` is the
base URL a catalog target with ``via: gateway`` goes through; :func:`gateway_api` is the API a gateway URL implies.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from ..base import EndpointError, Route

GATEWAY_HOST = "gateway.ai.cloudflare.com"
#: the gateway base URL of catalog targets with ``via: gateway`` (``${VAR}`` read from the environment)
GATEWAY_URL = f"https://{GATEWAY_HOST}/v1/${{CLOUDFLARE_ACCOUNT_ID}}/${{CLOUDFLARE_GATEWAY_ID}}"
URL_ENV = "LLM_GATEWAY_URL"
TOKEN_ENV = "CF_AIG_TOKEN"

#: slug -> the APIs its route speaks, the usual one first (``""``: the universal endpoint); other slugs: unchecked
SLUG_APIS: dict[str, tuple[str, ...]] = {
    "": ("cf-universal",),
    "openai": ("openai-chat", "openai-completions"),
    "anthropic": ("anthropic",),
    "google-ai-studio": ("gemini",),
    "google-vertex-ai": ("vertex",),
    "workers-ai": ("workers-ai", "openai-chat"),
    "compat": ("openai-chat",),
    "deepseek": ("openai-chat",),
    "mistral": ("openai-chat",),
    "groq": ("openai-chat",),
}
_CHECKED_APIS = {api for apis in SLUG_APIS.values() for api in apis}

#: path after the slug, where it is not the provider's own path
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

#: record field -> response header
RESPONSE_HEADERS = {
    "gateway_cache": "cf-aig-cache-status",
    "gateway_step": "cf-aig-step",
    "gateway_log_id": "cf-aig-log-id",
}


def _own_base() -> str | None:
    """``LLM_GATEWAY_URL`` without its trailing slash; EndpointError if it is set but not an http(s) URL."""
    url = os.environ.get(URL_ENV, "").strip().rstrip("/")
    if not url:
        return None
    u = urlsplit(url)
    if u.scheme not in ("http", "https") or not u.netloc:
        raise EndpointError(
            f"{URL_ENV}={url!r} is not a URL; set it to the gateway's base URL, "
            f"e.g. https://{GATEWAY_HOST}/v1/ACCOUNT_ID/GATEWAY_ID (or unset it)"
        )
    return url


def gateway_parts(host: str) -> tuple[str, str] | None:
    """``(base URL, slug)`` of a gateway URL (slug ``""`` for the universal endpoint), else ``None``."""
    url = host.strip().rstrip("/")
    own = _own_base()
    if own is not None and (url == own or url.startswith(own + "/")):
        return own, url[len(own) :].strip("/").split("/", 1)[0]
    u = urlsplit(url)
    if u.netloc != GATEWAY_HOST:
        return None
    segs = [s for s in u.path.split("/") if s]
    if len(segs) < 3 or segs[0] != "v1":  # v1 / account / gateway [/ slug]
        return None
    return f"{u.scheme}://{u.netloc}/" + "/".join(segs[:3]), (segs[3] if len(segs) > 3 else "")


def gateway_base() -> str:
    """The gateway base URL catalog targets with ``via: gateway`` go through: ``LLM_GATEWAY_URL`` if set (another
    gateway, or a test server), else Cloudflare's from ``CLOUDFLARE_ACCOUNT_ID`` and ``CLOUDFLARE_GATEWAY_ID``
    (``${VAR}`` left for the caller to expand)."""
    return _own_base() or GATEWAY_URL


def gateway_api(url: str) -> str | None:
    """The API a gateway URL implies (its slug's usual one; OpenAI chat for slugs not in the table), else ``None``."""
    parts = gateway_parts(url)
    if parts is None:
        return None
    return SLUG_APIS.get(parts[1], ("openai-chat",))[0]


class GatewayRoute(Route):
    """Requests through a Cloudflare AI Gateway: ``base`` is the gateway base URL, ``slug`` the provider's."""

    def __init__(self, base: str, slug: str) -> None:
        self.base = base
        self.slug = slug

    def for_slug(self, slug: str) -> GatewayRoute:
        """The route to another provider of the same gateway (a step of the universal endpoint)."""
        return GatewayRoute(self.base, slug)

    def path(self, api: str, model: str) -> str | None:
        path = SLUG_PATHS.get((self.slug, api))
        return path.format(model=model) if path else None

    def headers(self) -> dict[str, str]:
        headers = {"cf-aig-skip-cache": "true"}
        token = os.environ.get(TOKEN_ENV)
        if token:
            headers["cf-aig-authorization"] = f"Bearer {token}"
        return headers

    def response_fields(self, headers: Any) -> dict[str, Any]:
        if headers is None:
            return {}
        return {field: headers.get(name) for field, name in RESPONSE_HEADERS.items()}

    def price_ref(self, provider: str | None, model: str) -> tuple[str | None, str]:
        slug = self.slug
        if slug == "compat" and "/" in model:
            slug, model = model.split("/", 1)
            if slug == "google-vertex-ai" and model.startswith("google/"):
                model = model.split("/", 1)[1]
        return PRICE_PROVIDERS.get(slug), model

    def check(self, api: str) -> None:
        apis = SLUG_APIS.get(self.slug)
        if api not in _CHECKED_APIS or apis is None or api in apis or (api == "cf-universal" and self.slug):
            return  # a custom template, an unlisted slug, a fitting API, or the universal endpoint's base + slug
        where = f"{self.base}/{self.slug}" if self.slug else self.base
        if not self.slug:
            raise EndpointError(
                f"{where} is a Cloudflare AI Gateway's universal endpoint, which --llm-api {api} cannot use; "
                f"use --llm-api cf-universal (api: in a targets file), or add the provider's slug to the host "
                f"(e.g. {self.base}/openai)"
            )
        raise EndpointError(
            f"{where} is the gateway's {self.slug!r} route, which speaks {' or '.join(apis)}, not {api}; "
            f"use --llm-api {apis[0]} (api: in a targets file)"
        )


def find_gateway(host: str) -> GatewayRoute | None:
    """The gateway route to ``host`` if it is a gateway URL (see the module docstring), else ``None``."""
    parts = gateway_parts(host)
    return GatewayRoute(*parts) if parts else None
