"""One Locust environment's llm-locust state and its run lifecycle: test_start, test_stop, quit.

An :class:`LLMSession` is created per :class:`~locust.env.Environment` at ``init`` (see :func:`llm_locust.plugin.
register`) and hung on it as ``environment.llm_plugin`` (:func:`session_of`); ``test_start``, ``test_stop`` and
``quitting`` reach it through the listeners of ``register()``, the other events through listeners it adds to
``environment.events``. It holds what outlives one run: the embedded mock server, the master's
:class:`~llm_locust.distributed.Collector`, a master's taken-over ``-t``, the peak user count, the live sampler and
the console summary kept for ``quit``. The run itself is ``environment.llm_run`` (:func:`llm_locust.run.current_run`).

* ``test_start``: builds the run (:func:`.resolve.build_run`), writes ``--run-info``, arms a taken-over headless
  ``-t`` once the set-up is done, starts the live view, the sampler and the server-metrics scraper
  (:mod:`llm_locust.servermetrics`; local runner, master), warms up and records Locust's ``request`` events (local
  runner, worker), then freezes the heap out of the garbage collector's sight; a worker says hello to the master;
* ``report_to_master`` / ``worker_report``: a worker's records travel with its reports; the master collects them;
* ``test_stop``: a worker ships what is left with its final count; a master waits for every worker's books; a
  local runner or master then writes the reports (:func:`.reports.write_run_reports`) and prints the summary —
  at ``quit`` in headless runs, so that it comes after Locust's own tables; an incomplete report sets the process
  exit code to ``EXIT_INCOMPLETE`` (3);
* ``quitting``: :meth:`LLMSession.on_quitting` stops the embedded mock server.

Every process samples its own event-loop lag and CPU from test start to stop (:mod:`llm_locust.validity`); a worker
sends its figures to the master (``llm_health``) before its final records. The answers of the reports (validity,
``--slo``, a capacity search) set the process exit code (:func:`.reports.exit_code`) unless an earlier problem
set one.

When several environments share one ``Events`` object (Locust's global one), listeners whose event names its
environment act only for their own; give each environment its own ``Events()`` to keep them fully apart.
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Any

import gevent
from locust.runners import MasterRunner, WorkerRunner

from .. import distributed, headroom, recvclock, runinfo, validity
from ..backoff import Policy
from ..capacity import CapacityShape
from ..live import LiveView
from ..run import ATTR, LLMRun
from ..servermetrics import ServerMetrics
from . import dispatch, master, sampler
from .mock import EmbeddedMock
from .reports import exit_code, write_run_reports
from .resolve import build_run
from .validate import INPUT_ERRORS

logger = logging.getLogger("llm_locust")

#: the environment attribute holding its LLMSession
SESSION_ATTR = "llm_plugin"
#: the process exit code of a run whose report is incomplete (a worker lost, records missing); see docs/distributed.md
EXIT_INCOMPLETE = 3
#: the longest a master's -t waits for the first worker to start its load
LOAD_START_WAIT_S = 60.0


def session_of(environment: Any) -> LLMSession | None:
    """The environment's LLMSession, once ``init`` has created it."""
    return getattr(environment, SESSION_ATTR, None)


class LLMSession:
    """llm-locust's state for one environment, with the listeners of its run lifecycle."""

    def __init__(self, environment: Any) -> None:
        self.environment = environment
        self.mock: EmbeddedMock | None = None
        self.collector: distributed.Collector | None = None  # on a master
        #: a headless -t, taken over: counted from when the load starts, and a master stops its workers first
        self.run_time: float | None = None
        self.run_timer: gevent.Greenlet | None = None
        self.peak_users = 0
        self.sampler: gevent.Greenlet | None = None
        self.pending_console: str | None = None
        self.monitor: validity.Monitor | None = None
        self.health: dict[str, dict[str, Any]] = {}  # per worker, its validity summary (on a master)
        self.stopped_run: LLMRun | None = None
        #: the whole run's request rate set by a rate shape's stage (llm_locust.rateshape), None without one
        self.shape_rate: float | None = None
        setattr(environment, SESSION_ATTR, self)
        events = environment.events
        events.spawning_complete.add_listener(self.on_spawning_complete)
        events.quit.add_listener(self.on_quit)
        events.report_to_master.add_listener(self.on_report_to_master)
        events.worker_report.add_listener(self.on_worker_report)
        events.test_stopping.add_listener(self.on_test_stopping)

    def wire_master(self, runner: Any) -> None:
        self.collector = distributed.Collector()
        master.wire_master(self.environment, runner, self.environment.parsed_options, self.collector)
        runner.register_message(validity.MSG_HEALTH, self.on_health)

    def on_health(self, msg: Any, **_: Any) -> None:
        self.health[f"worker {msg.node_id}"] = msg.data

    def take_over_run_time(self) -> None:
        """Take a headless ``-t`` over from Locust (local runner or master), to count it from when the load starts.

        Locust arms its ``-t`` timer before the run's set-up (``test_start``: prompts, tokenizer, warm-up), on a
        loop clock that stood still through the blocking start-up, so under CPU load a run came out short by the
        start-up time; a master would also quit before its workers stop. The timer is armed at test start instead
        (:meth:`_arm_run_time`)."""
        opts = self.environment.parsed_options
        if getattr(opts, "headless", False) and getattr(opts, "run_time", None):
            self.run_time, opts.run_time = opts.run_time, None

    def _arm_run_time(self, runner: Any) -> None:
        """Once every test_start listener has run: ``-t`` counts from now (the loop's clock brought up to date); on a
        master from when the first worker has set its run up and starts its users (its ``llm_hello``), at most
        ``LOAD_START_WAIT_S`` after the start: workers still busy loading when the run starts lose none of it."""
        if isinstance(runner, MasterRunner) and self.collector is not None:
            deadline = time.monotonic() + LOAD_START_WAIT_S
            while not self.collector.workers and time.monotonic() < deadline:
                gevent.sleep(0.05)
        gevent.get_hub().loop.update_now()
        logger.info("Run time limit: %g s, counted from now", self.run_time)
        self.run_timer = gevent.spawn_later(self.run_time, master.stop_then_quit, runner)

    @property
    def run(self) -> LLMRun | None:
        return getattr(self.environment, ATTR, None)

    def _mine(self, environment: Any) -> bool:
        return environment is self.environment and environment.parsed_options is not None

    # ------------------------------------------------------------ start

    def on_test_start(self, environment: Any, **_: Any) -> None:
        if not self._mine(environment):
            return
        try:
            run = build_run(environment, self.mock.url if self.mock else None)
            open_loop = dispatch.settings_for(environment) is not None
        except (*INPUT_ERRORS, ValueError) as e:
            logger.error("llm-locust cannot start this run: %s", e)
            setattr(environment, ATTR, None)
            environment.process_exit_code = 2
            if environment.runner is not None:
                gevent.spawn(environment.runner.quit)  # not from inside the greenlet that quit() kills
            return
        if open_loop:
            run.backoff = Policy(enabled=False)  # open loop: a failure does not delay the arrivals
        setattr(environment, ATTR, run)
        self.peak_users = 0
        self.health = {}
        if self.monitor is not None:
            self.monitor.stop()
        self.monitor = validity.start()
        runner = environment.runner
        opts = environment.parsed_options
        if not isinstance(runner, WorkerRunner):
            if getattr(opts, "run_info", None):
                runinfo.write(opts.run_info, run.run_id, run.recorder.csv_path.parent, done=False)
            run.live = LiveView([p.name for p in run.prompts], [t.name for t in run.targets])
            run.recorder.listeners.append(run.live.add)
            self.sampler = sampler.start(run, runner, bool(opts.headless))
            run.server = ServerMetrics.for_run(opts, run.targets)
            if run.server is not None:
                # the baseline scrape, before any user is spawned; the periodic ones in a child where streams are timed
                run.server.start(streams_here=not isinstance(runner, MasterRunner))
            shape = environment.shape_class
            if isinstance(shape, CapacityShape):
                shape.attach(run)
        if self.run_time and self.run_timer is None:
            gevent.spawn(self._arm_run_time, runner)  # runs once the listeners after this one are done too
        if isinstance(runner, MasterRunner):
            if self.collector is not None:
                self.collector.reset(run.recorder)
        else:
            run.warm_up()
            environment.events.request.add_listener(run.recorder.on_request)
        # Move everything alive now (imports, warm-up) out of the collector's sight: a full collection of this heap
        # stalls every stream for 30-50 ms (docs/performance.md); what the run creates is collected as usual.
        gc.collect()
        gc.freeze()
        if isinstance(runner, WorkerRunner):
            runner.send_message(distributed.MSG_HELLO, None)
        else:
            logger.info(
                "llm-locust: %s %s @ %s; per-request log %s", run.api, run.model, run.host, run.recorder.csv_path
            )
            clock = recvclock.clock_of(t.host for t in run.targets)
            logger.info(headroom.startup_message(opts.num_users if opts.headless else None, clock))
        dispatch.start(environment, run)  # open loop only; last: the arrival timeline starts once the set-up is done

    def on_spawning_complete(self, user_count: int, **_: Any) -> None:
        self.peak_users = max(self.peak_users, user_count)

    # ------------------------------------------------------------ master and workers

    def on_report_to_master(self, client_id: str, data: dict[str, Any], **_: Any) -> None:
        if client_id != getattr(self.environment.runner, "client_id", None):
            return  # another environment's worker
        run = self.run
        if run is not None:
            rows = distributed.pack(run.recorder.drain())
            if rows:
                data[distributed.REPORT_KEY] = rows

    def on_worker_report(self, client_id: str, data: dict[str, Any], **_: Any) -> None:
        rows = data.get(distributed.REPORT_KEY)
        if rows and self.collector is not None:
            self.collector.ingest(client_id, rows)

    # ------------------------------------------------------------ stop

    def on_test_stopping(self, environment: Any, **_: Any) -> None:
        """Before Locust stops the users: open-loop arrivals stop, queued ones are booked (llm_locust.plugin.
        dispatch)."""
        if environment is self.environment:
            dispatch.stop(environment)

    def on_test_stop(self, environment: Any, **_: Any) -> None:
        run = self.run
        if environment is not self.environment or run is None or run is self.stopped_run:
            return  # a second test_stop of the same run (Locust fires one per overlapping quit() call)
        self.stopped_run = run
        run.stopped = True
        run.books.drain()  # book every request still waiting for its bookkeeping, before the books are read
        runner = environment.runner
        if not isinstance(runner, MasterRunner):
            environment.events.request.remove_listener(run.recorder.on_request)
        health = self.monitor.stop() if self.monitor is not None else {}
        self.monitor = None
        if isinstance(runner, WorkerRunner):  # ship what is left with the final count; the master writes the reports
            runner.send_message(validity.MSG_HEALTH, health)
            rows = distributed.pack(run.recorder.drain())
            runner.send_message(distributed.MSG_FINAL, {"rows": rows, "total": run.recorder.count})
            run.recorder.close()  # the stopped run stays on the environment (for a late user) until the next start
            return
        books: dict[str, Any] = {"complete": True}
        if isinstance(runner, MasterRunner) and self.collector is not None:
            books = master.collect(runner, self.collector)
        if self.sampler is not None:
            self.sampler.kill(block=False)
            self.sampler = None
        run.live.stop()
        if run.server is not None:
            run.server.stop()  # the last scrape, after the last request
        run.recorder.close()
        users = max(self.peak_users, getattr(runner, "user_count", 0) or 0)
        processes = {("master" if isinstance(runner, MasterRunner) else "local"): health, **self.health}
        shape = environment.shape_class if isinstance(environment.shape_class, CapacityShape) else None
        console, summary = write_run_reports(run, environment.parsed_options, users, books, processes, shape)
        code = EXIT_INCOMPLETE if not books.get("complete", True) else exit_code(summary)
        if code is not None and (code == EXIT_INCOMPLETE or environment.process_exit_code is None):
            environment.process_exit_code = code
        if environment.parsed_options.headless:
            self.pending_console = console
        else:
            print(console, flush=True)

    def on_quit(self, **_: Any) -> None:
        if self.pending_console:
            print("\n" + self.pending_console, flush=True)
            self.pending_console = None

    def on_quitting(self, environment: Any, **_: Any) -> None:
        """At quitting (listeners fire in reverse then; this one runs after the master's): the workers stop before
        their mock server."""
        if self.mock is not None:
            self.mock.stop()
            self.mock = None
