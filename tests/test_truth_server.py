"""The bench's light ground-truth server (``bench/truth_server.c``, ``measurement_error.py --server truth``).

It stands in for the mock server where the mock's own read wait would count in the whole TTFT error, so it must
answer with the mock's bytes and log what the bench joins on, with the same clock. Built with the machine's C
compiler (skipped without one, or off Linux: it uses epoll and timerfd).
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))

from request_tail import lines_of  # noqa: E402  (the mock's bytes of an n-token answer)

pytestmark = [
    pytest.mark.skipif(sys.platform != "linux", reason="epoll and timerfd are Linux's"),
    pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler"),
]

BANNER = "llm-locust truth server listening on "


@pytest.fixture(scope="module")
def truth_exe(tmp_path_factory) -> Path:
    exe = tmp_path_factory.mktemp("truth") / "truth_server"
    subprocess.run(["cc", "-O2", "-Wall", "-Werror", "-o", str(exe), str(ROOT / "bench" / "truth_server.c")],
                   check=True)
    return exe


def _start(exe: Path, log: Path, *args: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([str(exe), "--host", "127.0.0.1", "--port", "0", "--send-log", str(log), *args],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith(BANNER), line
    return proc, line[len(BANNER):].strip()


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0


def _request(sock: socket.socket, request_id: str, path: str = "/v1/chat/completions") -> bytes:
    body = b'{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}'
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Request-Id: {request_id}"
                 f"\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    data = b""
    end = b"0\r\n\r\n" if path == "/v1/chat/completions" else b'{"error":"not found"}'
    while not data.endswith(end):
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    return data


def _dechunk(data: bytes) -> bytes:
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"Transfer-Encoding: chunked" in head
    body = b""
    while True:
        size, _, rest = rest.partition(b"\r\n")
        n = int(size, 16)
        if n == 0:
            return body
        body, rest = body + rest[:n], rest[n + 2:]


def test_it_streams_the_mock_servers_bytes_on_its_schedule_and_logs_it(truth_exe, tmp_path):
    """Two answers on one keep-alive connection: each body is the mock's OpenAI chat stream, byte for byte (its
    request number in the id), the 404 of another path keeps the connection, and the send log has the times the
    bench joins on: body read, first and last token, one per token, on its schedule, on perf_counter_ns's clock."""
    log = tmp_path / "send.jsonl"
    proc, url = _start(truth_exe, log, "--ttft-ms", "20", "--itl-ms", "5", "--output-tokens", "3")
    host, port = url.removeprefix("http://").split(":")
    try:
        with socket.create_connection((host, int(port))) as sock:
            t_before = time.perf_counter_ns()
            first = _request(sock, "a")
            assert b"404 Not Found" in _request(sock, "b", "/metrics")
            second = _request(sock, "c")
            t_after = time.perf_counter_ns()
    finally:
        _stop(proc)
    expected = b"".join(lines_of(3))
    assert _dechunk(first) == expected
    assert _dechunk(second) == expected.replace(b"chatcmpl-mock1", b"chatcmpl-mock2")
    sends = [json.loads(line) for line in log.read_text().splitlines()]
    assert [s["request_id"] for s in sends] == ["a", "c"]
    for s in sends:
        assert t_before < s["t_arrive_ns"] <= s["t_recv_ns"] < s["t_first_token_ns"] < t_after
        times = s["token_send_ns"]
        assert len(times) == s["tokens"] == s["chunks"] == 3 and not s["aborted"]
        assert times[0] == s["t_first_token_ns"] and times[-1] == s["t_last_token_ns"]
        # on the schedule: token k not before TTFT + k ITL after the body was read
        assert all(t - s["t_recv_ns"] >= 20_000_000 + k * 5_000_000 for k, t in enumerate(times))


def test_a_real_locust_run_against_it_books_every_request_with_its_tokens(truth_exe, tmp_path, locust_run):
    """The full profile reads its stream as the mock's: 6 requests, all ok with 4 server-counted tokens, each
    first token noticed after the server wrote it (the client's t0 + TTFT against its log)."""
    log = tmp_path / "send.jsonl"
    proc, url = _start(truth_exe, log, "--ttft-ms", "5", "--itl-ms", "1", "--output-tokens", "4")
    try:
        run = locust_run("-u", "2", "-r", "2", "-H", url, "--model", "m", "--max-requests", "6",
                         "--prompt-file", "tests/data/prompts_small.yaml", timeout=60)
    finally:
        _stop(proc)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = run.requests()
    assert len(rows) == 6 and {r["status"] for r in rows} == {"ok"}
    assert {r["output_tokens"] for r in rows} == {"4"} and {r["output_tokens_source"] for r in rows} == {"server"}
    sent = {s["request_id"]: s for s in map(json.loads, log.read_text().splitlines())}
    for r in rows:
        s = sent[r["request_id"]]
        first = int(r["t0_ns"]) + float(r["ttft_ms"]) * 1e6
        assert first - s["t_first_token_ns"] >= -10_000, (r, s)  # to the CSV's rounding
