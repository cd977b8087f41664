"""Input validation at ``init``: every file and flag checked before Locust starts a user.

:func:`check_options` loads the prompt file, the price file, the targets file and the custom template once, and
checks the numeric flags; a problem ends the process with :func:`fail` — one line naming the problem and the fix,
exit code 2, no traceback. It runs on a local runner or a master (a worker gets its options from the master at
test start, where :func:`optional_positive_int` checks what the web UI's start form typed in).
"""

from __future__ import annotations

import math
import os
import sys
from argparse import Namespace
from pathlib import Path
from typing import Any, NoReturn

from .. import fixedoutput, warmup
from ..backoff import DEFAULT_MAX_RETRY_AFTER_S, Policy
from ..options import DEFAULT_MOCK_MODEL
from ..pricing import PriceFileError, load_price_file
from ..prompts import PromptFileError
from ..protocols import EndpointError, TemplateError, check_endpoint, check_host
from ..protocols.custom import load_template
from ..reasoning import parse_reasoning
from ..servermetrics import check_url
from ..slo import SLOError, check_names
from ..slo import parse as parse_slo
from ..sources import SOURCE_ERRORS, run_prompts
from ..targets import TargetFileError, load_targets

#: the errors a bad input file raises, each with a message that names the file and the fix
INPUT_ERRORS = (PromptFileError, PriceFileError, TargetFileError, TemplateError, EndpointError, *SOURCE_ERRORS)
#: the longest --timeout that makes sense (a day)
MAX_TIMEOUT_S = 86_400.0


def fail(message: str) -> NoReturn:
    """Print one line and exit with code 2: the run cannot go on."""
    print(f"llm-locust: error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def check_options(opts: Namespace, host: str | None) -> None:
    """Load every input file and check every flag once; :func:`fail` on the first problem."""
    try:
        if host:
            check_host(host)
        specs = load_targets(opts.targets) if opts.targets else []
        model = specs[0].model if specs else opts.model or DEFAULT_MOCK_MODEL
        prompts = run_prompts(opts, model)[0]  # the prompt file, synthetic prompts or a dataset
        if opts.prices:
            load_price_file(opts.prices)
        targets = [t.name for t in specs] if specs else [opts.llm_api]
        if getattr(opts, "slo", None):
            check_names(parse_slo(opts.slo), [p.name for p in prompts], targets)
        if opts.llm_api == "custom" or opts.template:
            if not opts.template:
                raise TemplateError("--llm-api custom needs --template FILE describing the endpoint (see examples/)")
            load_template(opts.template)
        if host and opts.model and not opts.targets:
            check_endpoint(opts.llm_api, host, opts.model)  # e.g. a gateway's API on a host that is no gateway
    except (*INPUT_ERRORS, SLOError) as e:
        fail(str(e))
    if opts.token_limit is not None and opts.token_limit <= 0:
        fail(f"--token-limit must be a positive integer (got {opts.token_limit}); drop it to use the server's default")
    if opts.max_requests is not None and opts.max_requests <= 0:
        fail(f"--max-requests must be a positive integer (got {opts.max_requests})")
    try:
        warmup.parse(getattr(opts, "warmup", None))
    except ValueError as e:
        fail(str(e))
    if getattr(opts, "fixed_output", False):
        check_fixed_output(opts, prompts)
    try:
        parse_reasoning(opts.reasoning, "--reasoning")
    except ValueError as e:
        fail(str(e))
    metrics_port = getattr(opts, "metrics_port", None)
    if metrics_port is not None and not 0 < metrics_port < 65536:
        fail(f"--metrics-port must be a TCP port from 1 to 65535 (got {metrics_port}); leave it out for no /metrics")
    server_metrics = getattr(opts, "server_metrics", None)
    if server_metrics and (problem := check_url(server_metrics)):
        fail(problem)
    if getattr(opts, "capacity_search", False):
        check_capacity_options(opts)
    try:
        backoff_policy(opts)
    except ValueError as e:
        fail(str(e))
    if not (math.isfinite(opts.timeout) and 0 < opts.timeout <= MAX_TIMEOUT_S):
        fail(f"--timeout must be a positive number of seconds up to {MAX_TIMEOUT_S:g} (got {opts.timeout:g})")
    limit = getattr(opts, "max_response_bytes", None)
    if limit is not None and limit <= 0:
        fail(f"--max-response-bytes must be a positive number of bytes (got {limit}); drop it for the 16 MiB default")
    users = getattr(opts, "num_users", None)
    if users is not None and users < 0:
        fail(f"-u/--users must be 0 or more (got {users})")
    rate = getattr(opts, "spawn_rate", None)
    if rate is not None and not (math.isfinite(rate) and rate > 0):
        fail(f"-r/--spawn-rate must be a positive number of users per second (got {rate:g})")
    _check_report_dir(opts.report_dir)
    if not opts.targets and host and not opts.model and opts.headless:
        fail("--model is required with --host: name the model the endpoint serves (e.g. --model llama3)")


def check_fixed_output(opts: Namespace, prompts: list[Any]) -> None:
    """``--fixed-output`` needs a length to ask for; say once which of the run's APIs cannot be asked for one."""
    if opts.token_limit is None and not getattr(opts, "output_tokens", None) and not any(
        p.token_limit for p in prompts
    ):
        fail("--fixed-output asks for exactly the token limit, and there is none: pass --token-limit N (or give the "
             "prompts a token_limit)")
    apis = [t.api for t in load_targets(opts.targets)] if opts.targets else [opts.llm_api]
    note = fixedoutput.startup_note(apis)
    if note:
        print(note, file=sys.stderr, flush=True)


def check_arrivals(environment: Any) -> None:
    """The open-loop flags (``--request-rate``, ``--arrival``, ``--burstiness``, ``--max-concurrency``,
    ``--seed``; :func:`llm_locust.arrivals.settings`); :func:`fail` on the first problem."""
    from .dispatch import settings_for

    try:
        open_loop = settings_for(environment)
    except ValueError as e:
        fail(str(e))
    if open_loop is not None and getattr(environment.parsed_options, "capacity_search", False):
        fail("--capacity-search searches user counts (closed loop): drop --request-rate")


def start_exporter(environment: Any, opts: Namespace) -> None:
    """Serve ``/metrics`` on ``--metrics-port`` when one is given; :func:`fail` if the port cannot be bound."""
    port = getattr(opts, "metrics_port", None)
    if port is None:
        return
    from .. import exporter

    host = getattr(opts, "metrics_host", None) or "127.0.0.1"
    try:
        exporter.start(environment, host, port)
    except OSError as e:
        reason = e.strerror or type(e).__name__
        fail(f"--metrics-port {port} on {host} cannot be used ({reason}); pick a free port or leave it out")


def backoff_policy(opts: Namespace) -> Policy:
    """The run's backoff policy from ``--no-backoff`` and ``--max-retry-after`` (a string from the web UI's form)."""
    value = getattr(opts, "max_retry_after", DEFAULT_MAX_RETRY_AFTER_S)
    try:
        cap = float(DEFAULT_MAX_RETRY_AFTER_S if value is None or value == "" else value)
    except (TypeError, ValueError):
        cap = float("nan")
    if not 0 <= cap < float("inf"):
        raise ValueError(f"--max-retry-after must be a number of seconds, 0 or more (got {value!r})")
    return Policy(enabled=not getattr(opts, "no_backoff", False), max_retry_after_s=cap)


def _check_report_dir(path: str) -> None:
    """``--report-dir`` must be a folder this process can create and write in."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        fail(f"--report-dir {path}: cannot create the folder ({e.strerror or e}); name a writable folder")
    if not folder.is_dir():
        fail(f"--report-dir {path}: not a folder; name a folder (it is created if missing)")
    if not os.access(folder, os.W_OK | os.X_OK):
        fail(f"--report-dir {path}: not writable by this user; name a writable folder")


def optional_positive_int(value: Any, flag: str) -> int | None:
    """A positive int or None; the web UI's start form hands values over as strings ("" for an empty field)."""
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{flag} must be a positive integer (got {value!r})") from None
    if number <= 0:
        raise ValueError(f"{flag} must be a positive integer (got {value!r})")
    return number


def check_capacity_options(opts: Namespace) -> None:
    """The flags of ``--capacity-search``; :func:`fail` on the first problem."""
    if not opts.slo:
        fail('--capacity-search needs --slo: the objectives each level must meet (e.g. --slo "ttft_p99=500ms")')
    if opts.max_requests:
        fail("--capacity-search runs levels of --level-requests requests each: drop --max-requests")
    for flag in ("capacity_start", "capacity_max", "level_requests"):
        if getattr(opts, flag) <= 0:
            fail(f"--{flag.replace('_', '-')} must be a positive integer (got {getattr(opts, flag)})")
    if opts.capacity_start > opts.capacity_max:
        fail(f"--capacity-start ({opts.capacity_start}) is above --capacity-max ({opts.capacity_max})")
    if opts.level_warmup < 0 or opts.level_timeout <= 0:
        fail("--level-warmup must be >= 0 and --level-timeout > 0 seconds")
