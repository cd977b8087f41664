"""A run's lifecycle: ``-t`` counts from when the load starts, workers stop when their master is gone, and the
documented ``docker compose`` commands (run here as plain processes, from the compose file itself) complete.

Real `locust` processes and a real mock server on 127.0.0.1, each bounded by a timeout."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.conftest import ROOT, free_port, wait_for

#: a locustfile whose start-up is slow: CPU-bound work (the loop cannot run) at init and at test start
SLOW_LOCUSTFILE = """
import time
from locust import events
from llm_locust.locustfile import LLMUser  # noqa: F401

def busy(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass

@events.init.add_listener
def slow_init(**_):
    busy({init})

@events.test_start.add_listener
def slow_start(**_):
    busy({start})
"""


def _span_s(folder: Path) -> float:
    """First request's send to the last request's end, in seconds (monotonic clock)."""
    with (folder / "requests.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows
    starts = [int(r["t0_ns"]) for r in rows]
    ends = [int(r["t0_ns"]) + float(r["elapsed_ms"]) * 1e6 for r in rows]
    return (max(ends) - min(starts)) / 1e9


def test_run_time_counts_from_when_the_load_starts(tmp_path: Path, mock_server, locust_run):
    mock = mock_server("--ttft-ms", "5", "--itl-ms", "1", "--output-tokens", "4")
    locustfile = tmp_path / "slow_locustfile.py"
    locustfile.write_text(SLOW_LOCUSTFILE.format(init=1.5, start=2.0))
    r = locust_run("-f", str(locustfile), "-u", "1", "-r", "1", "-t", "3s", "-H", mock.url, "--model", "m",
                   "--prompt-file", "tests/data/prompts_small.yaml", timeout=60)
    assert r.returncode == 0, r.stderr[-3000:]
    # Locust's own timer, armed before test start, would have left about 1 s of load after the 2 s set-up
    assert 2.5 <= _span_s(r.folder) <= 5.0


def _locust(*args: str, log: Path, env: dict | None = None, cwd: Path = ROOT) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "locust", *args], cwd=cwd, stdout=log.open("w"), stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )


def test_a_worker_whose_master_is_killed_exits_within_10_s(tmp_path: Path, mock_server):
    mock = mock_server("--ttft-ms", "5", "--itl-ms", "1", "--output-tokens", "4")
    port = free_port()
    common = ["-f", str(ROOT / "locustfile.py"), "--prompt-file", "tests/data/prompts_small.yaml"]
    master = _locust(*common, "--master", "--headless", "--master-bind-host", "127.0.0.1", "--master-bind-port",
                     str(port), "--expect-workers", "1", "-u", "2", "-r", "2", "-t", "120s", "-H", mock.url,
                     "--model", "m", "--report-dir", str(tmp_path / "reports"),
                     log=tmp_path / "master.log")
    worker = _locust(*common, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port),
                     "--report-dir", str(tmp_path / "reports"), log=tmp_path / "worker.log")
    try:
        wait_for(lambda: len(mock.sent()) >= 3, 90, "the worker's requests")
        master.kill()  # SIGKILL: no goodbye to the workers
        master.wait(timeout=10)
        killed_at = time.monotonic()
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            raise AssertionError("the worker still runs 10 s after its master was killed") from None
        waited = time.monotonic() - killed_at
        sent_at_exit = len(mock.sent())
        time.sleep(0.5)
        assert len(mock.sent()) == sent_at_exit, "no more load once the worker is gone"
    finally:
        for p in (master, worker):
            if p.poll() is None:
                p.kill()
    assert waited < 10
    assert "No heartbeat from the master" in (tmp_path / "worker.log").read_text()


# ---------------------------------------------------------------- the compose file's commands as plain processes

_VAR = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def _expand(value: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}`` / ``${VAR:-default}`` substitution."""
    return _VAR.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), value)


def test_the_compose_headless_command_runs_master_and_workers(tmp_path: Path):
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    header = (ROOT / "docker-compose.yml").read_text()
    # the documented headless command starts every service (not the master alone, which would wait forever)
    headless = [line for line in header.splitlines() if "docker compose up" in line and "--exit-code-from" in line]
    assert headless and not re.search(r"--exit-code-from master\s+\w", headless[0]), headless
    entrypoint = re.search(r'ENTRYPOINT \["locust", "-f", "([^"]+)"\]', (ROOT / "Dockerfile").read_text())
    assert entrypoint and entrypoint.group(1).endswith("/locustfile.py")
    workers = 2
    shell = {  # the documented headless variables: a run bounded by 3 requests per worker (-t only as a backstop)
        "LOCUST_HEADLESS": "true", "LOCUST_EXPECT_WORKERS": str(workers), "LOCUST_USERS": "4",
        "LOCUST_SPAWN_RATE": "4", "LOCUST_RUN_TIME": "90s",
    }
    mock_port, master_port = free_port(), free_port()
    mock_url = f"http://127.0.0.1:{mock_port}"
    # the mock service: its entrypoint and command, on loopback and a free port instead of 0.0.0.0:8000
    mock_cmd = [*services["mock"]["entrypoint"], *services["mock"]["command"]]
    mock_cmd = [{"0.0.0.0": "127.0.0.1", "8000": str(mock_port)}.get(a, a) for a in mock_cmd]
    assert mock_cmd[:3] == ["python", "-m", "llm_locust.mockserver"]
    send_log = tmp_path / "sendlog.jsonl"
    mock = subprocess.Popen(
        [
            sys.executable,
            *mock_cmd[1:],
            "--send-log",
            str(send_log),
            "--ttft-ms",
            "5",
            "--itl-ms",
            "1",
            "--output-tokens",
            "8",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # the later flags win: a fast mock
    reports = tmp_path / "reports"

    def service_cmd(name: str) -> list[str]:
        args = [_expand(a, shell) for a in services[name]["command"]]
        args = [a.replace("http://mock:8000", mock_url).replace("/opt/llm-locust/reports", str(reports)) for a in args]
        return ["-f", str(ROOT / "locustfile.py"), "--prompt-file", str(ROOT / "prompts.yaml"), *args]

    master_cmd = service_cmd("master") + ["--master-bind-host", "127.0.0.1", "--master-bind-port", str(master_port)]
    master_env = {k: shell[k] for k in services["master"]["environment"] if k in shell}
    assert set(master_env) == set(shell), "the compose file passes every documented variable to the master"
    master_env["LLM_MAX_REQUESTS"] = "3"  # sent on to the workers with the master's options
    worker_cmd = [{"master": "127.0.0.1"}.get(a, a) for a in service_cmd("worker")]
    worker_cmd += ["--master-port", str(master_port), "--report-dir", str(tmp_path / "worker-reports")]
    procs = []
    try:
        wait_for(lambda: _up(mock_url), 30, "the mock server")
        master = _locust(*master_cmd, log=tmp_path / "master.log", env=master_env)
        procs = [master] + [_locust(*worker_cmd, log=tmp_path / f"w{i}.log") for i in range(workers)]
        code = master.wait(timeout=120)
        for w in procs[1:]:
            w.wait(timeout=20)
    finally:
        for p in [*procs, mock]:
            if p.poll() is None:
                p.kill()
    log = (tmp_path / "master.log").read_text()
    assert code == 0, log[-3000:]
    folder = next(p for p in reports.iterdir() if p.is_dir() and p.name != "workers")
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["run"]["complete"] is True and len(summary["run"]["workers"]) == workers
    sent = [json.loads(line) for line in send_log.read_text().splitlines()]
    assert summary["overall"]["requests"] == len(sent) == 3 * workers
    assert [w["records"] for w in summary["run"]["workers"].values()] == [3] * workers, "every worker sent its load"


def _up(url: str) -> bool:
    import requests

    try:
        return requests.get(url + "/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


_WATCHDOG = """
import time
import gevent
from llm_locust import plugin

class Runner:
    last_heartbeat_timestamp = 1.0
    quits = 0

    def quit(self):
        self.quits += 1

runner = Runner()
g = gevent.spawn(plugin.watch_master, runner, 0.5, 0.05)
for _ in range(20):  # a heartbeat every 0.1 s keeps it quiet for 2 s
    gevent.sleep(0.1)
    runner.last_heartbeat_timestamp += 1
assert runner.quits == 0 and not g.dead, "quit while heartbeats arrived"
end = time.perf_counter() + 2
while time.perf_counter() < end:  # the loop blocked for 2 s (CPU-bound): counts as at most 2 ticks, not 2 s
    pass
gevent.sleep(0.01)
assert runner.quits == 0 and not g.dead, "a blocked loop was taken for a silent master"
g.join(timeout=10)
assert g.dead and runner.quits == 1, "no quit after 0.5 s of silence"
print("ok")
"""


def test_the_watchdog_counts_only_time_the_worker_could_listen():
    """watch_master with a fake runner, in a subprocess (gevent must not patch the test process)."""
    proc = subprocess.run([sys.executable, "-c", _WATCHDOG], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]
