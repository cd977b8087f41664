"""Distributed runs lose nothing: a real master and real worker processes on 127.0.0.1 against the mock server.

The master's report must hold exactly the records the workers made (each worker also writes its own per-request
log) and exactly the requests the mock server saw, with percentiles equal to those of the union of the workers'
logs — however the run ends: headless -t, Ctrl-C on the master, a worker killed mid-run, or --processes.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, free_port, wait_for

COMMON = ["-f", str(ROOT / "locustfile.py"), "--prompt-file", "tests/data/prompts_small.yaml", "--loglevel", "INFO"]


def _locust(*args: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "locust", *COMMON, *args], cwd=ROOT, stdout=log.open("w"),
        stderr=subprocess.STDOUT, env=os.environ.copy(),
    )


class Cluster:
    def __init__(self, tmp_path: Path, mock_url: str, workers: int, run_time: str, users: int = 6):
        self.tmp = tmp_path
        self.reports = tmp_path / "reports"
        port = free_port()
        self.master = _locust(
            "--master", "--headless", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
            "--expect-workers", str(workers), "-u", str(users), "-r", str(users), "-t", run_time,
            "-H", mock_url, "--model", "m", "--report-dir", str(self.reports), log=tmp_path / "master.log",
        )
        self.workers = [
            _locust("--worker", "--master-host", "127.0.0.1", "--master-port", str(port), log=tmp_path / f"w{i}.log")
            for i in range(workers)
        ]

    def wait(self, timeout: float = 180) -> int:
        code = self.master.wait(timeout=timeout)
        for w in self.workers:
            try:
                w.wait(timeout=15)
            except subprocess.TimeoutExpired:
                w.kill()
        return code

    def kill_all(self) -> None:
        for p in [self.master, *self.workers]:
            if p.poll() is None:
                p.kill()

    @property
    def log(self) -> str:
        return (self.tmp / "master.log").read_text()

    def run_folder(self) -> Path:
        runs = [p for p in self.reports.iterdir() if p.is_dir() and p.name != "workers"]
        assert len(runs) == 1, runs
        return runs[0]

    def summary(self) -> dict:
        return json.loads((self.run_folder() / "summary.json").read_text())

    def master_rows(self) -> list[dict]:
        with (self.run_folder() / "requests.csv").open(newline="") as f:
            return list(csv.DictReader(f))

    def worker_rows(self) -> list[dict]:
        rows = []
        for path in (self.reports / "workers").glob("*/requests.csv"):
            with path.open(newline="") as f:
                rows += list(csv.DictReader(f))
        return rows


def _worker_log(worker: subprocess.Popen) -> Path | None:
    """The per-request log a worker process is writing (found through its open files; Linux)."""
    try:
        fds = list(Path(f"/proc/{worker.pid}/fd").iterdir())
    except OSError:
        return None
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.endswith("requests.csv"):
            return Path(target)
    return None


def _has_records_of(cluster: Cluster, worker: subprocess.Popen) -> bool:
    """The master's requests.csv (it grows during the run) holds records of ``worker`` (request ids in its own log)."""
    log = _worker_log(worker)
    if log is None or not log.exists():
        return False
    with log.open(newline="") as f:
        own = {r["request_id"] for r in csv.DictReader(f)}
    try:
        rows = cluster.master_rows()
    except (AssertionError, FileNotFoundError):  # no run folder yet
        return False
    return any(r["request_id"] in own for r in rows)


def _assert_exact(cluster: Cluster, mock) -> dict:
    summary = cluster.summary()
    master = cluster.master_rows()
    workers = cluster.worker_rows()
    sent = mock.sent()
    assert len(master) == len(workers) == len(sent) > 0
    assert sorted(r["request_id"] for r in master) == sorted(r["request_id"] for r in workers)
    assert {s["request_id"] for s in sent} == {r["request_id"] for r in master}
    done = [r for r in workers if r["status"] != "cancelled"]
    assert summary["overall"]["requests"] == len(done)
    ok = [float(r["ttft_ms"]) for r in workers if r["status"] == "ok"]
    for p in (50, 90, 95, 99):
        assert summary["overall"]["ttft_ms"][f"p{p}"] == pytest.approx(np.percentile(ok, p), abs=1e-5)
    per_worker = summary["run"]["workers"]
    assert sum(w["records"] for w in per_worker.values()) == len(master)
    return summary


def test_master_and_three_workers_headless_run_time(tmp_path, mock_server):
    mock = mock_server("--ttft-ms", "10", "--itl-ms", "2", "--output-tokens", "10")
    cluster = Cluster(tmp_path, mock.url, workers=3, run_time="10s")  # about -t itself: room for a busy machine
    try:
        assert cluster.wait() == 0, cluster.log[-3000:]
    finally:
        cluster.kill_all()
    summary = _assert_exact(cluster, mock)
    assert summary["run"]["complete"] is True
    assert len(summary["run"]["workers"]) == 3
    assert all(w["complete"] and w["records"] == w["final_count"] for w in summary["run"]["workers"].values())
    assert summary["run"]["users"] == 6


def test_ctrl_c_on_the_master_still_collects_everything(tmp_path, mock_server):
    mock = mock_server("--ttft-ms", "10", "--itl-ms", "2", "--output-tokens", "10")
    cluster = Cluster(tmp_path, mock.url, workers=2, run_time="300s", users=4)
    try:
        wait_for(lambda: len(mock.sent()) >= 20, 120, "requests")
        cluster.master.send_signal(signal.SIGINT)
        cluster.wait()
    finally:
        cluster.kill_all()
    summary = _assert_exact(cluster, mock)
    assert summary["run"]["complete"] is True


def test_a_worker_killed_mid_run_is_reported_and_the_run_goes_on(tmp_path, mock_server):
    mock = mock_server("--ttft-ms", "10", "--itl-ms", "2", "--output-tokens", "10")
    cluster = Cluster(tmp_path, mock.url, workers=3, run_time="300s")
    try:
        victim = cluster.workers[0]
        wait_for(lambda: _has_records_of(cluster, victim), 120, "a report from the victim at the master")
        victim.kill()
        sent = len(mock.sent())
        wait_for(lambda: len(mock.sent()) >= sent + 20, 120, "requests after the kill")  # the run goes on
        cluster.master.send_signal(signal.SIGINT)
        code = cluster.wait()
    finally:
        cluster.kill_all()
    assert code == 3, f"an incomplete report exits with code 3, got {code}\n" + cluster.log[-3000:]
    summary = cluster.summary()
    run = summary["run"]
    assert run["complete"] is False
    lost = [cid for cid, w in run["workers"].items() if not w["complete"]]
    assert len(lost) == 1 and run["workers"][lost[0]]["final_count"] is None
    assert run["workers"][lost[0]]["records"] > 0, "its records up to its last report are kept"
    assert any(lost[0] in reason for reason in run["incomplete_reasons"])
    # everything the master holds is accounted for, worker by worker
    assert sum(w["records"] for w in run["workers"].values()) == len(cluster.master_rows())
    survivors = [w for cid, w in run["workers"].items() if cid not in lost]
    assert len(survivors) == 2 and all(w["records"] == w["final_count"] for w in survivors)
    assert "Run incomplete" in cluster.log
    assert "INCOMPLETE" in (cluster.run_folder() / "summary.txt").read_text()


def test_processes_mode(tmp_path, mock_server, locust_run):
    mock = mock_server("--ttft-ms", "10", "--itl-ms", "2", "--output-tokens", "10")
    port = str(free_port())  # not Locust's default 5557: other runs may be using it
    run = locust_run("--processes", "2", "--master-bind-port", port, "--master-port", port,
                     "-u", "4", "-r", "4", "-t", "10s", "-H", mock.url, "--model", "m",
                     "--prompt-file", "tests/data/prompts_small.yaml", json_stats=False)
    assert run.returncode == 0, run.stderr[-3000:]
    runs = [p for p in run.report_dir.iterdir() if p.name != "workers"]
    summary = json.loads((runs[0] / "summary.json").read_text())
    rows = (runs[0] / "requests.csv").read_text().splitlines()[1:]
    assert len(rows) == len(mock.sent()) > 0
    assert summary["run"]["complete"] is True and len(summary["run"]["workers"]) == 2


LATE_USER_LOCUSTFILE = '''
from locust import events

from llm_locust.locustfile import *  # noqa: F401,F403


@events.test_stop.add_listener  # after llm-locust's own: the worker's books are closed
def _a_late_spawn(environment, **_):
    """What a spawn message still on its way does when it reaches a worker that has just quit by itself."""
    if environment.parsed_options.worker:
        environment.runner.spawn_users({"LLMUser": 1}, wait=False)
'''


def test_a_user_spawned_after_a_worker_stopped_sends_nothing_and_breaks_nothing(tmp_path, mock_server):
    """A worker quits by itself when its share of --max-requests is done, while the master may still be spawning:
    a user created after the stop (here forced at the worker's test_stop) sends nothing, raises nothing, and the
    books stay whole (it raised "llm-locust is not set up" in the user's constructor, exit code 2)."""
    mock = mock_server("--ttft-ms", "2", "--itl-ms", "1", "--output-tokens", "4")
    locustfile = tmp_path / "late_user.py"
    locustfile.write_text(LATE_USER_LOCUSTFILE)
    port = str(free_port())
    common = [sys.executable, "-m", "locust", "-f", str(locustfile), "--prompt-file", "tests/data/prompts_small.yaml"]
    logs = [tmp_path / name for name in ("m.log", "w0.log", "w1.log")]
    procs = [subprocess.Popen(
        [*common, "--master", "--headless", "--master-bind-host", "127.0.0.1", "--master-bind-port", port,
         "--expect-workers", "2", "-u", "2", "-r", "2", "-t", "60s", "-H", mock.url, "--model", "m",
         "--max-requests", "3", "--report-dir", str(tmp_path / "reports")],  # 3 per worker
        cwd=ROOT, stdout=logs[0].open("w"), stderr=subprocess.STDOUT)]
    procs += [subprocess.Popen([*common, "--worker", "--master-host", "127.0.0.1", "--master-port", port], cwd=ROOT,
                               stdout=log.open("w"), stderr=subprocess.STDOUT) for log in logs[1:]]
    try:
        codes = [p.wait(timeout=90) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    text = [log.read_text() for log in logs]
    assert codes == [0, 0, 0] and not [t for t in text if "Traceback" in t], "\n".join(t[-2000:] for t in text)
    folder = next(p for p in (tmp_path / "reports").iterdir() if p.is_dir() and p.name != "workers")
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["run"]["complete"] is True and summary["overall"]["requests"] == 6 == len(mock.sent())
