"""Stream framing: turn the lines of a streamed HTTP body into events, independent of any transport.

Two framings cover every LLM API we speak:

* **SSE** (``text/event-stream``): ``data:`` lines are joined with ``\\n`` until a blank line ends the event,
  ``event:`` names it, lines starting with ``:`` are comments (DeepSeek's ``: keep-alive``) and are dropped.
* **NDJSON** (Ollama's native API): every non-blank line is one event.
* **JSON**: a whole non-streamed body is one event (custom endpoints that do not stream).

A decoder's ``feed(t_ns, line)`` takes one raw line (bytes, with or without its line ending) and the monotonic
time at which it arrived, and returns a finished ``(t_ns, event_name, data)`` or ``None``. The time of an event
is the arrival time of its *first* line, so waiting for the closing blank line never delays the timestamp.
Call ``flush()`` at end of stream to get an event the server did not terminate with a blank line.
"""

from __future__ import annotations

Event = tuple[int, str, bytes]


class SSEDecoder:
    """Server-sent events, per the WHATWG spec (the subset LLM servers use: data, event, comments)."""

    __slots__ = ("_t", "_name", "_data")

    def __init__(self) -> None:
        self._t = 0
        self._name = ""
        self._data: list[bytes] = []

    def feed(self, t_ns: int, line: bytes) -> Event | None:
        line = line.rstrip(b"\r\n")
        if not line:
            return self.flush()
        if line[0] == 58:  # b":" -> comment / keep-alive
            return None
        field, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if field == b"data":
            if not self._data and not self._name:
                self._t = t_ns
            self._data.append(value)
        elif field == b"event":
            if not self._data and not self._name:
                self._t = t_ns
            self._name = value.decode("utf-8", "replace")
        # id: and retry: carry nothing we measure
        return None

    def idle(self) -> bool:
        """True between events (no line of an event buffered yet)."""
        return not self._data and not self._name

    def flush(self) -> Event | None:
        if not self._data:
            self._name = ""
            return None
        data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
        event = (self._t, self._name, data)
        self._name = ""
        self._data = []
        return event


class NDJSONDecoder:
    """Newline-delimited JSON: one event per non-blank line."""

    __slots__ = ()

    def feed(self, t_ns: int, line: bytes) -> Event | None:
        line = line.strip()
        if not line:
            return None
        return (t_ns, "", line)

    def flush(self) -> Event | None:
        return None


class JSONBodyDecoder:
    """A whole (non-streamed) JSON body: one event at the end, timed by the arrival of its last line."""

    __slots__ = ("_t", "_lines")

    def __init__(self) -> None:
        self._t = 0
        self._lines: list[bytes] = []

    def feed(self, t_ns: int, line: bytes) -> Event | None:
        self._t = t_ns
        self._lines.append(line)
        return None

    def flush(self) -> Event | None:
        data = b"".join(self._lines).strip()
        self._lines = []
        return (self._t, "", data) if data else None


DECODERS = {"sse": SSEDecoder, "ndjson": NDJSONDecoder, "json": JSONBodyDecoder}
