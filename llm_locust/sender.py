"""The LLM call's HTTP request: sent on the user's own keep-alive connections, below ``FastHttpSession``.

``FastHttpSession.request`` is a general web client: per request it parses the URL, copies and merges the headers
three times, builds a ``CompatRequest``, runs the cookie jar both ways, follows redirects and retries, and wraps
the answer twice (``FastResponse``, ``ResponseContextManager``). An LLM call needs none of it: in a run of short
answers (py-spy, docs/performance.md, "sixth pass") the send and the response head took 271 µs of the 535 µs of CPU
a request cost in all, and 159 µs of 432 through this module.
:class:`Sender` keeps only the part that moves bytes: the same ``HTTPClient`` (and so the same connection pool,
with :mod:`llm_locust.sendclock`'s stamp, TLS settings, proxy and timeouts) that ``FastHttpSession`` would pick
for the URL, looked up once per URL, and its connection pool. The user fires Locust's request event itself, once per
LLM call, with the same fields (:mod:`llm_locust.users`).

The request's head is made once: for each prepared request (URL, headers, body length) the first send has
``HTTPClient._build_request`` write the head (its validation of every header, ``Host``, ``Content-Length``, the
proxy's form) around a marker where the ``X-Request-Id`` goes; each send after that joins the two halves with the
request's id and the body and writes them in one ``sendall`` on a connection of the same pool, then reads the
response head as ``HTTPClient.request`` does (``HTTPSocketPoolResponse``). Per request that saves the two merges of
the headers into case-insensitive ``Headers``, the regular expressions over each header and the string building
(CPU per short request 1.32-1.33x the bare reader's before, 1.18-1.24x after, in paired runs; docs/performance.md,
"eighth pass"). A POST is never sent again after a failed write (RFC 9110, 9.2.2, as ``HTTPClient.request``
does): a reset during the write still reads the answer the server may have sent before it closed. Headers that
ask for ``Transfer-Encoding`` or ``Expect: 100-continue`` take ``HTTPClient.request`` itself.

What it keeps from ``FastHttpSession``: the user class's ``default_headers``. A host URL's ``user:password@`` goes
out as basic auth too, but from the target (:func:`llm_locust.run.split_credentials`: the host shown in reports
has none). What it leaves out, by decision:

* redirects: an LLM call is a POST whose body and API key must not follow a ``Location`` to another host; a 3xx
  answer is booked as a failed request with its status (FastHttpUser would follow up to ``max_redirects``);
* retries and cookies: every LLM call is sent once and booked once (FastHttpUser's ``max_retries`` is 0 anyway);
  an API that answers with ``Set-Cookie`` gets no cookie back.

Use::

    sender = Sender(user.client)                 # once per user (a FastHttpSession)
    raw = sender.send(url, body, headers, rid)   # geventhttpclient's HTTPSocketPoolResponse: status line and head read
    try:
        ... raw.status_code, raw.info(), raw.readline(b"\\n") ...
    finally:
        raw.release()                            # the connection goes back to the pool (closed if not reusable)
"""
from __future__ import annotations

import errno
from typing import Any

from geventhttpclient.client import HTTPClient
from geventhttpclient.response import HTTPSocketPoolResponse
from geventhttpclient.url import URL

#: where the request id goes in a head made once (a header value no request id or header has)
_MARK = "llm-locust-request-id-mark-5f0c2a"
#: heads kept per user before the cache starts again (a session's every turn is a new prepared request; a head is
#: a few hundred bytes)
MAX_HEADS = 64
#: headers whose requests are sent by ``HTTPClient.request`` itself (a body in chunks, or sent after a 100)
_GENERAL = ("transfer-encoding", "expect")


class Sender:
    """Sends one user's LLM requests on the connections of its ``FastHttpSession`` (see the module docs)."""

    __slots__ = ("_agent", "_defaults", "_heads", "_routes")

    def __init__(self, session: Any) -> None:
        agent = session.client  # FastHttpSession -> LocustUserAgent
        self._agent = agent  # its clientpool is read at each new URL (llm_locust.sendclock replaces it)
        # the user class's default_headers: what differs from HTTPClient's own (its User-Agent, which it adds itself)
        self._defaults = {k: v for k, v in agent.default_headers.items() if HTTPClient.DEFAULT_HEADERS.get(k) != v}
        self._routes: dict[str, tuple[HTTPClient, str]] = {}
        # (url, id of the headers, body length) -> (headers, head before the id, head after it), or None: the
        # request goes through HTTPClient.request. The head depends on the body only by its Content-Length; the
        # headers are kept so that their id stays theirs (the bodies are not: a session's turns can be large).
        self._heads: dict[tuple[str, int, int], tuple[Any, bytes, bytes] | None] = {}

    def send(self, url: str, body: bytes, headers: dict[str, str], request_id: str) -> HTTPSocketPoolResponse:
        """POST ``body`` to the absolute ``url`` with ``headers`` and ``X-Request-Id: request_id``; the response
        once its status line and headers are read. Raises what the connection or the HTTP parser raised (the caller
        books it). ``headers`` are a prepared request's: the head is made once per headers, URL and body length."""
        route = self._routes.get(url)
        if route is None:
            route = self._routes[url] = self._route(url)
        key = (url, id(headers), len(body))
        head = self._heads.get(key, False)
        if head is False or (head is not None and head[0] is not headers):
            head = self._head(route, key, body, headers)
        if head is None:
            return route[0].request("POST", route[1], body=body,
                                    headers={**self._merged(headers), "X-Request-Id": request_id})
        client = route[0]
        pool = client._connection_pool
        data = b"".join((head[1], request_id.encode("latin-1"), head[2], body))
        sock = pool.get_socket()
        try:
            sock.sendall(data)
        except OSError as e:
            if e.errno not in (errno.ECONNRESET, errno.EPIPE):
                pool.release_socket(sock)
                raise
            # the server may have answered (a 413, a 401) before it closed: that answer, else the parser's error
        return HTTPSocketPoolResponse(sock, pool, block_size=client.block_size, method="POST",
                                      headers_type=client.headers_type)

    def _merged(self, headers: dict[str, str]) -> dict[str, str]:
        return {**self._defaults, **headers} if self._defaults else headers

    def _head(
        self, route: tuple[HTTPClient, str], key: tuple[str, int, int], body: bytes, headers: dict[str, str]
    ) -> tuple[Any, bytes, bytes] | None:
        """Make (and keep) the head of requests with these headers and body, split where the request id goes."""
        if len(self._heads) >= MAX_HEADS:
            self._heads.clear()
        merged = {**self._merged(headers), "X-Request-Id": _MARK}
        head: tuple[Any, bytes, bytes] | None = None
        if not any(k.lower() in _GENERAL for k in merged):
            text = route[0]._build_request("POST", route[1], body=body, headers=merged).encode("latin-1")
            before, mark, after = text.partition(_MARK.encode())
            if mark and _MARK.encode() not in after:
                head = (headers, before, after)
        self._heads[key] = head
        return head

    def _route(self, url: str) -> tuple[HTTPClient, str]:
        split = URL(url)
        return self._agent.clientpool.get_client(split), getattr(split, "quoted_uri", split.request_uri)
