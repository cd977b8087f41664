"""Classified failures of an LLM call.

Every way a request can fail is one of a small set of error classes, so a report can say *why* requests failed
(auth, rate limit, server error, broken stream, ...) with the same words for every provider. Each class is an
exception raised or recorded by the user classes; its ``str()`` is one line, safe to show (no secrets, no
traceback), and it is what Locust's failure table groups by.
"""

from __future__ import annotations

import re
import socket
import sys

__all__ = [
    "LLMError",
    "ConnectionFailed",
    "RequestTimeout",
    "AuthError",
    "ModelNotFound",
    "RateLimited",
    "ContextTooLong",
    "BadRequest",
    "ServerError",
    "Overloaded",
    "StreamError",
    "MalformedChunk",
    "IncompleteStream",
    "EmptyResponse",
    "from_status",
    "from_exception",
    "redact",
]

MAX_MESSAGE = 200

_SECRET_PATTERNS = [
    re.compile(r"(sk-[A-Za-z0-9_\-]{6})[A-Za-z0-9_\-]+"),
    re.compile(r"(AIza[0-9A-Za-z_\-]{4})[0-9A-Za-z_\-]+"),
    re.compile(r"((?:Bearer|bearer)\s+)[A-Za-z0-9._\-]+"),
]


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Remove API keys and bearer tokens from ``text`` (known ``secrets`` first, then key-shaped strings)."""
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, "***")
    for pat in _SECRET_PATTERNS:
        text = pat.sub(lambda m: m.group(1) + "***", text)
    return text


def _one_line(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


class LLMError(Exception):
    """Base class: ``error_class`` names the kind, ``message`` is the provider's own words (one line)."""

    error_class = "error"

    def __init__(self, message: str = "", http_status: int | None = None, retry_after_s: float | None = None):
        self.message = _one_line(message)
        self.http_status = http_status
        self.retry_after_s = retry_after_s
        super().__init__(self.message)

    def __str__(self) -> str:
        parts = [self.error_class]
        if self.http_status:
            parts.append(f"HTTP {self.http_status}")
        if self.message:
            parts.append(self.message)
        text = ": ".join(parts)
        if self.retry_after_s is not None:
            text += f" (retry after {self.retry_after_s:g} s)"
        return text

    def __repr__(self) -> str:  # Locust keys its error table on repr; keep it the same one line
        return str(self)


class ConnectionFailed(LLMError):
    error_class = "connection"


class RequestTimeout(LLMError):
    error_class = "timeout"


class AuthError(LLMError):
    error_class = "auth"


class ModelNotFound(LLMError):
    error_class = "not_found"


class RateLimited(LLMError):
    error_class = "rate_limit"


class ContextTooLong(LLMError):
    error_class = "context_length"


class BadRequest(LLMError):
    error_class = "bad_request"


class ServerError(LLMError):
    error_class = "server_error"


class Overloaded(LLMError):
    error_class = "overloaded"


class StreamError(LLMError):
    """An error event inside a stream that had started with HTTP 200."""

    error_class = "stream_error"


class MalformedChunk(LLMError):
    error_class = "malformed_chunk"


class IncompleteStream(LLMError):
    """The connection closed before the stream's end marker."""

    error_class = "incomplete_stream"


class ResponseTooLarge(LLMError):
    """The response grew beyond ``--max-response-bytes``: reading stopped there and the connection was closed."""

    error_class = "response_too_large"


class EmptyResponse(LLMError):
    """HTTP 200 and a complete stream, but not a single output token."""

    error_class = "empty_response"


class BookkeepingFailed(LLMError):
    """llm-locust's own tail of a request (parsing, record, price) raised: a bug of ours, logged with its
    traceback; the request is booked as this failure, so it is not lost from the books."""

    error_class = "internal"


_CONTEXT_HINTS = ("context length", "context_length", "maximum context", "too long", "too many tokens", "exceed")


def from_status(status: int, message: str, retry_after_s: float | None = None) -> LLMError:
    """Map an HTTP error status (and the provider's message) to an error class."""
    if status in (401, 403):
        return AuthError(message or "authentication failed: check the API key", status)
    if status == 404:
        return ModelNotFound(message or "not found: check the model name and the endpoint path", status)
    if status == 429:
        return RateLimited(message or "rate limited", status, retry_after_s)
    if status in (400, 413, 422) and any(h in message.lower() for h in _CONTEXT_HINTS):
        return ContextTooLong(message, status)
    if status == 408:
        return RequestTimeout(message or "server timed out", status)
    if status in (503, 529):
        return Overloaded(message or "server overloaded", status, retry_after_s)
    if status >= 500:
        return ServerError(message or "server error", status, retry_after_s)
    return BadRequest(message or f"unexpected status {status}", status)


def from_exception(exc: BaseException) -> LLMError:
    """Map a transport exception (socket, DNS, TLS, HTTP parsing) to an error class."""
    if isinstance(exc, LLMError):
        return exc
    inner = getattr(exc, "original", None)  # geventhttpclient's RetriesExceeded wraps the real cause
    if isinstance(inner, BaseException) and inner is not exc:
        return from_exception(inner)
    gevent = sys.modules.get("gevent")  # not imported: no exception can be its Timeout (keeps measure/ gevent-free)
    if gevent is not None and isinstance(exc, gevent.Timeout):
        return RequestTimeout(f"no complete response within the timeout ({exc})")
    name = type(exc).__name__
    text = str(exc) or name
    if isinstance(exc, socket.gaierror):
        return ConnectionFailed(f"DNS lookup failed ({text}): check the host name")
    if isinstance(exc, ConnectionRefusedError):
        return ConnectionFailed("connection refused: is the server running on that host and port?")
    if isinstance(exc, TimeoutError | socket.timeout) or "timed out" in text.lower():
        return RequestTimeout(f"no data within the timeout ({text})")
    if "ssl" in name.lower() or "certificate" in text.lower():
        if "certificate verify failed" in text.lower():
            why = getattr(exc, "verify_message", None) or text
            return ConnectionFailed(f"TLS certificate not trusted ({why}); for your own CA set SSL_CERT_FILE=ca.pem")
        return ConnectionFailed(f"TLS error: {text}")
    if isinstance(exc, ConnectionError | OSError):
        return IncompleteStream(f"connection lost: {name}: {text}")
    if "closed" in text.lower() or "ParseError" in name:
        return IncompleteStream(f"connection closed mid-response ({name}: {text})")
    return ConnectionFailed(f"{name}: {text}")
