"""Reasoning on request, and extra request-body fields: the settings, their checks and how they merge.

A ``reasoning`` setting is ``off``, ``low``, ``medium``, ``high`` or a token budget (a positive integer). It can
be given per prompt (``prompts.yaml``), per target (``--targets`` file) and for the whole run (``--reasoning``);
the most specific wins: prompt > target > option. Unset (``None``) sends nothing: the model's own default.
Each wire protocol maps it onto its provider's own switch (``Protocol.reason``; the table is in
``docs/providers.md``):

* Anthropic: ``thinking: {type: enabled, budget_tokens: N}`` (levels: :data:`EFFORT_BUDGETS`), ``max_tokens``
  raised above the budget where it is not (the API requires ``budget_tokens < max_tokens``); off: nothing;
* Gemini / Vertex: ``generationConfig.thinkingConfig: {thinkingBudget: N, includeThoughts: true}``; off:
  ``thinkingBudget: 0``;
* OpenAI-compatible chat: ``reasoning_effort`` (an integer budget is sent as the level whose budget covers it,
  :func:`effort_of`); on Mistral's API ``prompt_mode: "reasoning"``; off: nothing;
* Ollama native: ``think: true`` for any on setting (only some models, e.g. gpt-oss, take ``think: "low"`` ...:
  send that with ``extra_body``); off: ``think: false``;
* legacy completions, Workers AI native and custom templates have no switch: nothing is sent.

``extra_body`` (per prompt and per target) is a mapping deep-merged into the request body after everything else:
nested mappings merge key by key, any other value replaces; the prompt's is merged over the target's.
"""

from __future__ import annotations

import copy
from typing import Any

LEVELS = ("off", "low", "medium", "high")
#: the token budget a level stands for where a provider takes only budgets (Anthropic's minimum is 1024)
EFFORT_BUDGETS = {"low": 1024, "medium": 4096, "high": 16384}

#: a checked setting: a level name or a positive token budget
Reasoning = str | int


def parse_reasoning(value: Any, name: str = "reasoning") -> Reasoning | None:
    """A checked reasoning setting (``None`` stays unset); ``ValueError`` naming ``name`` and the accepted values."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if value is False:  # YAML reads a bare off (or no, false) as false
        return "off"
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str) and value.strip().lower() in LEVELS:
        return value.strip().lower()
    raise ValueError(f"{name} must be off, low, medium, high or a positive token budget (got {value!r})")


def budget_of(reasoning: Reasoning) -> int:
    """The token budget of an on setting: the integer itself, else the level's :data:`EFFORT_BUDGETS` entry."""
    return reasoning if isinstance(reasoning, int) else EFFORT_BUDGETS[reasoning]


def effort_of(reasoning: Reasoning) -> str:
    """The level of an on setting: the level itself, else the lowest level whose budget covers the integer."""
    if isinstance(reasoning, str):
        return reasoning
    return next((level for level, b in EFFORT_BUDGETS.items() if reasoning <= b), "high")


def pick(*settings: Reasoning | None) -> Reasoning | None:
    """The first setting that is set (call with prompt, target, option)."""
    return next((s for s in settings if s is not None), None)


def check_extra_body(value: Any) -> dict[str, Any] | None:
    """A checked ``extra_body`` (a mapping with string keys), or ``None``; ``ValueError`` otherwise."""
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"extra_body must be a mapping of request-body fields (got {type(value).__name__})")
    return value


def deep_merge(body: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Merge ``extra`` into ``body`` in place (nested mappings key by key, other values replace); return it."""
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(body.get(key), dict):
            deep_merge(body[key], value)
        else:
            body[key] = copy.deepcopy(value)
    return body
