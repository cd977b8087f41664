"""Backoff: the policy (llm_locust.backoff) per error class, and real `locust` runs against faulty servers.

The runs are bounded by ``--max-requests``; they check behaviour from the server's side (the mock's send log) or
by counting requests, never our own speed."""

from __future__ import annotations

import socket

import pytest

from llm_locust import backoff
from llm_locust.backoff import OFF, Backoff, Policy, wait_after


def outcome(status: str = "failed", error_class: str | None = "bad_request", http_status: int | None = 400,
            retry_after_s: float | None = None, elapsed_ms: float = 2.0) -> dict:
    return {"status": status, "error_class": error_class, "http_status": http_status,
            "retry_after_s": retry_after_s, "elapsed_ms": elapsed_ms}


OK = outcome("ok", None, 200, None, 500.0)
REFUSED = outcome(error_class="connection", http_status=None, elapsed_ms=0.5)


@pytest.mark.parametrize(
    ("case", "wait"),
    [
        (outcome(error_class="rate_limit", http_status=429, retry_after_s=2.0), 2.0),
        (outcome(error_class="overloaded", http_status=503, retry_after_s=7.5), 7.5),
        (outcome(error_class="overloaded", http_status=529, retry_after_s=0.0), backoff.BASE_S),  # "0": no hammering
        (outcome(error_class="rate_limit", http_status=429, retry_after_s=3600.0), 60.0),  # capped
        (outcome(error_class="rate_limit", http_status=429, elapsed_ms=3.0), backoff.BASE_S),  # no hint: exponential
        (REFUSED, backoff.BASE_S),
        (outcome(error_class="not_found", http_status=404), backoff.BASE_S),
        (outcome(error_class="server_error", http_status=500, elapsed_ms=5000.0), 0.0),  # slow: paced itself
        (outcome(error_class="incomplete_stream", http_status=None, elapsed_ms=5000.0), backoff.BASE_S),
        (outcome(error_class="timeout", http_status=None, elapsed_ms=120_000.0), 0.0),
        (outcome("cancelled", "cancelled", None), 0.0),
        (OK, 0.0),
    ],
)
def test_the_wait_after_each_kind_of_outcome(case, wait):
    assert wait_after(Policy(), case)[0] == pytest.approx(wait)


def test_quick_failures_double_up_to_the_cap_and_a_success_resets_them():
    b = Backoff(Policy())
    waits = [b.after(REFUSED) for _ in range(10)]
    assert waits[:4] == pytest.approx([0.1, 0.2, 0.4, 0.8])
    assert max(waits) == backoff.MAX_S and waits[-1] == backoff.MAX_S
    hinted = b.after(outcome(error_class="rate_limit", http_status=429, retry_after_s=1.0))
    assert hinted == 1.0 and b.streak == 10  # a hint neither advances nor resets the streak
    assert b.after(OK) == 0.0 and b.streak == 0
    assert b.after(REFUSED) == pytest.approx(0.1)


def test_the_wait_is_taken_once_and_the_cap_and_off_switch_apply():
    b = Backoff(Policy(max_retry_after_s=1.5))
    assert b.after(outcome(error_class="rate_limit", http_status=429, retry_after_s=2.0)) == 1.5
    assert b.take() == 1.5 and b.take() == 0.0
    assert wait_after(OFF, REFUSED) == (0.0, 0)
    assert wait_after(OFF, outcome(error_class="rate_limit", http_status=429, retry_after_s=2.0))[0] == 0.0


def _starts_s(mock) -> list[float]:  # noqa: ANN001
    return sorted(r["t_recv_ns"] / 1e9 for r in mock.sent())


def test_a_429_with_retry_after_2_gets_one_request_per_2_s_per_user(mock_server, locust_run):
    mock = mock_server("--fault", "status-429", "--retry-after", "2", "--ttft-ms", "1")
    r = locust_run("-u", "1", "-r", "1", "-H", mock.url, "--model", "m", "--max-requests", "3", timeout=60)
    assert r.returncode in (0, 1), r.stderr[-3000:]
    starts = _starts_s(mock)
    assert len(starts) == 3
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert all(g >= 1.9 for g in gaps), gaps
    rows = r.requests()
    assert [float(row["backoff_s"]) for row in rows] == [2.0, 2.0, 2.0]
    b = r.summary()["overall"]["backoff_s"]
    assert b["total"] == pytest.approx(6.0) and b["share"] > 0
    assert "backing off" in r.stdout + r.stderr


def test_no_backoff_sends_the_next_request_at_once(mock_server, locust_run):
    mock = mock_server("--fault", "status-429", "--retry-after", "2", "--ttft-ms", "1")
    r = locust_run(
        "-u", "1", "-r", "1", "-H", mock.url, "--model", "m", "--max-requests", "3", "--no-backoff", timeout=60
    )
    assert r.returncode in (0, 1), r.stderr[-3000:]
    starts = _starts_s(mock)
    assert len(starts) == 3 and starts[-1] - starts[0] < 1.9  # three requests inside one Retry-After
    assert {row["backoff_s"] for row in r.requests()} == {"0.0"}
    assert r.summary()["overall"]["backoff_s"] == {"total": 0.0, "share": 0.0}


def _refused_url() -> str:
    with socket.socket() as s:  # a port nobody listens on (bound, not listening: connections are refused)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_a_refused_endpoint_gets_a_few_requests_per_second_per_user(locust_run):
    # 5 refused connections: 0.1 + 0.2 + 0.4 + 0.8 = 1.5 s of backoff before the 5th (without backoff the 5 take
    # milliseconds: about a thousand requests per second)
    r = locust_run("-u", "1", "-r", "1", "-H", _refused_url(), "--model", "m", "--max-requests", "5", timeout=60)
    assert r.returncode in (0, 1), r.stderr[-3000:]
    rows = r.requests()
    assert len(rows) == 5 and {row["error_class"] for row in rows} == {"connection"}
    waits = [float(row["backoff_s"]) for row in rows]
    assert waits == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6])
    summary = r.summary()
    rate = len(rows) / summary["run"]["duration_s"]
    assert rate < 5, rate  # requests per second for the one user
