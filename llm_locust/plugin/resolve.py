"""Resolving the options into a run: targets, keys, limits, the report folder and the recorder, at ``test_start``.

:func:`build_run` turns the environment's options (on a worker: the master's, as they arrived with the start) into
an :class:`~llm_locust.run.LLMRun`. Its errors are the input-file errors of :data:`.validate.INPUT_ERRORS` and
``ValueError``, each one line naming the problem and the fix.

Where the records go:

* local runner or master: ``<report-dir>/<run id>/requests.csv``; the run id is the start time, with ``-2``,
  ``-3`` ... when that folder exists already (two runs in the same second, e.g. from the web UI);
* worker: its own log at ``<report-dir>/workers/<run id>-<client id>/requests.csv``; the records are shipped to
  the master, which writes the reports.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from locust.runners import MasterRunner, WorkerRunner

from .. import warmup
from ..options import DEFAULT_MOCK_MODEL
from ..protocols import get_protocol
from ..reasoning import parse_reasoning
from ..recorder import Recorder
from ..run import LLMRun, Target, new_run_id
from ..sources import run_prompts
from ..targets import TargetSpec, load_targets
from ..warmup import Warmup
from .validate import backoff_policy, optional_positive_int


def target_specs(environment: Any, mock_url: str | None) -> list[TargetSpec]:
    """The run's endpoints: the --targets file, or the one made of --host, --llm-api and --model."""
    opts = environment.parsed_options
    if opts.targets:
        return load_targets(opts.targets)
    host = environment.host or getattr(opts, "host", None)
    if not host:
        raise ValueError("no endpoint: pass --host URL (or leave it out to use the embedded mock server)")
    model = opts.model or (DEFAULT_MOCK_MODEL if host == mock_url else None)
    if not model:
        raise ValueError("--model is required with --host: name the model the endpoint serves (e.g. --model llama3)")
    proto = get_protocol(opts.llm_api)
    return [TargetSpec(name=opts.llm_api, api=opts.llm_api, host=host, model=model, key_env=proto.key_env)]


def report_folder(report_dir: str | Path, run_id: str) -> Path:
    """Create and return ``<report-dir>/<run id>``, or the first of ``<run id>-2``, ``-3`` ... not taken yet.

    Created here (``mkdir`` fails on a folder that exists), so that two processes starting a run in the same second
    never share a folder."""
    Path(report_dir).mkdir(parents=True, exist_ok=True)
    folder = Path(report_dir) / run_id
    n = 2
    while True:
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            folder = Path(report_dir) / f"{run_id}-{n}"
            n += 1


def build_run(environment: Any, mock_url: str | None = None) -> LLMRun:
    """The run the current start asks for, with its recorder open."""
    opts = environment.parsed_options
    specs = target_specs(environment, mock_url)
    token_limit = optional_positive_int(opts.token_limit, "--token-limit")
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
                reasoning=parse_reasoning(getattr(opts, "reasoning", None), "--reasoning"),
                fixed_output=bool(getattr(opts, "fixed_output", False)),
            )
        )
    run_id = new_run_id()
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        csv_path = Path(opts.report_dir) / "workers" / f"{run_id}-{runner.client_id}" / "requests.csv"
        recorder = Recorder(csv_path, keep=False, ship=True)
    else:
        folder = report_folder(opts.report_dir, run_id)
        run_id = folder.name
        recorder = Recorder(folder / "requests.csv")
    process = getattr(runner, "worker_index", 0) if isinstance(runner, WorkerRunner) else 0
    prompts, prompt_source = run_prompts(opts, targets[0].model, process)  # each worker draws its own
    return LLMRun(
        run_id=run_id,
        targets=targets,
        prompts=prompts,
        prompt_source=prompt_source,
        token_limit=token_limit,
        timeout=opts.timeout,
        recorder=recorder,
        max_requests=optional_positive_int(opts.max_requests, "--max-requests"),
        max_response_bytes=optional_positive_int(getattr(opts, "max_response_bytes", None), "--max-response-bytes"),
        users=optional_positive_int(getattr(opts, "num_users", None), "--users"),
        backoff=backoff_policy(opts),
        warmup=Warmup(warmup.parse(getattr(opts, "warmup", None))),
    )
