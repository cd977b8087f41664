"""The wire protocols llm-locust speaks, by the name ``--llm-api`` takes."""

from __future__ import annotations

from .base import DONE, Delta, Protocol, Usage
from .ollama import OllamaChat, OllamaGenerate
from .openai import OpenAIChat, OpenAICompletions

PROTOCOLS: dict[str, type[Protocol]] = {p.name: p for p in (OpenAIChat, OpenAICompletions, OllamaChat, OllamaGenerate)}

__all__ = ["DONE", "Delta", "Protocol", "Usage", "PROTOCOLS", "get_protocol"]


def get_protocol(name: str) -> type[Protocol]:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ValueError(f"unknown API {name!r}; choose one of: {', '.join(PROTOCOLS)}") from None
