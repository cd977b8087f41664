"""Faults become classified failures, the run goes on, and no request is lost from the books.

A real mock server injects each fault on every third request (``--fault-every 3``), so the expected number of
failures is exact; a real `locust` process runs against it.
"""

from __future__ import annotations

import socket

import pytest

from tests.test_profile import _check_books

FAULTS = [
    # (fault, api, error_class, http_status)
    ("status-401", "openai-chat", "auth", "401"),
    ("status-403", "ollama-chat", "auth", "403"),
    ("status-404", "ollama-generate", "not_found", "404"),
    ("status-429", "openai-chat", "rate_limit", "429"),
    ("status-500", "openai-completions", "server_error", "500"),
    ("status-503", "openai-chat", "overloaded", "503"),
    ("midstream-error", "openai-chat", "stream_error", "200"),
    ("midstream-error", "ollama-chat", "stream_error", "200"),
    ("malformed", "openai-chat", "malformed_chunk", "200"),
    ("disconnect", "openai-chat", "incomplete_stream", "200"),
    ("disconnect", "ollama-generate", "incomplete_stream", "200"),
]


@pytest.mark.parametrize(("fault", "api", "error_class", "status"), FAULTS)
def test_fault_is_classified_and_counted(fault, api, error_class, status, mock_server, locust_run):
    mock = mock_server("--ttft-ms", "5", "--itl-ms", "1", "--output-tokens", "8", "--fault", fault,
                       "--fault-every", "3", "--retry-after", "7")
    # --no-backoff: the classification is the subject here (backoff after each class: tests/test_backoff.py)
    run = locust_run("-u", "2", "-r", "2", "--max-requests", "9", "-H", mock.url, "--model", "m", "--llm-api", api,
                     "--prompt-file", "tests/data/prompts_small.yaml", "--no-backoff")
    assert run.returncode == 1, "failures give Locust's usual exit code 1"
    assert "Traceback" not in run.stderr
    rows = _check_books(run, mock)
    sent = {s["request_id"]: s for s in mock.sent()}
    done = [r for r in rows if r["status"] != "cancelled"]
    failed = [r for r in done if r["status"] == "failed"]
    faulted = [r for r in done if sent[r["request_id"]]["fault"]]
    assert len(done) == 9 and len(failed) == 3
    assert {r["request_id"] for r in failed} == {r["request_id"] for r in faulted}
    for r in failed:
        assert r["error_class"] == error_class, r["error"]
        assert r["http_status"] == status
        assert "\n" not in r["error"] and r["error"].startswith(error_class)
    if fault == "status-429":
        assert {r["retry_after_s"] for r in failed} == {"7.0"}
    summary = run.summary()
    assert summary["overall"]["failures"] == len(failed)
    assert summary["overall"]["error_classes"] == {error_class: len(failed)}
    # successes around the failures are measured as usual
    assert all(int(r["output_tokens"]) == 8 for r in done if r["status"] == "ok")


def test_timeout_is_a_classified_failure(mock_server, locust_run):
    mock = mock_server("--ttft-ms", "5", "--itl-ms", "1", "--output-tokens", "4", "--fault", "hang",
                       "--fault-every", "2")
    run = locust_run("-u", "1", "-r", "1", "--max-requests", "4", "-H", mock.url, "--model", "m", "--timeout", "0.5",
                     "--prompt-file", "tests/data/prompts_small.yaml")
    rows = _check_books(run, mock)
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 2 and {r["error_class"] for r in failed} == {"timeout"}
    assert all(450 < float(r["elapsed_ms"]) < 2000 for r in failed)


def test_connection_refused_is_classified(locust_run):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = locust_run("-u", "1", "-r", "1", "--max-requests", "2", "-H", f"http://127.0.0.1:{port}", "--model", "m",
                     "--prompt-file", "tests/data/prompts_small.yaml")
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    rows = run.requests()
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 2 and {r["error_class"] for r in failed} == {"connection"}
    assert "connection refused" in failed[0]["error"]
    assert run.locust_stats()["Aggregated"]["num_failures"] == len(failed)


def test_api_key_never_reaches_reports_or_logs(mock_server, locust_run):
    key = "sk-test-SECRETSECRETSECRET1234567890"
    mock = mock_server("--ttft-ms", "5", "--itl-ms", "1", "--output-tokens", "4", "--fault", "status-401",
                       "--fault-every", "2")
    run = locust_run("-u", "1", "-r", "1", "--max-requests", "2", "-H", mock.url, "--model", "m", "--api-key", key,
                     "--prompt-file", "tests/data/prompts_small.yaml")
    assert run.returncode == 1
    texts = [run.stdout, run.stderr] + [p.read_text() for p in run.folder.iterdir()]
    assert not any("SECRETSECRET" in t for t in texts)
