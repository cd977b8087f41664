"""The record builder: one finished (or failed) request's :class:`StreamResult` into its :class:`Record`.

``build_record(user=, target=, prompt=, input_tokens_local=, request_id=, start_wall=, t0=, out=, warmup=,
output_tokens_asked=)`` applies the
definitions of :mod:`llm_locust.measure.metrics` and fills every field of the record, in the record's order:

* **tokens**: the server's usage counts when the server reported them (source ``server``), else the target's
  local count (tiktoken, or a character estimate; its name is the source): of the streamed text and reasoning
  for output (estimated beyond ``tokens.COUNT_LIMIT`` characters, so that a huge response cannot stall the event
  loop), of the prepared prompt for input. Both the server's and the local counts are kept;
* **timing**: :func:`~llm_locust.measure.metrics.timing` of the clock with the chosen output count; ``elapsed_ms``
  runs from ``t0`` to ``out.t_end`` (or now, when the request was cut short before it was read);
* **cost**: the target's price book, for successful requests and for failed ones that produced tokens; priced by
  the protocol that answered (``proto.price_ref()``: a gateway's upstream provider);
* **warm-up and the asked length**: ``warmup`` (sent during ``--warmup``, see :mod:`llm_locust.warmup`) and
  ``output_tokens_asked`` (the token limit asked for with ``--fixed-output``, else ``None``), as the caller says;
* **status**: ``ok`` without an error, else ``failed`` with the error's class and one-line message. A caller
  that cancels a request overwrites ``status``, ``error_class`` and ``error`` afterwards.

``target`` is a :class:`llm_locust.run.Target` (or anything with ``name``, ``host``, ``tokens`` and ``prices``).
This is the per-request tail: it runs once per request, after the stream is read, never per chunk.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .metrics import timing
from .record import STATUS_FAILED, STATUS_OK, Record, timestamp_of

if TYPE_CHECKING:
    from ..prompts import Prompt
    from .stream import StreamResult


def build_record(
    *,
    user: str,
    target: Any,
    prompt: Prompt,
    input_tokens_local: int,
    request_id: str,
    start_wall: float,
    t0: int,
    out: StreamResult,
    warmup: bool = False,
    output_tokens_asked: int | None = None,
) -> Record:
    """The record of one request; see the module docs."""
    t_end = out.t_end or time.perf_counter_ns()
    proto = out.proto
    clock = out.clock
    usage = clock.usage
    tokens = target.tokens
    out_local, local_src = (
        tokens.count_bounded([*clock.text, *clock.reasoning]) if clock.token_ns else (0, tokens.source)
    )
    out_server = usage.output_tokens if usage is not None else None
    in_server = usage.input_tokens if usage is not None else None
    if out_server is not None:
        n_out, out_src = out_server, "server"
    else:
        n_out, out_src = out_local, local_src
    if in_server is not None:
        n_in, in_src = in_server, "server"
    else:
        n_in, in_src = input_tokens_local, tokens.source
    t = timing(t0, clock, n_out)
    cached = usage.cached_tokens if usage is not None else None
    error = out.error
    ok = error is None
    provider_id, price_model = proto.price_ref()
    cost, cost_src = (
        target.prices.cost(price_model, n_in, n_out, cached, start_wall, provider_id) if ok or n_out else (None, None)
    )
    itl = t.itl_us
    fields = out.fields
    return {
        "timestamp": timestamp_of(start_wall),
        "request_id": request_id,
        "user": user,
        "target": target.name,
        "api": proto.name,
        "host": target.host,
        "model": proto.model,
        "prompt": prompt.name,
        "session": prompt.session,
        "turn": prompt.turn,
        "input_tokens_asked": prompt.input_tokens_asked,
        "status": STATUS_OK if ok else STATUS_FAILED,
        "warmup": warmup,
        "error_class": None if error is None else error.error_class,
        "error": None if error is None else str(error),
        "http_status": out.status,
        "retry_after_s": out.retry_after,
        "backoff_s": 0.0,  # set by the user once its backoff policy has seen the record
        "intended_send_ms": None,  # the three arrival fields: set by the user in open loop (arrivals.Ticket)
        "queue_wait_ms": None,
        "send_lag_ms": None,
        "ttft_ms": t.ttft_ms,
        "ttft_text_ms": t.ttft_text_ms,
        "e2e_ms": t.e2e_ms,
        "elapsed_ms": (t_end - t0) / 1e6,
        "tpot_ms": t.tpot_ms,
        "itl_mean_ms": sum(itl) / len(itl) / 1000 if itl else None,
        "itl_max_ms": max(itl) / 1000 if itl else None,
        "itl_rule": t.itl_rule,
        "token_events": t.token_events,
        "output_tokens_per_s": t.output_tokens_per_s,
        "decode_tokens_per_s": t.decode_tokens_per_s,
        "input_tokens": n_in,
        "input_tokens_source": in_src,
        "input_tokens_server": in_server,
        "input_tokens_local": input_tokens_local,
        "output_tokens": n_out,
        "output_tokens_source": out_src,
        "output_tokens_server": out_server,
        "output_tokens_local": out_local,
        "output_tokens_asked": output_tokens_asked,
        "local_tokens_source": local_src,
        "reasoning_tokens": usage.reasoning_tokens if usage is not None else None,
        "cached_tokens": cached,
        "total_tokens": n_in + n_out if n_in is not None and n_out is not None else None,
        "cost_usd": cost,
        "cost_source": cost_src,
        "finish_reason": out.finish,
        "gateway_cache": fields.get("gateway_cache"),
        "gateway_step": fields.get("gateway_step"),
        "gateway_log_id": fields.get("gateway_log_id"),
        "t0_ns": t0,
        "itl_us": itl.tobytes(),
    }
