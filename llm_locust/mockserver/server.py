"""Routing and the :class:`MockServer` class (a gevent ``StreamServer`` plus counters and the send log).

Routes (patterns as in ``routing.py``: ``{name}`` is one path segment, ``{name...}`` the rest):

* ``POST /v1/chat/completions``, ``POST /v1/completions`` -- OpenAI (``openai.py``);
* ``POST /api/chat``, ``POST /api/generate`` -- Ollama (``ollama.py``);
* ``POST /v1/messages`` -- Anthropic (``anthropic.py``);
* ``POST /v1beta/models/{model}:streamGenerateContent?alt=sse`` (``/v1/models/...`` too, and
  ``:generateContent``) -- Gemini; ``POST /v1/projects/{p}/locations/{l}/publishers/google/models/
  {model}:streamGenerateContent?alt=sse`` -- Vertex (``gemini.py``);
* ``POST /client/v4/accounts/{account}/ai/run/{model...}`` -- Workers AI native (``workers_ai.py``), and
  ``.../ai/v1/chat/completions`` (OpenAI format);
* ``/v1/{account}/{gateway}/{provider path}`` -- the Cloudflare AI Gateway's provider routes
  (``GATEWAY_ROUTES``), and ``POST /v1/{account}/{gateway}`` -- its universal endpoint (``gateway.py``);
* ``GET /health`` -> ``{"status": "ok"}``; ``GET /v1/models`` -> one model, ``mock-model``;
* ``GET /mock/stats`` -> :attr:`MockServer.stats` as JSON;
* ``GET /metrics`` -> Prometheus text with vLLM's metric names (``metrics.py``);
* anything else -> 404 in OpenAI's error shape (405 for a known path with the wrong method).

Only the generation routes are numbered (``seq``), counted in ``stats["requests"]``, subject to
faults and written to the send log.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import gevent
import gevent.event
import gevent.pool
from gevent.server import StreamServer

from llm_locust.mockserver.anthropic import MockAnthropicMessages
from llm_locust.mockserver.config import MockConfig
from llm_locust.mockserver.gateway import MockCompatChat, MockGatewayUniversal
from llm_locust.mockserver.gemini import MockGemini, MockVertex
from llm_locust.mockserver.generate import run_generation
from llm_locust.mockserver.http import BadRequest, Connection, Request, stamp_arrivals
from llm_locust.mockserver.metrics import MockMetrics
from llm_locust.mockserver.ollama import MockOllamaChat, MockOllamaGenerate
from llm_locust.mockserver.openai import MockOpenAIChat, MockOpenAICompletions, models_body
from llm_locust.mockserver.prefixcache import MockBatchQueue, MockPrefixCache
from llm_locust.mockserver.routing import MockTarget, Router, query_params
from llm_locust.mockserver.sendlog import SendLog
from llm_locust.mockserver.wire import WireProtocol, dumps
from llm_locust.mockserver.workers_ai import MockWorkersAI

_CHAT, _COMPLETIONS, _ANTHROPIC = MockOpenAIChat(), MockOpenAICompletions(), MockAnthropicMessages()
_WORKERS_AI, _GEMINI, _GEMINI_WHOLE = MockWorkersAI(), MockGemini(), MockGemini(stream=False)
_VERTEX, _VERTEX_WHOLE = MockVertex(), MockVertex(stream=False)
_VERTEX_PATH = "/v1/projects/{project}/locations/{location}/publishers/google/models/{model}"

#: Generation routes: path pattern -> wire protocol. A new protocol adds its paths here.
ROUTES: dict[str, WireProtocol] = {
    "/v1/chat/completions": _CHAT,
    "/v1/completions": _COMPLETIONS,
    "/api/chat": MockOllamaChat(),
    "/api/generate": MockOllamaGenerate(),
    "/v1/messages": _ANTHROPIC,
    "/v1beta/models/{model}:streamGenerateContent": _GEMINI,
    "/v1beta/models/{model}:generateContent": _GEMINI_WHOLE,
    "/v1/models/{model}:streamGenerateContent": _GEMINI,
    "/v1/models/{model}:generateContent": _GEMINI_WHOLE,
    _VERTEX_PATH + ":streamGenerateContent": _VERTEX,
    _VERTEX_PATH + ":generateContent": _VERTEX_WHOLE,
    "/client/v4/accounts/{account}/ai/v1/chat/completions": _CHAT,
    "/client/v4/accounts/{account}/ai/run/{model...}": _WORKERS_AI,
}

#: Cloudflare AI Gateway provider routes, after ``/v1/{account}/{gateway}`` (and the universal endpoint's steps,
#: as ``/{provider}/{endpoint}``): path pattern -> wire protocol. Order matters: first match wins.
GATEWAY_ROUTES: dict[str, WireProtocol] = {
    "/openai/chat/completions": _CHAT,
    "/openai/completions": _COMPLETIONS,
    "/anthropic/v1/messages": _ANTHROPIC,
    "/google-ai-studio/v1beta/models/{model}:streamGenerateContent": _GEMINI,
    "/google-ai-studio/v1/models/{model}:streamGenerateContent": _GEMINI,
    "/google-vertex-ai" + _VERTEX_PATH + ":streamGenerateContent": _VERTEX,
    "/workers-ai/v1/chat/completions": _CHAT,
    "/workers-ai/{model...}": _WORKERS_AI,
    "/mistral/v1/chat/completions": _CHAT,
    "/deepseek/chat/completions": _CHAT,
    "/groq/chat/completions": _CHAT,
    "/compat/chat/completions": MockCompatChat(),
}

GATEWAY_BASE = "/v1/{account}/{gateway}"
_DIRECT: Router[WireProtocol] = Router(ROUTES)
_STEPS: Router[WireProtocol] = Router(GATEWAY_ROUTES)
_GATEWAY: Router[WireProtocol] = Router(
    {GATEWAY_BASE + path: proto for path, proto in GATEWAY_ROUTES.items()} | {GATEWAY_BASE: MockGatewayUniversal()}
)

_OPENAI = _CHAT
GET_ROUTES = ("/health", "/v1/models", "/mock/stats", "/metrics")


def route(path: str, target: str = "") -> MockTarget | None:
    """The generation route of ``path`` (``target``: the request target, for its query parameters), or None."""
    if path in GET_ROUTES:
        return None
    gateway = False
    hit = _DIRECT.match(path)
    if hit is None:
        hit, gateway = _GATEWAY.match(path), True
        if hit is None:
            return None
    proto, params = hit
    if "?" in target:
        params = {**query_params(target), **params}
    steps = _STEPS if isinstance(proto, MockGatewayUniversal) else None
    return MockTarget(proto, params, gateway, steps)


class MockServer:
    """The mock LLM server.

    ``start()`` runs it in the calling thread's gevent hub (non-blocking: it serves while the caller
    yields to gevent, e.g. in a monkey-patched Locust process); ``start(in_thread=True)`` runs it in
    its own OS thread with its own hub, for callers that do not use gevent (plain ``requests``, pytest).
    """

    def __init__(self, config: MockConfig | None = None, **overrides: Any) -> None:
        cfg = config or MockConfig()
        if overrides:
            cfg = MockConfig(**{**cfg.__dict__, **overrides})
        self.config = cfg
        #: Counters: generation requests, faults applied, tokens and token-bearing chunks sent,
        #: generation requests in flight, open connections, connections accepted so far.
        self.stats: dict[str, int] = {"requests": 0, "faults": 0, "tokens": 0, "chunks": 0, "active": 0,
                                      "connections": 0, "connections_total": 0}
        self.port: int = cfg.port
        #: what ``GET /metrics`` shows
        self.metrics = MockMetrics()
        self._seq = 0
        self._server: StreamServer | None = None
        self._send_log: SendLog | None = None
        self._stop_event: gevent.event.Event | None = None
        self._thread_done: Any = None  # in_thread mode: a native lock held while the server thread runs
        self._in_thread = False
        self._idle: set[Connection] = set()  # connections waiting for their next request
        self._loop: Any = None
        #: --prefix-cache-blocks and --max-batch (prefixcache.py); the queue is made in the serving thread
        self.prefix_cache = (MockPrefixCache(cfg.prefix_cache_blocks, cfg.prefix_block_tokens)
                             if cfg.prefix_cache_blocks else None)
        self._queue: MockBatchQueue | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` (the real port once started)."""
        host = self.config.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def start(self, in_thread: bool = False) -> MockServer:
        """Bind and start serving (non-blocking). Returns ``self``."""
        if self._server is not None or self._in_thread:
            raise RuntimeError("server already started")
        if in_thread:
            self._start_thread()
            return self
        if self.config.send_log:
            self._send_log = SendLog(self.config.send_log)
        self._stop_event = gevent.event.Event()
        self._loop = gevent.get_hub().loop
        server = StreamServer((self.config.host, self.config.port), self._handle, backlog=4096,
                              spawn=gevent.pool.Pool())
        server.start()
        if self.config.send_log:
            stamp_arrivals(server.socket)  # accepted sockets inherit it: a request sent at once is stamped too
        self._server = server
        self.port = server.address[1]
        return self

    def _start_thread(self) -> None:
        from gevent import monkey

        start_new_thread = monkey.get_original("_thread", "start_new_thread")
        allocate_lock = monkey.get_original("_thread", "allocate_lock")
        started, done = allocate_lock(), allocate_lock()
        started.acquire()
        done.acquire()
        errors: list[BaseException] = []

        def run() -> None:
            try:
                self.start()
            except BaseException as exc:  # reported to the starting thread
                errors.append(exc)
                started.release()
                done.release()
                return
            started.release()
            try:
                self.serve_forever()
            finally:
                gevent.get_hub().destroy(destroy_loop=True)
                done.release()

        start_new_thread(run, ())
        started.acquire()
        if errors:
            raise errors[0]
        self._in_thread, self._thread_done = True, done

    def request_stop(self) -> None:
        """Ask :meth:`serve_forever` to return; safe from a signal handler or another thread."""
        if self._stop_event is None:
            return
        if self._in_thread:
            self._loop.run_callback_threadsafe(self._stop_event.set)
        else:
            self._stop_event.set()

    def serve_forever(self) -> None:
        """Start if needed, serve until :meth:`request_stop`, then stop."""
        if self._server is None:
            self.start()
        assert self._stop_event is not None
        self._stop_event.wait()
        self._stop_now()

    def stop(self, timeout: float = 0.5) -> None:
        """Stop accepting, give open connections ``timeout`` seconds, then close them all."""
        if self._in_thread:
            if self._thread_done is not None:
                done, self._thread_done = self._thread_done, None
                self.request_stop()
                done.acquire()
            return
        self._stop_now(timeout)

    def _stop_now(self, timeout: float = 0.5) -> None:
        if self._server is not None:
            for conn in list(self._idle):  # idle keep-alive connections need not be waited for
                conn.close()
            self._server.stop(timeout=timeout)
            self._server = None
        if self._send_log is not None:
            self._send_log.close()
            self._send_log = None

    def __enter__(self) -> MockServer:
        if self._server is None and not self._in_thread:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- connections -----------------------------------------------------------------------------

    def _handle(self, sock: Any, address: Any) -> None:
        conn = Connection(sock, arrival_stamps=self.config.send_log is not None)
        self.stats["connections"] += 1
        self.stats["connections_total"] += 1
        try:
            while not conn.closed:
                self._idle.add(conn)
                try:
                    req = conn.read_request()
                except BadRequest as exc:
                    self._idle.discard(conn)
                    body = _OPENAI.error_body(exc.status, "", str(exc))
                    conn.send_response(exc.status, body, keep_alive=False)
                    break
                self._idle.discard(conn)
                if req is None:
                    break
                if not self._dispatch(conn, req):
                    break
        except OSError:
            pass  # the client went away
        finally:
            self._idle.discard(conn)
            self.stats["connections"] -= 1
            conn.close()

    def _dispatch(self, conn: Connection, req: Request) -> bool:
        """Answer one request; returns whether to keep the connection open."""
        target = route(req.path, req.target)
        if target is not None:
            if req.method != "POST":
                conn.send_response(405, target.proto.error_body(405, "", f"Use POST for {req.path}."),
                                   headers=[("Allow", "POST")], keep_alive=req.keep_alive)
                return req.keep_alive
            return self._generate(conn, req, target)
        if req.path in GET_ROUTES:
            if req.method != "GET":
                conn.send_response(405, _OPENAI.error_body(405, "", f"Use GET for {req.path}."),
                                   headers=[("Allow", "GET")], keep_alive=req.keep_alive)
                return req.keep_alive
            if req.path == "/health":
                body = b'{"status":"ok"}'
            elif req.path == "/v1/models":
                body = models_body()
            elif req.path == "/metrics":
                conn.send_response(200, self.metrics.render(), content_type="text/plain; version=0.0.4; charset=utf-8",
                                   keep_alive=req.keep_alive)
                return req.keep_alive
            else:
                body = dumps(self.stats).encode()
            conn.send_response(200, body, keep_alive=req.keep_alive)
            return req.keep_alive
        message = f"Unknown request URL: {req.method} {req.path}. Please check the URL for typos."
        conn.send_response(404, _OPENAI.error_body(404, "", message, code="unknown_url"), keep_alive=req.keep_alive)
        return req.keep_alive

    def _batch_queue(self) -> MockBatchQueue | None:
        """The ``--max-batch`` queue, made on first use (in the thread whose hub serves the requests)."""
        if self._queue is None and self.config.max_batch:
            self._queue = MockBatchQueue(self.config.max_batch)
        return self._queue

    def _generate(self, conn: Connection, req: Request, target: MockTarget) -> bool:
        self._seq += 1
        seq = self._seq
        stats = self.stats
        stats["requests"] += 1
        stats["active"] += 1
        try:
            keep, rec = run_generation(self.config, stats, conn, req, target, seq, self.metrics.inflight,
                                       self.prefix_cache, self._batch_queue())
        finally:
            stats["active"] -= 1
            self.metrics.inflight.pop(seq, None)
        self.metrics.observe(rec)
        if self._send_log is not None:
            self._send_log.write(rec)
        if self.config.verbose:
            ms = ((rec.t_end_ns or time.perf_counter_ns()) - rec.t_recv_ns) / 1e6
            sys.stderr.write(
                f"mock #{seq} {req.path} {rec.protocol}{'' if rec.step is None else f' step={rec.step}'} "
                f"model={rec.model} status={rec.status} tokens={rec.tokens} "
                f"fault={rec.fault} {ms:.1f} ms{' ABORTED' if rec.aborted else ''}\n"
            )
        return keep
