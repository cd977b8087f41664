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

import gc
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import gevent
import locust
from locust import events as locust_events
from locust.runners import STATE_RUNNING, STATE_SPAWNING, MasterRunner, WorkerRunner

from . import __version__, distributed, webui
from .live import SAMPLE_S, WINDOW_S, LiveView
from .options import DEFAULT_MOCK_MODEL, add_arguments
from .pricing import PriceFileError, load_price_file
from .prompts import PromptFileError, load_prompts
from .protocols import TemplateError, get_protocol
from .protocols.custom import load_template
from .recorder import Recorder
from .report import render_console, summarize, write_reports
from .run import ATTR, LLMRun, Target, new_run_id
from .targets import TargetFileError, TargetSpec, load_targets

logger = logging.getLogger("llm_locust")

#: in headless runs, a live line every LOG_EVERY samples (SAMPLE_S seconds each)
LOG_EVERY = 5

_registered: set[int] = set()


class _State:
    """Process-wide state of the plugin (one Locust process runs one environment)."""

    mock_proc: Any = None
    mock_url: str | None = None
    pending_console: str | None = None
    peak_users: int = 0
    run_time: float | None = None  # a master's -t, taken over so that workers stop before the master quits
    collector = distributed.Collector()
    environment: Any = None
    sampler: Any = None


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
    events.report_to_master.add_listener(on_report_to_master)
    events.worker_report.add_listener(on_worker_report)


def on_init(environment: Any, runner: Any = None, **_: Any) -> None:
    _State.environment = environment
    opts = environment.parsed_options
    if opts is None:
        return
    if isinstance(runner, WorkerRunner):
        _preload()
        return
    if isinstance(runner, MasterRunner):
        _init_master(environment, runner, opts)
    try:
        load_prompts(opts.prompt_file)
        if opts.prices:
            load_price_file(opts.prices)
        if opts.targets:
            load_targets(opts.targets)
        if opts.llm_api == "custom" or opts.template:
            if not opts.template:
                raise TemplateError("--llm-api custom needs --template FILE describing the endpoint (see examples/)")
            load_template(opts.template)
    except (PromptFileError, PriceFileError, TargetFileError, TemplateError) as e:
        fail(str(e))
    if opts.token_limit is not None and opts.token_limit <= 0:
        fail(f"--token-limit must be a positive integer (got {opts.token_limit}); drop it to use the server's default")
    if opts.max_requests is not None and opts.max_requests <= 0:
        fail(f"--max-requests must be a positive integer (got {opts.max_requests})")
    if opts.timeout <= 0:
        fail(f"--timeout must be a positive number of seconds (got {opts.timeout:g})")
    if opts.targets:
        pass  # the targets file names every endpoint
    elif not environment.host:
        _start_mock(environment, opts)
    elif not opts.model and opts.headless:
        fail("--model is required with --host: name the model the endpoint serves (e.g. --model llama3)")
    _preload()
    webui.register(environment)  # the LLM tab, charts and downloads, when this process has a web UI


def _preload() -> None:
    """Import and load now what the first run would otherwise load at test start (about 0.5 s of CPU)."""
    import genai_prices  # noqa: F401
    import numpy  # noqa: F401

    from .tokens import DEFAULT_ENCODING, _load

    _load(DEFAULT_ENCODING)


def _init_master(environment: Any, runner: Any, opts: Any) -> None:
    runner.register_message(distributed.MSG_HELLO, lambda msg, **_: _State.collector.hello(msg.node_id))
    runner.register_message(
        distributed.MSG_FINAL,
        lambda msg, **_: _State.collector.final(msg.node_id, msg.data["rows"], msg.data["total"]),
    )
    if opts.headless and opts.run_time:
        # Locust would call runner.quit() at -t, firing test_stop before the workers stop: stop them first
        _State.run_time, opts.run_time = opts.run_time, None
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


def _stop_then_quit(runner: Any) -> None:
    logger.info("--run-time limit reached: stopping the workers and collecting their records")
    runner.stop()
    runner.quit()


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


def _target_specs(environment: Any, opts: Any) -> list[TargetSpec]:
    """The run's endpoints: the --targets file, or the one made of --host, --llm-api and --model."""
    if opts.targets:
        return load_targets(opts.targets)
    host = environment.host or getattr(opts, "host", None)
    if not host:
        raise ValueError("no endpoint: pass --host URL (or leave it out to use the embedded mock server)")
    model = opts.model or (DEFAULT_MOCK_MODEL if host == _State.mock_url else None)
    if not model:
        raise ValueError("--model is required with --host: name the model the endpoint serves (e.g. --model llama3)")
    proto = get_protocol(opts.llm_api)
    return [TargetSpec(name=opts.llm_api, api=opts.llm_api, host=host, model=model, key_env=proto.key_env)]


def _build_run(environment: Any) -> LLMRun:
    opts = environment.parsed_options
    specs = _target_specs(environment, opts)
    token_limit = _optional_positive_int(opts.token_limit, "--token-limit")
    if isinstance(environment.runner, MasterRunner) and opts.api_key:
        opts.api_key = None  # typed into the web UI's form: never sent on to the workers
    targets = []
    for spec in specs:
        key = os.environ.get(spec.key_env) if spec.key_env else None
        if len(specs) == 1 and opts.api_key:
            key = opts.api_key
        targets.append(
            Target(
                spec,
                api_key=key or None,
                price_file=opts.prices,
                continuous_usage=opts.continuous_usage,
                template=opts.template,
            )
        )
    run_id = new_run_id()
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        # the worker's own per-request log; its records go to the master, which writes the reports
        csv_path = Path(opts.report_dir) / "workers" / f"{run_id}-{runner.client_id}" / "requests.csv"
        recorder = Recorder(csv_path, keep=False, ship=True)
    else:
        folder = Path(opts.report_dir) / run_id
        n = 2
        while folder.exists():
            folder = Path(opts.report_dir) / f"{run_id}-{n}"
            n += 1
        run_id = folder.name
        recorder = Recorder(folder / "requests.csv")
    return LLMRun(
        run_id=run_id,
        targets=targets,
        prompts=load_prompts(opts.prompt_file),
        token_limit=token_limit,
        timeout=opts.timeout,
        recorder=recorder,
        max_requests=_optional_positive_int(opts.max_requests, "--max-requests"),
        users=_optional_positive_int(getattr(opts, "num_users", None), "--users"),
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
    except (PromptFileError, PriceFileError, TargetFileError, TemplateError, ValueError) as e:
        logger.error("llm-locust cannot start this run: %s", e)
        setattr(environment, ATTR, None)
        if environment.runner is not None:
            environment.runner.quit()
        return
    setattr(environment, ATTR, run)
    _State.peak_users = 0
    runner = environment.runner
    if not isinstance(runner, WorkerRunner):
        run.live = LiveView([p.name for p in run.prompts], [t.name for t in run.targets])
        run.recorder.listeners.append(run.live.add)
        _State.sampler = gevent.spawn(_sample, run, runner, bool(environment.parsed_options.headless))
    if isinstance(runner, MasterRunner):
        _State.collector.reset(run.recorder)
        if _State.run_time:
            gevent.spawn_later(_State.run_time, _stop_then_quit, runner)
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
        logger.info("llm-locust: %s %s @ %s; per-request log %s", run.api, run.model, run.host, run.recorder.csv_path)


def _sample(run: LLMRun, runner: Any, log: bool) -> None:
    """Feed the live time series; in headless runs also log one live line every ``LOG_EVERY`` samples."""
    n = 0
    while True:
        gevent.sleep(SAMPLE_S)
        point = run.live.sample(getattr(runner, "user_count", 0) or 0)
        n += 1
        if log and n % LOG_EVERY == 0:
            total = run.live.total
            logger.info(
                "LLM live: %d requests (%d failed), last %gs: TTFT p50 %s, p95 %s, TPOT p50 %s, %.1f output tokens/s",
                total.requests, total.failures, WINDOW_S, _ms(point["ttft_p50_ms"]), _ms(point["ttft_p95_ms"]),
                _ms(point["tpot_p50_ms"]), point["output_tokens_per_s"],
            )  # fmt: skip


def _ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f} ms"


def on_report_to_master(data: dict[str, Any], **_: Any) -> None:
    run: LLMRun | None = getattr(_State.environment, ATTR, None)
    if run is not None:
        rows = distributed.pack(run.recorder.drain())
        if rows:
            data[distributed.REPORT_KEY] = rows


def on_worker_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
    rows = data.get(distributed.REPORT_KEY)
    if rows:
        _State.collector.ingest(client_id, rows)


def on_spawning_complete(user_count: int, **_: Any) -> None:
    _State.peak_users = max(_State.peak_users, user_count)


def on_test_stop(environment: Any, **_: Any) -> None:
    run: LLMRun | None = getattr(environment, ATTR, None)
    if run is None:
        return
    runner = environment.runner
    if not isinstance(runner, MasterRunner):
        environment.events.request.remove_listener(run.recorder.on_request)
    if isinstance(runner, WorkerRunner):  # ship what is left with the final count; the master writes the reports
        rows = distributed.pack(run.recorder.drain())
        runner.send_message(distributed.MSG_FINAL, {"rows": rows, "total": run.recorder.count})
        run.recorder.close()
        setattr(environment, ATTR, None)
        return
    books: dict[str, Any] = {"complete": True}
    if isinstance(runner, MasterRunner):
        missing = _State.collector.wait(lambda: distributed.alive_worker_ids(runner))
        books = _State.collector.summary(missing)
        _State.collector.reset(None)
        for reason in books["incomplete_reasons"]:
            logger.warning("Run incomplete: %s", reason)
    if _State.sampler is not None:
        _State.sampler.kill(block=False)
        _State.sampler = None
    run.live.stop()
    run.recorder.close()
    folder = run.recorder.csv_path.parent
    users = max(_State.peak_users, getattr(runner, "user_count", 0) or 0)
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
            **books,
        },
        [p.name for p in run.prompts],
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
