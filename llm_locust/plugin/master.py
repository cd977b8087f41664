"""The master's side of a distributed run: the workers' records in, and workers stopped before the master quits.

:func:`wire_master` is called at ``init`` on a master. It registers the workers' ``llm_hello`` and ``llm_final``
messages with the environment's :class:`~llm_locust.distributed.Collector` (a headless ``-t`` is taken over by
the session: Locust would quit at -t and fire ``test_stop`` before the workers stop; :func:`stop_then_quit` stops
them first), adds a
``quitting`` listener that stops running workers first (Ctrl-C, SIGTERM), and drops ``--api-key`` (Locust would send
it to the workers in plain text). The end-of-run barrier itself is :meth:`Collector.wait
<llm_locust.distributed.Collector.wait>`; see :mod:`llm_locust.distributed` for the protocol.
"""

from __future__ import annotations

import logging
from argparse import Namespace
from typing import Any

from locust.runners import STATE_RUNNING, STATE_SPAWNING, MasterRunner

from .. import distributed

logger = logging.getLogger("llm_locust")


def wire_master(environment: Any, runner: Any, opts: Namespace, collector: distributed.Collector) -> None:
    """Wire the master to ``collector``."""
    runner.register_message(distributed.MSG_HELLO, lambda msg, **_: collector.hello(msg.node_id))
    runner.register_message(
        distributed.MSG_FINAL,
        lambda msg, **_: collector.final(msg.node_id, msg.data["rows"], msg.data["total"]),
    )
    # registered now, after the master's own quitting listener, so that (fired in reverse) it runs first
    environment.events.quitting.add_listener(_stop_workers_first)
    if opts.api_key:
        logger.warning(
            "--api-key is not sent to workers (Locust would send it in plain text): set the provider's key "
            "variable (e.g. OPENAI_API_KEY) in each worker's environment"
        )
        opts.api_key = None


def _stop_workers_first(environment: Any, **_: Any) -> None:
    runner = environment.runner
    if runner is not None and runner.state in (STATE_RUNNING, STATE_SPAWNING):
        logger.info("Stopping the workers and collecting their records before quitting")
        runner.stop()


def stop_then_quit(runner: Any) -> None:
    """At the taken-over ``-t``: stop the run (a master: its workers, whose finals arrive), write the reports, quit."""
    if isinstance(runner, MasterRunner):
        logger.info("--run-time limit reached: stopping the workers and collecting their records")
    else:
        logger.info("--run-time limit reached, shutting down")
    runner.stop()
    runner.quit()


def collect(runner: Any, collector: distributed.Collector) -> dict[str, Any]:
    """At test stop: wait for the workers' final counts; the ``run`` block's books (``workers``, ``complete``)."""
    missing = collector.wait(lambda: distributed.alive_worker_ids(runner))
    books = collector.summary(missing)
    collector.reset(None)
    for reason in books["incomplete_reasons"]:
        logger.warning("Run incomplete: %s", reason)
    return books
