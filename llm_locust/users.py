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
``context["llm"]`` = the full per-request record (:mod:`llm_locust.measure.record`), ``exception`` = a classified
:class:`~llm_locust.errors.LLMError` on failure.

This module is the Locust side only: sending the request, the ``--timeout`` (a ``gevent.Timeout`` around the
whole request), the request event and the books of requests cut short by the end of a run (``cancelled``). The
measuring is :mod:`llm_locust.measure`'s: the body is handed to :func:`~llm_locust.measure.stream.read_response`,
which reads it with geventhttpclient's ``readline(b"\\n")`` (that returns a line as soon as it is buffered;
FastHttpUser's own ``iter_content``/``iter_lines`` wait for 1 KB) and stamps each line with
``time.perf_counter_ns()`` before anything parses it; :func:`~llm_locust.measure.build.build_record` turns the
result into the record once the stream has ended and no other stream has data waiting.
"""

from __future__ import annotations

import time
from typing import Any

import gevent
from gevent import GreenletExit
from locust import FastHttpUser, task
from locust.exception import StopUser

from . import errors
from .errors import LLMError
from .measure.build import build_record
from .measure.record import STATUS_CANCELLED, Record
from .measure.stream import StreamResult, read_response
from .prompts import Prompt
from .protocols import Protocol
from .run import LLMRun, Target, current_run

#: every status is "valid" to the HTTP client: we classify error statuses ourselves, with the body's message
_ALL_STATUSES = frozenset(range(100, 600))


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

    def call(self, prompt: Prompt) -> Record:
        """Send one prompt, stream the answer, fire one request event; return the record."""
        llm, target = self.llm, self.target
        prep = target.prepare(prompt, llm.token_limit)
        request_id = llm.next_request_id()
        headers = {**prep.headers, "X-Request-Id": request_id}
        out = StreamResult(self.protocol)
        start_wall = time.time()
        record: Record | None = None

        def build() -> Record:
            return build_record(
                user=type(self).__name__, target=target, prompt=prompt, input_tokens_local=prep.input_tokens_local,
                request_id=request_id, start_wall=start_wall, t0=t0, out=out,
            )  # fmt: skip

        timer = gevent.Timeout(llm.timeout)
        timer.start()
        t0 = time.perf_counter_ns()
        try:
            with self.client.request(
                "POST", prep.url, data=prep.body, headers=headers, stream=True, catch_response=True, name=prompt.name
            ) as resp:
                try:
                    self._read(resp, out)
                except gevent.Timeout as t:
                    if t is not timer:
                        raise
                    out.fail(errors.RequestTimeout(f"no complete response within --timeout {llm.timeout:g} s"))
                except LLMError as e:
                    out.fail(e)
                except Exception as e:  # transport failures while reading the body
                    out.fail(errors.from_exception(e))
                out.t_end = time.perf_counter_ns()
                timer.cancel()
                # The bookkeeping (token count, price, event, log row) waits until no other stream has data
                # waiting, so it never delays another stream's timestamps (docs/performance.md).
                gevent.idle()
                record = build()
                meta = resp.request_meta
                meta["request_type"] = target.name
                meta["response_time"] = record["e2e_ms"] if record["e2e_ms"] is not None else record["elapsed_ms"]
                meta["response_length"] = record["output_tokens"] or 0
                meta["context"] = {**meta.get("context", {}), "llm": record}
                if out.error is not None:
                    resp.failure(out.error)
                else:
                    resp.success()
            return record
        except GreenletExit:
            # The run stopped while this request was in flight: keep it in the books, outside Locust's stats.
            if record is None:
                record = build()
                record.update(status=STATUS_CANCELLED, error_class="cancelled", error="in flight when the run stopped")
                if out.t_end is not None:
                    record["error"] = "finished as the run stopped, before it was booked"
                llm.recorder.add(record)
            raise
        finally:
            timer.cancel()

    def _read(self, resp: Any, out: StreamResult) -> None:
        """Raise what the HTTP client failed with before a status came; else read the response into ``out``."""
        error = getattr(resp, "error", None)
        if error is not None and not resp.status_code:
            if isinstance(error, gevent.Timeout):
                raise error
            raise errors.from_exception(error)
        read_response(
            out, resp.status_code, resp.headers, resp._response, self.llm.secrets(), self.llm.max_response_bytes
        )


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
