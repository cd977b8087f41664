"""The wire protocols llm-locust speaks, by the name ``--llm-api`` takes."""

from __future__ import annotations

from .anthropic import AnthropicMessages
from .base import DONE, Delta, Protocol, Usage
from .cloudflare import GatewayUniversal, WorkersAI
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

__all__ = ["DONE", "Delta", "Protocol", "Usage", "PROTOCOLS", "TemplateError", "get_protocol"]


def get_protocol(name: str) -> type[Protocol]:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ValueError(f"unknown API {name!r}; choose one of: {', '.join(PROTOCOLS)}") from None
