"""Open-loop load, the Locust side: a dispatcher per environment issues tickets at the intended send times, and
senders take them.

With ``--request-rate`` (or a :class:`~llm_locust.rateshape.RateShape`) the run's :class:`Dispatcher` is
``environment.llm_run.arrivals`` (built at test start by :func:`start`, on a local runner or a worker). Its
greenlet draws the intended send times from :class:`llm_locust.arrivals.Schedule` and, at each, issues a
:class:`~llm_locust.arrivals.Ticket`; nothing it does waits for a response, so a slow server cannot slow the
arrivals. The senders are the Locust users: in open loop :meth:`llm_locust.users.LLMUser.generate` takes the next
ticket (:meth:`Dispatcher.take`), sends its request and frees its slot (:meth:`Dispatcher.release`) once the
response is read. A ticket is handed out ``LEAD_NS`` (4 ms) ahead of its time: the sender prepares the request and
its connection hand-over waits for the intended time (:mod:`llm_locust.sendclock`), so the send lag is the
precision of that wait, not the request path (a slot it takes is held from the hand-out).

* **Enough senders.** When a ticket is issued and no sender is idle, the dispatcher starts a spare sender (an
  instance of the run's user class, in the dispatcher's own greenlet group, reused for later tickets), so no
  arrival waits for a sender: ``-u`` is only the pool the run starts with. The spares' start-up shows in the send
  lag of the first requests; pass ``-u`` near the expected concurrency to avoid it.
* **The cap.** With ``--max-concurrency C`` at most C requests are in flight (a worker: its share, see
  :func:`~llm_locust.arrivals.cap_share`); a ticket issued when all are taken waits in the client queue
  (``queued``) until a slot is free: its ``queue_wait_ms``.
* **Stop.** At ``test_stopping`` the dispatcher stops issuing, kills its spares (a request in flight is booked as
  cancelled, as a Locust user's is) and books every ticket still queued as a cancelled request that was never sent
  (``send_lag_ms`` empty): no arrival is lost from the books.
* **Workers.** Each worker takes ``R / workers`` (and its share of the cap). The master puts the current total
  rate and the worker count into the options it sends at the start (``llm_rate_now``, ``llm_workers``) and, while
  the run goes on, :class:`RateSplit` sends ``llm_rate`` (the total and the number of workers taking part) every
  ``SPLIT_EVERY_S`` and at once when a rate shape changes the rate: a worker that joins (``--enable-rebalancing``)
  or leaves re-splits the rate.
* **Rate stages.** :func:`set_total_rate` is what a :class:`~llm_locust.rateshape.RateShape` calls at each tick.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from typing import Any

import gevent
from gevent.pool import Group
from gevent.queue import Queue
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner

from .. import arrivals
from ..arrivals import Arrivals, Schedule, Ticket
from ..measure.build import build_record
from ..measure.record import STATUS_CANCELLED
from ..measure.stream import StreamResult

logger = logging.getLogger("llm_locust")

MSG_RATE = "llm_rate"
#: the longest the dispatcher sleeps before it looks for a rate change or a stop
WAKE_CHECK_S = 0.05
#: a ticket is handed out this long before its intended send time: the sender does everything up to the write
#: meanwhile, and its connection hand-over waits for the time (llm_locust.sendclock ``hold_ns``)
LEAD_NS = 4_000_000
#: the sender yields (rather than sleep on a timer, which fires about 0.5 ms late, later on a busy machine) for the
#: last SPIN_NS before its time, at most SPIN_SHARE of the mean gap between arrivals (its CPU cost)
SPIN_NS, SPIN_SHARE = 2_000_000, 0.2
#: how often a master re-sends the rate split to its workers
SPLIT_EVERY_S = 1.0
#: the options a master adds for its workers at the start: the total rate now, and how many workers share it
OPT_RATE_NOW, OPT_WORKERS = "llm_rate_now", "llm_workers"


class Dispatcher:
    """One environment's arrival timeline and its client queue (see the module docs)."""

    def __init__(self, environment: Any, run: Any, settings: Arrivals, rate: float, cap: int | None,
                 seed: Any = None) -> None:
        self.environment = environment
        self.run = run
        self.settings = settings
        self.schedule = Schedule(rate, settings.kind, settings.burstiness, seed)
        self.cap = cap
        self.ready: Queue = Queue()  # tickets holding a slot, for the next idle sender
        self.backlog: deque[Ticket] = deque()  # tickets waiting for a slot (the cap was full)
        self.in_flight = 0
        self.idle = 0  # senders blocked in take()
        self.starting = 0  # spares spawned, not yet taking
        self.spares = Group()
        self.spare_count = 0
        self.closed = False
        self.start_ns = 0
        self.greenlet: gevent.Greenlet | None = None
        self._redraw = False
        self.user_class = _user_class(environment)

    # ------------------------------------------------------------ the timeline

    def start(self) -> None:
        self.greenlet = gevent.spawn(self._issue_loop)

    def _issue_loop(self) -> None:
        gevent.get_hub().loop.update_now()
        self.start_ns = time.perf_counter_ns()
        schedule = self.schedule
        while not self.closed:
            t = schedule.next()
            if math.isinf(t):  # paused (rate 0): until the rate changes
                while not (self._redraw or self.closed):
                    gevent.sleep(WAKE_CHECK_S)
                self._restart_timeline()
                continue
            due = self.start_ns + int(t * 1e9)
            if not self._sleep_until(due - LEAD_NS):
                self._restart_timeline()
                continue
            if self.closed:
                return
            self._issue(due)

    def _sleep_until(self, due: int) -> bool:
        """Wait until ``perf_counter_ns() >= due``; False if the rate changed meanwhile (seen within
        ``WAKE_CHECK_S``). A plain ``gevent.sleep``: in the tail it wakes sooner than an ``Event.wait``."""
        while True:
            left = due - time.perf_counter_ns()
            if left <= 0:
                return True
            if self._redraw or self.closed:
                return False
            gevent.sleep(min(left / 1e9, WAKE_CHECK_S))

    def _restart_timeline(self) -> None:
        """After a rate change: the next gap is drawn at the new rate from now (arrivals are memoryless)."""
        self._redraw = False
        self.schedule.t = (time.perf_counter_ns() - self.start_ns) / 1e9
        if self.schedule.kind == "constant":
            self.schedule.n = 0  # the first arrival at the new rate comes now

    def set_rate(self, rate: float) -> None:
        """This process's rate from now on (requests/s; 0 pauses the arrivals)."""
        if rate == self.schedule.rate:
            return
        logger.info("open-loop arrivals: %g requests/s on this process", rate)
        self.schedule.set_rate(rate)
        self._redraw = True

    # ------------------------------------------------------------ tickets and slots

    def _issue(self, due: int) -> None:
        now = time.perf_counter_ns()
        rate = self.schedule.rate
        spin = min(SPIN_NS, int(SPIN_SHARE * 1e9 / rate)) if rate > 0 else 0
        if self.cap is not None and self.in_flight >= self.cap:
            self.backlog.append(Ticket(due, self.start_ns, now, queued=True, spin_ns=spin))
            return
        self.in_flight += 1
        self._hand(Ticket(due, self.start_ns, now, spin_ns=spin))

    def _hand(self, ticket: Ticket) -> None:
        self.ready.put(ticket)
        if self.ready.qsize() > self.idle + self.starting and self.user_class is not None:
            self.starting += 1
            self.spare_count += 1
            self.spares.spawn(self._spare)

    def take(self) -> Ticket:
        """A sender's next ticket, holding a slot (blocks until one is issued)."""
        self.idle += 1
        try:
            return self.ready.get()
        finally:
            self.idle -= 1

    def release(self) -> None:
        """A sender's request is read (or gave up): its slot goes to the longest-waiting ticket, if any."""
        self.in_flight -= 1
        if self.backlog and not self.closed:
            ticket = self.backlog.popleft()
            ticket.slot_ns = time.perf_counter_ns()
            self.in_flight += 1
            self._hand(ticket)

    def _spare(self) -> None:
        """A spare sender: an instance of the run's user class taking tickets until the run stops."""
        try:
            user = self.user_class(self.environment)
        except BaseException:
            self.starting -= 1
            raise
        self.starting -= 1
        while not self.closed:
            try:
                user.generate()
            except StopUser:
                return
            except Exception:
                logger.exception("open-loop sender failed; it takes the next ticket")
                gevent.sleep(0)

    # ------------------------------------------------------------ stop

    def close(self) -> None:
        """Issue no more tickets (the fixed plan of ``--max-requests`` is used up); queued tickets are dropped."""
        self.closed = True
        self.backlog.clear()
        while not self.ready.empty():
            self.ready.get_nowait()

    def stop(self) -> None:
        """At test_stopping: stop issuing, kill the spares (in-flight requests are booked as cancelled), book the
        tickets still queued as cancelled requests never sent."""
        queued = [] if self.closed else [*self.backlog, *(self.ready.get_nowait() for _ in range(self.ready.qsize()))]
        self.closed = True
        if self.greenlet is not None:
            self.greenlet.kill(block=False)
        self.spares.kill(block=True)
        self.backlog.clear()
        if queued:
            logger.info("open-loop arrivals: %d requests still queued at stop, booked as cancelled", len(queued))
        for ticket in queued:
            self.run.recorder.add(unsent_record(self.run, ticket))
        if self.spare_count:
            logger.info("open-loop arrivals: %d spare senders were started beside the %d users", self.spare_count,
                        getattr(self.environment.runner, "user_count", 0))


def unsent_record(run: Any, ticket: Ticket) -> dict[str, Any]:
    """A cancelled record for a ticket that was still waiting for a slot when the run stopped."""
    target = run.targets[0]
    now = time.perf_counter_ns()
    out = StreamResult(target.protocol)
    out.t_end = now
    record = build_record(
        user="arrivals", target=target, prompt=run.pick(), input_tokens_local=0, request_id=run.next_request_id(),
        start_wall=time.time(), t0=now, out=out,
    )
    record.update(status=STATUS_CANCELLED, error_class="cancelled",
                  error="queued for a --max-concurrency slot when the run stopped: never sent")
    ticket.slot_ns = now
    ticket.stamp(record, None)
    return record


def _user_class(environment: Any) -> type | None:
    from ..users import LLMUser

    return next((c for c in environment.user_classes or () if issubclass(c, LLMUser)), None)


# ------------------------------------------------------------ run lifecycle


def settings_for(environment: Any) -> Arrivals | None:
    """The run's open-loop settings, or None for closed-loop users (ValueError on a bad value)."""
    from ..rateshape import RateShape

    opts = environment.parsed_options
    shaped = isinstance(environment.shape_class, RateShape) or (
        isinstance(environment.runner, WorkerRunner) and getattr(opts, OPT_RATE_NOW, None) is not None
    )
    return arrivals.settings(opts, shaped=shaped)


def total_rate(environment: Any, settings: Arrivals) -> float:
    """The whole run's rate now: a rate shape's current stage, else ``--request-rate``."""
    from .session import session_of

    session = session_of(environment)
    shaped = getattr(session, "shape_rate", None)
    return shaped if shaped is not None else (settings.rate or 0.0)


def start(environment: Any, run: Any) -> None:
    """At test start, in open loop: a local runner or worker starts its :class:`Dispatcher`; a master tells its
    workers their share and starts its :class:`RateSplit`. Nothing in closed loop."""
    settings = settings_for(environment)
    runner = environment.runner
    opts = environment.parsed_options
    if isinstance(runner, MasterRunner):  # what the workers get with this start (None: closed loop)
        setattr(opts, OPT_RATE_NOW, None)
        setattr(opts, OPT_WORKERS, None)
    if settings is None:
        return
    if isinstance(runner, MasterRunner):
        workers = max(1, len(runner.clients.ready) + len(runner.clients.running) + len(runner.clients.spawning))
        setattr(opts, OPT_RATE_NOW, total_rate(environment, settings))
        setattr(opts, OPT_WORKERS, workers)
        run.arrivals = RateSplit(environment, settings)
        run.arrivals.start()
        return
    rate, workers, index = total_rate(environment, settings), 1, 0
    if isinstance(runner, WorkerRunner):
        rate = float(getattr(opts, OPT_RATE_NOW, None) or rate)
        workers = int(getattr(opts, OPT_WORKERS, None) or 1)
        index = int(getattr(runner, "worker_index", 0) or 0)
    cap = arrivals.cap_share(settings.max_concurrency, workers, index)
    seed = None if settings.seed is None else f"{settings.seed}:arrivals:{index}"
    run.arrivals = Dispatcher(environment, run, settings, rate / workers, cap, seed)
    logger.info("open-loop arrivals: %s at %g requests/s on this process%s", settings.kind, rate / workers,
                f", at most {cap} in flight" if cap else "")
    run.arrivals.start()


def stop(environment: Any) -> None:
    """At test_stopping: stop the run's dispatcher or rate split."""
    run = getattr(environment, "llm_run", None)
    if run is not None and run.arrivals is not None:
        run.arrivals.stop()


def set_total_rate(environment: Any, rate: float) -> None:
    """Set the whole run's rate (a rate shape's stage): a local runner's dispatcher takes it, a master splits it."""
    from .session import session_of

    session = session_of(environment)
    if session is not None:
        session.shape_rate = rate
    run = getattr(environment, "llm_run", None)
    if run is not None and run.arrivals is not None:
        run.arrivals.set_rate(rate)


def on_rate_message(environment: Any, msg: Any, **_: Any) -> None:
    """A worker's handler of the master's ``llm_rate``: its share of the total rate."""
    run = getattr(environment, "llm_run", None)
    if run is not None and isinstance(run.arrivals, Dispatcher):
        run.arrivals.set_rate(float(msg.data["rate"]) / max(1, int(msg.data["workers"])))


def wire_worker(runner: Any) -> None:
    runner.register_message(MSG_RATE, on_rate_message)


class RateSplit:
    """A master's side of open-loop arrivals: the total rate and the number of workers taking part, sent to the
    workers every ``SPLIT_EVERY_S`` and at once when the rate changes."""

    def __init__(self, environment: Any, settings: Arrivals) -> None:
        self.environment = environment
        self.settings = settings
        self.rate = total_rate(environment, settings)
        self.greenlet: gevent.Greenlet | None = None

    def workers(self) -> int:
        from .. import distributed
        from .session import session_of

        runner = self.environment.runner
        session = session_of(self.environment)
        alive = distributed.alive_worker_ids(runner)
        taking_part = set(session.collector.workers) & alive if session and session.collector else set()
        return max(1, len(taking_part) or len(alive))

    def send(self) -> None:
        self.environment.runner.send_message(MSG_RATE, {"rate": self.rate, "workers": self.workers()})

    def start(self) -> None:
        self.greenlet = gevent.spawn(self._loop)

    def _loop(self) -> None:
        while True:
            gevent.sleep(SPLIT_EVERY_S)
            self.send()

    def set_rate(self, rate: float) -> None:
        if rate != self.rate:
            self.rate = rate
            logger.info("open-loop arrivals: %g requests/s in all", rate)
            self.send()

    def stop(self) -> None:
        if self.greenlet is not None:
            self.greenlet.kill(block=False)
            self.greenlet = None
