"""Wires llm-locust into a Locust process through Locust's events.

Usage, in a locustfile (the bundled ``locustfile.py`` does exactly this)::

    from llm_locust import plugin, users

    plugin.register()

    class LLMUser(users.LLMUser):
        pass

What it hooks:

* ``init_command_line_parser``: adds the options of :mod:`llm_locust.options`;
* ``init`` (local runner or master): validates the prompt and price files and the flags, exiting with code 2 and
  one line naming the problem and the fix; with no ``--host``, starts the embedded mock server on a free loopback
  port and targets it;
* ``test_start``: resolves the options into an :class:`~llm_locust.run.LLMRun` (on a worker, after the master's
  options have arrived), opens ``<report-dir>/<run id>/requests.csv`` and starts recording;
* ``test_stop``: writes ``summary.txt``, ``summary.json`` and ``summary.csv`` and prints the one-screen summary
  (at ``quit`` in headless runs, so that it comes after Locust's own tables);
* ``quitting``: stops the mock server.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import locust
from locust import events as locust_events
from locust.runners import WorkerRunner

from . import __version__
from .options import DEFAULT_MOCK_MODEL, add_arguments
from .pricing import PriceBook, PriceFileError, load_price_file
from .prompts import PromptFileError, load_prompts
from .protocols import get_protocol
from .recorder import Recorder
from .report import render_console, summarize, write_reports
from .run import ATTR, LLMRun, new_run_id
from .tokens import TokenCounter

logger = logging.getLogger("llm_locust")

_registered: set[int] = set()


class _State:
    """Process-wide state of the plugin (one Locust process runs one environment)."""

    mock_proc: Any = None
    mock_url: str | None = None
    pending_console: str | None = None
    peak_users: int = 0


def fail(message: str) -> None:
    """Print one line and exit with code 2: the run cannot go on."""
    print(f"llm-locust: error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def register(events: Any = locust_events) -> None:
    """Add llm-locust's listeners to ``events`` (Locust's global events by default). Safe to call twice."""
    if id(events) in _registered:
        return
    _registered.add(id(events))
    events.init_command_line_parser.add_listener(add_arguments)
    events.init.add_listener(on_init)
    events.test_start.add_listener(on_test_start)
    events.spawning_complete.add_listener(on_spawning_complete)
    events.test_stop.add_listener(on_test_stop)
    events.quit.add_listener(on_quit)
    events.quitting.add_listener(on_quitting)


def on_init(environment: Any, runner: Any = None, **_: Any) -> None:
    opts = environment.parsed_options
    if opts is None or isinstance(runner, WorkerRunner):
        return
    try:
        load_prompts(opts.prompt_file)
        if opts.prices:
            load_price_file(opts.prices)
    except (PromptFileError, PriceFileError) as e:
        fail(str(e))
    if opts.token_limit is not None and opts.token_limit <= 0:
        fail(f"--token-limit must be a positive integer (got {opts.token_limit}); drop it to use the server's default")
    if opts.timeout <= 0:
        fail(f"--timeout must be a positive number of seconds (got {opts.timeout:g})")
    if not environment.host:
        _start_mock(environment, opts)
    elif not opts.model and opts.headless:
        fail("--model is required with --host: name the model the endpoint serves (e.g. --model llama3)")


def _start_mock(environment: Any, opts: Any) -> None:
    from .mockserver import start_subprocess

    try:
        args = shlex.split(opts.mock_server_args or "")
    except ValueError as e:
        fail(f'--mock-server-args cannot be parsed ({e}); quote it as one string, e.g. "--ttft-ms 100"')
    try:
        proc, url = start_subprocess(args, timeout=15)
    except (RuntimeError, OSError) as e:
        fail(f"the embedded mock server did not start ({' '.join(str(e).split())[:300]}); check --mock-server-args")
    _State.mock_proc, _State.mock_url = proc, url
    environment.host = url
    opts.host = url
    if not opts.model:
        opts.model = DEFAULT_MOCK_MODEL
    logger.info("No --host given: started the embedded mock LLM server at %s (no API key, no internet)", url)


def _build_run(environment: Any) -> LLMRun:
    opts = environment.parsed_options
    host = environment.host or getattr(opts, "host", None)
    if not host:
        raise ValueError("no endpoint: pass --host URL (or leave it out to use the embedded mock server)")
    model = opts.model or (DEFAULT_MOCK_MODEL if host == _State.mock_url else None)
    if not model:
        raise ValueError("--model is required with --host: name the model the endpoint serves (e.g. --model llama3)")
    proto = get_protocol(opts.llm_api)
    token_limit = _optional_positive_int(opts.token_limit, "--token-limit")
    api_key = opts.api_key or (os.environ.get(proto.key_env) if proto.key_env else None) or None
    run_id = new_run_id()
    folder = None
    if not isinstance(environment.runner, WorkerRunner):
        folder = Path(opts.report_dir) / run_id
        n = 2
        while folder.exists():
            folder = Path(opts.report_dir) / f"{run_id}-{n}"
            n += 1
    return LLMRun(
        run_id=folder.name if folder else run_id,
        api=opts.llm_api,
        host=host,
        model=model,
        prompts=load_prompts(opts.prompt_file),
        api_key=api_key,
        token_limit=token_limit,
        timeout=opts.timeout,
        continuous_usage=opts.continuous_usage,
        tokens=TokenCounter(model),
        prices=PriceBook(host, opts.prices),
        recorder=Recorder(folder / "requests.csv" if folder else None),
    )


def _optional_positive_int(value: Any, flag: str) -> int | None:
    """The web UI's start form hands values over as strings ("" for an empty field)."""
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{flag} must be a positive integer (got {value!r})") from None
    if number <= 0:
        raise ValueError(f"{flag} must be a positive integer (got {value!r})")
    return number


def on_test_start(environment: Any, **_: Any) -> None:
    if environment.parsed_options is None:
        return
    try:
        run = _build_run(environment)
    except (PromptFileError, PriceFileError, ValueError) as e:
        logger.error("llm-locust cannot start this run: %s", e)
        setattr(environment, ATTR, None)
        if environment.runner is not None:
            environment.runner.quit()
        return
    run.warm_up()
    setattr(environment, ATTR, run)
    _State.peak_users = 0
    environment.events.request.add_listener(run.recorder.on_request)
    if run.recorder.csv_path is not None:
        logger.info("llm-locust: %s %s @ %s; per-request log %s", run.api, run.model, run.host, run.recorder.csv_path)


def on_spawning_complete(user_count: int, **_: Any) -> None:
    _State.peak_users = max(_State.peak_users, user_count)


def on_test_stop(environment: Any, **_: Any) -> None:
    run: LLMRun | None = getattr(environment, ATTR, None)
    if run is None:
        return
    environment.events.request.remove_listener(run.recorder.on_request)
    run.recorder.close()
    if run.recorder.csv_path is None:  # a worker: the master writes the reports
        return
    folder = run.recorder.csv_path.parent
    users = max(_State.peak_users, getattr(environment.runner, "user_count", 0) or 0)
    summary = summarize(
        run.recorder.records,
        {
            "run_id": run.run_id,
            "model": run.model,
            "host": run.host,
            "api": run.api,
            "users": users,
            "started_at": run.started_at,
            "prompt_file": str(environment.parsed_options.prompt_file),
            "token_limit": run.token_limit,
            "locust_version": locust.__version__,
            "llm_locust_version": __version__,
            "complete": True,
        },
    )
    write_reports(folder, summary)
    console = render_console(summary, folder)
    if environment.parsed_options.headless:
        _State.pending_console = console
    else:
        print(console, flush=True)


def on_quit(**_: Any) -> None:
    if _State.pending_console:
        print("\n" + _State.pending_console, flush=True)
        _State.pending_console = None


def on_quitting(**_: Any) -> None:
    proc = _State.mock_proc
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except Exception:
            proc.kill()
    _State.mock_proc = None
