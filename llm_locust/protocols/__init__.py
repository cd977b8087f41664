"""The wire protocols llm-locust speaks, by the name ``--llm-api`` takes, and the gateways they can go through.

:func:`get_protocol` is a protocol class by name; constructing it on a host finds the host's route once (a gateway
in :data:`~llm_locust.protocols.base.ROUTE_FINDERS`, else direct). :func:`check_endpoint` tells before any request
whether an API can work against a host and model, as one line (:class:`EndpointError`).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from .anthropic import AnthropicMessages
from .base import DONE, ROUTE_FINDERS, Delta, EndpointError, Protocol, Usage
from .cloudflare import GatewayUniversal, WorkersAI, find_gateway
from .custom import CustomREST, TemplateError
from .gemini import Gemini, Vertex
from .ollama import OllamaChat, OllamaGenerate
from .openai import OpenAIChat, OpenAICompletions

PROTOCOLS: dict[str, type[Protocol]] = {
    p.name: p
    for p in (
        OpenAIChat,
        OpenAICompletions,
        OllamaChat,
        OllamaGenerate,
        AnthropicMessages,
        Gemini,
        Vertex,
        WorkersAI,
        GatewayUniversal,
        CustomREST,
    )
}

ROUTE_FINDERS.append(find_gateway)  # Cloudflare AI Gateway

__all__ = ["DONE", "Delta", "EndpointError", "Protocol", "Usage", "PROTOCOLS", "TemplateError", "check_endpoint",
           "check_host", "get_protocol"]


def get_protocol(name: str) -> type[Protocol]:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ValueError(f"unknown API {name!r}; choose one of: {', '.join(PROTOCOLS)}") from None


def check_host(host: str, where: str = "--host") -> None:
    """Raise :class:`EndpointError` unless ``host`` is a usable ``http(s)://host[:port][/path]`` URL."""
    fix = "give a URL such as http://127.0.0.1:8000 or https://api.example.com"
    if not isinstance(host, str) or not host:
        raise EndpointError(f"{where}: no URL given; {fix}")
    shown = host.encode("utf-8", "backslashreplace").decode()[:80]
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in host):
        raise EndpointError(f"{where} {shown!r}: the URL contains a space or control character; {fix}")
    try:
        parts = urlsplit(host)
        port = parts.port
    except ValueError as e:
        raise EndpointError(f"{where} {shown!r}: not a valid URL ({e}); {fix}") from None
    if parts.scheme not in ("http", "https"):
        raise EndpointError(f"{where} {shown!r}: the scheme must be http or https; {fix}")
    if not parts.hostname:
        raise EndpointError(f"{where} {shown!r}: no host name in the URL; {fix}")
    if port == 0:
        raise EndpointError(f"{where} {shown!r}: port 0 is not a server's port; {fix}")


def check_endpoint(api: str, host: str, model: str) -> None:
    """Raise :class:`EndpointError` (one line naming the problem and the fix) if ``api`` cannot work against
    ``host`` and ``model``: a gateway route spoken with the wrong API, the universal endpoint on a host that is no
    gateway, a malformed fallback chain, a malformed ``LLM_GATEWAY_URL``. Cheap; run it where inputs are checked
    at start-up. A custom template is checked on its own (``load_template``)."""
    check_host(host)
    cls = get_protocol(api)
    if cls is not CustomREST:
        cls(host, model)
