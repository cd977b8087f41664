"""The LLM call's HTTP request: sent on the user's own keep-alive connections, below ``FastHttpSession``.

``FastHttpSession.request`` is a general web client: per request it parses the URL, copies and merges the headers
three times, builds a ``CompatRequest``, runs the cookie jar both ways, follows redirects and retries, and wraps
the answer twice (``FastResponse``, ``ResponseContextManager``). An LLM call needs none of it: in a run of short
answers (py-spy, docs/performance.md, "sixth pass") the send and the response head took 271 µs of the 535 µs of CPU
a request cost in all, and 159 µs of 432 through this module.
:class:`Sender` keeps only the part that moves bytes: the same ``HTTPClient`` (and so the same connection pool,
with :mod:`llm_locust.sendclock`'s stamp, TLS settings, proxy and timeouts) that ``FastHttpSession`` would pick
for the URL, looked up once per URL, and its ``request``. The user fires Locust's request event itself, once per
LLM call, with the same fields (:mod:`llm_locust.users`).

What it keeps from ``FastHttpSession``: the user class's ``default_headers``. A host URL's ``user:password@`` goes
out as basic auth too, but from the target (:func:`llm_locust.run.split_credentials`: the host shown in reports
has none). What it leaves out, by decision:

* redirects: an LLM call is a POST whose body and API key must not follow a ``Location`` to another host; a 3xx
  answer is booked as a failed request with its status (FastHttpUser would follow up to ``max_redirects``);
* retries and cookies: every LLM call is sent once and booked once (FastHttpUser's ``max_retries`` is 0 anyway);
  an API that answers with ``Set-Cookie`` gets no cookie back.

Use::

    sender = Sender(user.client)                 # once per user (a FastHttpSession)
    raw = sender.send(url, body, headers)        # geventhttpclient's HTTPSocketPoolResponse: status line and head read
    try:
        ... raw.status_code, raw.info(), raw.readline(b"\\n") ...
    finally:
        raw.release()                            # the connection goes back to the pool (closed if not reusable)
"""

from __future__ import annotations

from typing import Any

from geventhttpclient.client import HTTPClient
from geventhttpclient.response import HTTPSocketPoolResponse
from geventhttpclient.url import URL


class Sender:
    """Sends one user's LLM requests on the connections of its ``FastHttpSession`` (see the module docs)."""

    __slots__ = ("_agent", "_defaults", "_routes")

    def __init__(self, session: Any) -> None:
        agent = session.client  # FastHttpSession -> LocustUserAgent
        self._agent = agent  # its clientpool is read at each new URL (llm_locust.sendclock replaces it)
        # the user class's default_headers: what differs from HTTPClient's own (its User-Agent, which it adds itself)
        self._defaults = {k: v for k, v in agent.default_headers.items() if HTTPClient.DEFAULT_HEADERS.get(k) != v}
        self._routes: dict[str, tuple[HTTPClient, str]] = {}

    def send(self, url: str, body: bytes, headers: dict[str, str]) -> HTTPSocketPoolResponse:
        """POST ``body`` to the absolute ``url``; the response once its status line and headers are read. Raises what
        the connection or the HTTP parser raised (the caller books it)."""
        route = self._routes.get(url)
        if route is None:
            route = self._routes[url] = self._route(url)
        if self._defaults:
            headers = {**self._defaults, **headers}
        return route[0].request("POST", route[1], body=body, headers=headers)

    def _route(self, url: str) -> tuple[HTTPClient, str]:
        split = URL(url)
        return self._agent.clientpool.get_client(split), getattr(split, "quoted_uri", split.request_uri)
