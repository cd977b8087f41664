"""OpenAI chat completions and legacy completions, as spoken by OpenAI and every OpenAI-compatible server.

Covers OpenAI, vLLM, SGLang, llama.cpp, Ollama's ``/v1``, Mistral and DeepSeek. Streams are SSE ending with
``data: [DONE]``; usage is asked for with ``stream_options.include_usage`` and arrives in a trailing chunk with
``choices: []`` (or, with ``continuous_usage_stats``, cumulatively on every chunk). Reasoning text may arrive as
``delta.reasoning_content`` (DeepSeek, SGLang, llama.cpp), ``delta.reasoning`` (vLLM, Ollama) or, on Mistral, as
``thinking`` items of a content list. Reasoning on request (:mod:`llm_locust.reasoning`): ``reasoning_effort``
(an integer budget as the lowest level whose budget covers it), on Mistral's API ``prompt_mode: "reasoning"``;
``off`` sends nothing. ``--fixed-output`` sends ``ignore_eos: true`` and ``min_tokens`` = the token limit (vLLM,
SGLang; llama.cpp's server takes ``ignore_eos``); hosted OpenAI rejects unknown parameters (HTTP 400).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from ..prompts import Prompt
from ..reasoning import Reasoning, effort_of
from .base import Delta, Protocol, Usage, sse_object


def _usage(u: dict[str, Any]) -> Usage:
    details = u.get("completion_tokens_details") or {}
    prompt_details = u.get("prompt_tokens_details") or {}
    return Usage(
        input_tokens=u.get("prompt_tokens"),
        output_tokens=u.get("completion_tokens"),
        reasoning_tokens=details.get("reasoning_tokens"),
        cached_tokens=prompt_details.get("cached_tokens", u.get("prompt_cache_hit_tokens")),
    )


def _content(value: Any) -> tuple[str, str]:
    """(text, reasoning) of a delta's ``content``: a string, or Mistral's list of typed chunks."""
    if not value:
        return "", ""
    if isinstance(value, str):
        return value, ""
    text, reasoning = [], []
    for item in value:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "thinking":
            for part in item.get("thinking") or ():
                reasoning.append(part.get("text", "") if isinstance(part, dict) else str(part))
        else:
            text.append(item.get("text") or "")
    return "".join(text), "".join(reasoning)


def _error(obj: dict[str, Any]) -> str | None:
    err = obj.get("error")
    if err:
        return err.get("message") or str(err) if isinstance(err, dict) else str(err)
    if obj.get("object") == "error":  # SGLang / Mistral flat shape
        return obj.get("message") or "error"
    return None


class OpenAIChat(Protocol):
    name = "openai-chat"
    literal_text = True
    path = "/v1/chat/completions"
    key_env = "OPENAI_API_KEY"
    summary = "OpenAI chat completions (OpenAI, vLLM, SGLang, llama.cpp, Ollama /v1, Mistral, DeepSeek)"

    def _stream_options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {"include_usage": True}
        if self.continuous_usage:
            opts["continuous_usage_stats"] = True
        return opts

    def _limit_field(self) -> str:
        # OpenAI's reasoning models reject the deprecated max_tokens; most compatible servers know only max_tokens
        return "max_completion_tokens" if urlsplit(self.host).hostname == "api.openai.com" else "max_tokens"

    def _input(self, prompt: Prompt) -> dict[str, Any]:
        """The request's prompt fields: ``messages`` (chat) or ``prompt`` (completions)."""
        return {"messages": prompt.chat_messages()}

    def body(self, prompt: Prompt, max_tokens: int | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            **self._input(prompt),
            "stream": True,
            "stream_options": self._stream_options(),
        }
        if max_tokens:
            body[self._limit_field()] = max_tokens
        return body

    @classmethod
    def fixed_output(cls, limit: int) -> dict[str, Any] | None:
        # vLLM and SGLang take both, llama.cpp's server ignore_eos; hosted APIs (api.openai.com) reject them
        return {"ignore_eos": True, "min_tokens": limit}

    def reason(self, body: dict[str, Any], reasoning: Reasoning) -> None:
        # off: nothing (no switch every compatible server takes; gpt-5.1+ know reasoning_effort "none": extra_body)
        if reasoning == "off":
            return
        if urlsplit(self.host).hostname == "api.mistral.ai" or getattr(self.route, "slug", None) == "mistral":
            body["prompt_mode"] = "reasoning"  # Mistral's reasoning mode (Magistral models)
        else:
            body["reasoning_effort"] = effort_of(reasoning)  # an integer budget goes as the level covering it

    def parse(self, event: str, data: bytes) -> Delta:
        obj = sse_object(data)
        if isinstance(obj, Delta):
            return obj
        err = _error(obj)
        if err:
            return Delta(error=err)
        u = obj.get("usage")
        usage = _usage(u) if u else None
        choices = obj.get("choices")
        if not choices:
            return Delta(usage=usage)
        text, reasoning = self.choice_text(choices[0])
        return Delta(text, reasoning, usage, False, None, choices[0].get("finish_reason"))

    @staticmethod
    def choice_text(choice: dict[str, Any]) -> tuple[str, str]:
        """(text, reasoning) of a streamed chat choice."""
        delta = choice.get("delta") or {}
        text, reasoning = _content(delta.get("content"))
        return text, reasoning or delta.get("reasoning_content") or delta.get("reasoning") or ""


class OpenAICompletions(OpenAIChat):
    name = "openai-completions"
    path = "/v1/completions"
    summary = "OpenAI legacy completions (vLLM, SGLang, llama.cpp, Ollama /v1 ...)"

    def _limit_field(self) -> str:
        return "max_tokens"

    def _input(self, prompt: Prompt) -> dict[str, Any]:
        return {"prompt": prompt.flat_text()}

    def reason(self, body: dict[str, Any], reasoning: Reasoning) -> None:
        """Legacy completions have no reasoning switch: nothing is sent."""

    @staticmethod
    def choice_text(choice: dict[str, Any]) -> tuple[str, str]:
        return choice.get("text") or "", ""
