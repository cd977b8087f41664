"""Custom REST endpoints described by a YAML template: the same metrics for an API we have no module for.

Template (``--llm-api custom --template FILE``; examples in ``examples/``)::

    path: /generate_stream             # joined to --host like every other protocol
    method: POST                       # optional, default POST
    headers:                           # optional; ${VAR} is replaced from the environment at start
      Authorization: "Bearer ${MY_TOKEN}"
    body:                              # any JSON; placeholders: {prompt} {system} {messages} {model} {token_limit}
      inputs: "{prompt}"               # a string that is exactly one placeholder takes the value's own type
      parameters: {max_new_tokens: "{token_limit}"}
    framing: sse                       # sse | ndjson | json (one JSON body: TTFT = time to the whole answer)
    text: token.text                   # where the generated text sits in each message (a JSON path)
    reasoning: null                    # optional path of reasoning text
    skip: token.special                # optional path: messages where it is true carry no text (EOS and such)
    done: details                      # optional path whose presence marks the last message; or
    done_marker: "[DONE]"              # optional raw data that marks the end
    usage: {input: details.prompt_tokens, output: details.generated_tokens}   # optional paths
    error: error                       # optional path of an error message inside a message

JSON paths are dotted keys with list indices: ``choices[0].delta.content``. With neither ``done`` nor
``done_marker``, a stream is complete when the connection closes cleanly. The template is validated at start-up
with one-line errors naming the file, the key and the fix.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from ..prompts import Prompt
from ..yamlfile import load_yaml
from .base import DONE, NOTHING, Delta, Protocol, Usage, loads

TEMPLATE_KEYS = {"path", "method", "headers", "body", "framing", "text", "reasoning", "skip", "done", "done_marker",
                 "usage", "error", "key_env"}
_PLACEHOLDER = re.compile(r"\{(prompt|system|messages|model|token_limit)\}")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_PATH = re.compile(r"^[A-Za-z_][\w\-]*(\[\d+\])*(\.[A-Za-z_][\w\-]*(\[\d+\])*)*$")
_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


class TemplateError(ValueError):
    """A template that cannot be used; ``str()`` is one line with the file, the key and the fix."""


def compile_path(path: str) -> tuple[str | int, ...]:
    return tuple(int(i) if i else k for k, i in _STEP.findall(path))


def get_path(obj: Any, steps: tuple[str | int, ...]) -> Any:
    for step in steps:
        try:
            obj = obj[step]
        except (KeyError, IndexError, TypeError):
            return None
    return obj


def load_template(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    where = str(path)
    t = load_yaml(path, TemplateError, "template file", "--template")
    if not isinstance(t, dict):
        raise TemplateError(f"{where}: not a mapping; see examples/ for the template keys")
    unknown = set(t) - TEMPLATE_KEYS
    if unknown:
        raise TemplateError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {', '.join(sorted(TEMPLATE_KEYS))}")
    for key in ("path", "body", "framing", "text"):
        if t.get(key) is None:
            raise TemplateError(f"{where}: missing '{key}'; see examples/ for a complete template")
    if t["framing"] not in ("sse", "ndjson", "json"):
        raise TemplateError(f"{where}: framing must be sse, ndjson or json (got {t['framing']!r})")
    if not isinstance(t["path"], str) or not t["path"].startswith("/"):
        raise TemplateError(f"{where}: 'path' must be a string starting with '/' (got {t['path']!r})")
    for key in ("usage", "headers"):
        if t.get(key) is not None and not isinstance(t[key], dict):
            raise TemplateError(f"{where}: '{key}' must be a mapping (got {type(t[key]).__name__}); see examples/")
    paths = {k: t.get(k) for k in ("text", "reasoning", "skip", "done", "error")}
    paths.update({f"usage.{k}": v for k, v in (t.get("usage") or {}).items()})
    for key, value in paths.items():
        if value is not None and (not isinstance(value, str) or not _PATH.match(value)):
            raise TemplateError(f"{where}: '{key}' is not a JSON path like 'choices[0].delta.content' ({value!r})")
    if set(t.get("usage") or {}) - {"input", "output", "reasoning"}:
        raise TemplateError(f"{where}: 'usage' takes only input, output and reasoning paths")
    for name, value in (t.get("headers") or {}).items():
        for var in _ENV.findall(str(value)):
            if var not in os.environ:
                raise TemplateError(f"{where}: header {name!r} needs environment variable {var}; set it")
    return t


def _fill(value: Any, values: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        return {k: _fill(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, values) for v in value]
    if isinstance(value, str):
        whole = _PLACEHOLDER.fullmatch(value)
        if whole:
            return values[whole.group(1)]
        return _PLACEHOLDER.sub(lambda m: "" if values[m.group(1)] is None else str(values[m.group(1)]), value)
    return value


class CustomREST(Protocol):
    name = "custom"
    path = "/"
    summary = "a custom REST endpoint described by a YAML template (--template FILE)"

    def __init__(self, host: str, model: str, *, template: str | None = None, **kw: Any) -> None:
        super().__init__(host, model, **kw)
        if not template:
            raise TemplateError("--llm-api custom needs --template FILE describing the endpoint (see examples/)")
        t = load_template(template)
        self.template = t
        self.path = t["path"]
        self.framing = t["framing"]
        self.single_body = t["framing"] == "json"
        self.key_env = t.get("key_env")
        self._text = compile_path(t["text"])
        self._reasoning = compile_path(t["reasoning"]) if t.get("reasoning") else None
        self._skip = compile_path(t["skip"]) if t.get("skip") else None
        self._done = compile_path(t["done"]) if t.get("done") else None
        self._marker = t.get("done_marker")
        self._error = compile_path(t["error"]) if t.get("error") else None
        self._usage = {k: compile_path(v) for k, v in (t.get("usage") or {}).items() if v}
        self.ends_at_close = self._done is None and self._marker is None

    def headers(self, api_key: str | None) -> dict[str, str]:
        headers = super().headers(api_key) if not self.template.get("headers") else {}
        for name, value in (self.template.get("headers") or {}).items():
            headers[name] = _ENV.sub(lambda m: os.environ.get(m.group(1), ""), str(value))
        return headers

    def body(self, prompt: Prompt, max_tokens: int | None) -> Any:
        values = {
            "prompt": prompt.flat_text(include_system=False),
            "system": prompt.system,
            "messages": prompt.chat_messages(),
            "model": self.model,
            "token_limit": max_tokens,
        }
        return _fill(self.template["body"], values)

    def parse(self, event: str, data: bytes) -> Delta:
        if self._marker is not None and data == self._marker.encode():
            return DONE
        obj = loads(data)
        if self._error is not None:
            err = get_path(obj, self._error)
            if err:
                return Delta(error=err if isinstance(err, str) else json.dumps(err))
        usage = None
        if self._usage:
            found = {k: get_path(obj, p) for k, p in self._usage.items()}
            if any(v is not None for v in found.values()):
                usage = Usage(found.get("input"), found.get("output"), found.get("reasoning"))
        skip = self._skip is not None and bool(get_path(obj, self._skip))
        text = "" if skip else get_path(obj, self._text) or ""
        reasoning = "" if skip or self._reasoning is None else get_path(obj, self._reasoning) or ""
        done = self.single_body or (self._done is not None and get_path(obj, self._done) is not None)
        if not (text or reasoning or usage or done):
            return NOTHING
        return Delta(str(text), str(reasoning), usage, done)
