"""Runs started and stopped from Locust's web UI (its HTTP API, as the browser uses it): one report per run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import requests

from tests.conftest import ROOT, free_port, wait_for


def test_two_runs_from_the_web_ui_give_two_reports(tmp_path: Path, mock_server):
    mock = mock_server("--ttft-ms", "5", "--itl-ms", "1", "--output-tokens", "20")
    port = free_port()
    reports = tmp_path / "reports"
    proc = subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", str(ROOT / "locustfile.py"), "--web-host", "127.0.0.1",
         "--web-port", str(port), "--report-dir", str(reports), "--prompt-file", "tests/data/prompts_small.yaml"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy(),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _get_ok(base + "/"), 30, "the web UI")
        folders = []
        for run, limit in enumerate(["5", "7"], 1):
            form = {"user_count": "2", "spawn_rate": "2", "host": mock.url, "model": "webui-model",
                    "token_limit": limit, "llm_api": "openai-chat"}
            r = requests.post(base + "/swarm", data=form, timeout=10)
            assert r.status_code == 200 and r.json()["success"], r.text
            wait_for(lambda n=run: _rows_in_run(reports, n) >= 4, 20, "requests of this run")
            requests.post(base + "/stop", timeout=10)
            done = wait_for(lambda n=run: _reports(reports, n), 20, f"report {run}")
            folders = done
            summary = json.loads((folders[-1] / "summary.json").read_text())
            assert summary["run"]["model"] == "webui-model"
            assert summary["run"]["token_limit"] == int(limit)
            rows = (folders[-1] / "requests.csv").read_text().splitlines()[1:]
            assert rows and summary["overall"]["requests"] + summary["overall"]["cancelled"] == len(rows)
            assert summary["overall"]["output_tokens"]["mean"] == int(limit)
        assert len(folders) == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert out.count("LLM summary:") == 2, out + err
    assert "Traceback" not in err


def _get_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _rows_in_run(folder: Path, n: int) -> int:
    runs = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.exists() else []
    if len(runs) < n or not (runs[n - 1] / "requests.csv").exists():
        return 0
    return len((runs[n - 1] / "requests.csv").read_text().splitlines()) - 1


def _reports(folder: Path, n: int) -> list[Path] | None:
    if not folder.exists():
        return None
    done = sorted(p for p in folder.iterdir() if (p / "summary.json").exists())
    return done if len(done) >= n else None
