"""A small HTTP/1.1 server-side connection layer over a (gevent) socket.

Just what the mock server needs: read a request (request line, headers, ``Content-Length``
body), keep-alive (HTTP/1.1 default; ``Connection: close`` honoured; HTTP/1.0 only with
``Connection: keep-alive``), non-streamed responses with ``Content-Length``, and streamed
responses with ``Transfer-Encoding: chunked`` where each ``send_chunk`` is one HTTP chunk written
with one ``sendall``. Request bodies with ``Transfer-Encoding: chunked`` are refused (501).
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

from gevent.socket import wait_read

from llm_locust import recvclock

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 64 * 1024 * 1024
RECV_SIZE = 65536

REASONS = {
    100: "Continue", 200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 413: "Content Too Large", 429: "Too Many Requests",
    431: "Request Header Fields Too Large", 500: "Internal Server Error", 501: "Not Implemented",
    502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout", 529: "Site Overloaded",
}


class BadRequest(Exception):
    """The client sent something this layer cannot parse; answer with ``status`` and close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class Request:
    """One parsed HTTP request."""

    method: str
    target: str  # as sent, query string included
    path: str  # without the query string
    version: str  # "HTTP/1.1"
    headers: dict[str, str]  # lower-cased names; the last of repeated headers wins
    body: bytes
    t_recv_ns: int  # time.perf_counter_ns() right after the recv that completed the body (before parsing the head)
    keep_alive: bool = field(default=True)
    #: when the request's last bytes arrived on the socket (the kernel's stamp, on the perf_counter_ns clock), with
    #: ``arrival_stamps``; ``t_recv_ns - t_arrive_ns`` is how long the request waited for this server to read it
    t_arrive_ns: int | None = None


def stamp_arrivals(sock: socket.socket) -> bool:
    """Have the kernel stamp what ``sock`` receives (Linux); False where it cannot (:mod:`llm_locust.recvclock`)."""
    return recvclock.enable(sock)


class Connection:
    """One client connection: read requests and write responses on it."""

    __slots__ = ("sock", "_buf", "closed", "sent_bytes", "_stamps", "_arrive_ns")

    def __init__(self, sock: socket.socket, arrival_stamps: bool = False) -> None:
        self.sock = sock
        self._buf = b""
        self.closed = False
        self.sent_bytes = 0
        self._stamps = False  # arrival_stamps: the kernel's receive time of each recv (Linux), for the send log
        self._arrive_ns: int | None = None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self._stamps = arrival_stamps and stamp_arrivals(sock)

    # -- reading ---------------------------------------------------------------------------------

    def _recv(self) -> bytes:
        try:
            if not self._stamps:
                return self.sock.recv(RECV_SIZE)
            data, anc, _, _ = self.sock.recvmsg(RECV_SIZE, recvclock.ANC_SIZE)
        except (ConnectionError, TimeoutError, OSError):
            return b""
        arrive = recvclock.kernel_ns(anc)  # CLOCK_REALTIME -> the perf_counter_ns clock
        if arrive is not None:
            self._arrive_ns = arrive
        return data

    def read_request(self) -> Request | None:
        """Read the next request; None when the client closed the connection between requests.

        Raises :class:`BadRequest` on a malformed request.
        """
        buf = self._buf
        t_read = 0  # perf_counter_ns() right after the recv that brought the request's last bytes
        self._arrive_ns = None
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(buf) > MAX_HEADER_BYTES:
                raise BadRequest(431, "request headers too large")
            data = self._recv()
            if not data:
                if buf.strip():
                    raise BadRequest(400, "connection closed in the middle of the request headers")
                return None
            t_read = time.perf_counter_ns()
            buf += data
        head = buf[:end].decode("latin-1")
        buf = buf[end + 4 :]
        lines = head.split("\r\n")
        while lines and not lines[0]:  # tolerate stray CRLFs between requests (RFC 9112 2.2)
            lines.pop(0)
        try:
            method, target, version = lines[0].split(" ")
        except (ValueError, IndexError):
            raise BadRequest(400, "malformed request line") from None
        if not version.startswith("HTTP/1."):
            raise BadRequest(400, f"unsupported protocol version {version!r}")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise BadRequest(400, "malformed header line")
            headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            raise BadRequest(501, "chunked request bodies are not supported; send Content-Length")
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            raise BadRequest(400, "malformed Content-Length") from None
        if length < 0 or length > MAX_BODY_BYTES:
            raise BadRequest(413, "request body too large")
        if length > len(buf) and headers.get("expect", "").lower() == "100-continue":
            self.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        while len(buf) < length:
            data = self._recv()
            if not data:
                raise BadRequest(400, "connection closed in the middle of the request body")
            t_read = time.perf_counter_ns()
            buf += data
        body, self._buf = buf[:length], buf[length:]
        # the moment the body was read, not after parsing the head (a pipelined request already buffered: now)
        t_recv_ns = t_read or time.perf_counter_ns()
        conn_hdr = headers.get("connection", "").lower()
        if version == "HTTP/1.0":
            keep_alive = "keep-alive" in conn_hdr
        else:
            keep_alive = "close" not in conn_hdr
        path = target.split("?", 1)[0]
        return Request(method, target, path, version, headers, body, t_recv_ns, keep_alive, self._arrive_ns)

    def peer_closed_within(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the client to close; True if it did.

        Returns False at once if the client sends data (e.g. a pipelined request) or already has.
        """
        if self._buf:
            return False
        try:
            wait_read(self.sock.fileno(), timeout)
        except TimeoutError:
            return False
        try:
            return not self.sock.recv(1, socket.MSG_PEEK)
        except OSError:
            return True

    def wait_for_close(self, timeout: float) -> None:
        """Block until the client closes the connection (or ``timeout`` seconds), discarding input."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(RECV_SIZE):
                pass
        except (OSError, TimeoutError):
            pass

    # -- writing ---------------------------------------------------------------------------------

    def sendall(self, data: bytes) -> None:
        """Write raw bytes; raises ``OSError`` (e.g. ``BrokenPipeError``) if the client went away.

        One ``send`` usually takes it all (small events, a roomy socket buffer); gevent's ``sendall``,
        which costs a few more microseconds, only finishes a partial write.
        """
        sent = self.sock.send(data)
        if sent < len(data):
            self.sock.sendall(memoryview(data)[sent:])
        self.sent_bytes += len(data)

    @staticmethod
    def _head(status: int, headers: list[tuple[str, str]], keep_alive: bool) -> bytes:
        lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}"]
        lines += [f"{k}: {v}" for k, v in headers]
        if not keep_alive:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def send_response(
        self, status: int, body: bytes, content_type: str = "application/json",
        headers: list[tuple[str, str]] | None = None, keep_alive: bool = True, truncate: int | None = None,
    ) -> None:
        """Send a complete response with ``Content-Length`` (head and body in one ``sendall``).

        ``truncate=n`` sends only the first n bytes of the body (for the ``disconnect`` fault).
        """
        hdrs = [("Content-Type", content_type), ("Content-Length", str(len(body))), *(headers or ())]
        self.sendall(self._head(status, hdrs, keep_alive) + (body if truncate is None else body[:truncate]))

    def start_chunked(
        self, status: int, content_type: str, headers: list[tuple[str, str]] | None = None, keep_alive: bool = True
    ) -> None:
        """Send the head of a streamed (``Transfer-Encoding: chunked``) response."""
        hdrs = [("Content-Type", content_type), ("Transfer-Encoding", "chunked"), ("Cache-Control", "no-cache"),
                *(headers or ())]
        self.sendall(self._head(status, hdrs, keep_alive))

    def send_chunk(self, data: bytes) -> None:
        """Send ``data`` as one HTTP chunk, in one ``sendall``. ``data`` must not be empty."""
        self.sendall(b"%x\r\n%b\r\n" % (len(data), data))

    def end_chunked(self) -> None:
        """Send the terminating zero-length chunk."""
        self.sendall(b"0\r\n\r\n")

    def close(self, abort: bool = False) -> None:
        """Close the socket (``abort=True``: without a graceful shutdown of the sending side)."""
        if self.closed:
            return
        self.closed = True
        try:
            if not abort:
                self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
