"""Wires llm-locust into a Locust process through Locust's events.

Usage, in a locustfile (the bundled ``locustfile.py`` does exactly this)::

    from llm_locust import plugin, users

    plugin.register()

    class LLMUser(users.LLMUser):
        pass

:func:`register` runs when the locustfile is imported, before Locust has parsed the command line or built its
:class:`~locust.env.Environment`. It adds these listeners to ``events`` (Locust's global events by default):

* ``init_command_line_parser``: the options of :mod:`llm_locust.options`;
* ``init`` (:func:`on_init`, once the environment and its runner exist): creates the environment's
  :class:`~.session.LLMSession` (``environment.llm_plugin``), which holds the environment's state and adds its
  other listeners (spawning, reports to the master, quit) to ``environment.events``. On a local runner or master
  it then checks every input (:mod:`.validate`: one line and exit code 2 on a problem), starts the embedded mock
  server when there is no ``--host`` and no ``--targets`` (:mod:`.mock`), makes ``--capacity-search``'s
  :class:`~llm_locust.capacity.CapacityShape` the load shape, wires a master to its workers (:mod:`.master`),
  takes a headless ``-t`` over (counted from the load's start, :meth:`.LLMSession.take_over_run_time`) and adds
  the web UI's LLM tab (:mod:`llm_locust.webui`); on a worker it starts :func:`watch_master`, which stops the
  worker once its master has gone silent for ``MASTER_GONE_S`` (6 s; Locust waits 60 s);
* ``test_start``, ``test_stop``, ``quitting``: hand the event to the environment's session (listened to from
  here, so that they run before a locustfile's own listeners, and at quitting after the master's).

The jobs, one module each: :mod:`.validate` (inputs at init), :mod:`.resolve` (options to an
:class:`~llm_locust.run.LLMRun` at test start), :mod:`.session` (per-environment state, test start/stop, quit),
:mod:`.master` (master-worker wiring), :mod:`.sampler` (live series and log line), :mod:`.reports` (the files at
the end of a run), :mod:`.mock` (the embedded mock server).

In-process use (one ``Environment`` built by hand): call ``register(env.events)`` and fire
``env.events.init.fire(environment=env, runner=runner, web_ui=None)`` after creating the runner, as Locust does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import gevent
from locust import events as locust_events
from locust.runners import MasterRunner, WorkerRunner

from .. import webui
from ..options import add_arguments
from . import dispatch, mock, requestlog
from .session import LLMSession, session_of
from .validate import check_arrivals, check_options, fail, start_exporter

__all__ = ["LLMSession", "fail", "on_init", "register", "session_of"]

_MARK = "_llm_locust_registered"
#: seconds without the master's heartbeat (sent every second) after which a worker quits, checked every TICK_S
MASTER_GONE_S = 6.0
TICK_S = 1.0
logger = logging.getLogger("llm_locust")
#: events that name their environment, listened to from register() on: the session's listeners keep the place they
#: always had, ahead of a locustfile's own (which may read ``environment.llm_run`` at test_start)
DISPATCHED = ("test_start", "test_stop", "quitting")


def register(events: Any = locust_events) -> None:
    """Add llm-locust's listeners to ``events`` (Locust's global events by default). Safe to call twice."""
    if getattr(events, _MARK, False):
        return
    setattr(events, _MARK, True)
    events.init_command_line_parser.add_listener(add_arguments)
    events.init.add_listener(on_init)
    for name in DISPATCHED:
        getattr(events, name).add_listener(_dispatcher(name))


def on_init(environment: Any, runner: Any = None, **_: Any) -> None:
    """Create the environment's session; on a local runner or master, check the inputs and set the run up."""
    if session_of(environment) is not None:
        return  # init fired twice, or register() on two Events objects that both reach this environment
    session = LLMSession(environment)
    opts = environment.parsed_options
    if opts is None:
        return
    requestlog.install(environment)
    if isinstance(runner, WorkerRunner):
        gevent.spawn(watch_master, runner)
        dispatch.wire_worker(runner)
        _preload()
        _catch_up_clock()
        return
    if isinstance(runner, MasterRunner):
        session.wire_master(runner)
    session.take_over_run_time()
    check_options(opts, environment.host)
    check_arrivals(environment)
    start_exporter(environment, opts)  # our /metrics on --metrics-port (llm_locust.exporter)
    if getattr(opts, "capacity_search", False):
        from ..capacity import CapacityShape

        environment.shape_class = CapacityShape(opts)
        environment.shape_class.runner = runner
    if not opts.targets and not environment.host:
        session.mock = mock.start(environment, opts)
    _preload()
    webui.register(environment)  # the LLM tab, charts and downloads, when this process has a web UI
    _catch_up_clock()


def watch_master(runner: Any, gone_s: float = MASTER_GONE_S, tick_s: float = TICK_S) -> None:
    """A worker's watchdog: quit once the master's heartbeat (one a second) has been silent for ``gone_s``.

    Locust's own limit is 60 s of load on the server with nobody collecting it. Only the time this process could
    have heard a heartbeat counts: a worker whose loop was blocked (a slow test start under CPU load) read no
    heartbeat then, and is not fooled into quitting by it (each check adds at most ``2 * tick_s``)."""
    last_seen = runner.last_heartbeat_timestamp
    silent = 0.0
    tick = time.monotonic()
    while True:
        gevent.sleep(tick_s)
        now = time.monotonic()
        step, tick = min(now - tick, 2 * tick_s), now
        seen = runner.last_heartbeat_timestamp
        if seen != last_seen or seen is None:  # heard the master (or not connected yet)
            last_seen, silent = seen, 0.0
            continue
        silent += step
        if silent >= gone_s:
            logger.error("No heartbeat from the master for %g s: it is gone; stopping this worker", gone_s)
            runner.quit()
            return


def _catch_up_clock() -> None:
    """Bring gevent's loop time up to now after the blocking set-up above (imports, files, tokenizer: about a second).

    gevent timers count from the loop's cached time, which stands still while nothing yields; Locust arms its ``-t``
    timer right after ``init``, so without this a ``-t 2s`` run would stop about a second early."""
    gevent.get_hub().loop.update_now()


def _dispatcher(name: str) -> Callable[..., None]:
    """A listener handing the event to its environment's session (``LLMSession.on_<name>``), if it has one."""

    def listener(environment: Any = None, **kwargs: Any) -> None:
        session = session_of(environment) if environment is not None else None
        if session is None and name == "test_start" and environment is not None:
            # a worker that joins a running test gets its spawn message (and so test_start) as soon as it says it
            # is ready, which can be before Locust fires init: set the session up first
            on_init(environment, runner=environment.runner)
            session = session_of(environment)
        if session is not None:
            getattr(session, f"on_{name}")(environment, **kwargs)

    return listener


def _preload() -> None:
    """Import and load now what the first run would otherwise load at test start (about 0.5 s of CPU, several
    seconds under CPU load). A worker is connected to its master already: between the steps the loop runs, so its
    heartbeats go out and the master does not take it for lost (Locust's master allows 3 s without one)."""
    import genai_prices  # noqa: F401

    gevent.sleep(0)
    import numpy  # noqa: F401

    gevent.sleep(0)
    from ..tokens import DEFAULT_ENCODING, _load

    _load(DEFAULT_ENCODING)
