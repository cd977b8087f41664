"""The seeds' commands as written (seed 000's ``python llm_benchmark.py``, seed 001's ``python -m llm_benchmark``),
the run log's figures, per-request lines with ``--verbose``, the first message per error class at the end of every
run, and the option list that ``locust --help`` cannot show (``llm-benchmark --locust-options``)."""

from __future__ import annotations

import os
import subprocess
import sys

from llm_locust.options import options
from tests.conftest import ROOT


def _env() -> dict:
    base = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_TOKEN"))}
    return {**base, "PYTHONPATH": str(ROOT)}


def _seed(tmp_path, *args: str, module: bool = False) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "llm_benchmark"] if module else [sys.executable, "llm_benchmark.py"]
    return subprocess.run([*cmd, "--report-dir", str(tmp_path / "reports"), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env=_env())


def _folder(tmp_path):
    (folder,) = [p for p in (tmp_path / "reports").iterdir() if p.is_dir() and not p.name.startswith(".")]
    return folder


def test_python_llm_benchmark_py_as_seed_000_writes_it(tmp_path, mock_server):
    mock = mock_server("--ttft-ms", "5", "--itl-ms", "1", "--output-tokens", "8")
    run = _seed(tmp_path, "--endpoint", f"{mock.url}/v1", "--model", "mistral-7b", "--prompt-file",
                "tests/data/prompts_small.yaml", "--verbose")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Benchmark Results for mistral-7b" in run.stdout
    log = next(_folder(tmp_path).glob("benchmark_*.log")).read_text()
    requests = [line for line in log.splitlines() if "llm_locust.requests" in line and " request " in line]
    assert len(requests) == 2, log  # --verbose: one line per request (two prompts, one run each)
    assert all("status=ok" in line and "output_tokens=8" in line for line in requests)
    for figure in ("tokens/s average", "median", "average total tokens", "prompt", "completion tokens API-reported",
                   "locally estimated"):
        assert figure in log
    assert requests[0] in run.stderr, "the log goes to the console too"


def test_python_m_llm_benchmark_as_seed_001_with_errors_shown_by_class(tmp_path, mock_server):
    mock = mock_server("--ttft-ms", "5", "--itl-ms", "1", "--output-tokens", "4", "--fault", "status-401",
                       "--fault-every", "2")
    run = _seed(tmp_path, "--endpoint", f"{mock.url}/v1", "--model", "m", "--runs", "2", "--prompt-file",
                "tests/data/prompts_small.yaml", "--log-level", "INFO", module=True)
    assert run.returncode == 1, run.stderr[-3000:]
    assert "m: Errors: auth 2 — auth: HTTP 401: Incorrect API key provided" in run.stdout, run.stdout[-2000:]
    assert "Starting Locust" in run.stderr  # --log-level: console and file
    log = next(_folder(tmp_path).glob("benchmark_*.log")).read_text()
    assert "Starting Locust" in log and "Errors: auth 2 — auth: HTTP 401: Incorrect API key" in log


def test_locust_run_ends_with_the_first_message_per_error_class(mock_server, locust_run):
    mock = mock_server("--ttft-ms", "5", "--itl-ms", "1", "--output-tokens", "4", "--fault", "status-429",
                       "--fault-every", "2")
    run = locust_run("-u", "1", "-r", "1", "--max-requests", "4", "-H", mock.url, "--model", "m",
                     "--prompt-file", "tests/data/prompts_small.yaml")
    assert run.returncode == 1
    out = run.stdout + run.stderr
    assert "Errors: rate_limit 2 — rate_limit: HTTP 429: Rate limit reached for m" in out, out[-3000:]
    errors = run.summary()["overall"]["error_messages"]
    assert errors["rate_limit"].startswith("rate_limit: HTTP 429: Rate limit reached for m")


def test_locust_options_lists_every_option_with_default_and_env_var():
    run = subprocess.run([sys.executable, "-m", "llm_locust", "--locust-options"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, env=_env())
    assert run.returncode == 0, run.stderr
    flags = options()
    assert {"--reasoning", "--llm-api", "--max-requests"} <= {f for f, *_ in flags}
    for flag, env, _default, _help in flags:
        assert f"  {flag}\n" in run.stdout
        assert f"env: {env or 'none'}" in run.stdout
    assert "default: openai-chat; env: LLM_API" in run.stdout
    # and Locust's own help cannot show them: it prints before it loads the locustfile
    helped = subprocess.run([sys.executable, "-m", "locust", "-f", "locustfile.py", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60, env=_env())
    assert "--llm-api" not in helped.stdout
