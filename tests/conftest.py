"""Shared fixtures: offline tiktoken, a real mock LLM server process, and a runner for real `locust` processes.

Everything talks over 127.0.0.1 only, and every process has a time limit.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_TIKTOKEN = ROOT.parent / "shared" / "tiktoken"

if "TIKTOKEN_CACHE_DIR" not in os.environ and SHARED_TIKTOKEN.is_dir():
    os.environ["TIKTOKEN_CACHE_DIR"] = str(SHARED_TIKTOKEN)

from llm_locust.tokens import ESTIMATE_SOURCE, cache_path  # noqa: E402  (reads TIKTOKEN_CACHE_DIR, set above)

#: tiktoken's files are at hand (``TIKTOKEN_CACHE_DIR``), so local token counts are exact; else they are estimates
#: and the tests of exact counts skip. Simulate a machine without them: ``TIKTOKEN_CACHE_DIR=$(mktemp -d) pytest``.
TIKTOKEN_FILES = all(os.path.isfile(cache_path(e)) for e in ("o200k_base", "cl100k_base"))
needs_tiktoken = pytest.mark.skipif(
    not TIKTOKEN_FILES,
    reason="tiktoken's o200k_base/cl100k_base files are not in TIKTOKEN_CACHE_DIR: exact local counts untestable",
)


def check_local_count(row: dict, key: str, n: int) -> None:
    """``row[key]`` (a local token count) is ``n`` with tiktoken's files, else the marked estimate."""
    if TIKTOKEN_FILES:
        assert int(row[key]) == n, (key, row[key], n)
    else:
        assert row["local_tokens_source"] == ESTIMATE_SOURCE and int(row[key]) > 0, row


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str):
    """Poll ``predicate`` every 0.1 s until it returns something truthy (returned), or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class MockProc:
    url: str
    proc: subprocess.Popen
    send_log: Path

    def sent(self) -> list[dict]:
        if not self.send_log.exists():
            return []
        return [json.loads(line) for line in self.send_log.read_text().splitlines() if line.strip()]


@pytest.fixture
def mock_server(tmp_path: Path) -> Iterator:
    """Factory: ``mock_server("--ttft-ms", "50", ...)`` starts a real mock server process with a send log."""
    from llm_locust.mockserver import start_subprocess

    started: list[MockProc] = []

    def start(*args: str) -> MockProc:
        log = tmp_path / f"sendlog-{len(started)}.jsonl"
        proc, url = start_subprocess([*args, "--send-log", str(log)], timeout=15)
        m = MockProc(url, proc, log)
        started.append(m)
        return m

    yield start
    for m in started:
        m.proc.terminate()
        try:
            m.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            m.proc.kill()


@dataclass
class LocustRun:
    returncode: int
    stdout: str
    stderr: str
    report_dir: Path
    stats_file: Path | None

    @property
    def folder(self) -> Path:
        runs = sorted(p for p in self.report_dir.iterdir() if p.is_dir()) if self.report_dir.exists() else []
        assert len(runs) == 1, f"expected one report folder, found {runs}\nstderr:\n{self.stderr[-3000:]}"
        return runs[0]

    def summary(self) -> dict:
        return json.loads((self.folder / "summary.json").read_text())

    def requests(self) -> list[dict]:
        with (self.folder / "requests.csv").open(newline="") as f:
            return list(csv.DictReader(f))

    def locust_entries(self) -> list[dict]:
        """Locust's own final request statistics entries (from --json-file)."""
        assert self.stats_file is not None, "run with json_stats=True"
        return json.loads(self.stats_file.read_text())

    def locust_stats(self) -> dict[str, dict]:
        """Locust's own final request statistics (from --json-file), by name, plus an "Aggregated" total."""
        assert self.stats_file is not None, "run with json_stats=True"
        entries = json.loads(self.stats_file.read_text())
        out = {e["name"]: e for e in entries}
        out["Aggregated"] = {
            "num_requests": sum(e["num_requests"] for e in entries),
            "num_failures": sum(e["num_failures"] for e in entries),
        }
        return out


def run_locust(
    tmp_path: Path, *args: str, timeout: float = 90, env: dict | None = None, json_stats: bool = True
) -> LocustRun:
    """Run the bundled locustfile headless in a real `locust` process; reports go under tmp_path.

    With ``json_stats`` Locust writes its final request statistics to a JSON file (instead of printing them)."""
    report_dir = tmp_path / "reports"
    stats_file = tmp_path / "locust-stats.json" if json_stats else None
    extra = ["--json-file", str(stats_file.with_suffix(""))] if stats_file else []  # locust appends .json
    cmd = [
        sys.executable, "-m", "locust", "-f", str(ROOT / "locustfile.py"), "--headless",
        "--report-dir", str(report_dir), "--loglevel", "INFO", *extra, *args,
    ]
    proc = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )
    return LocustRun(proc.returncode, proc.stdout, proc.stderr, report_dir, stats_file)


@pytest.fixture
def locust_run(tmp_path: Path):
    def run(*args: str, **kw) -> LocustRun:
        return run_locust(tmp_path, *args, **kw)

    return run
