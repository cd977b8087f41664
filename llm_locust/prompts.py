"""The prompt file: loading and validating ``prompts.yaml``.

Schema (seed 000's, plus optional chat turns, a system prompt and a weight)::

    prompts:
      - name: "Simple question"          # required, unique
        text: "What is the capital of France?"   # required unless `messages` is given
        token_limit: 100                 # optional positive integer: output cap for this prompt
        system: "You are terse."         # optional system prompt
        messages:                        # optional earlier chat turns, sent before `text`
          - {role: user, content: "Hi"}
          - {role: assistant, content: "Hello!"}
        weight: 2                        # optional positive number: relative frequency under load (default 1)
        reasoning: high                  # optional: off, low, medium, high or a token budget (llm_locust/reasoning.py)
        extra_body: {temperature: 0}     # optional mapping deep-merged into the request body
      - name: "Random 512"               # a synthetic prompt (llm_locust/synthetic.py): no `text`
        synthetic:
          input_tokens: [512, 64]        # required: MEAN or [MEAN, STDDEV] tokens (or "512,64")
          output_tokens: 128             # optional: the drawn length is the token_limit
          count: 200                     # optional: distinct prompts generated (default up to 1000)
      - name: "Three turns"              # a multi-turn session (llm_locust/sessions.py): no `text`
        turns: ["Hi!", "Tell me more.", "Sum it up in one line."]

A ``synthetic:`` entry becomes ``count`` prompts of that name at start-up, each of a drawn input length and output
limit, sharing the entry's weight; ``--input-tokens``/``--output-tokens`` make one such entry without a file. A
``turns:`` entry is a session: a user sends its turns one after the other, each request carrying the conversation
so far with the answers it received (``system`` and ``messages`` come first).

Every problem is reported as a :class:`PromptFileError` whose message is one line naming the file, the prompt and
the fix; the profile prints it and exits with code 2 before any user starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .reasoning import Reasoning, check_extra_body, parse_reasoning
from .yamlfile import load_yaml

PROMPT_KEYS = {
    "name", "text", "token_limit", "system", "messages", "weight", "reasoning", "extra_body", "synthetic", "turns",
}
SYNTHETIC_KEYS = {"input_tokens", "output_tokens", "count"}
ROLES = {"system", "user", "assistant"}
#: bounds of a usable file: more prompts than this is a mistake (and slow to prepare), as are these values
MAX_PROMPTS = 10_000
MAX_TOKEN_LIMIT = 10_000_000
MAX_WEIGHT = 1e6


class PromptFileError(ValueError):
    """A prompt file that cannot be used; ``str()`` is one line with the file, the prompt and the fix."""


@dataclass(frozen=True)
class Prompt:
    name: str
    text: str = ""
    token_limit: int | None = None
    system: str | None = None
    messages: tuple[dict[str, str], ...] = field(default_factory=tuple)
    weight: float = 1.0
    reasoning: Reasoning | None = None  # this prompt's reasoning setting; None: the target's or the option's
    extra_body: dict[str, Any] | None = field(default=None, compare=False)  # merged into the request body
    #: a ``synthetic:`` entry's spec (:class:`llm_locust.synthetic.Spec`), expanded into prompts at start-up
    synthetic: Any = field(default=None, compare=False)
    #: a session's user turns, ``turns[0] == text`` (llm_locust/sessions.py); empty: a single-turn prompt
    turns: tuple[str, ...] = ()
    input_tokens_asked: int | None = None  # a synthetic prompt's drawn input length
    session: str | None = None  # the session id of one turn's request (llm_locust/sessions.py)
    turn: int | None = None  # that request's turn, from 1
    tokens_local: int | None = field(default=None, compare=False)  # a session turn's local count, summed per message

    def chat_messages(self) -> list[dict[str, str]]:
        """The chat turns to send: system prompt, earlier turns, then ``text`` as the last user turn."""
        out: list[dict[str, str]] = []
        if self.system:
            out.append({"role": "system", "content": self.system})
        out.extend(dict(m) for m in self.messages)
        if self.text:
            out.append({"role": "user", "content": self.text})
        return out

    def flat_text(self, include_system: bool = True) -> str:
        """The prompt as one string, for completion-style APIs."""
        parts = [self.system] if include_system and self.system else []
        parts += [m["content"] for m in self.messages]
        if self.text:
            parts.append(self.text)
        return "\n\n".join(parts)


def _fail(path: Path, where: str, problem: str, fix: str) -> PromptFileError:
    return PromptFileError(f"{path}: {where}: {problem}; {fix}")


def load_prompts(path: str | Path) -> list[Prompt]:
    """Read and validate a prompt file; raise :class:`PromptFileError` on the first problem found."""
    path = Path(path)
    data = load_yaml(path, PromptFileError, "prompt file", "--prompt-file")
    if not isinstance(data, dict) or "prompts" not in data:
        raise _fail(path, "top level", "no 'prompts:' list", "start the file with 'prompts:' and a list of prompts")
    extra = set(data) - {"prompts"}
    if extra:
        raise _fail(path, "top level", f"unknown key(s) {sorted(extra)}", "only 'prompts' is allowed at the top level")
    items = data["prompts"]
    if not isinstance(items, list) or not items:
        raise _fail(
            path, "prompts", "the list is empty or not a list", "add at least one '- name: ... text: ...' entry"
        )
    if len(items) > MAX_PROMPTS:
        raise _fail(path, "prompts", f"{len(items):,} prompts, over {MAX_PROMPTS:,}", "split the file into runs")

    prompts: list[Prompt] = []
    seen: set[str] = set()
    for i, item in enumerate(items, 1):
        where = f"prompt #{i}"
        if not isinstance(item, dict):
            raise _fail(path, where, "is not a mapping", "write each prompt as '- name: ...' with 'text: ...'")
        name = item.get("name")
        if isinstance(name, str) and name.strip():
            where = f"prompt {name!r}"
        unknown = set(item) - PROMPT_KEYS
        if unknown:
            raise _fail(
                path, where, f"unknown key(s) {sorted(unknown)}", f"allowed keys are {', '.join(sorted(PROMPT_KEYS))}"
            )
        if not isinstance(name, str) or not name.strip():
            raise _fail(path, where, "missing 'name'", "give every prompt a non-empty name")
        name = name.strip()
        if name in seen:
            raise _fail(path, where, "duplicate name", "prompt names must be unique: rename one of them")
        seen.add(name)
        text = item.get("text")
        messages = _messages(path, where, item.get("messages"))
        synthetic = _synthetic(path, where, item.get("synthetic"))
        turns = _turns(path, where, item.get("turns"))
        if (synthetic is not None or turns) and text is not None:
            raise _fail(path, where, "'text' beside 'synthetic' or 'turns'",
                        "drop 'text': a synthetic prompt's text is generated, a session's first turn is turns[0]")
        if synthetic is not None and turns:
            raise _fail(path, where, "both 'synthetic' and 'turns'", "make them two prompts")
        text = turns[0] if turns else text
        if text is None and not messages and synthetic is None:
            raise _fail(path, where, "missing 'text'", "add 'text: ...' with the prompt to send")
        if text is not None and (not isinstance(text, str) or not text.strip()):
            raise _fail(path, where, "'text' is empty or not a string", "put the prompt text in 'text: ...'")
        system = item.get("system")
        if system is not None and not isinstance(system, str):
            raise _fail(path, where, "'system' is not a string", "write the system prompt as text")
        prompts.append(
            Prompt(
                name=name,
                text=text or "",
                token_limit=_token_limit(path, where, item.get("token_limit")),
                system=system,
                messages=messages,
                weight=_weight(path, where, item.get("weight")),
                reasoning=_checked(parse_reasoning, path, where, item.get("reasoning"), "e.g. 'reasoning: high'"),
                extra_body=_checked(check_extra_body, path, where, item.get("extra_body"),
                                    "e.g. 'extra_body: {temperature: 0}'"),
                synthetic=synthetic,
                turns=turns,
            )
        )
    return prompts


def _token_limit(path: Path, where: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_TOKEN_LIMIT:
        raise _fail(
            path,
            where,
            f"token_limit must be a positive integer up to {MAX_TOKEN_LIMIT:,} (got {value!r})",
            "use e.g. 'token_limit: 256'",
        )
    return value


def _checked(check: Any, path: Path, where: str, value: Any, example: str) -> Any:
    try:
        return check(value)
    except ValueError as e:
        raise _fail(path, where, str(e), f"use {example}") from None


def _weight(path: Path, where: str, value: Any) -> float:
    if value is None:
        return 1.0
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_WEIGHT:
        raise _fail(
            path, where, f"weight must be a positive number up to {MAX_WEIGHT:g} (got {value!r})", "e.g. 'weight: 2'"
        )
    return float(value)


def _synthetic(path: Path, where: str, value: Any) -> Any:
    if value is None:
        return None
    from .synthetic import LengthError, Spec, parse_length

    example = "write 'synthetic: {input_tokens: 512, output_tokens: 128}'"
    if not isinstance(value, dict) or "input_tokens" not in value or set(value) - SYNTHETIC_KEYS:
        raise _fail(path, where, f"'synthetic' must be a mapping of {sorted(SYNTHETIC_KEYS)} with input_tokens",
                    example)
    count = value.get("count")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or not 0 < count <= MAX_PROMPTS):
        raise _fail(path, where, f"synthetic count must be a positive integer up to {MAX_PROMPTS:,} (got {count!r})",
                    "e.g. 'count: 200'")
    try:
        out = value.get("output_tokens")
        return Spec(parse_length(value["input_tokens"], "input_tokens"),
                    None if out is None else parse_length(out, "output_tokens", MAX_TOKEN_LIMIT), count)
    except LengthError as e:
        raise _fail(path, where, str(e).split("; ")[0], example) from None


def _turns(path: Path, where: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not value or not all(isinstance(t, str) and t.strip() for t in value):
        raise _fail(path, where, "'turns' must be a non-empty list of non-empty texts",
                    "write 'turns: [\"first question\", \"follow-up\"]'")
    return tuple(value)


def _messages(path: Path, where: str, value: Any) -> tuple[dict[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _fail(path, where, "'messages' is not a list", "write '- {role: user, content: ...}' entries")
    out = []
    for j, m in enumerate(value, 1):
        if (
            not isinstance(m, dict)
            or set(m) != {"role", "content"}
            or not isinstance(m["role"], str)
            or m["role"] not in ROLES
            or not isinstance(m["content"], str)
        ):
            raise _fail(
                path,
                where,
                f"messages[{j}] is not a {{role, content}} turn",
                f"write '- {{role: user, content: ...}}' with role one of {', '.join(sorted(ROLES))}",
            )
        out.append({"role": m["role"], "content": m["content"]})
    return tuple(out)
