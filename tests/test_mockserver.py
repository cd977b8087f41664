"""Tests of the embedded mock LLM server (llm_locust.mockserver), over real HTTP on 127.0.0.1.

Most tests talk to the real CLI started with ``start_subprocess``; the rest use ``MockServer`` in
this process (``start(in_thread=True)``, or in this thread's gevent hub). Token counts and
latencies are small so that every test takes well under a second or two.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from llm_locust.mockserver import MockConfig, MockServer, start_subprocess
from llm_locust.mockserver.config import build_parser
from llm_locust.mockserver.faults import FAULT_KINDS
from llm_locust.mockserver.script import WORDS, make_script, token_text

TIKTOKEN_DIR = Path(__file__).resolve().parents[2] / "shared" / "tiktoken"
CHAT = "/v1/chat/completions"
TIMEOUT = 10

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "say some words please"}]
PROMPT_WORDS = 6


# -- helpers -----------------------------------------------------------------------------------------


def words(n: int) -> str:
    return "".join(WORDS[i % len(WORDS)] for i in range(n))


def chat_body(stream: bool = True, **extra: Any) -> dict[str, Any]:
    return {"model": "test-model", "messages": MESSAGES, "stream": stream, **extra}


def sse(url: str, path: str = CHAT, body: dict[str, Any] | None = None, **kw: Any) -> list[Any]:
    """POST and parse an SSE reply: JSON events as dicts, ``"[DONE]"``, ``":<comment>"``, or raw bad lines."""
    with requests.post(url + path, json=body or chat_body(), stream=True, timeout=TIMEOUT, **kw) as r:
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"].startswith("text/event-stream")
        assert r.headers["Transfer-Encoding"] == "chunked"
        return [parse_sse_line(line) for line in r.iter_lines() if line]


def parse_sse_line(line: bytes) -> Any:
    text = line.decode()
    if text.startswith(":"):
        return text
    assert text.startswith("data: "), text
    data = text[len("data: ") :]
    if data == "[DONE]":
        return data
    try:
        return json.loads(data)
    except ValueError:
        return ("bad", data)


def ndjson(url: str, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    with requests.post(url + path, json=body, stream=True, timeout=TIMEOUT) as r:
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"] == "application/x-ndjson"
        return [json.loads(line) for line in r.iter_lines() if line]


def content_of(events: list[Any]) -> str:
    return "".join(
        e["choices"][0]["delta"].get("content") or ""
        for e in events
        if isinstance(e, dict) and e.get("choices") and "delta" in e["choices"][0]
    )


def read_log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The real CLI in a child process: ttft 20 ms, itl 2 ms, 12 tokens, with a send log."""
    log = tmp_path_factory.mktemp("mock") / "sends.jsonl"
    args = ["--ttft-ms", "20", "--itl-ms", "2", "--output-tokens", "12", "--send-log", str(log)]
    proc, url = start_subprocess(args, timeout=TIMEOUT)
    try:
        yield url, log
    finally:
        proc.terminate()
        assert proc.wait(timeout=TIMEOUT) == 0


def mock(**cfg: Any) -> MockServer:
    """An in-process server in its own thread (use as a context manager)."""
    defaults: dict[str, Any] = {"ttft_ms": 5, "itl_ms": 1, "output_tokens": 6}
    return MockServer(MockConfig(**{**defaults, **cfg})).start(in_thread=True)


# -- CLI, routes ------------------------------------------------------------------------------------


def test_cli_banner_health_models_and_unknown_routes(cli: tuple[str, Path]) -> None:
    url, _ = cli
    assert url.startswith("http://127.0.0.1:")
    r = requests.get(url + "/health", timeout=TIMEOUT)
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    models = requests.get(url + "/v1/models", timeout=TIMEOUT).json()
    assert models["object"] == "list" and [m["id"] for m in models["data"]] == ["mock-model"]
    r = requests.post(url + "/v1/nope", json={}, timeout=TIMEOUT)
    assert r.status_code == 404
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    r = requests.get(url + CHAT, timeout=TIMEOUT)
    assert r.status_code == 405 and "error" in r.json()
    r = requests.post(url + CHAT, data=b"{not json", timeout=TIMEOUT)
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


def test_every_config_field_is_a_cli_flag() -> None:
    parser = build_parser()
    dests = {a.dest for a in parser._actions}
    assert set(MockConfig.__dataclass_fields__) <= dests
    cfg = MockConfig(**vars(parser.parse_args(["--ttft-ms", "7.5", "--fault", "hang", "--continuous-usage"])))
    assert cfg.ttft_ms == 7.5 and cfg.fault == "hang" and cfg.continuous_usage and cfg.port == 0
    with pytest.raises(ValueError):
        MockConfig(fault="nonsense")


def test_start_subprocess_reports_failure() -> None:
    with pytest.raises(RuntimeError, match="fault"):
        start_subprocess(["--fault", "nonsense"], timeout=TIMEOUT)


# -- OpenAI wire format -----------------------------------------------------------------------------


def test_openai_chat_stream_format(cli: tuple[str, Path]) -> None:
    url, _ = cli
    events = sse(url)
    role, *content, final, done = events
    assert role["object"] == "chat.completion.chunk" and role["model"] == "test-model"
    assert role["choices"] == [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                                "finish_reason": None}]  # fmt: skip
    assert len(content) == 12
    assert all(e["choices"][0]["delta"].keys() == {"content"} for e in content)
    assert all("usage" not in e for e in events[:-1])  # no usage unless asked
    assert content_of(events) == words(12)
    assert final["choices"][0]["delta"] == {} and final["choices"][0]["finish_reason"] == "stop"
    assert done == "[DONE]"
    assert len({e["id"] for e in events[:-1]}) == 1


def test_openai_usage_chunk_only_when_asked(cli: tuple[str, Path]) -> None:
    url, _ = cli
    events = sse(url, body=chat_body(stream_options={"include_usage": True}, max_tokens=5))
    *chunks, usage, done = events
    assert done == "[DONE]"
    assert all(e["usage"] is None for e in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert usage["choices"] == []
    assert usage["usage"] == {"prompt_tokens": PROMPT_WORDS, "completion_tokens": 5, "total_tokens": PROMPT_WORDS + 5,
                              "completion_tokens_details": {"reasoning_tokens": 0}}  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "n", "finish"),
    [({"max_tokens": 3}, 3, "length"), ({"max_completion_tokens": 4, "max_tokens": 9}, 4, "length"),
     ({"max_tokens": 500}, 12, "stop"), ({}, 12, "stop"), ({"max_tokens": 12}, 12, "length")],
)  # fmt: skip
def test_output_length_honours_max_tokens(cli: tuple[str, Path], extra: dict[str, Any], n: int, finish: str) -> None:
    url, _ = cli
    events = sse(url, body=chat_body(**extra))
    assert content_of(events) == words(n)
    assert events[-2]["choices"][0]["finish_reason"] == finish
    r = requests.post(url + CHAT, json=chat_body(stream=False, **extra), timeout=TIMEOUT)
    body = r.json()
    assert r.status_code == 200 and body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": words(n)}
    assert body["choices"][0]["finish_reason"] == finish
    assert body["usage"]["completion_tokens"] == n and body["usage"]["prompt_tokens"] == PROMPT_WORDS


def test_text_retokenizes_to_exactly_n_tokens(cli: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    if not TIKTOKEN_DIR.is_dir():
        pytest.skip(f"no offline tiktoken files at {TIKTOKEN_DIR}")
    tiktoken = pytest.importorskip("tiktoken")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(TIKTOKEN_DIR))
    encodings = [tiktoken.get_encoding(name) for name in ("o200k_base", "cl100k_base")]
    for word in WORDS:
        assert all(len(enc.encode(word)) == 1 for enc in encodings), word
    url, _ = cli
    for n in (1, 7, 12):
        text = requests.post(url + CHAT, json=chat_body(stream=False, max_tokens=n), timeout=TIMEOUT).json()
        content = text["choices"][0]["message"]["content"]
        assert [len(enc.encode(content)) for enc in encodings] == [n, n]
    for n in (0, 1, 2, 19, 20, 21, 64, 257):
        assert [len(enc.encode(token_text(0, n))) for enc in encodings] == [n, n]


def test_continuous_usage_is_cumulative(cli: tuple[str, Path]) -> None:
    url, _ = cli
    body = chat_body(stream_options={"include_usage": True, "continuous_usage_stats": True})
    role, *content, final, usage, done = sse(url, body=body)
    assert role["usage"]["completion_tokens"] == 0
    assert [e["usage"]["completion_tokens"] for e in content] == list(range(1, 13))
    assert all(e["usage"]["total_tokens"] == PROMPT_WORDS + e["usage"]["completion_tokens"] for e in content)
    assert final["usage"]["completion_tokens"] == 12 and usage["usage"]["completion_tokens"] == 12
    assert usage["choices"] == [] and done == "[DONE]"
    with mock(continuous_usage=True) as srv:  # the server flag, without stream_options
        *_, final, done = sse(srv.url)
        assert [e["usage"]["completion_tokens"] for e in _[1:]] == list(range(1, 7))
        assert final["usage"]["completion_tokens"] == 6 and done == "[DONE]"


def test_legacy_completions(cli: tuple[str, Path]) -> None:
    url, _ = cli
    body = {"model": "m", "prompt": "one two three", "stream": True, "max_tokens": 4,
            "stream_options": {"include_usage": True}}  # fmt: skip
    *content, final, usage, done = sse(url, "/v1/completions", body)
    assert all(e["object"] == "text_completion" for e in content)
    assert "".join(e["choices"][0]["text"] for e in content) == words(4) and len(content) == 4
    assert final["choices"][0]["text"] == "" and final["choices"][0]["finish_reason"] == "length"
    assert usage["usage"]["prompt_tokens"] == 3 and usage["usage"]["completion_tokens"] == 4
    assert done == "[DONE]"
    r = requests.post(url + "/v1/completions", json={**body, "stream": False}, timeout=TIMEOUT).json()
    assert r["object"] == "text_completion" and r["choices"][0]["text"] == words(4)


def test_tokens_per_chunk_and_reasoning() -> None:
    with mock(output_tokens=8, tokens_per_chunk=3, reasoning_tokens=4) as srv:
        body = chat_body(stream_options={"include_usage": True})
        role, *chunks, final, usage, done = sse(srv.url, body=body)
        deltas = [e["choices"][0]["delta"] for e in chunks]
        assert deltas == [{"reasoning_content": words(3)}, {"reasoning_content": WORDS[3]},
                          {"content": token_text(4, 3)}, {"content": token_text(7, 1)}]  # fmt: skip
        assert usage["usage"]["completion_tokens"] == 8
        assert usage["usage"]["completion_tokens_details"] == {"reasoning_tokens": 4}
        whole = requests.post(srv.url + CHAT, json=chat_body(stream=False), timeout=TIMEOUT).json()
        assert whole["choices"][0]["message"]["reasoning_content"] == words(4)
        assert whole["choices"][0]["message"]["content"] == token_text(4, 4)
        lines = ndjson(srv.url, "/api/chat", {"model": "m", "messages": MESSAGES})
        assert [m["message"].get("thinking") for m in lines[:-1]] == [words(3), WORDS[3], None, None]
        lines = ndjson(srv.url, "/api/generate", {"model": "m", "prompt": "hi"})
        assert [m.get("thinking") for m in lines[:-1]] == [words(3), WORDS[3], None, None]
        assert "".join(m["response"] for m in lines) == token_text(4, 4) and lines[-1]["eval_count"] == 8


def test_keepalive_comments_before_first_token() -> None:
    with mock(ttft_ms=60, keepalive_ms=15, output_tokens=3) as srv:
        events = sse(srv.url)
        assert events[0]["choices"][0]["delta"]["role"] == "assistant"
        comments = [e for e in events if isinstance(e, str) and e.startswith(":")]
        assert 2 <= len(comments) <= 4 and set(comments) == {": keep-alive"}
        first_content = next(i for i, e in enumerate(events) if isinstance(e, dict) and content_of([e]))
        assert all(isinstance(e, str) for e in events[1:first_content])
        assert content_of(events) == words(3)


# -- Ollama wire format -----------------------------------------------------------------------------


def test_ollama_chat_and_generate(cli: tuple[str, Path]) -> None:
    url, _ = cli
    lines = ndjson(url, "/api/chat", {"model": "llama3", "messages": MESSAGES})
    *chunks, last = lines
    assert len(chunks) == 12 and all(not c["done"] and c["model"] == "llama3" for c in chunks)
    assert all(c["message"]["role"] == "assistant" for c in chunks)
    assert "".join(c["message"]["content"] for c in chunks) == words(12)
    assert last["done"] is True and last["done_reason"] == "stop" and last["message"]["content"] == ""
    assert last["prompt_eval_count"] == PROMPT_WORDS and last["eval_count"] == 12
    assert last["prompt_eval_duration"] >= 20_000_000 and last["eval_duration"] >= 11 * 2_000_000
    assert last["total_duration"] >= last["prompt_eval_duration"] + last["eval_duration"]
    assert chunks[0]["created_at"].endswith("Z")

    lines = ndjson(url, "/api/generate", {"model": "llama3", "prompt": "a b c", "options": {"num_predict": 5}})
    *chunks, last = lines
    assert "".join(c["response"] for c in chunks) == words(5)
    assert last["done_reason"] == "length" and last["eval_count"] == 5 and last["prompt_eval_count"] == 3

    r = requests.post(url + "/api/chat", json={"model": "x", "messages": MESSAGES, "stream": False}, timeout=TIMEOUT)
    body = r.json()
    assert r.headers["Content-Type"] == "application/json"
    assert body["message"]["content"] == words(12) and body["done"] is True and body["eval_count"] == 12
    r = requests.post(url + "/api/generate", json={"prompt": "x", "stream": False, "options": {"num_predict": -1}},
                      timeout=TIMEOUT)  # fmt: skip
    assert r.json()["response"] == words(12) and r.json()["model"] == "mock-model"


# -- faults -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403, 404, 429, 500, 503])
def test_status_faults(status: int) -> None:
    with mock(fault=f"status-{status}", retry_after=7) as srv:
        r = requests.post(srv.url + CHAT, json=chat_body(), timeout=TIMEOUT)
        assert r.status_code == status
        err = r.json()["error"]
        assert set(err) == {"message", "type", "param", "code"} and err["message"]
        assert (r.headers.get("Retry-After") == "7") == (status == 429)
        codes = {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded", 500: "server_error"}
        if status in codes:
            assert err["code"] == codes[status]
        r = requests.post(srv.url + "/api/chat", json={"model": "llama3", "messages": MESSAGES}, timeout=TIMEOUT)
        assert r.status_code == status and isinstance(r.json()["error"], str)
        if status == 404:
            assert r.json()["error"] == 'model "llama3" not found, try pulling it first'
        assert srv.stats["faults"] == 2


def test_midstream_error() -> None:
    with mock(fault="midstream-error", fault_after_tokens=3) as srv:
        events = sse(srv.url)
        assert content_of(events) == words(3)
        assert events[-1]["error"]["type"] == "server_error" and events[-1]["error"]["code"] == 500
        assert "[DONE]" not in events
        lines = ndjson(srv.url, "/api/generate", {"prompt": "hi"})
        assert "".join(x.get("response", "") for x in lines) == words(3) and "error" in lines[-1]
        r = requests.post(srv.url + CHAT, json=chat_body(stream=False), timeout=TIMEOUT)
        assert r.status_code == 500


def test_malformed_event_then_normal_stream() -> None:
    with mock(fault="malformed", fault_after_tokens=2) as srv:
        events = sse(srv.url)
        bad = [i for i, e in enumerate(events) if isinstance(e, tuple)]
        assert len(bad) == 1 and events[bad[0]] == ("bad", "{not json")
        assert content_of(events[: bad[0]]) == words(2)
        assert content_of(events) == words(6) and events[-1] == "[DONE]"


def test_disconnect_fault() -> None:
    with mock(fault="disconnect", fault_after_tokens=2) as srv:
        got: list[Any] = []
        with pytest.raises(requests.exceptions.RequestException):
            with requests.post(srv.url + CHAT, json=chat_body(), stream=True, timeout=TIMEOUT) as r:
                assert r.status_code == 200
                for line in r.iter_lines():
                    if line:
                        got.append(parse_sse_line(line))
        assert content_of(got) == words(2) and "[DONE]" not in got


def test_hang_fault_and_server_stays_responsive() -> None:
    with mock(fault="hang") as srv:
        t0 = time.monotonic()
        with pytest.raises(requests.exceptions.ReadTimeout):
            requests.post(srv.url + CHAT, json=chat_body(), timeout=0.3)
        assert time.monotonic() - t0 < 2
        assert requests.get(srv.url + "/health", timeout=TIMEOUT).status_code == 200
        assert srv.stats["faults"] == 1


def test_fault_every_counts_generation_requests() -> None:
    with mock(fault="status-500", fault_every=3) as srv:
        statuses = []
        for i in range(10):
            requests.get(srv.url + "/health", timeout=TIMEOUT)  # not counted
            path = "/api/generate" if i % 2 else CHAT
            body = {"prompt": "x", "stream": False} if i % 2 else chat_body(stream=False)
            statuses.append(requests.post(srv.url + path, json=body, timeout=TIMEOUT).status_code)
        assert statuses == [200, 200, 500, 200, 200, 500, 200, 200, 500, 200]
        stats = requests.get(srv.url + "/mock/stats", timeout=TIMEOUT).json()
        assert stats["requests"] == 10 and stats["faults"] == 3 and stats["tokens"] == 7 * 6


def test_all_fault_kinds_are_known() -> None:
    assert set(FAULT_KINDS) == {"status-401", "status-403", "status-404", "status-429", "status-500", "status-503",
                                "midstream-error", "malformed", "disconnect", "hang"}  # fmt: skip


# -- send log and timing ----------------------------------------------------------------------------


def test_send_log_one_consistent_line_per_request(tmp_path: Path) -> None:
    log = tmp_path / "sends.jsonl"
    ttft_ms, itl_ms = 15, 3
    with mock(ttft_ms=ttft_ms, itl_ms=itl_ms, output_tokens=5, send_log=str(log)) as srv:
        sse(srv.url, headers={"X-Request-Id": "req-A"})
        requests.post(srv.url + CHAT, json=chat_body(stream=False), timeout=TIMEOUT)
        ndjson(srv.url, "/api/chat", {"messages": MESSAGES, "options": {"num_predict": 2}})
        requests.get(srv.url + "/health", timeout=TIMEOUT)  # not logged
    a, b, c = read_log(log)
    assert (a["request_id"], b["request_id"], c["request_id"]) == ("req-A", "mock-2", "mock-3")
    assert [x["seq"] for x in (a, b, c)] == [1, 2, 3]
    assert (a["path"], a["model"], a["fault"], a["status"], a["stream"]) == (CHAT, "test-model", None, 200, True)
    assert (a["tokens"], a["chunks"], a["prompt_tokens"], a["reasoning_tokens"]) == (5, 5, PROMPT_WORDS, 0)
    assert (b["tokens"], b["chunks"], b["stream"]) == (5, 1, False)
    assert (c["tokens"], c["finish_reason"], c["path"]) == (2, "length", "/api/chat")
    for x in (a, b, c):
        times = x["token_send_ns"]
        assert len(times) == x["chunks"] and times == sorted(times)
        assert times[0] == x["t_first_token_ns"] and times[-1] == x["t_last_token_ns"]
        assert x["t_first_token_ns"] >= x["t_recv_ns"] + ttft_ms * 1_000_000
        assert x["t_recv_ns"] <= x["t_headers_ns"] <= x["t_first_token_ns"] <= x["t_end_ns"]
    gaps = [t2 - t1 for t1, t2 in zip(a["token_send_ns"], a["token_send_ns"][1:], strict=False)]
    # absolute targets: chunk i is never sent before t_first + i * itl
    assert all(t - a["t_first_token_ns"] >= i * itl_ms * 1_000_000 for i, t in enumerate(a["token_send_ns"]))
    assert sum(gaps) >= (5 - 1) * itl_ms * 1_000_000 - 1_000_000


def test_cli_send_log_and_ttft(cli: tuple[str, Path]) -> None:
    url, log = cli
    before = len(read_log(log)) if log.exists() else 0
    t0 = time.perf_counter_ns()
    with requests.post(url + CHAT, json=chat_body(), stream=True, timeout=TIMEOUT,
                       headers={"X-Request-Id": "timing"}) as r:  # fmt: skip
        ttft = None
        for line in r.iter_lines():
            event = parse_sse_line(line) if line else None
            if isinstance(event, dict) and content_of([event]):
                ttft = (time.perf_counter_ns() - t0) / 1e6
                break
        r.content  # noqa: B018 - drain
    assert ttft is not None and 19 <= ttft < 20 + 250  # configured 20 ms, generous upper bound
    time.sleep(0.05)
    lines = read_log(log)
    assert len(lines) > before
    rec = next(x for x in lines if x["request_id"] == "timing")
    assert rec["t_recv_ns"] >= t0  # CLOCK_MONOTONIC is shared with the child process
    assert 20_000_000 <= rec["t_first_token_ns"] - rec["t_recv_ns"] < 250_000_000


def test_client_giving_up_is_logged_at_once(tmp_path: Path) -> None:
    log = tmp_path / "sends.jsonl"
    with mock(ttft_ms=2000, send_log=str(log)) as srv:
        body = json.dumps(chat_body()).encode()
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=TIMEOUT)
        sock.sendall(f"POST {CHAT} HTTP/1.1\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        sock.recv(65536)  # the response head and the role chunk
        sock.close()
        deadline = time.monotonic() + 1  # long before the first token (2 s) would be due
        while not (log.exists() and log.read_text()) and time.monotonic() < deadline:
            time.sleep(0.01)
        (rec,) = read_log(log)
        assert rec["aborted"] is True and rec["tokens"] == 0 and rec["t_first_token_ns"] is None
        assert srv.stats["active"] == 0


def test_jitter_is_deterministic_and_never_early() -> None:
    cfg = MockConfig(ttft_ms=10, itl_ms=2, output_tokens=50, jitter_ms=3, seed=42)
    a = [c.target_ns for c in make_script(cfg, 1_000, seq=5).chunks()]
    b = [c.target_ns for c in make_script(cfg, 1_000, seq=5).chunks()]
    c = [c.target_ns for c in make_script(cfg, 1_000, seq=6).chunks()]
    assert a == b and a != c and a == sorted(a) and a[0] >= 1_000
    plain = [c.target_ns for c in make_script(MockConfig(ttft_ms=10, itl_ms=2, output_tokens=50), 0, 1).chunks()]
    assert plain == [10_000_000 + i * 2_000_000 for i in range(50)]
    assert max(abs(x - y) for x, y in zip(a, [p + 1_000 for p in plain], strict=True)) <= 3_000_000


# -- connections and concurrency --------------------------------------------------------------------


def test_keepalive_connection_reuse() -> None:
    with mock() as srv, requests.Session() as s:
        for _ in range(3):
            assert content_of(sse(srv.url, body=chat_body())) == words(6)  # a fresh connection each (no session)
        before = srv.stats["connections_total"]
        for _ in range(3):
            with s.post(srv.url + CHAT, json=chat_body(), stream=True, timeout=TIMEOUT) as r:
                assert content_of([parse_sse_line(x) for x in r.iter_lines() if x]) == words(6)
            assert s.post(srv.url + CHAT, json=chat_body(stream=False), timeout=TIMEOUT).status_code == 200
        assert srv.stats["connections_total"] == before + 1


def test_raw_pipelined_requests_and_connection_close() -> None:
    with mock(output_tokens=2) as srv:
        body = json.dumps(chat_body(stream=False)).encode()
        head = f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=TIMEOUT)
        sock.sendall((head + "\r\n").encode() + body + (head + "Connection: close\r\n\r\n").encode() + body)
        data = b""
        while chunk := sock.recv(65536):  # the server closes after the second response
            data += chunk
        sock.close()
        assert data.count(b"HTTP/1.1 200 OK") == 2 and data.count(words(2).encode()) == 2
        assert data.rstrip().endswith(b"}") and b"Connection: close" in data


def test_200_concurrent_streams_complete(cli: tuple[str, Path]) -> None:
    url, _ = cli

    def one(i: int) -> str:
        return content_of(sse(url, body=chat_body(max_tokens=10)))

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=200) as pool:
        results = list(pool.map(one, range(200), timeout=30))
    assert results == [words(10)] * 200
    assert time.monotonic() - t0 < 30


def test_in_process_server_in_this_gevent_hub() -> None:
    gevent = pytest.importorskip("gevent")
    from gevent import socket as gsocket

    srv = MockServer(MockConfig(ttft_ms=5, itl_ms=1, output_tokens=4)).start()
    try:
        assert srv.url == f"http://127.0.0.1:{srv.port}"

        def client() -> bytes:
            body = json.dumps(chat_body(stream=False)).encode()
            s = gsocket.create_connection(("127.0.0.1", srv.port))
            head = f"POST {CHAT} HTTP/1.1\r\nConnection: close\r\nContent-Length: {len(body)}\r\n\r\n"
            s.sendall(head.encode() + body)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            s.close()
            return data

        g = gevent.spawn(client)
        data = g.get(timeout=TIMEOUT)
        assert b"200 OK" in data and words(4).encode() in data
        assert srv.stats["requests"] == 1 and srv.stats["tokens"] == 4
    finally:
        srv.stop()


def test_in_thread_server_stops_cleanly() -> None:
    srv = mock()
    url = srv.url
    assert requests.get(url + "/health", timeout=TIMEOUT).ok
    srv.stop()
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(url + "/health", timeout=1)
