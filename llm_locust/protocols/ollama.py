"""Ollama's native API: ``/api/chat`` and ``/api/generate``, streamed as NDJSON.

Each line is one JSON object; the last has ``"done": true`` and the usage (``prompt_eval_count``,
``eval_count``). Thinking models stream reasoning in ``message.thinking`` (chat) or ``thinking`` (generate).
Errors, before or during the stream, are ``{"error": "..."}``. The output cap is ``options.num_predict``.
Reasoning on request (:mod:`llm_locust.reasoning`): ``think: true`` (``false`` for ``off``), chat and generate.
"""

from __future__ import annotations

from typing import Any

from ..prompts import Prompt
from ..reasoning import Reasoning
from .base import NOTHING, Delta, Protocol, Usage, loads


def _final(obj: dict[str, Any]) -> Usage:
    return Usage(input_tokens=obj.get("prompt_eval_count"), output_tokens=obj.get("eval_count"))


class OllamaChat(Protocol):
    name = "ollama-chat"
    literal_text = True
    framing = "ndjson"
    path = "/api/chat"
    key_env = "OLLAMA_API_KEY"
    summary = "Ollama native chat (NDJSON)"

    def body(self, prompt: Prompt, max_tokens: int | None) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": prompt.chat_messages(), "stream": True}
        if max_tokens:
            body["options"] = {"num_predict": max_tokens}
        return body

    def reason(self, body: dict[str, Any], reasoning: Reasoning) -> None:
        # levels and budgets are sent as true: only some models (gpt-oss) take think: "low" ... (use extra_body)
        body["think"] = reasoning != "off"

    def parse(self, event: str, data: bytes) -> Delta:
        obj = loads(data)
        if not isinstance(obj, dict):
            return NOTHING
        if obj.get("error"):
            return Delta(error=str(obj["error"]))
        done = bool(obj.get("done"))
        text, reasoning = self.text_of(obj)
        return Delta(text, reasoning, _final(obj) if done else None, done, None, obj.get("done_reason"))

    @staticmethod
    def text_of(obj: dict[str, Any]) -> tuple[str, str]:
        msg = obj.get("message") or {}
        return msg.get("content") or "", msg.get("thinking") or ""


class OllamaGenerate(OllamaChat):
    name = "ollama-generate"
    path = "/api/generate"
    summary = "Ollama native generate (NDJSON)"

    def body(self, prompt: Prompt, max_tokens: int | None) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "prompt": prompt.flat_text(include_system=False), "stream": True}
        if prompt.system:
            body["system"] = prompt.system
        if max_tokens:
            body["options"] = {"num_predict": max_tokens}
        return body

    @staticmethod
    def text_of(obj: dict[str, Any]) -> tuple[str, str]:
        return obj.get("response") or "", obj.get("thinking") or ""
