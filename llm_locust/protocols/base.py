"""What every wire protocol provides: request building, stream-event parsing and error extraction.

A protocol knows nothing about sockets or timing. ``request_path()``, ``headers()`` and ``body()`` build a request
(``fixed_output()``: the fields that pin the output length, for ``--fixed-output``);
``parse()`` turns one framed stream event (see :mod:`llm_locust.measure.framing`) into a :class:`Delta`;
``error_message()`` digs the provider's own words out of an error body. Measurement happens elsewhere
(:mod:`llm_locust.measure`), so adding a provider is one small module of this shape.

A protocol reaches its endpoint by a :class:`Route`, found once when it is constructed: :data:`DIRECT` (the
provider's own URL), or a gateway's route when one of :data:`ROUTE_FINDERS` recognises the host as a gateway URL.
The route may rewrite the path, add request headers, read extra per-request fields from the response headers and
name the provider a request is priced as; it may refuse an API it cannot carry (:class:`EndpointError`, one line).
:mod:`llm_locust.protocols` registers the gateways (today Cloudflare AI Gateway,
:mod:`llm_locust.protocols.cloudflare`); this module names none.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple
from urllib.parse import urlsplit

import orjson

from ..errors import LLMError, MalformedChunk, from_status
from ..prompts import Prompt
from ..reasoning import Reasoning, deep_merge


@dataclass(slots=True)
class Usage:
    """Token usage as a server reported it; ``None`` where the server said nothing."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None

    def merged(self, later: Usage) -> Usage:
        """This usage updated with the fields ``later`` reports."""
        return Usage(
            later.input_tokens if later.input_tokens is not None else self.input_tokens,
            later.output_tokens if later.output_tokens is not None else self.output_tokens,
            later.reasoning_tokens if later.reasoning_tokens is not None else self.reasoning_tokens,
            later.cached_tokens if later.cached_tokens is not None else self.cached_tokens,
        )


class Delta(NamedTuple):
    """One parsed stream event. ``text``/``reasoning`` non-empty means the event carries output tokens."""

    text: str = ""
    reasoning: str = ""
    usage: Usage | None = None
    done: bool = False
    error: str | None = None
    finish_reason: str | None = None


DONE = Delta(done=True)
NOTHING = Delta()


def loads(data: bytes) -> Any:
    """Parse one event's JSON (orjson: about 0.5 µs a chunk against the standard library's 2.3 µs, the largest
    per-chunk cost); raise :class:`MalformedChunk` with a short excerpt of bad data."""
    try:
        return orjson.loads(data)
    except ValueError:
        excerpt = data[:60].decode("utf-8", "replace")
        raise MalformedChunk(f"not JSON: {excerpt!r}") from None


def sse_object(data: bytes) -> dict[str, Any] | Delta:
    """An OpenAI-style SSE event's JSON object: :data:`DONE` for ``[DONE]``, :data:`NOTHING` for JSON that is not
    an object (callers return a :class:`Delta` as it is)."""
    if data == b"[DONE]":
        return DONE
    obj = loads(data)
    return obj if isinstance(obj, dict) else NOTHING


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date), else ``None``."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return float(value) / 1000.0
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


#: request headers whose values are credentials
_CREDENTIAL_HEADER = re.compile(r"auth|key|token|secret|password", re.IGNORECASE)


def credentials(headers: dict[str, str]) -> tuple[str, ...]:
    """The credential values of ``headers``: each whole value, and the part after a scheme (``Bearer <token>``)."""
    out: list[str] = []
    for name, value in headers.items():
        if value and _CREDENTIAL_HEADER.search(name):
            out.append(value)
            scheme, _, rest = value.partition(" ")
            if rest.strip():
                out.append(rest.strip())
    return tuple(dict.fromkeys(out))


class EndpointError(ValueError):
    """An endpoint a protocol cannot work with (e.g. a gateway-only API on a host that is no gateway); one line
    naming the problem and the fix, raised at construction, before any request."""


class Route:
    """How requests reach the endpoint. This base class is the direct route: the protocol's own path, no extra
    headers or response fields, priced as the protocol's provider. A gateway subclasses it."""

    def path(self, api: str, model: str) -> str | None:
        """The request path after the host where the route's differs from the protocol's own, else ``None``."""
        return None

    def headers(self) -> dict[str, str]:
        """Request headers the route adds (read when a request is prepared, once per prompt)."""
        return {}

    def response_fields(self, headers: Any) -> dict[str, Any]:
        """Extra per-request record fields read from the response headers (runs on every request: keep it cheap)."""
        return {}

    def price_ref(self, provider: str | None, model: str) -> tuple[str | None, str]:
        """(genai-prices provider id, model name) a request is priced as, given the protocol's own."""
        return provider, model

    def check(self, api: str) -> None:
        """Raise :class:`EndpointError` if requests of ``api`` cannot go this way."""


DIRECT = Route()

#: functions that recognise a gateway URL and return its route (else ``None``), asked in order when a protocol is
#: constructed; :mod:`llm_locust.protocols` fills it
ROUTE_FINDERS: list[Callable[[str], Route | None]] = []


def find_route(host: str) -> Route:
    """The route to ``host``: the first gateway route that recognises it, else :data:`DIRECT`."""
    for find in ROUTE_FINDERS:
        route = find(host)
        if route is not None:
            return route
    return DIRECT


class Protocol:
    """Base class of the wire protocols. Subclasses set the class attributes and implement the methods."""

    name: ClassVar[str]
    #: ``sse``, ``ndjson`` or ``json`` (see :mod:`llm_locust.measure.framing`)
    framing: ClassVar[str] = "sse"
    #: ``parse`` returns a JSON string value of the event as the delta's text (or reasoning) unchanged, and nothing
    #: else it returns depends on that value: the stream reader may then read a chunk that differs from an earlier
    #: one only inside that string without parsing it (:mod:`llm_locust.measure.stream`, "the envelope")
    literal_text: ClassVar[bool] = False
    #: the stream has no end marker: a clean end of the body completes it (Gemini, some custom endpoints)
    ends_at_close: ClassVar[bool] = False
    #: path appended to the host (overlap with a path already in the host is removed, see ``request_path``)
    path: ClassVar[str]
    #: environment variable that holds the API key by convention
    key_env: ClassVar[str | None] = None
    #: short description for ``--help``
    summary: ClassVar[str] = ""
    #: genai-prices provider id of a provider-specific API (priced even on a test server); ``None``: match the host
    price_provider: ClassVar[str | None] = None

    def __init__(
        self, host: str, model: str, *, continuous_usage: bool = False, route: Route | None = None, **_: Any
    ) -> None:
        self.host = host
        self.model = model
        self.continuous_usage = continuous_usage
        #: decided once: response_fields and price_ref run on every request
        self.route = find_route(host) if route is None else route
        self.route.check(self.name)
        self._price_ref = self.route.price_ref(self.price_provider, model)

    def request_path(self) -> str:
        """The path to request, given that the host may already hold part of it (``http://h/v1``) or all of it.

        ``path`` may name ``{model}``; through a gateway the route's path rules apply."""
        override = self.route.path(self.name, self.model)
        path, _, query = (override or self.path.format(model=self.model)).partition("?")
        base = [s for s in urlsplit(self.host).path.split("/") if s]
        want = [s for s in path.split("/") if s]
        for k in range(min(len(base), len(want)), 0, -1):
            if base[-k:] == want[:k]:
                want = want[k:]
                break
        joined = "/" + "/".join(want) if want else ""
        return f"{joined}?{query}" if query else joined

    def headers(self, api_key: str | None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        headers.update(self.route.headers())
        return headers

    def secrets(self, api_key: str | None) -> tuple[str, ...]:
        """Every credential this protocol sends with ``api_key`` (keys, tokens, whole ``Authorization`` values): what
        is removed from anything the run shows or writes (:func:`llm_locust.errors.redact`)."""
        return credentials(self.headers(api_key))

    def for_response(self, headers: Any) -> Protocol:
        """The protocol that parses this response (a gateway's fallback chain picks the step that answered)."""
        return self

    def response_fields(self, headers: Any) -> dict[str, Any]:
        """Extra per-request fields read from the response headers (a gateway's cache status, step, log id)."""
        return self.route.response_fields(headers)

    def price_ref(self) -> tuple[str | None, str]:
        """(genai-prices provider id or ``None`` to match by the host URL, model name) for pricing."""
        return self._price_ref

    def classify(self, status: int, body: bytes, headers: Any) -> LLMError:
        """The error class of an HTTP error response, with the provider's message and retry hint."""
        return from_status(status, self.error_message(body), retry_after_seconds(headers))

    def body(self, prompt: Prompt, max_tokens: int | None) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def fixed_output(cls, limit: int) -> dict[str, Any] | None:
        """The request fields that ask for exactly ``limit`` output tokens (``--fixed-output``, merged into the body
        before any ``extra_body``), or ``None`` where the API has no way to ask: this default (the token limit is
        still sent, and the reports count the answers that fall short)."""
        return None

    def reason(self, body: dict[str, Any], reasoning: Reasoning) -> None:
        """Put the provider's reasoning switch for ``reasoning`` into ``body`` (see :mod:`llm_locust.reasoning`).
        This default is for APIs without one: nothing is sent."""

    def request_body(
        self, prompt: Prompt, max_tokens: int | None, reasoning: Reasoning | None = None,
        extra: list[dict[str, Any]] | tuple[dict[str, Any], ...] = (),
    ) -> Any:
        """The body to send: :meth:`body`, the reasoning switch (unless unset), then each ``extra_body`` merged in
        order (the target's, then the prompt's)."""
        body = self.body(prompt, max_tokens)
        if reasoning is not None:
            self.reason(body, reasoning)
        for fields in extra:
            deep_merge(body, fields)
        return body

    def parse(self, event: str, data: bytes) -> Delta:
        """Parse one stream event; raise :class:`MalformedChunk` if it is not what the protocol sends."""
        raise NotImplementedError

    def error_message(self, body: bytes) -> str:
        """The provider's own error message from an error response body (best effort, one line)."""
        text = body.decode("utf-8", "replace").strip()
        try:
            obj = json.loads(text)
        except ValueError:
            return text[:200]
        return _find_message(obj) or text[:200]


def _find_message(obj: Any) -> str | None:
    if isinstance(obj, str):
        return obj
    if isinstance(obj, dict):
        for key in ("error", "message", "detail", "errors"):
            if key in obj:
                found = _find_message(obj[key])
                if found:
                    return found
    if isinstance(obj, list) and obj:
        return _find_message(obj[0])
    return None
