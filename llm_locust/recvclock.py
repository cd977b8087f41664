"""The receive clock: a line of a stream is stamped with the kernel's time of its bytes' arrival, not the reader's.

A reader that stamps a line with ``time.perf_counter_ns()`` when ``readline`` returns it counts every other
greenlet that ran in between as latency: with a batching server, whose streams all get their token at the same
decode step, 128 chunks arrive together and the last stream to be read is stamped ~128 chunks' work late (1-8 ms
at p99 from 64 streams on, in every earlier pass of docs/performance.md; 0.02 ms with this module: "seventh pass").
The kernel knows better: on Linux, with ``SO_TIMESTAMPNS`` set on a socket, every TCP segment it receives is
stamped as it arrives (on loopback, inside the sender's ``send``; from a network, as the packet is taken off the
NIC), and ``recvmsg`` returns the stamp of the last segment it read.

* :class:`StampedSocket` is the gevent socket of a user's plain-TCP connections (:func:`instrument` makes a
  geventhttpclient ``ConnectionPool`` create them): its ``recv`` waits until the socket is readable, then reads with
  a ``recvmsg`` that keeps that stamp, moved to the ``perf_counter_ns`` clock, in ``arrive_ns``.
* :func:`line_clock` gives the stream reader (:func:`llm_locust.measure.stream.read_lines`) its clock: the
  connection's ``arrive_ns`` when ``readline`` returns. ``readline`` returns as soon as a line is complete, so the
  last read on the connection is the one that brought the line's end (or an earlier one that brought the line
  whole): the line's stamp is when its bytes arrived, whatever ran before the reader got them.

The same rule covers the response head: the first token may come in the read that brought the headers.

Limits, each falling back to ``perf_counter_ns()`` when ``readline`` returns, the clock of every other client:

* one ``recvmsg`` that takes several segments carries the last one's stamp. A reader later than the gap between two
  chunks stamps the first with the second's arrival: late by that gap, but never later than its own clock. That is a
  saturated process, or a burst of more streams' chunks than the process reads within one ITL (a server that writes
  a decode step's chunks at once: :mod:`llm_locust.headroom`'s figure is that peak rate);
* TLS: the TLS layer reads the socket itself, so its reads carry no stamp (an https endpoint is timed as before);
* outside Linux, and where the kernel refuses the option;
* a segment the kernel did not stamp: it stamps only while a socket asks, and turns stamping back on some time
  after the first socket asks again, so this module keeps one socket asking (:func:`_keep_stamping`) from the first
  :class:`StampedSocket` on.

The kernel's stamp is ``CLOCK_REALTIME``; it is moved to ``perf_counter_ns`` (``CLOCK_MONOTONIC``) by the two
clocks' offset read at each receive, so a step of the wall clock between two reads moves nothing. NTP's rate
corrections slew both clocks alike.

Use::

    instrument(pool)                   # once per connection pool (llm_locust.sendclock does it for a user's pools)
    clock_of(t.host for t in targets)  # "kernel", "reader" or "mixed": what the run's reports say
    now = line_clock(sock)             # sock: the connection handed over for this request (SendClock.sock)
    read_lines(out, raw, now=now)      # every line's stamp: now() right after readline returned it
"""

from __future__ import annotations

import socket
import struct
import sys
import time
from collections.abc import Callable
from typing import Any

import gevent.socket

#: Linux's SO_TIMESTAMPNS (= SCM_TIMESTAMPNS), which Python's socket module does not name
SO_TIMESTAMPNS = 35
#: room for its control message (a struct timespec)
ANC_SIZE = socket.CMSG_SPACE(16) if hasattr(socket, "CMSG_SPACE") else 0
_TIMESPEC = struct.Struct("qq").unpack_from
_now = time.perf_counter_ns
_wall = time.time_ns


def enable(sock: Any) -> bool:
    """Have the kernel stamp what ``sock`` receives (Linux); False where it cannot."""
    if sys.platform != "linux" or not ANC_SIZE:
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


def kernel_ns(ancdata: list[tuple[int, int, bytes]]) -> int | None:
    """The kernel's receive stamp in ``recvmsg``'s ancillary data, on the ``perf_counter_ns`` clock; None if absent."""
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            sec, nsec = _TIMESPEC(data)
            return sec * 1_000_000_000 + nsec - (_wall() - _now())
    return None


_keeper: list[socket.socket] = []


def _keep_stamping() -> None:
    """Keep the kernel stamping for the life of the process. Linux stamps received segments only while some socket
    asks for it, and turns that on again *later* (deferred work) when a socket asks after the last one closed: a
    connection opened then gets its first segments unstamped (a quarter of fresh loopback pairs, measured). One
    unconnected socket with the option set, kept open, closes that gap for every later connection."""
    if not _keeper:
        keeper = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if enable(keeper):
            _keeper.append(keeper)
        else:
            keeper.close()


class StampedSocket(gevent.socket.socket):
    """A gevent socket whose ``recv`` keeps the kernel's arrival stamp of what it read in ``arrive_ns``."""

    __slots__ = ("arrive_ns",)

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.arrive_ns = 0
        if enable(self):
            _keep_stamping()

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        # Wait until the socket is readable, then read. gevent's own recv tries first and waits on EAGAIN: a stream
        # reader that has taken the last chunk calls recv before the next one comes, so that is a failed system
        # call and an exception per chunk (36 -> 31 µs of CPU a chunk at 64 streams, docs/performance.md). Waiting
        # first costs a turn of the loop when the bytes are already there; their stamp does not change.
        if self.timeout != 0.0:
            self._wait(self._read_event)
        while True:
            try:
                data, anc, _, _ = self._sock.recvmsg(bufsize, ANC_SIZE, flags)
                break
            except BlockingIOError:  # readable, but nothing to read after all: wait again, as gevent's recv does
                if self.timeout == 0.0:
                    raise
                self._wait(self._read_event)
        if anc:
            sec, nsec = _TIMESPEC(anc[0][2])  # SO_TIMESTAMPNS is the only option set: its message is the only one
            self.arrive_ns = sec * 1_000_000_000 + nsec - (_wall() - _now())
        else:  # no segment stamped (the peer closed: b""), or the kernel refused the option
            self.arrive_ns = _now()
        return data

    def stamp(self) -> int:
        """When the bytes of the last read arrived (``perf_counter_ns`` clock)."""
        return self.arrive_ns


def instrument(pool: Any) -> None:
    """Make ``pool`` (a geventhttpclient ``ConnectionPool``) open :class:`StampedSocket` connections (Linux)."""
    if sys.platform != "linux" or not ANC_SIZE:
        return
    pool._create_tcp_socket = StampedSocket


def stamps(url: str) -> bool:
    """Whether the lines of responses from ``url`` get the kernel's arrival stamps here (Linux, plain HTTP)."""
    return sys.platform == "linux" and bool(ANC_SIZE) and url.lower().startswith("http://")


def clock_of(hosts: Any) -> str:
    """The clock that stamps a run's lines, over its targets' ``hosts``: ``"kernel"`` (all get arrival stamps),
    ``"reader"`` (none does) or ``"mixed"``; summary.json's ``run.line_clock`` and the start-up message's figure."""
    kinds = {stamps(h) for h in hosts}
    return "mixed" if len(kinds) > 1 else "kernel" if kinds == {True} else "reader"


def line_clock(sock: Any) -> Callable[[], int]:
    """The clock that stamps the lines read from ``sock``: its arrival stamps if it keeps them, else the reader's."""
    return sock.stamp if type(sock) is StampedSocket else _now
