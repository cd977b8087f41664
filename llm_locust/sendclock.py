"""The send clock: a request's ``t0`` taken right before its bytes are written, not when it is handed over.

Between the call that sends a request (:class:`llm_locust.sender.Sender`, ``HTTPClient.request``) and the write of
the request, geventhttpclient checks the pooled connection with ``select`` (monkey-patched by gevent:
``select(..., 0)`` ends in ``gevent.sleep(0)``, a switch to the hub), so a ``t0`` taken before the call would
count every other greenlet that runs meanwhile (other streams' lines, bookkeeping) as this request's latency: the
"send lag" of docs/performance.md. This module removes the switch and moves the stamp:

* :class:`StampingClientPool` replaces a user agent's ``HTTPClientPool``; every connection pool it creates is
  instrumented by :func:`instrument`;
* the instrumented pool checks an idle connection with the *original* ``select`` (no switch) and stamps
  ``clock.t_ns = time.perf_counter_ns()`` as it hands the connection over: what follows in geventhttpclient is
  encoding the head and one ``sendall`` (a non-blocking ``send`` on a roomy socket buffer), with no switch;
* on a fresh connection the stamp is taken before the connect: TTFT includes connection set-up, as with any
  client that opens a connection for a request;
* ``clock.hold_ns`` (open-loop arrivals, :mod:`llm_locust.plugin.dispatch`): when set, the hand-over waits until
  that ``perf_counter_ns()`` (a timer, then yielding to the other greenlets for the last ``clock.spin_ns``:
  gevent's timers fire about 0.5 ms late), so a request whose arrival was handed out early is written at its intended
  time, everything before the write already done.
* :func:`preconnect` opens a user's keep-alive connection before its first request, untimed, so that the first
  request of every user is timed like the others (docs/metrics.md, "t0"): without it, N users started together
  connect together and their first TTFTs carry the client's own connect burst (4-8 ms at 32 users on the bench
  machine, against 0.001 ms from ``t0`` to the write on an open connection).

Use::

    clock = install(user)          # once, in the FastHttpUser's __init__ (before its first request)
    preconnect(user, host)         # once, when the user starts (after any --stagger wait)
    clock.t_ns = 0
    raw = sender.send(url, body, headers)   # llm_locust.sender, on this pool
    t0 = clock.t_ns or t_before    # 0: no connection was handed over (the connect failed)
"""

from __future__ import annotations

import logging
import time
from typing import Any

from gevent.monkey import get_original
from geventhttpclient.client import HTTPClient, HTTPClientPool
from geventhttpclient.url import URL

from . import recvclock

_select = get_original("select", "select")
#: a held hand-over yields (instead of sleeping on a timer) this close to its time
SPIN_NS = 1_000_000
logger = logging.getLogger(__name__)


class SendClock:
    """``t_ns``: ``perf_counter_ns()`` when the last request's connection was handed over for its write."""

    __slots__ = ("fresh", "hold_ns", "sock", "spin_ns", "t_ns")

    def __init__(self) -> None:
        self.t_ns = 0
        self.sock: Any = None  # the connection handed over last: the response is read from it (llm_locust.recvclock)
        self.fresh = False
        self.hold_ns = 0  # hand the next connection over no earlier than this perf_counter_ns() (0: at once)
        self.spin_ns = SPIN_NS  # the part of that wait spent yielding rather than on a timer


def hold_until(t_ns: int, spin_ns: int = SPIN_NS) -> None:
    """Return once ``perf_counter_ns() >= t_ns``: a gevent sleep to ``spin_ns`` before it, then yields."""
    import gevent

    now = time.perf_counter_ns
    while (left := t_ns - now()) > 0:
        gevent.sleep(0 if left <= spin_ns else (left - spin_ns) / 1e9)


def _alive(sock: Any) -> bool:
    """geventhttpclient's idle-connection check (readable while idle = closed or dirty), without a hub switch."""
    if sock is None:
        return False
    try:
        if sock.fileno() < 0:
            return False
        return not _select([sock], [], [], 0.0)[0]
    except (OSError, ValueError):
        return False


def instrument(pool: Any, clock: SendClock) -> None:
    """Make ``pool`` (a geventhttpclient ``ConnectionPool``) stamp ``clock`` when it hands out a connection."""
    get_socket, create_socket = pool.get_socket, pool._create_socket
    now = time.perf_counter_ns

    def _create_socket() -> Any:
        clock.t_ns = now()  # before the connect: set-up is part of this request's latency
        clock.fresh = True
        return create_socket()

    def _get_socket() -> Any:
        if clock.hold_ns:
            hold_until(clock.hold_ns, clock.spin_ns)
            clock.hold_ns = 0
        clock.fresh = False
        sock = clock.sock = get_socket()
        if not clock.fresh:
            clock.t_ns = now()
        return sock

    pool._is_socket_alive = _alive
    pool._create_socket = _create_socket
    pool.get_socket = _get_socket


class StampingClientPool(HTTPClientPool):
    """An ``HTTPClientPool`` whose clients' connection pools stamp one :class:`SendClock`."""

    def __init__(self, clock: SendClock, **kw: Any) -> None:
        super().__init__(**kw)
        self.clock = clock

    def get_client(self, url: str | URL) -> HTTPClient:
        if not isinstance(url, URL):
            url = URL(url)
        key = url.host, url.port
        client = self.clients.get(key)
        if client is None:
            client = self.clients[key] = HTTPClient.from_url(url, **self.client_args)
            instrument(client._connection_pool, self.clock)
            recvclock.instrument(client._connection_pool)  # its connections keep the kernel's arrival stamps
        return client


def install(user: Any) -> SendClock:
    """Give a FastHttpUser's client a stamping pool (it must not have made a request yet); return its clock."""
    clock = SendClock()
    agent = user.client.client  # FastHttpSession -> LocustUserAgent
    old = agent.clientpool
    agent.clientpool = StampingClientPool(clock, **old.client_args)
    old.close()
    return clock


def preconnect(user: Any, host: str) -> None:
    """Open ``user``'s keep-alive connection to ``host`` now and put it in the pool, untimed (TLS handshake
    included). A failure is only logged at debug level: the first request connects again and reports it."""
    agent = user.client.client
    try:
        pool = agent.clientpool.get_client(URL(host))._connection_pool
        pool.return_socket(pool.get_socket())
    except Exception as e:  # refused, DNS, TLS: the first request meets it again and books it
        logger.debug("llm-locust: pre-connect to %s failed: %s", host, e)
