"""The bookkeeper: the per-request tail (parsing, the record, the request event) off the streams' critical path.

A user hands its finished request over as a *job* (a generator: each ``next()`` is one bounded step) and sends
its next request at once. One greenlet per process runs the jobs, oldest first, only in turns of the event loop
in which no I/O is waiting (``gevent.idle()``), and each turn for at most ``STEP_BUDGET_NS`` (a step that has
started runs to its end): a line that arrives for another stream waits for at most one step, never for a burst of
tails (``gevent.idle()`` in every user would run all waiting tails back to back in one idle turn).

When more than ``MAX_BACKLOG`` jobs wait (the loop is never idle: the process is saturated), the job's owner pays:
:meth:`Bookkeeper.defer` runs the oldest jobs to their end before it returns, until ``MAX_BACKLOG`` remain, so
the user that finished a request books before it sends its next one. That is the process's back-pressure: a
saturated process sends fewer requests (closed loop) or later ones (open loop: the send lag shows it) instead of
piling up unbooked requests, whose live objects would make every garbage collection slower (a backlog of 6,500
jobs made full collections take 140 ms). :meth:`Bookkeeper.drain` runs every waiting job to its end at once; call
it when the run stops, before the books are read.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterator

import gevent
from gevent.event import Event

logger = logging.getLogger(__name__)

#: the most the bookkeeper runs per idle turn of the loop (the step running when it is reached completes)
STEP_BUDGET_NS = 100_000
#: waiting jobs beyond which :meth:`Bookkeeper.defer` runs the oldest ones itself (the back-pressure)
MAX_BACKLOG = 512


class Bookkeeper:
    """Runs deferred jobs (generators of bounded steps) in idle turns of the event loop; see the module docs."""

    def __init__(self) -> None:
        self._jobs: deque[Iterator[None]] = deque()
        self._wake = Event()
        self._greenlet: gevent.Greenlet | None = None

    def __len__(self) -> int:
        return len(self._jobs)

    def defer(self, job: Iterator[None]) -> None:
        """Queue ``job``; it runs later, step by step, in the bookkeeper's greenlet. Beyond ``MAX_BACKLOG`` waiting
        jobs the oldest run to their end here, before this returns (see the module docs)."""
        jobs = self._jobs
        jobs.append(job)
        while len(jobs) > MAX_BACKLOG:
            self._step()
        if self._greenlet is None or self._greenlet.dead:
            self._greenlet = gevent.spawn(self._run)
        self._wake.set()

    def _step(self) -> None:
        job = self._jobs[0]
        try:
            next(job)
        except StopIteration:
            self._jobs.popleft()
        except Exception:  # a broken job must not stop the books of the others
            self._jobs.popleft()
            logger.exception("llm-locust: a request's bookkeeping failed")

    def _run(self) -> None:
        jobs, now = self._jobs, time.perf_counter_ns
        while True:
            if not jobs:
                self._wake.clear()
                self._wake.wait()
                continue
            gevent.idle()
            deadline = now() + STEP_BUDGET_NS
            while jobs and now() < deadline:
                self._step()

    def drain(self) -> None:
        """Run every waiting job to its end now (at the end of a run, before the books are read)."""
        while self._jobs:
            self._step()

    def stop(self) -> None:
        """Drain, then end the greenlet."""
        self.drain()
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None
