"""Locust users that stream LLM responses and measure them.

``LLMUser`` is the abstract base, a :class:`~locust.FastHttpUser`. Each wire protocol has an abstract subclass
(``OpenAIChatUser``, ``OpenAICompletionsUser``, ``OllamaChatUser``, ``OllamaGenerateUser``); the bundled
``locustfile.py`` runs ``LLMUser`` with the protocol named by ``--llm-api``. Write your own locustfile by
subclassing one of them::

    from llm_locust.users import OllamaChatUser

    class Chat(OllamaChatUser):   # concrete: Locust runs it
        host = "http://localhost:11434"

Each LLM call fires exactly one Locust request event: ``request_type`` = the API name, ``name`` = the prompt name,
``response_time`` = E2E latency in ms (time to the last token), ``response_length`` = output tokens,
``context["llm"]`` = the full per-request record (:mod:`llm_locust.record`), ``exception`` = a classified
:class:`~llm_locust.errors.LLMError` on failure.

The stream is read line by line with geventhttpclient's ``readline(b"\\n")``, which returns a line as soon as it
is buffered (FastHttpUser's own ``iter_content``/``iter_lines`` wait for 1 KB); each line is stamped with
``time.perf_counter_ns()`` before anything parses it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import gevent
from gevent import GreenletExit
from locust import FastHttpUser, task
from locust.exception import StopUser

from . import errors
from .errors import LLMError
from .framing import DECODERS
from .metrics import StreamClock, timing
from .prompts import Prompt
from .protocols import Protocol
from .record import STATUS_CANCELLED, STATUS_FAILED, STATUS_OK
from .run import LLMRun, Target, current_run

#: every status is "valid" to the HTTP client: we classify error statuses ourselves, with the body's message
_ALL_STATUSES = frozenset(range(100, 600))
_MAX_ERROR_BODY = 64 * 1024


class LLMUser(FastHttpUser):
    """Abstract base: sends the run's prompts (weighted at random) back to back and measures each response."""

    abstract = True
    #: protocol name; ``None`` means the one chosen with ``--llm-api``
    api: str | None = None
    insecure = False  # keep TLS verification on

    def __init__(self, environment: Any) -> None:
        self.llm: LLMRun = current_run(environment)
        self.target: Target = self.llm.target_for_api(self.api) if self.api else self.llm.deal_target()
        if not self.host or self.host == environment.host:
            self.host = self.target.host  # with several targets each user talks to its own
        self.network_timeout = self.connection_timeout = self.llm.timeout
        super().__init__(environment)
        self.client.client.valid_response_codes = _ALL_STATUSES
        self.protocol: Protocol = self.target.protocol

    @task
    def generate(self) -> None:
        plan = self.llm.plan
        if plan is None:
            self.call(self.llm.pick())
            return
        job = plan.take(self.target if self.llm.bind_users else None)
        if job is None:  # this user's share of --max-requests is done
            if plan.done:
                gevent.spawn(self.environment.runner.quit)
            raise StopUser()
        self.target, prompt = job
        self.protocol = self.target.protocol
        plan.in_flight += 1
        try:
            self.call(prompt)
        finally:
            plan.in_flight -= 1
            if plan.done:
                gevent.spawn(self.environment.runner.quit)

    def call(self, prompt: Prompt) -> dict[str, Any]:
        """Send one prompt, stream the answer, fire one request event; return the record."""
        llm, proto, target = self.llm, self.protocol, self.target
        prep = target.prepare(prompt, llm.token_limit)
        request_id = llm.next_request_id()
        headers = {**prep.headers, "X-Request-Id": request_id}
        clock = StreamClock()
        state: dict[str, Any] = {
            "error": None, "done": False, "status": None, "retry_after": None, "finish": None, "proto": proto,
            "fields": {},
        }  # fmt: skip
        start_wall = time.time()
        record: dict[str, Any] | None = None
        timer = gevent.Timeout(llm.timeout)
        timer.start()
        t0 = time.perf_counter_ns()
        try:
            with self.client.request(
                "POST", prep.url, data=prep.body, headers=headers, stream=True, catch_response=True, name=prompt.name
            ) as resp:
                try:
                    self._read(resp, proto, clock, state)
                except gevent.Timeout as t:
                    if t is not timer:
                        raise
                    state["error"] = errors.RequestTimeout(f"no complete response within --timeout {llm.timeout:g} s")
                except LLMError as e:
                    state["error"] = state["error"] or e
                except Exception as e:  # transport failures while reading the body
                    state["error"] = state["error"] or errors.from_exception(e)
                state["t_end"] = time.perf_counter_ns()
                timer.cancel()
                # The bookkeeping (token count, price, event, log row) waits until no other stream has data
                # waiting, so it never delays another stream's timestamps (docs/performance.md).
                gevent.idle()
                record = self._record(prompt, prep, request_id, start_wall, t0, clock, state, proto)
                meta = resp.request_meta
                meta["request_type"] = target.name
                meta["response_time"] = record["e2e_ms"] if record["e2e_ms"] is not None else record["elapsed_ms"]
                meta["response_length"] = record["output_tokens"] or 0
                meta["context"] = {**meta.get("context", {}), "llm": record}
                if state["error"] is not None:
                    resp.failure(state["error"])
                else:
                    resp.success()
            return record
        except GreenletExit:
            # The run stopped while this request was in flight: keep it in the books, outside Locust's stats.
            if record is None:
                record = self._record(prompt, prep, request_id, start_wall, t0, clock, state, proto)
                record.update(status=STATUS_CANCELLED, error_class="cancelled", error="in flight when the run stopped")
                if "t_end" in state:
                    record["error"] = "finished as the run stopped, before it was booked"
                llm.recorder.add(record)
            raise
        finally:
            timer.cancel()

    def _read(self, resp: Any, proto: Protocol, clock: StreamClock, state: dict[str, Any]) -> None:
        """Read the response: classify an error status, or stream the body into ``clock``."""
        error = getattr(resp, "error", None)
        if error is not None and not resp.status_code:
            if isinstance(error, gevent.Timeout):
                raise error
            raise errors.from_exception(error)
        status = resp.status_code
        state["status"] = status
        raw = resp._response
        secrets = self.llm.secrets()
        proto = proto.for_response(resp.headers)  # a gateway's fallback step answers in its own protocol
        state["proto"] = proto
        state["fields"] = proto.response_fields(resp.headers)
        if status >= 300:
            body = raw.read(_MAX_ERROR_BODY) if raw is not None else b""
            body = errors.redact(body.decode("utf-8", "replace"), secrets).encode()
            error = proto.classify(status, body, resp.headers)
            state["retry_after"] = error.retry_after_s
            raise error
        if raw is None:
            raise errors.IncompleteStream("response has no body")
        readline = raw.readline
        clock_ns = time.perf_counter_ns
        decoder = DECODERS[proto.framing]()
        feed = decoder.feed
        parse = proto.parse
        add = clock.add
        done = False
        finish = None
        while True:
            line = readline(b"\n")
            t = clock_ns()
            if not line:
                event = decoder.flush()
                if event is None:
                    break
            else:
                event = feed(t, line)
                if event is None:
                    continue
            try:
                delta = parse(event[1], event[2])
            except LLMError as e:
                state["error"] = state["error"] or e
                continue
            if delta.error is not None:
                state["error"] = state["error"] or errors.StreamError(errors.redact(delta.error, secrets))
            add(event[0], delta.text, delta.reasoning, delta.usage)
            if delta.finish_reason:
                finish = delta.finish_reason
            if delta.done:
                done = True
            if not line:
                break
        if proto.ends_at_close and not line:
            done = True  # a clean end of the body (a broken connection raises instead)
        state["done"] = done
        state["finish"] = finish
        if state["error"] is None and not done:
            raise errors.IncompleteStream("the stream ended before its end marker")
        if state["error"] is None and not clock.token_ns:
            raise errors.EmptyResponse("the stream completed without a single output token")

    def _record(
        self,
        prompt: Prompt,
        prep: Any,
        request_id: str,
        start_wall: float,
        t0: int,
        clock: StreamClock,
        state: dict[str, Any],
        proto: Protocol,
    ) -> dict[str, Any]:
        t_end = state.get("t_end") or time.perf_counter_ns()
        proto = state["proto"]  # the protocol that answered (differs from the request's on a gateway fallback)
        target = self.target
        usage = clock.usage
        text = "".join(clock.text) + "".join(clock.reasoning)
        out_local = target.tokens.count(text) if clock.token_ns else 0
        out_server = usage.output_tokens if usage is not None else None
        in_server = usage.input_tokens if usage is not None else None
        if out_server is not None:
            n_out, out_src = out_server, "server"
        else:
            n_out, out_src = out_local, target.tokens.source
        if in_server is not None:
            n_in, in_src = in_server, "server"
        else:
            n_in, in_src = prep.input_tokens_local, target.tokens.source
        t = timing(t0, clock, n_out)
        cached = usage.cached_tokens if usage is not None else None
        error: LLMError | None = state["error"]
        ok = error is None
        provider_id, price_model = proto.price_ref()
        cost, cost_src = (
            target.prices.cost(price_model, n_in, n_out, cached, start_wall, provider_id)
            if ok or n_out
            else (None, None)
        )
        itl = t.itl_us
        return {
            "timestamp": datetime.fromtimestamp(start_wall, UTC).isoformat(timespec="milliseconds"),
            "request_id": request_id,
            "user": type(self).__name__,
            "target": target.name,
            "api": proto.name,
            "host": target.host,
            "model": proto.model,
            "prompt": prompt.name,
            "status": STATUS_OK if ok else STATUS_FAILED,
            "error_class": None if ok else error.error_class,
            "error": None if ok else str(error),
            "http_status": state["status"],
            "retry_after_s": state["retry_after"],
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
            "input_tokens_local": prep.input_tokens_local,
            "output_tokens": n_out,
            "output_tokens_source": out_src,
            "output_tokens_server": out_server,
            "output_tokens_local": out_local,
            "local_tokens_source": target.tokens.source,
            "reasoning_tokens": usage.reasoning_tokens if usage is not None else None,
            "cached_tokens": cached,
            "total_tokens": n_in + n_out if n_in is not None and n_out is not None else None,
            "cost_usd": cost,
            "cost_source": cost_src,
            "finish_reason": state["finish"],
            "t0_ns": t0,
            **state["fields"],
            "itl_us": itl.tobytes(),  # bytes, not the array: keeps the record dict out of the GC's sight
        }


class OpenAIChatUser(LLMUser):
    abstract = True
    api = "openai-chat"


class OpenAICompletionsUser(LLMUser):
    abstract = True
    api = "openai-completions"


class OllamaChatUser(LLMUser):
    abstract = True
    api = "ollama-chat"


class OllamaGenerateUser(LLMUser):
    abstract = True
    api = "ollama-generate"
