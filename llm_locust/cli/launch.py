"""Running a :class:`~.plan.BenchPlan`: the bundled locustfile, headless, in a subprocess.

:func:`run` writes the plan's targets file (and a generated prompt file) under its own
``<report-dir>/.bench/<stamp>-<random>/``, starts ``python -m locust -f llm_locust/locustfile.py --headless
--max-requests N ...`` (one user per target with ``--parallel``, else one user serving the targets one after the
other) and shows a progress bar on stderr while the run's ``requests.csv`` grows. The run names its report folder in
the run-info file it is given with ``--run-info`` (:mod:`llm_locust.runinfo`); nothing is found by looking at
folders' times, so several ``llm-benchmark`` runs may share one report directory at once. Afterwards the run log
``benchmark_<stamp>.log``, the targets file, Locust's console output and a generated prompt file are moved into the
report folder. A run that wrote no ``summary.json`` is a :class:`~.args.UsageError` quoting its last error lines.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from .. import runinfo
from .args import UsageError
from .plan import SIMPLE_PROMPT, BenchPlan, decode_prompt

LOCUSTFILE = Path(__file__).resolve().parents[1] / "locustfile.py"
RUN_INFO_FILE = "run-info.json"


def write_inputs(work: Path, p: BenchPlan) -> tuple[Path, Path, int]:
    """Write the targets and prompt files the Locust run reads; return them and the requests per target."""
    from ..prompts import load_prompts

    work.mkdir(parents=True, exist_ok=True)
    targets_file = work / "targets.yaml"
    targets_file.write_text(yaml.safe_dump({"targets": p.targets}, sort_keys=False), encoding="utf-8")
    if p.prompt_file:
        prompt_file = Path(p.prompt_file)
        count = len(load_prompts(prompt_file))
    else:
        prompt_file = work / "prompts.yaml"
        text = decode_prompt() if p.mode == "decode" else SIMPLE_PROMPT
        prompt_file.write_text(yaml.safe_dump({"prompts": [{"name": p.mode or "decode", "text": text}]}))
        count = 1
    per_target = p.per_target or (p.runs or 1) * count
    return targets_file, prompt_file, per_target


def run(args: argparse.Namespace, p: BenchPlan, console: Any) -> tuple[Path, int]:
    """Run the bundled locustfile; return the run's report folder and Locust's exit code."""
    from ..prompts import PromptFileError

    stamp = time.strftime("%Y%m%d-%H%M%S")
    report_dir = Path(args.report_dir)
    (report_dir / ".bench").mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{stamp}-", dir=report_dir / ".bench"))  # its own, beside parallel runs
    try:
        targets_file, prompt_file, per_target = write_inputs(work, p)
    except PromptFileError as e:
        raise UsageError(str(e)) from None
    users = len(p.targets) if args.parallel else 1
    log_file = work / f"benchmark_{stamp}.log"
    info_file = work / RUN_INFO_FILE
    level = "DEBUG" if args.verbose else args.log_level
    cmd = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "-u", str(users), "-r", str(users), "--max-requests", str(per_target), "--prompt-file", str(prompt_file),
        "--report-dir", str(report_dir), "--timeout", str(args.timeout), "--loglevel", level,
        "--logfile", str(log_file), "--only-summary", runinfo.FLAG, str(info_file),
    ]
    if args.mock_server and not args.endpoint:
        cmd += ["--model", p.targets[0]["model"]]
    else:
        cmd += ["--targets", str(targets_file)]
    if p.token_limit:
        cmd += ["--token-limit", str(p.token_limit)]
    if args.prices:
        cmd += ["--prices", str(args.prices)]
    if args.slo:
        cmd += ["--slo", args.slo]
    total = per_target * len(p.targets)
    env = {**p.env, "PYTHONPATH": os.pathsep.join([str(LOCUSTFILE.parents[1]), p.env.get("PYTHONPATH", "")])}
    env.pop(runinfo.ENV_VAR, None)  # the flag names the file; an inherited variable must not point elsewhere
    console_file = work / "locust-console.txt"  # Locust's own tables; a file, so a full pipe never blocks it
    with console_file.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
        _progress(proc, info_file, total, console, log_file)
        proc.wait()
    folder = run_folder(info_file)
    if folder is None or not (folder / "summary.json").exists():
        text = console_file.read_text(errors="replace")
        text += log_file.read_text(errors="replace") if log_file.exists() else ""
        errors = [line for line in text.splitlines() if "error" in line.lower()][-3:]
        raise UsageError(f"the benchmark run did not complete ({' | '.join(errors) or 'no output'}); see {work}")
    info_file.unlink(missing_ok=True)
    for path in (log_file, targets_file, console_file, *([prompt_file] if prompt_file.parent == work else [])):
        if path.exists():
            path.replace(folder / path.name)
    try:
        work.rmdir()
        work.parent.rmdir()
    except OSError:
        pass
    return folder, proc.returncode


def run_folder(info_file: Path) -> Path | None:
    """The report folder the run named in its run-info file, or None while it has named none."""
    info = runinfo.read(info_file)
    return Path(info["folder"]) if info is not None else None


def _progress(proc: subprocess.Popen[str], info_file: Path, total: int, console: Any, log_file: Path) -> None:
    """Follow the run's requests.csv (written row by row) with a progress bar on stderr, and copy the run log's
    new lines (at ``--log-level``; one per request with ``--verbose``) to the console as they come: the log goes
    to both the console and the file (seed 001)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    folder = None
    with Progress(TextColumn("requests"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("requests", total=total)
        tail = _LogTail(log_file, console)
        while proc.poll() is None:
            time.sleep(0.2)
            tail.follow()
            folder = folder or run_folder(info_file)
            if folder is not None and (folder / "requests.csv").exists():
                with (folder / "requests.csv").open("rb") as f:
                    bar.update(task, completed=max(0, sum(1 for _ in f) - 1))
        tail.follow()


class _LogTail:
    """New whole lines of a growing log file, printed to a console."""

    def __init__(self, path: Path, console: Any) -> None:
        self.path, self.console, self.pos = path, console, 0

    def follow(self) -> None:
        try:
            with self.path.open("rb") as f:
                f.seek(self.pos)
                data = f.read()
        except OSError:
            return
        end = data.rfind(b"\n") + 1
        self.pos += end
        for line in data[:end].decode("utf-8", "replace").splitlines():
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)
