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
whole request), ``--stagger`` (:mod:`llm_locust.stagger`), the request event, the books of requests cut short
by the end of a run (``cancelled``) and the backoff after a failure (:mod:`llm_locust.backoff` decides the wait,
booked in the record's ``backoff_s``; the user takes it as part of its ``wait_time``, so a stop interrupts it). The
backoff is decided when the response has been read, from what is known then (status, transport error, timeout,
retry hint, elapsed time); a failure found only by parsing the stream (malformed, incomplete, empty) is booked by
the bookkeeper and delays the user's next wait. In open loop (``--request-rate``) a user is a sender: each task
takes the next arrival from the run's dispatcher (:mod:`llm_locust.plugin.dispatch`), sends it, frees its slot when
the response is read, and stamps the arrival's fields into the record (backoff is off). The hot path, per request:

* the request goes out through :class:`~llm_locust.sender.Sender`: the user's own ``HTTPClient`` and connection
  pool, without ``FastHttpSession``'s per-request layers (URL parsing, header merges, cookies, redirects, two
  response wrappers: 271 → 159 µs a short request under py-spy), its head made once per prepared request with
  the request id put in (1.33x → 1.2x the bare reader's CPU per short request); the user fires the request event itself;
* ``t0`` is stamped by the connection pool as it hands the connection over for the write
  (:mod:`llm_locust.sendclock`), so nothing runs between ``t0`` and the write of the request; each user opens
  its keep-alive connection when it starts (``on_start``, untimed), so its first request is timed on an open
  connection like the others;
* the body is read by :func:`~llm_locust.measure.stream.read_response` with geventhttpclient's ``readline(b"\\n")``
  (that returns a line as soon as it is buffered; FastHttpUser's own ``iter_content``/``iter_lines`` wait for
  1 KB), each line stamped and kept, nothing parsed. The stamp is the kernel's time of the arrival of the read
  that brought the line (:mod:`llm_locust.recvclock`: Linux, plain TCP), so the greenlets that ran before this one
  got its line do not count; else ``time.perf_counter_ns()`` when ``readline`` returned it;
* the rest (parsing, :func:`~llm_locust.measure.build.build_record`, the request event, the CSV row, the live view)
  is a job for the run's :class:`~llm_locust.bookkeeper.Bookkeeper`, which runs it in bounded steps when the event
  loop is idle; the user sends its next request at once. The request event fires when the job ends.

A run with multi-turn sessions (:mod:`llm_locust.sessions`) gives each user a ``sessions`` state: the prompt drawn
becomes the session's next turn, which waits for the previous answer (handed over by the job once parsed).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

import gevent
from gevent import GreenletExit
from locust import FastHttpUser, task
from locust.exception import StopUser

from . import errors, sendclock, sessions, stagger
from .backoff import Backoff
from .errors import LLMError
from .measure.build import build_record
from .measure.metrics import ITL_PER_EVENT
from .measure.record import FIELDS, STATUS_CANCELLED, STATUS_FAILED, Record, timestamp_of
from .measure.stream import StreamResult, parse_lines, read_response
from .prompts import Prompt
from .protocols import Protocol
from .recvclock import line_clock
from .run import LLMRun, Prepared, Target, current_run
from .sender import Sender

#: lines parsed per step of a request's bookkeeping (about 1 µs each): bounds how long one step holds the loop
PARSE_STEP = 48


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
        self.protocol: Protocol = self.target.protocol
        self._send_clock = sendclock.install(self)
        self._sender = Sender(self.client)  # after install: it sends on the stamping pool
        self.sessions = sessions.for_run(self.llm)  # None unless the run has multi-turn sessions
        # Backoff is part of the wait before the next task: the user waits in Locust's waiting state, so a stop
        # ends the wait at once (llm_locust.backoff says how long).
        self.backoff = Backoff(self.llm.backoff)
        wait_time = self.wait_time
        self.wait_time = lambda: self.backoff.take() + wait_time()

    def on_start(self) -> None:
        opts = self.environment.parsed_options
        if opts is not None and getattr(opts, "stagger", False):
            gevent.sleep(stagger.first_delay(next(self.llm.started_users), getattr(opts, "spawn_rate", None)))
        sendclock.preconnect(self, self.target.host)  # untimed: the first request is timed like the others

    @task
    def generate(self) -> None:
        if self.llm.stopped:  # created after its run stopped (see LLMRun.stopped): nothing to send, nowhere to book
            raise StopUser()
        arrivals = self.llm.arrivals
        if arrivals is None:
            self._generate(None)
            return
        ticket = arrivals.take()  # open loop: the next arrival, with a slot (llm_locust.plugin.dispatch)
        try:
            self._generate(ticket)
        except StopUser:
            arrivals.close()  # --max-requests is used up: no more arrivals
            raise
        finally:
            arrivals.release()

    def _generate(self, ticket: Any) -> None:
        plan = self.llm.plan
        if plan is None:
            prompt = self.llm.pick()
            self.call(prompt if self.sessions is None else self.sessions.next(prompt, self.target), ticket=ticket)
            return
        job = plan.take(self.target if self.llm.bind_users else None)
        if job is None:  # this user's share of --max-requests is done
            if plan.done:
                gevent.spawn(self.environment.runner.quit)
            raise StopUser()
        self.target, prompt = job
        self.protocol = self.target.protocol
        if self.sessions is not None:
            prompt = self.sessions.next(prompt, self.target)
        plan.in_flight += 1
        deferred = False
        try:
            deferred = self.call(prompt, on_booked=self._planned_request_booked, ticket=ticket)
        finally:
            if not deferred:
                self._planned_request_booked()

    def _planned_request_booked(self) -> None:
        plan = self.llm.plan
        assert plan is not None
        plan.in_flight -= 1
        if plan.done:
            gevent.spawn(self.environment.runner.quit)

    def call(self, prompt: Prompt, on_booked: Callable[[], None] | None = None, ticket: Any = None) -> bool:
        """Send one prompt and read the answer; hand the rest (parsing, record, request event, then ``on_booked``)
        to the run's bookkeeper and return True. (A request cut short by the end of the run is booked at once as
        cancelled, and ``GreenletExit`` propagates.) ``ticket``: its open-loop arrival
        (:class:`llm_locust.arrivals.Ticket`), stamped into the record."""
        llm, target = self.llm, self.target
        prep = target.prepare(prompt, llm.token_limit)
        request_id = llm.next_request_id()
        warm = llm.warmup.take()  # decided at send (llm_locust.warmup)
        out = StreamResult(self.protocol)
        clock = self._send_clock
        clock.t_ns, clock.sock = 0, None
        clock.hold_ns = ticket.ready_ns() if ticket is not None else 0  # open loop: written at its time (sendclock)
        if ticket is not None:
            clock.spin_ns = ticket.spin_ns
        start_wall = time.time()
        timer = gevent.Timeout(llm.timeout)  # a fresh one: gevent's Timeout, started again, fires early
        timer.start()
        t_call = time.perf_counter_ns()
        raw: Any = None
        try:
            try:
                raw = self._sender.send(prep.url, prep.body, prep.headers, request_id)
                read_response(out, raw.status_code, raw.info(), raw, llm.secrets(), llm.max_response_bytes,
                              line_clock(clock.sock))  # the kernel's arrival stamps of the connection, if it has them
            except gevent.Timeout as t:
                if t is not timer:
                    raise
                out.fail(errors.RequestTimeout(f"no complete response within --timeout {llm.timeout:g} s"))
            except LLMError as e:
                out.fail(e)
            except Exception as e:  # transport failures: connect, send, the response head or the body
                out.fail(errors.from_exception(e))
            finally:
                if raw is not None:
                    raw.release()  # back to the pool, or closed when the body was not read to its end
            out.t_end = time.perf_counter_ns()
        except GreenletExit:
            # The run stopped while this request was in flight: keep it in the books, outside Locust's stats.
            parse_lines(out, llm.secrets())
            record = build_record(
                user=type(self).__name__, target=target, prompt=prompt, input_tokens_local=prep.input_tokens_local,
                request_id=request_id, start_wall=start_wall, t0=clock.t_ns or t_call, out=out, warmup=warm,
                output_tokens_asked=prep.output_tokens_asked,
            )
            record.update(status=STATUS_CANCELLED, error_class="cancelled", error="in flight when the run stopped")
            if ticket is not None:  # no connection handed over yet: never sent (it may have waited for its time)
                ticket.stamp(record, clock.t_ns or None)
            llm.recorder.add(record)
            raise
        finally:
            timer.cancel()
        t0 = clock.t_ns or t_call  # the write of the request (before the connect, on a fresh connection)
        error = out.error
        wait = self.backoff.after({
            "status": "ok" if error is None else "failed", "error_class": getattr(error, "error_class", None),
            "http_status": out.status, "retry_after_s": out.retry_after, "elapsed_ms": (out.t_end - t0) / 1e6,
        })
        llm.books.defer(
            self._book(raw, out, target, prompt, prep, request_id, start_wall, t0, wait, on_booked, warm, ticket)
        )
        return True

    def _book(
        self, raw: Any, out: StreamResult, target: Target, prompt: Prompt, prep: Prepared, request_id: str,
        start_wall: float, t0: int, wait: float, on_booked: Callable[[], None] | None, warmup: bool, ticket: Any,
    ) -> Iterator[None]:
        """The tail of one request, in bounded steps (a job of :class:`~llm_locust.bookkeeper.Bookkeeper`). If a
        step raises (a bug of ours; the bookkeeper logs it) before the request event fired, the request is booked
        as failed with :class:`~llm_locust.errors.BookkeepingFailed`: still in Locust's stats, the CSV and the
        summary. ``on_booked`` runs in every case, so a fixed plan still ends."""
        try:
            record = yield from self._book_steps(out, target, prompt, prep, request_id, start_wall, t0, wait, warmup,
                                                 ticket)
        except Exception as e:
            self._book_broken(raw, out, target, prompt, prep, request_id, start_wall, t0, e)
            raise
        else:
            e2e = record["e2e_ms"]
            self._fire(raw, target, prompt, prep, start_wall, record,
                       e2e if e2e is not None else record["elapsed_ms"], record["output_tokens"] or 0, out.error)
        finally:
            if on_booked is not None:
                on_booked()

    def _book_broken(
        self, raw: Any, out: StreamResult, target: Target, prompt: Prompt, prep: Prepared, request_id: str,
        start_wall: float, t0: int, exc: Exception,
    ) -> None:
        """Book a request whose bookkeeping raised ``exc``: a failed record of what is known without parsing."""
        error = errors.BookkeepingFailed(
            errors.redact(f"llm-locust's bookkeeping of this request failed: {type(exc).__name__}: {exc}",
                          self.llm.secrets())
        )
        elapsed = ((out.t_end or time.perf_counter_ns()) - t0) / 1e6
        record: Any = dict.fromkeys(FIELDS)
        record.update(
            timestamp=timestamp_of(start_wall),
            request_id=request_id, user=type(self).__name__, target=target.name, api=out.proto.name,
            host=target.host, model=out.proto.model, prompt=prompt.name, session=prompt.session, turn=prompt.turn,
            status=STATUS_FAILED, warmup=False, error_class=error.error_class, error=str(error),
            http_status=out.status, backoff_s=0.0, elapsed_ms=elapsed, itl_rule=ITL_PER_EVENT, token_events=0,
            input_tokens_source=target.tokens.source, input_tokens_local=prep.input_tokens_local,
            output_tokens_source=target.tokens.source, output_tokens_local=0, local_tokens_source=target.tokens.source,
            t0_ns=t0, itl_us=b"",
        )
        self._fire(raw, target, prompt, prep, start_wall, record, elapsed, 0, error)

    def _book_steps(
        self, out: StreamResult, target: Target, prompt: Prompt, prep: Prepared, request_id: str, start_wall: float,
        t0: int, wait: float, warmup: bool, ticket: Any,
    ) -> Generator[None, None, Record]:
        """Parse, build the record, hand a session its answer, decide the backoff: the request event's record."""
        secrets = self.llm.secrets()
        while not parse_lines(out, secrets, PARSE_STEP):
            yield
        record = build_record(
            user=type(self).__name__, target=target, prompt=prompt, input_tokens_local=prep.input_tokens_local,
            request_id=request_id, start_wall=start_wall, t0=t0, out=out, warmup=warmup,
            output_tokens_asked=prep.output_tokens_asked,
        )
        if prompt.session is not None and self.sessions is not None:  # the next turn waits for this answer
            yield
            self.sessions.answered(prompt, record, out.clock.text)
        if record["status"] != "ok" and wait == 0.0:  # a failure found by parsing: its backoff comes now
            wait = self.backoff.after(record)
        record["backoff_s"] = wait
        if ticket is not None:
            ticket.stamp(record, t0)
        yield
        return record

    def _fire(
        self, raw: Any, target: Target, prompt: Prompt, prep: Prepared, start_wall: float, record: Any,
        response_time: float, length: int, exception: BaseException | None,
    ) -> None:
        """Locust's request event for one LLM call, with the fields ``FastHttpSession`` gives it: ``request_type`` =
        the target, ``name`` = the prompt, E2E ms, output tokens, the classified error or None, and the user's
        :meth:`~locust.User.context` with ``llm`` = the record (``response``: geventhttpclient's response, or None
        when none came)."""
        self.environment.events.request.fire(
            request_type=target.name, name=prompt.name, response_time=response_time, response_length=length,
            exception=exception, context={**self.context(), "llm": record}, response=raw, url=prep.url,
            start_time=start_wall,
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
