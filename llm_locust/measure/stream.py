"""The stream reader: one response body, line by line, into a :class:`StreamResult` (the only copy of the loop).

Use::

    out = StreamResult(proto)                          # proto: the request's Protocol
    read_response(out, status, headers, raw, secrets)  # raw: any object with readline(b"\\n") and read(n)
    parse_lines(out, secrets)                          # later, off the hot path (or read_stream: both at once)
    out.error, out.done, out.finish, out.clock         # first error (or None), end marker seen, stop reason, times

:func:`read_response` takes a response whose status line and headers have arrived: it notes the status, lets the
protocol pick the one that answered (``proto.for_response``: a gateway's fallback step answers in its own
protocol) and read the extra per-request fields from the headers; an error status (>= 300) reads at most
``MAX_ERROR_BODY`` bytes of the body, redacts the run's secrets from it and has the protocol classify it. A
success goes to :func:`read_lines`, the hot path, which per line only:

* calls ``body.readline(b"\\n")`` (geventhttpclient returns a line as soon as it is buffered), takes ``now()``
  (``time.perf_counter_ns``) right after it returns and appends ``(now, line)`` to ``out.lines``.

Nothing is parsed while the stream is open: every result depends only on the lines and their stamps, reading
goes on to the end of the body whatever a line says, so parsing afterwards gives the same result as parsing each
line as it comes (``tests/test_parsers.py`` checks it on every recorded stream). :func:`parse_lines`, called when
the stream has ended (in steps of ``limit`` lines if the caller wants to bound each step):

* frames the lines into events with the protocol's decoder (:mod:`llm_locust.measure.framing`; an event is timed
  by its first line; the common SSE event, one ``data:`` line and a blank line, is framed in place, the same
  way) and parses each with ``proto.parse`` into a ``Delta``;
* adds each delta to the :class:`~llm_locust.measure.metrics.StreamClock` (token events, usage), keeps the last
  finish reason and whether an end marker came.

Errors (``out.error`` keeps the *first* one, later ones are ignored):

* a chunk the protocol cannot parse (:class:`~llm_locust.errors.MalformedChunk`) is recorded and reading goes on;
* an error event in the stream becomes :class:`~llm_locust.errors.StreamError`, its text redacted of ``secrets``,
  and reading goes on (tokens after it still count);
* a body that ends without the end marker is :class:`~llm_locust.errors.IncompleteStream`, except for protocols
  whose stream ends at the close of the body (``proto.ends_at_close``: a clean close counts as the end marker);
* a complete stream without a single token event is :class:`~llm_locust.errors.EmptyResponse`;
* a body beyond ``max_bytes`` (``--max-response-bytes``) is cut there: :class:`~llm_locust.errors.ResponseTooLarge`
  (the unread rest closes the connection);
* an exception raised by ``readline`` (transport failure, a timeout) propagates: ``out`` keeps what was read and
  the first error so far, and ``done``/``finish`` stay unset. The caller classifies the exception.

Nothing here knows Locust or gevent: the caller owns the connection, the timeout and the request events.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import errors
from ..errors import LLMError
from .framing import DECODERS, SSEDecoder
from .metrics import StreamClock

if TYPE_CHECKING:
    from ..protocols import Protocol

#: the blank lines that end an SSE event (the fast path of parse_lines)
_BLANK = (b"\n", b"\r\n")
#: bytes of an error response's body read for its message
MAX_ERROR_BODY = 64 * 1024


@dataclass(slots=True)
class StreamResult:
    """What reading one response found: the clock of its token events and how it ended."""

    proto: Protocol  # the protocol that answered (differs from the request's on a gateway fallback)
    clock: StreamClock = field(default_factory=StreamClock)
    status: int | None = None  # HTTP status; None when no response came
    retry_after: float | None = None  # the server's retry hint on an error status
    fields: dict[str, Any] = field(default_factory=dict)  # extra record fields from the response headers
    error: LLMError | None = None  # the first error
    done: bool = False  # the end marker came (or a clean close, for ends_at_close protocols)
    finish: str | None = None  # the server's last stop reason
    t_end: int | None = None  # perf_counter_ns when the response was completely read or failed (the caller's)
    lines: list[tuple[int, bytes]] = field(default_factory=list)  # (perf_counter_ns, line) as read, b"" at the end
    ended: bool = False  # the body ended (its last line, b"", is in ``lines``)
    parsed: int = 0  # lines parsed so far
    checked: bool = False  # the end-of-stream checks ran
    decoder: Any = None  # the framing decoder, kept between parse_lines calls

    def fail(self, error: LLMError) -> None:
        """Record ``error`` unless an earlier one is recorded."""
        if self.error is None:
            self.error = error


def read_response(
    out: StreamResult, status: int, headers: Any, raw: Any, secrets: tuple[str, ...] = (), max_bytes: int | None = None
) -> None:
    """Classify an error status, or read the body's lines into ``out.lines`` (``raw``: ``read(n)``,
    ``readline(b"\\n")``, or ``None``), at most ``max_bytes`` of them. A success is not parsed here: call
    :func:`parse_lines` afterwards."""
    out.status = status
    proto = out.proto = out.proto.for_response(headers)
    out.fields = proto.response_fields(headers)
    if status >= 300:
        body = raw.read(MAX_ERROR_BODY) if raw is not None else b""
        body = errors.redact(body.decode("utf-8", "replace"), secrets).encode()
        error = proto.classify(status, body, headers)
        out.retry_after = error.retry_after_s
        out.fail(error)
        return
    if raw is None:
        out.fail(errors.IncompleteStream("response has no body"))
        return
    read_lines(out, raw, max_bytes=max_bytes)


def read_lines(
    out: StreamResult, body: Any, now: Callable[[], int] = time.perf_counter_ns, max_bytes: int | None = None
) -> None:
    """Read ``body`` (anything with ``readline(b"\\n")``) to its end: every line and the ``now()`` right after
    its ``readline`` returned go to ``out.lines``; nothing else runs per line but the byte count against
    ``max_bytes``. Sets ``out.ended`` at the end of the body; a body over ``max_bytes`` is cut before the line that
    crosses it (:class:`~llm_locust.errors.ResponseTooLarge`; the caller must not reuse the connection); an
    exception from ``readline`` propagates and leaves the lines read so far."""
    readline = body.readline
    append = out.lines.append
    left = max_bytes if max_bytes is not None else -1
    while True:
        line = readline(b"\n")
        append((now(), line))
        if not line:
            break
        if left >= 0:
            left -= len(line)
            if left < 0:
                out.lines.pop()
                out.fail(errors.ResponseTooLarge(f"response body over --max-response-bytes {max_bytes}; cut there"))
                return
    out.ended = True


def parse_lines(out: StreamResult, secrets: tuple[str, ...] = (), limit: int | None = None) -> bool:
    """Frame and parse the lines of ``out.lines`` not parsed yet (at most ``limit`` of them); True once every
    line is parsed, and then, if the body ended, apply the end-of-stream checks (see the module docs)."""
    proto, clock = out.proto, out.clock
    decoder = out.decoder
    if decoder is None:
        decoder = out.decoder = DECODERS[proto.framing]()
    feed = decoder.feed
    parse = proto.parse
    add = clock.add
    lines = out.lines
    i = out.parsed
    stop = len(lines) if limit is None else min(len(lines), i + limit)
    sse = type(decoder) is SSEDecoder
    while i < stop:
        t, line = lines[i]
        i += 1
        if sse and i < stop and line[:6] == b"data: " and lines[i][1] in _BLANK and decoder.idle():
            # the common SSE event, one "data: " line and the blank line that ends it: framed as SSEDecoder would
            # frame it (timed by its first line, no event name), without two calls of feed
            i += 1
            event = (t, "", line[6:].rstrip(b"\r\n"))
        elif not line:
            event = decoder.flush()
            if event is None:
                continue
        else:
            event = feed(t, line)
            if event is None:
                continue
        try:
            delta = parse(event[1], event[2])
        except LLMError as e:
            out.fail(e)
            continue
        if delta.error is not None:
            out.fail(errors.StreamError(errors.redact(delta.error, secrets)))
        add(event[0], delta.text, delta.reasoning, delta.usage)
        if delta.finish_reason:
            out.finish = delta.finish_reason
        if delta.done:
            out.done = True
    out.parsed = i
    if i < len(lines):
        return False
    if not out.ended:  # readline raised: the stream's end is unknown (the caller records why)
        out.done, out.finish = False, None
    elif not out.checked:
        out.checked = True
        if proto.ends_at_close:
            out.done = True  # a clean end of the body (a broken connection raises instead)
        if out.error is None and not out.done:
            out.error = errors.IncompleteStream("the stream ended before its end marker")
        if out.error is None and not clock.token_ns:
            out.error = errors.EmptyResponse("the stream completed without a single output token")
    return True


def read_stream(
    out: StreamResult,
    body: Any,
    secrets: tuple[str, ...] = (),
    now: Callable[[], int] = time.perf_counter_ns,
    max_bytes: int | None = None,
) -> StreamResult:
    """:func:`read_lines` then :func:`parse_lines`: the whole reader in one call (the parsing also runs when
    ``readline`` raises, so ``out`` keeps what was read; the exception propagates)."""
    try:
        read_lines(out, body, now, max_bytes)
    finally:
        parse_lines(out, secrets)
    return out
