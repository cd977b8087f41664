"""No key ever leaves the process: a canary key given by flag, environment or ``.env`` is absent from every byte the
web UI serves, every file a run writes, the process output, and the options a worker receives from its master.

The mock server is started with ``--api-key CANARY``: it answers 401 to a request without the key, so a run whose
requests all succeed proves that the key was sent, while it shows up nowhere else."""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import requests

from llm_locust.protocols import get_protocol
from llm_locust.run import Target
from llm_locust.targets import TargetSpec
from tests.conftest import ROOT, free_port, wait_for

CANARY = "sk-canary-0123456789abcdefCANARY"
CF_CANARY = "cf-canary-token-CFCANARY"
MARKS = ("CANARY",)  # every canary holds it; redaction keeps at most the first characters of a key-shaped string

#: every page, JSON endpoint and download of the web UI (Locust's and the LLM tab's)
GET_ROUTES = (
    "/", "/stats/requests", "/stats/report", "/stats/report?download=1&theme=light", "/stats/requests/csv",
    "/stats/requests_full_history/csv", "/stats/failures/csv", "/exceptions", "/exceptions/csv", "/tasks", "/logs",
    "/worker-count", "/llm/stats.json", "/llm/charts", "/llm/charts.js", "/llm/tab.js", "/llm/summary.csv",
    "/llm/summary.json", "/llm/requests.csv",
)


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_TOKEN"))}
    return {**env, **extra}


def _leaks(data: bytes | str, where: str) -> list[str]:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return [f"{where}: {mark}" for mark in MARKS if mark in text]


def _files_leaks(folder: Path, skip: tuple[Path, ...] = ()) -> list[str]:
    out = []
    for p in folder.rglob("*"):
        if p.is_file() and p not in skip:
            out += _leaks(p.read_bytes(), str(p))
    return out


def _get(url: str) -> requests.Response | None:
    try:
        return requests.get(url, timeout=5)
    except requests.RequestException:
        return None


def _rows(folder: Path, header: bool = False) -> list[str]:
    files = sorted(folder.glob("*/requests.csv")) if folder.exists() else []
    return files[0].read_text().splitlines()[0 if header else 1 :] if files else []


@pytest.mark.parametrize("source", ["flag", "env"])
def test_the_web_ui_never_serves_the_key(source: str, tmp_path: Path, mock_server):
    mock = mock_server("--api-key", CANARY, "--ttft-ms", "2", "--itl-ms", "1", "--output-tokens", "4")
    port = free_port()
    reports, log = tmp_path / "reports", tmp_path / "locust.log"
    flag = ["--api-key", CANARY] if source == "flag" else []
    env = _clean_env(CF_AIG_TOKEN=CF_CANARY, **({"OPENAI_API_KEY": CANARY} if source == "env" else {}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", str(ROOT / "locustfile.py"), "--web-host", "127.0.0.1",
         "--web-port", str(port), "--report-dir", str(reports), "--logfile", str(log), "--loglevel", "DEBUG",
         "--prompt-file", "tests/data/prompts_small.yaml", "-H", mock.url, "--model", "m", *flag],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )
    base = f"http://127.0.0.1:{port}"
    leaks: list[str] = []
    try:
        page = wait_for(lambda: (r := _get(base + "/")) is not None and r.status_code == 200 and r, 30, "the web UI")
        leaks += _leaks(page.content, "/ before the start")
        assert "api_key" in page.text  # the field is there, masked and empty
        # the browser sends the masked field empty: the key the process was started with is kept
        form = {"user_count": "1", "spawn_rate": "1", "host": mock.url, "model": "m", "api_key": ""}
        r = requests.post(base + "/swarm", data=form, timeout=10)
        assert r.status_code == 200 and r.json()["success"], r.text
        leaks += _leaks(r.content, "/swarm")
        wait_for(lambda: len(_rows(reports)) >= 3, 30, "requests of the run")
        for route in GET_ROUTES:
            resp = _get(base + route)
            assert resp is not None, route
            leaks += _leaks(resp.content, route) + _leaks(str(dict(resp.headers)), route + " headers")
        requests.post(base + "/stop", timeout=10)
        wait_for(lambda: list(reports.glob("*/summary.json")), 30, "the reports")
        for route in ("/llm/summary.json", "/llm/requests.csv", "/stats/report?download=1"):
            resp = _get(base + route)
            assert resp is not None
            leaks += _leaks(resp.content, route + " after the stop")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    statuses = [row["status"] for row in csv.DictReader(io.StringIO("\n".join(_rows(reports, header=True))))]
    assert statuses.count("ok") >= 3 and set(statuses) <= {"ok", "cancelled"}, statuses  # the mock checks the key
    leaks += _leaks(out, "stdout") + _leaks(err, "stderr") + _files_leaks(tmp_path, skip=(mock.send_log,))
    assert log.exists() and not leaks, leaks


def test_a_key_from_dotenv_reaches_the_server_and_nothing_else(tmp_path: Path, mock_server):
    mock = mock_server("--api-key", CANARY, "--ttft-ms", "2", "--itl-ms", "1", "--output-tokens", "4")
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"OPENAI_API_KEY={CANARY}\nCF_AIG_TOKEN={CF_CANARY}\n")
    (tmp_path / "prompts.yaml").write_text((ROOT / "tests/data/prompts_small.yaml").read_text())
    run = subprocess.run(
        [sys.executable, "-m", "llm_locust", "--report-dir", str(tmp_path / "reports"), "--endpoint",
         f"{mock.url}/v1", "--model", "gpt-4o"],
        cwd=tmp_path, capture_output=True, timeout=120, env=_clean_env(PYTHONPATH=str(ROOT)),
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert len(mock.sent()) == 2 and all(s["status"] == 200 for s in mock.sent())  # the key from .env was sent
    leaks = _leaks(run.stdout, "stdout") + _leaks(run.stderr, "stderr")
    leaks += _files_leaks(tmp_path, skip=(dotenv, mock.send_log))
    assert not leaks, leaks


def test_a_worker_never_receives_the_masters_key(tmp_path: Path, mock_server):
    """The options a worker gets from its master (Locust's spawn message) hold no key: the worker's own key is used."""
    mock = mock_server("--api-key", CANARY, "--ttft-ms", "2", "--itl-ms", "1", "--output-tokens", "4")
    seen = tmp_path / "worker-options.txt"
    locustfile = tmp_path / "locustfile.py"
    locustfile.write_text(
        textwrap.dedent(f"""
        from locust import events
        from locust.runners import WorkerRunner
        from llm_locust.locustfile import LLMUser  # noqa: F401

        @events.test_start.add_listener
        def dump(environment, **_):
            if isinstance(environment.runner, WorkerRunner):
                with open({str(seen)!r}, "a") as f:
                    f.write(repr(vars(environment.parsed_options)) + "\\n")
    """)
    )
    port = free_port()
    common = ["-f", str(locustfile), "--prompt-file", str(ROOT / "tests/data/prompts_small.yaml")]
    master = subprocess.Popen(
        [sys.executable, "-m", "locust", *common, "--master", "--master-bind-host", "127.0.0.1",
         "--master-bind-port", str(port), "--headless", "-u", "1", "-r", "1", "--expect-workers", "1",
         "-H", mock.url, "--model", "m", "--api-key", CANARY, "--max-requests", "3",
         "--report-dir", str(tmp_path / "reports")],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_clean_env(PYTHONPATH=str(ROOT)),
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "locust", *common, "--worker", "--master-host", "127.0.0.1", "--master-port",
         str(port), "--report-dir", str(tmp_path / "worker-reports")],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=_clean_env(PYTHONPATH=str(ROOT), OPENAI_API_KEY=CANARY),
    )
    try:
        m_out, m_err = master.communicate(timeout=90)
        w_out, w_err = worker.communicate(timeout=30)
    finally:
        for p in (master, worker):
            if p.poll() is None:
                p.kill()
    assert master.returncode == 0, m_err.decode()[-3000:]
    assert seen.exists(), w_err.decode()[-3000:]
    assert "api_key': None" in seen.read_text()
    assert all(s["status"] == 200 for s in mock.sent()) and len(mock.sent()) == 3  # the worker's own key was used
    leaks = _leaks(seen.read_text(), "worker options") + _leaks(m_out + m_err, "master output")
    leaks += _files_leaks(tmp_path / "reports")
    assert not leaks, leaks


def test_every_credential_a_target_sends_is_a_secret(monkeypatch):
    monkeypatch.setenv("CF_AIG_TOKEN", CF_CANARY)
    spec = TargetSpec(name="t", api="openai-chat", host="http://127.0.0.1:1", model="m")
    target = Target(spec, api_key=CANARY, price_file=None, continuous_usage=False)
    assert CANARY in target.secrets and f"Bearer {CANARY}" in target.secrets
    proto = get_protocol("anthropic")("http://127.0.0.1:1", "m")
    assert proto.secrets(CANARY) == (CANARY,)
    # a Cloudflare AI Gateway target also sends the gateway's token (no request is made here)
    gw = TargetSpec(name="g", api="openai-chat", host="https://gateway.ai.cloudflare.com/v1/acct/gw/openai", model="m")
    assert CF_CANARY in Target(gw, api_key=None, price_file=None, continuous_usage=False).secrets
