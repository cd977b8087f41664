"""What every wire protocol provides: request building, stream-event parsing and error extraction.

A protocol knows nothing about sockets or timing. ``build()`` turns a prompt into (path, body, headers);
``parse()`` turns one framed stream event (see :mod:`llm_locust.measure.framing`) into a :class:`Delta`;
``error_message()`` digs the provider's own words out of an error body. Measurement happens elsewhere
(:mod:`llm_locust.measure`), so adding a provider is one small module of this shape.
"""

from __future__ import annotations

import email.utils
import json
import time
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple
from urllib.parse import urlsplit

import orjson

from .. import gateway
from ..errors import LLMError, MalformedChunk, from_status
from ..prompts import Prompt


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


class Protocol:
    """Base class of the wire protocols. Subclasses set the class attributes and implement the methods."""

    name: ClassVar[str]
    #: ``sse``, ``ndjson`` or ``json`` (see :mod:`llm_locust.measure.framing`)
    framing: ClassVar[str] = "sse"
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

    def __init__(self, host: str, model: str, *, continuous_usage: bool = False, **_: Any) -> None:
        self.host = host
        self.model = model
        self.continuous_usage = continuous_usage
        self.via_gateway = gateway.is_gateway(host)  # once: response_fields runs on every request

    def request_path(self) -> str:
        """The path to request, given that the host may already hold part of it (``http://h/v1``) or all of it.

        ``path`` may name ``{model}``; through a Cloudflare AI Gateway the gateway's own path rules apply."""
        override = gateway.path_for(self.host, self.name, self.model)
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
        if self.via_gateway:
            headers.update(gateway.request_headers())
        return headers

    def for_response(self, headers: Any) -> Protocol:
        """The protocol that parses this response (the universal gateway endpoint picks by the step that answered)."""
        return self

    def response_fields(self, headers: Any) -> dict[str, Any]:
        """Extra per-request fields read from the response headers (the gateway's cache status, step, log id)."""
        return gateway.response_fields(headers) if self.via_gateway else {}

    def price_ref(self) -> tuple[str | None, str]:
        """(genai-prices provider id or ``None`` to match by the host URL, model name) for pricing."""
        if self.via_gateway:
            return gateway.price_ref(self.host, self.model)
        return self.price_provider, self.model

    def classify(self, status: int, body: bytes, headers: Any) -> LLMError:
        """The error class of an HTTP error response, with the provider's message and retry hint."""
        return from_status(status, self.error_message(body), retry_after_seconds(headers))

    def body(self, prompt: Prompt, max_tokens: int | None) -> dict[str, Any]:
        raise NotImplementedError

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
