"""The driver of one generation request: fault, schedule, and writing the reply on the connection.

Protocol-independent: it follows the :class:`~llm_locust.mockserver.script.Script` (what to send and
when), lets the route's :class:`~llm_locust.mockserver.wire.WireProtocol` render every event, writes
each event as one HTTP chunk and records the real send times in a
:class:`~llm_locust.mockserver.sendlog.SendRecord`.

Before anything else, a request to the Cloudflare AI Gateway (``gateway.py``) gets the ``cf-aig-*`` response
headers and, with ``--gateway-token``, its auth check; the universal endpoint picks the step that answers,
whose protocol then renders the reply.

Faults (see ``faults.py``) in a streamed reply: ``status-*`` answers at once with the protocol's error
response; ``midstream-error`` sends ``fault_after_tokens`` tokens (all of them if the reply is shorter),
then the protocol's in-stream error event and ends the stream (no ``[DONE]``); ``malformed`` sends a
broken event after that many tokens and then carries on normally; ``disconnect`` closes the socket
after them without the terminating chunk; ``hang`` never answers. In a non-streamed reply the
mid-stream faults happen at the time the ``fault_after_tokens``-th token is due: ``midstream-error``
gives HTTP 500 (the protocol's ``midstream_status``: Anthropic's is 529) with the error body,
``malformed`` HTTP 200 with a broken JSON body, ``disconnect`` a response head and half a body, then
the socket is closed.

While it waits for the first token (or for a non-streamed reply) the driver watches the socket, so a
request the client gives up on ends at once (``aborted`` in the send log) rather than at its next send.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from llm_locust.mockserver import gateway
from llm_locust.mockserver.config import MockConfig
from llm_locust.mockserver.faults import HANG, HANG_SECONDS, MIDSTREAM_FAULTS, STATUS_FAULTS, fault_for
from llm_locust.mockserver.http import Connection, Request
from llm_locust.mockserver.prefixcache import MockBatchQueue, MockPrefixCache, prompt_words
from llm_locust.mockserver.routing import MockTarget
from llm_locust.mockserver.script import Chunk, Script, make_script, sleep_until, token_text
from llm_locust.mockserver.sendlog import SendRecord
from llm_locust.mockserver.wire import GenRequest, Reply, RequestError, StreamEncoder, WireProtocol

MIDSTREAM_MESSAGE = "The server had an error while generating the response (mock midstream-error fault)."


def _loads(body: bytes) -> Any:
    """The JSON request body (``{}`` if empty), or ``_INVALID``."""
    try:
        return json.loads(body) if body.strip() else {}
    except ValueError:
        return _INVALID


_INVALID: Any = object()


def run_generation(
    cfg: MockConfig, stats: dict[str, int], conn: Connection, req: Request, target: MockTarget, seq: int,
    inflight: dict[int, SendRecord] | None = None, cache: MockPrefixCache | None = None,
    queue: MockBatchQueue | None = None,
) -> tuple[bool, SendRecord]:
    """Answer generation request number ``seq``; returns (keep the connection open?, the send record).

    If the client goes away in the middle of the reply the record is marked ``aborted``. ``inflight``: where the
    record is put while the request runs (``/metrics`` counts running and waiting requests from it);
    ``cache``: the server's prefix cache (``--prefix-cache-blocks``); ``queue``: its batch queue (``--max-batch``):
    the request waits for a slot, and its schedule starts when it gets one.
    """
    request_id = req.headers.get("x-request-id") or f"mock-{seq}"
    rec = SendRecord(request_id, seq, req.path, req.t_recv_ns, keep_times=cfg.send_log is not None)
    rec.t_arrive_ns = req.t_arrive_ns
    if inflight is not None:
        inflight[seq] = rec
    rec.protocol = target.proto.name
    t_start = req.t_recv_ns
    if queue is not None:
        t_start = rec.t_admitted_ns = queue.admit()
    try:
        keep = _run(cfg, stats, conn, req, target, seq, rec, t_start, cache)
    except OSError:  # the client went away before the reply began
        keep, rec.aborted = False, True
    finally:
        if queue is not None:
            queue.release()
    rec.t_end_ns = time.perf_counter_ns()
    return keep, rec


def _respond(
    conn: Connection, rec: SendRecord, status: int, body: bytes, headers: list[tuple[str, str]], keep: bool
) -> bool:
    """Send a whole error response (no tokens) and note it in the record."""
    rec.status = status
    rec.t_headers_ns = time.perf_counter_ns()
    conn.send_response(status, body, headers=headers, keep_alive=keep)
    return keep


def _has_key(req: Request, key: str) -> bool:
    h = req.headers
    return h.get("authorization") == f"Bearer {key}" or key in (h.get("x-api-key"), h.get("x-goog-api-key"))


def _run(
    cfg: MockConfig, stats: dict[str, int], conn: Connection, req: Request, target: MockTarget, seq: int,
    rec: SendRecord, t_start_ns: int, cache: MockPrefixCache | None = None,
) -> bool:
    keep = req.keep_alive
    extra = [("X-Request-Id", rec.request_id)]
    body = _loads(req.body)
    proto, params = target.proto, target.params

    if target.gateway:
        extra += gateway.response_headers(req, seq)
        if cfg.gateway_token is not None and not gateway.authorized(req, cfg.gateway_token):
            return _respond(conn, rec, 401, gateway.UNAUTHORIZED, extra, keep)
    if target.steps is not None:  # the universal endpoint: the step that answers decides everything else
        if not isinstance(body, list):
            message = (f"Unknown request URL: POST {req.path}; as a Cloudflare AI Gateway universal endpoint "
                       "(/v1/{account}/{gateway}) it takes a JSON array of steps")
            return _respond(conn, rec, 404, proto.error_body(404, "", message), extra, keep)
        try:
            step = gateway.pick_step(body, cfg.fail_steps, target.steps)
        except RequestError as exc:
            return _respond(conn, rec, 400, proto.error_body(400, "", str(exc)), extra, keep)
        extra.append(("cf-aig-step", str(step.index)))
        proto, params, body = step.proto, step.params, step.body
        rec.protocol, rec.step = proto.name, step.index
        if step.failed:
            model = proto.model_of(body, params)
            rec.model = model
            status, err, headers = proto.error_response(500, model, seq=seq, retry_after=cfg.retry_after)
            return _respond(conn, rec, status, err, extra + headers, keep)

    model = proto.model_of(body, params)
    rec.model = model
    if cfg.api_key is not None and not _has_key(req, cfg.api_key):
        status, err, headers = proto.error_response(401, model, seq=seq)
        return _respond(conn, rec, status, err, extra + headers, keep)
    fault = fault_for(cfg.fault, cfg.fault_every, seq)
    if cfg.fault_model is not None and cfg.fault_model not in (model or ""):
        fault = None

    if fault in STATUS_FAULTS:
        status, err, headers = proto.error_response(STATUS_FAULTS[fault], model, seq=seq, retry_after=cfg.retry_after)
        stats["faults"] += 1
        rec.fault = fault
        return _respond(conn, rec, status, err, extra + headers, keep)
    if fault == HANG:
        stats["faults"] += 1
        rec.fault = fault
        conn.wait_for_close(HANG_SECONDS)
        return False

    try:
        if not isinstance(body, dict):
            raise RequestError("the request body must be a JSON object")
        greq = proto.parse(body, params)
    except RequestError as exc:
        status, err, headers = proto.error_response(400, model, str(exc), seq=seq)
        return _respond(conn, rec, status, err, extra + headers, keep)
    if cfg.no_usage:
        greq.usage = greq.include_usage = greq.continuous_usage = False
    elif cfg.continuous_usage:
        greq.continuous_usage = True
    if fault is not None:
        stats["faults"] += 1
        rec.fault = fault
    rec.model, rec.stream, rec.prompt_tokens = greq.model, greq.stream, greq.prompt_tokens
    rec.reasoning_asked = greq.reasoning_asked
    rec.length_asked = length_asked(greq)
    script = make_script(cfg, t_start_ns, seq, greq.limit, reasoning_wanted(cfg, greq, proto), stats["active"] - 1,
                         greq.ignore_eos, greq.min_tokens)
    rec.finish_reason = script.finish_reason
    reply = Reply(seq, rec.request_id, int(time.time()), greq.prompt_tokens, req.t_recv_ns,
                  tokens=script.tokens, reasoning_tokens=script.reasoning_tokens,
                  finish_reason=script.finish_reason, cached_tokens=cached_prefix(cache, proto, body))
    rec.cached_tokens = reply.cached_tokens
    try:
        if greq.stream:
            keep = _stream(cfg, stats, conn, proto, greq, reply, script, fault, rec, extra, keep)
        else:
            keep = _whole(cfg, stats, conn, proto, greq, reply, script, fault, rec, extra, keep)
    except OSError:  # the client went away
        keep, rec.aborted, rec.finish_reason = False, True, None
        _finish_times(rec, reply)
    return keep


def length_asked(greq: GenRequest) -> str | None:
    """The request's ``ignore_eos``/``min_tokens`` for the send log (``ignore_eos,min_tokens:40``), or None."""
    parts = (["ignore_eos"] if greq.ignore_eos else []) + ([f"min_tokens:{greq.min_tokens}"]
                                                          if greq.min_tokens is not None else [])
    return ",".join(parts) or None


def cached_prefix(cache: MockPrefixCache | None, proto: WireProtocol, body: Any) -> int | None:
    """The reply's ``cached_tokens``: the prompt's prefix seen before, on OpenAI chat and completions with
    ``--prefix-cache-blocks``; None otherwise (no ``prompt_tokens_details`` is sent)."""
    if cache is None or proto.name not in ("openai-chat", "openai-completions"):
        return None
    return cache.cached(prompt_words(body))


def reasoning_wanted(cfg: MockConfig, greq: GenRequest, proto: WireProtocol) -> int:
    """Reasoning tokens the reply starts with: as the request's switch asks (``--thinking-tokens``, at most its
    budget; none if it turns reasoning off), else ``--reasoning-tokens``; none where the format has no field."""
    if not proto.supports_reasoning:
        return 0
    if greq.reasoning is None:
        return cfg.reasoning_tokens
    return min(cfg.thinking_tokens, greq.reasoning)


def _stream(
    cfg: MockConfig, stats: dict[str, int], conn: Connection, proto: WireProtocol, greq: GenRequest,
    reply: Reply, script: Script, fault: str | None, rec: SendRecord, extra: list[tuple[str, str]], keep: bool,
) -> bool:
    enc = proto.encoder(greq, reply)
    rec.status = 200
    rec.t_headers_ns = time.perf_counter_ns()
    conn.start_chunked(200, proto.stream_content_type, extra, keep)
    send_chunk = conn.send_chunk
    for event in enc.opening():
        send_chunk(event)

    if cfg.keepalive_ms > 0 and enc.keepalive is not None:
        period = max(int(cfg.keepalive_ms * 1e6), 1)
        due = rec.t_recv_ns + period
        while due < script.first_target_ns:
            _sleep_watching(conn, due)
            send_chunk(enc.keepalive)
            rec.keepalives += 1
            due += period
    _sleep_watching(conn, script.first_target_ns)

    chunks = script.chunks()
    _send_tokens(stats, send_chunk, enc, chunks, rec, cfg.fault_after_tokens if fault in MIDSTREAM_FAULTS else None)
    if fault == "midstream-error":
        send_chunk(enc.error(MIDSTREAM_MESSAGE))
        conn.end_chunked()
    elif fault == "disconnect":
        keep = False
        conn.close(abort=True)
    else:
        if fault == "malformed":
            send_chunk(enc.malformed())
            _send_tokens(stats, send_chunk, enc, chunks, rec, None)
        sleep_until(script.first_target_ns)  # a reply without tokens still takes ttft
        _finish_times(rec, reply)
        for event in enc.closing(script.finish_reason, rec.tokens, rec.reasoning_tokens):
            send_chunk(event)
        conn.end_chunked()
        return keep
    _finish_times(rec, reply)
    rec.finish_reason = None
    return keep


def _send_tokens(
    stats: dict[str, int],
    send_chunk: Callable[[bytes], None],
    enc: StreamEncoder,
    chunks: Iterator[Chunk],
    rec: SendRecord,
    stop_at: int | None,
) -> None:
    """Send each chunk at its target time (the hot loop); return early once ``stop_at`` tokens are sent.

    Every send time is kept in ``rec.token_send_ns`` only if ``rec.keep_times`` (there is a send log).
    """
    times = rec.token_send_ns if rec.keep_times else None
    perf = time.perf_counter_ns
    done, reasoning = rec.tokens, rec.reasoning_tokens
    if stop_at is not None and done >= stop_at:
        return
    for chunk in chunks:
        sleep_until(chunk.target_ns)
        done += chunk.count
        if chunk.reasoning:
            reasoning += chunk.count
        data = enc.tokens(token_text(chunk.start, chunk.count), chunk.reasoning, done, reasoning)
        if data:  # b"": reasoning the provider does not stream; it takes its time and counts, nothing is sent
            t = perf()
            send_chunk(data)
            if rec.t_first_token_ns is None:
                rec.t_first_token_ns = t
            rec.t_last_token_ns = t
            rec.chunks += 1
            stats["chunks"] += 1
            if times is not None:
                times.append(t)
        rec.tokens, rec.reasoning_tokens = done, reasoning
        stats["tokens"] += chunk.count
        if stop_at is not None and done >= stop_at:
            return


def _sleep_watching(conn: Connection, target_ns: int) -> None:
    """Like ``sleep_until``, but raise ``ConnectionResetError`` as soon as the client closes the connection.

    Used for the long waits (time to first token, a non-streamed reply) so that a request the
    client gave up on ends (and reaches the send log) at once, not at its next send.
    """
    remaining = target_ns - time.perf_counter_ns()
    if remaining > 0 and conn.peer_closed_within(remaining * 1e-9):
        raise ConnectionResetError("the client closed the connection")
    sleep_until(target_ns)


def _finish_times(rec: SendRecord, reply: Reply) -> None:
    reply.t_first_token_ns, reply.t_last_token_ns = rec.t_first_token_ns, rec.t_last_token_ns


def _whole(
    cfg: MockConfig, stats: dict[str, int], conn: Connection, proto: WireProtocol, greq: GenRequest,
    reply: Reply, script: Script, fault: str | None, rec: SendRecord, extra: list[tuple[str, str]], keep: bool,
) -> bool:
    if fault in MIDSTREAM_FAULTS:
        due, sent = script.first_target_ns, 0
        for chunk in script.chunks():  # the fault strikes when token number fault_after_tokens is due
            if sent >= cfg.fault_after_tokens:
                break
            due, sent = chunk.target_ns, sent + chunk.count
        _sleep_watching(conn, due)
        rec.finish_reason = None
        if fault == "midstream-error":
            status, body, headers = proto.error_response(proto.midstream_status, greq.model, MIDSTREAM_MESSAGE,
                                                         seq=reply.seq)
            return _respond(conn, rec, status, body, extra + headers, keep)
        rec.status = 200
        rec.t_headers_ns = time.perf_counter_ns()
        if fault == "malformed":
            conn.send_response(200, b"{not json", headers=extra, keep_alive=keep)
            return keep
        full = proto.full_response(greq, reply, "", "", "stop", 0, 0)
        conn.send_response(200, full, headers=extra, keep_alive=False, truncate=len(full) // 2)
        conn.close(abort=True)
        return False

    _sleep_watching(conn, script.first_target_ns)
    reply.t_first_token_ns = time.perf_counter_ns()  # when the first token was "generated"
    _sleep_watching(conn, script.last_target_ns())
    reply.t_last_token_ns = time.perf_counter_ns()
    n, r = script.tokens, script.reasoning_tokens
    text = token_text(r, n - r)
    reasoning_text = token_text(0, r)
    body = proto.full_response(greq, reply, text, reasoning_text, script.finish_reason, n, r)
    rec.status = 200
    t = rec.t_headers_ns = time.perf_counter_ns()
    conn.send_response(200, body, headers=extra, keep_alive=keep)
    rec.token_send_ns.append(t)
    rec.t_first_token_ns = rec.t_last_token_ns = t
    rec.tokens, rec.reasoning_tokens, rec.chunks = n, r, 1
    stats["tokens"] += n
    stats["chunks"] += 1
    return keep
