"""Path routing: route patterns with parameters, and what a request was routed to (:class:`MockTarget`).

A route pattern is a path, optionally with placeholders: ``{name}`` matches one path segment and
``{name...}`` the rest of the path, slashes included, e.g. ``/v1beta/models/{model}:streamGenerateContent``
or ``/client/v4/accounts/{account}/ai/run/{model...}`` (Workers AI model names such as
``@cf/meta/llama-3.1-8b-instruct`` contain slashes). Patterns without placeholders are looked up in a
dict; the others are tried in the order given and the first match wins. Parameter values are
percent-decoded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar
from urllib.parse import parse_qsl, unquote

from llm_locust.mockserver.wire import WireProtocol

T = TypeVar("T")

_PLACEHOLDER = re.compile(r"\{(\w+)(\.\.\.)?\}")


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """The regular expression of a route pattern (anchored at both ends)."""
    out, pos = [], 0
    for m in _PLACEHOLDER.finditer(pattern):
        out.append(re.escape(pattern[pos : m.start()]))
        out.append(f"(?P<{m.group(1)}>.+)" if m.group(2) else f"(?P<{m.group(1)}>[^/]+)")
        pos = m.end()
    out.append(re.escape(pattern[pos:]))
    return re.compile("".join(out) + r"\Z")


class Router(Generic[T]):
    """Matches a path against route patterns (see the module docstring)."""

    def __init__(self, routes: Mapping[str, T]) -> None:
        self.exact = {p: v for p, v in routes.items() if "{" not in p}
        self.patterns = [(compile_pattern(p), v) for p, v in routes.items() if "{" in p]

    def match(self, path: str) -> tuple[T, dict[str, str]] | None:
        """(the route's value, its parameters) or None."""
        value = self.exact.get(path)
        if value is not None:
            return value, {}
        for regex, value in self.patterns:
            m = regex.match(path)
            if m:
                return value, {k: unquote(v) for k, v in m.groupdict().items()}
        return None


def query_params(target: str) -> dict[str, str]:
    """The query parameters of a request target (``/path?a=1&b=2``); the last of repeated names wins."""
    _, sep, query = target.partition("?")
    return dict(parse_qsl(query, keep_blank_values=True)) if sep else {}


@dataclass(slots=True)
class MockTarget:
    """What a generation request was routed to."""

    proto: WireProtocol
    params: dict[str, str] = field(default_factory=dict)  # path parameters, then the query's (path ones win)
    gateway: bool = False  # under a Cloudflare AI Gateway base URL (gateway auth and cf-aig-* headers)
    steps: Router[WireProtocol] | None = None  # the gateway's universal endpoint: how to route its steps
