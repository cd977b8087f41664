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
  right after it returns (``time.perf_counter_ns``, or the connection's arrival stamp: :mod:`llm_locust.recvclock`),
  appends that to ``out.stamps`` (an ``array("q")``) and the
  line to ``out.lines``: no Python object is made per line that the garbage collector would have to track (a
  ``(stamp, line)`` tuple per line made every young collection walk thousands of them: 2-5 ms stalls at 64
  streams).

Nothing is parsed while the stream is open: every result depends only on the lines and their stamps, reading
goes on to the end of the body whatever a line says, so parsing afterwards gives the same result as parsing each
line as it comes (``tests/test_parsers.py`` checks it on every recorded stream). :func:`parse_lines`, called when
the stream has ended (in steps of ``limit`` lines if the caller wants to bound each step):

* frames the lines into events with the protocol's decoder (:mod:`llm_locust.measure.framing`; an event is timed
  by its first line; the common SSE event, one ``data:`` line and a blank line, is framed in place, the same
  way) and parses each with ``proto.parse`` into a ``Delta``;
* adds each delta to the :class:`~llm_locust.measure.metrics.StreamClock` (token events, usage), keeps the last
  finish reason and whether an end marker came.

**The envelope** (protocols with ``literal_text``: OpenAI and compatible servers, Anthropic, Gemini, Ollama). Most
chunks of a stream are the same bytes but for the token's text: ``{"id":"chatcmpl-1",...,"delta":{"content":"
the"},...}``. When a chunk parses to text (or reasoning) alone, with no usage, stop reason, error or end marker, and
that text appears in the chunk exactly once as a plain JSON string, the bytes before and after it become the
stream's *envelope*, once a parse of the envelope around a probe string gives back exactly the probe (so that
string, and no other, is the text). A later event with the same name whose data is that envelope around a plain
string (no quote, backslash or control character: the same JSON document but for that value) is the same delta with
that string as its text, without a JSON parse. Anything else (escapes, a changed field, usage, a stop reason) is
parsed in full. On SSE streams whose events carry no name (OpenAI's), once the envelope of the text is known the
events that follow are taken as a run (``_run_of_envelopes``): a line ``data: `` + head + plain string + tail +
``\n`` followed by a blank line is the token, checked on the line itself without framing it into an event (1.8 against
3.2 µs a token over a 128-token stream, in-process). ``tests/test_parsers.py`` checks that all paths give the same
results on every recorded stream and on streams made to break them.

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

import re
import time
from array import array
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
#: a JSON string's content that needs no unescaping: no quote, backslash or control character
_PLAIN = re.compile(rb'[^"\\\x00-\x1f]*').fullmatch
#: the string an envelope is checked with
_PROBE = "llm-locust envelope probe"
#: chunks a stream may try to take its envelope from
_ENVELOPE_TRIES = 8
#: token events a stream has before it looks for its envelope (a reply of a few tokens would not pay it back)
_ENVELOPE_AFTER = 2


def _envelope(parse: Any, name: str, data: bytes, delta: Any) -> tuple[str, bytes, bytes, int, bool] | None:
    """The envelope of a chunk that parsed to ``delta`` (see the module docs), or None: (event name, bytes before the
    string, bytes after it, their length together, whether the string is the reasoning rather than the text)."""
    if delta.usage is not None or delta.done or delta.error is not None or delta.finish_reason:
        return None
    if delta.text and not delta.reasoning:
        reasoning, value = False, delta.text
    elif delta.reasoning and not delta.text:
        reasoning, value = True, delta.reasoning
    else:
        return None
    literal = b'"' + value.encode() + b'"'
    if data.count(literal) != 1 or _PLAIN(literal[1:-1]) is None:
        return None
    i = data.index(literal) + 1
    head, tail = data[:i], data[i + len(literal) - 2:]
    try:
        probe = parse(name, head + _PROBE.encode() + tail)
    except LLMError:
        return None
    if probe != (delta._replace(reasoning=_PROBE) if reasoning else delta._replace(text=_PROBE)):
        return None
    return name, head, tail, len(head) + len(tail), reasoning


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
    lines: list[bytes] = field(default_factory=list)  # the lines as read, b"" at the end
    stamps: array = field(default_factory=lambda: array("q"))  # perf_counter_ns of each line, as read
    ended: bool = False  # the body ended (its last line, b"", is in ``lines``)
    parsed: int = 0  # lines parsed so far
    checked: bool = False  # the end-of-stream checks ran
    decoder: Any = None  # the framing decoder, kept between parse_lines calls
    envelope: Any = None  # the stream's envelope (see the module docs), once found
    tries: int = 0  # chunks tried for the envelope

    def fail(self, error: LLMError) -> None:
        """Record ``error`` unless an earlier one is recorded."""
        if self.error is None:
            self.error = error


def read_response(
    out: StreamResult, status: int, headers: Any, raw: Any, secrets: tuple[str, ...] = (), max_bytes: int | None = None,
    now: Callable[[], int] = time.perf_counter_ns,
) -> None:
    """Classify an error status, or read the body's lines into ``out.lines`` (``raw``: ``read(n)``,
    ``readline(b"\\n")``, or ``None``), at most ``max_bytes`` of them, each stamped with ``now()`` as
    :func:`read_lines` does. A success is not parsed here: call :func:`parse_lines` afterwards."""
    out.status = status
    proto = out.proto = out.proto.for_response(headers)
    out.fields = proto.response_fields(headers)
    if status >= 300:
        body = raw.read(MAX_ERROR_BODY) if raw is not None else b""
        body = errors.redact(body.decode("utf-8", "replace"), secrets).encode()
        error = proto.classify(status, body, headers) if status >= 400 else _redirect(status, headers, secrets)
        out.retry_after = error.retry_after_s
        out.fail(error)
        return
    if raw is None:
        out.fail(errors.IncompleteStream("response has no body"))
        return
    read_lines(out, raw, now, max_bytes)


def _redirect(status: int, headers: Any, secrets: tuple[str, ...]) -> errors.LLMError:
    """A 3xx answer: not followed (llm_locust.sender), booked with where it pointed."""
    where = headers.get("location") if headers is not None else None
    to = f" to {errors.redact(str(where), secrets)}" if where else ""
    return errors.BadRequest(f"redirected{to}; redirects are not followed: use that URL as the host", status)


def read_lines(
    out: StreamResult, body: Any, now: Callable[[], int] = time.perf_counter_ns, max_bytes: int | None = None
) -> None:
    """Read ``body`` (anything with ``readline(b"\\n")``) to its end: every line goes to ``out.lines`` and the
    ``now()`` right after its ``readline`` returned to ``out.stamps``; nothing else runs per line but the byte count
    against ``max_bytes``. Sets ``out.ended`` at the end of the body; a body over ``max_bytes`` is cut before the
    line that crosses it (:class:`~llm_locust.errors.ResponseTooLarge`; the caller must not reuse the connection);
    an exception from ``readline`` propagates and leaves the lines read so far."""
    readline = body.readline
    stamp = out.stamps.append
    keep = out.lines.append
    left = max_bytes if max_bytes is not None else -1
    while True:
        line = readline(b"\n")
        stamp(now())
        keep(line)
        if not line:
            break
        if left >= 0:
            left -= len(line)
            if left < 0:
                out.lines.pop()
                out.stamps.pop()
                out.fail(errors.ResponseTooLarge(f"response body over --max-response-bytes {max_bytes}; cut there"))
                return
    out.ended = True


def _run_ends(env: tuple[str, bytes, bytes, int, bool] | None) -> tuple[bytes, bytes]:
    """What a line of an SSE stream's run of envelopes starts and ends with (:func:`_run_of_envelopes`), or two empty
    strings: runs are taken only for an envelope of the text (not the reasoning) in events without a name."""
    if env is None or env[0] or env[4]:
        return b"", b""
    return b"data: " + env[1], env[2] + b"\n"


def _run_of_envelopes(
    lines: list[bytes], stamps: array, i: int, stop: int, lead: bytes, trail: bytes, stamp: Any, keep: Any
) -> int:
    """The SSE events from ``lines[i]`` on, before ``stop``, that are one line ``lead + plain string + trail`` and a
    blank line (``lead``: ``b"data: "`` and the envelope's head; ``trail``: its tail and ``b"\\n"``): each string's
    time and text go to ``stamp`` and ``keep`` (an empty string adds nothing), as the envelope path of
    :func:`parse_lines` would add them; returns the index of the first line not taken. The decoder must be idle."""
    n_lead, n_trail = len(lead), len(trail)
    n_min = n_lead + n_trail
    plain = _PLAIN
    last = stop - 1
    while i < last:
        line = lines[i]
        if len(line) < n_min or not line.startswith(lead) or not line.endswith(trail) or lines[i + 1] != b"\n":
            break
        mid = line[n_lead:len(line) - n_trail]
        if plain(mid) is None:
            break
        try:
            value = mid.decode()
        except UnicodeDecodeError:
            break
        if value:
            stamp(stamps[i])
            keep(value)
        i += 2
    return i


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
    lines, stamps = out.lines, out.stamps
    literal = proto.literal_text
    env = out.envelope
    stamp_token, keep_text = clock.token_ns.append, clock.text.append
    i = out.parsed
    stop = len(lines) if limit is None else min(len(lines), i + limit)
    sse = type(decoder) is SSEDecoder
    lead, trail = _run_ends(env) if sse else (b"", b"")  # the run of envelopes, once the envelope is known
    while i < stop:
        if lead and decoder.idle():
            i = _run_of_envelopes(lines, stamps, i, stop, lead, trail, stamp_token, keep_text)
            if i >= stop:
                break
        t, line = stamps[i], lines[i]
        i += 1
        if sse and i < stop and line[:6] == b"data: " and lines[i] in _BLANK and decoder.idle():
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
        data = event[2]
        if env is not None and event[1] == env[0] and len(data) >= env[3] and data.startswith(env[1]) and \
                data.endswith(env[2]):
            mid = data[len(env[1]):len(data) - len(env[2])]
            if _PLAIN(mid) is not None:
                try:
                    value = mid.decode()
                except UnicodeDecodeError:  # not UTF-8: the full parse says so
                    pass
                else:
                    if env[4]:
                        add(event[0], "", value, None)
                    elif value:  # clock.add(t, value, "", None) after the envelope's own chunk was added: inlined
                        stamp_token(event[0])
                        keep_text(value)
                    continue
        try:
            delta = parse(event[1], data)
        except LLMError as e:
            out.fail(e)
            continue
        if env is None and literal and out.tries < _ENVELOPE_TRIES and (delta.text or delta.reasoning) and \
                len(clock.token_ns) >= _ENVELOPE_AFTER:
            out.tries += 1
            env = out.envelope = _envelope(parse, event[1], data, delta)
            if sse:
                lead, trail = _run_ends(env)
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
