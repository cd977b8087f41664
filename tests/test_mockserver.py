"""Tests of the embedded mock LLM server (llm_locust.mockserver), over real HTTP on 127.0.0.1.

Most tests talk to the real CLI started with ``start_subprocess``; the rest use ``MockServer`` in
this process (``start(in_thread=True)``, or in this thread's gevent hub). Token counts and
latencies are small so that every test takes well under a second or two.

Every protocol is also read by the client's own code (``client_call``: the client's request path,
headers and body, then its framing decoder, protocol parser and ``StreamClock``, as ``LLMUser`` reads
a stream), so a mismatch between the mock and the client fails here.
"""

from __future__ import annotations

import itertools
import json
import socket
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from llm_locust.errors import LLMError, MalformedChunk
from llm_locust.measure.framing import DECODERS
from llm_locust.measure.metrics import StreamClock
from llm_locust.mockserver import MockConfig, MockServer, start_subprocess
from llm_locust.mockserver.config import build_parser
from llm_locust.mockserver.faults import FAULT_KINDS
from llm_locust.mockserver.script import WORDS, make_script, token_text
from llm_locust.prompts import Prompt
from llm_locust.protocols import Delta, Protocol, get_protocol
from tests.conftest import TIKTOKEN_FILES, needs_tiktoken

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


def sse_blocks(r: requests.Response) -> list[tuple[str, Any]]:
    """A whole SSE body as (event name or "", JSON data | "[DONE]" | ("bad", raw)); checks the exact line syntax."""
    out: list[tuple[str, Any]] = []
    text = r.content.decode()
    assert text.endswith("\n\n"), text[-80:]
    for block in text[:-2].split("\n\n"):
        name, data = "", None
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[len("event: ") :]
            else:
                assert line.startswith("data: "), line
                data = line[len("data: ") :]
        if data != "[DONE]":
            try:
                data = json.loads(data)
            except ValueError:
                data = ("bad", data)
        out.append((name, data))
    return out


def post_sse(url: str, path: str, body: Any, **kw: Any) -> list[tuple[str, Any]]:
    with requests.post(url + path, json=body, stream=True, timeout=TIMEOUT, **kw) as r:
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"].startswith("text/event-stream")
        return sse_blocks(r)


PROMPT = Prompt(name="p", text="say some words please", system="be brief")  # PROMPT_WORDS words in all


@dataclass
class Call:
    """One request made and read the way the client does it."""

    status: int
    headers: Any
    proto: Protocol  # the protocol that parsed the reply (the answering step, for the universal endpoint)
    clock: StreamClock = field(default_factory=StreamClock)
    deltas: list[Delta] = field(default_factory=list)
    done: bool = False
    finish: str | None = None
    errors: list[str] = field(default_factory=list)  # stream errors, malformed chunks, a broken connection
    error: LLMError | None = None  # the classified HTTP error
    body: bytes = b""  # the body of an HTTP error

    @property
    def text(self) -> str:
        return "".join(self.clock.text)

    @property
    def reasoning(self) -> str:
        return "".join(self.clock.reasoning)


def client_call(api: str, host: str, model: str, max_tokens: int | None = None, key: str | None = None) -> Call:
    """Build the request with the client's protocol, send it, and read the reply as ``LLMUser._read`` does."""
    proto = get_protocol(api)(host, model)
    headers = {"Content-Type": "application/json",
               "Accept": "application/x-ndjson" if proto.framing == "ndjson" else "text/event-stream",
               **proto.headers(key)}
    url = host.rstrip("/") + proto.request_path()
    with requests.post(url, json=proto.body(PROMPT, max_tokens), headers=headers, stream=True, timeout=TIMEOUT) as r:
        if r.status_code >= 300:
            error = proto.classify(r.status_code, r.content, r.headers)
            return Call(r.status_code, r.headers, proto, error=error, body=r.content)
        call = Call(r.status_code, r.headers, proto.for_response(r.headers))
        decoder, parse = DECODERS[call.proto.framing](), call.proto.parse
        clean_end = True

        def lines() -> Iterator[bytes]:
            nonlocal clean_end
            try:
                yield from r.iter_lines()
            except requests.exceptions.RequestException as exc:  # the connection broke
                clean_end = False
                call.errors.append(f"incomplete: {type(exc).__name__}")

        for line in itertools.chain(lines(), [None]):
            event = decoder.flush() if line is None else decoder.feed(time.perf_counter_ns(), line)
            if event is None:
                continue
            try:
                delta = parse(event[1], event[2])
            except MalformedChunk as exc:
                call.errors.append(str(exc))
                continue
            call.deltas.append(delta)
            if delta.error is not None:
                call.errors.append(delta.error)
            call.clock.add(event[0], delta.text, delta.reasoning, delta.usage)
            call.finish = delta.finish_reason or call.finish
            call.done = call.done or delta.done
        if call.proto.ends_at_close and clean_end:
            call.done = True
    return call


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
    args = ["--no-usage", "--fail-steps", "2", "--gateway-token", "t0k", "--fault", "status-529"]
    cfg = MockConfig(**vars(parser.parse_args(args)))
    assert cfg.no_usage and cfg.fail_steps == 2 and cfg.gateway_token == "t0k" and cfg.fault == "status-529"
    assert MockConfig().gateway_token is None and not MockConfig().no_usage
    with pytest.raises(ValueError):
        MockConfig(fail_steps=-1)


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
                                "finish_reason": None}]
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
                              "completion_tokens_details": {"reasoning_tokens": 0}}


@pytest.mark.parametrize(
    ("extra", "n", "finish"),
    [({"max_tokens": 3}, 3, "length"), ({"max_completion_tokens": 4, "max_tokens": 9}, 4, "length"),
     ({"max_tokens": 500}, 12, "stop"), ({}, 12, "stop"), ({"max_tokens": 12}, 12, "length")],
)
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


@needs_tiktoken
def test_text_retokenizes_to_exactly_n_tokens(cli: tuple[str, Path]) -> None:
    tiktoken = pytest.importorskip("tiktoken")
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
            "stream_options": {"include_usage": True}}
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
                          {"content": token_text(4, 3)}, {"content": token_text(7, 1)}]
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
        # Anthropic keeps the stream alive with ping events
        events = post_sse(srv.url, "/v1/messages", {**ANTHROPIC_BODY, "max_tokens": 3})
        names = [n for n, _ in events]
        assert names[:3] == ["message_start", "content_block_start", "ping"] and 3 <= names.count("ping") <= 5
        assert set(names[2 : names.index("content_block_delta")]) == {"ping"}


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
    # the last token is never due before ttft + 11 itl (a late first token may shorten eval_duration)
    assert last["prompt_eval_duration"] >= 20_000_000
    assert last["prompt_eval_duration"] + last["eval_duration"] >= 20_000_000 + 11 * 2_000_000
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
                      timeout=TIMEOUT)
    assert r.json()["response"] == words(12) and r.json()["model"] == "mock-model"


# -- faults -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403, 404, 429, 500, 503, 529])
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
                                "status-529", "midstream-error", "malformed", "disconnect", "hang"}


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
    # absolute targets: chunk i is never sent before t_recv + ttft + i * itl (a late first token may shorten gaps)
    first_due = a["t_recv_ns"] + ttft_ms * 1_000_000
    assert all(t - first_due >= i * itl_ms * 1_000_000 for i, t in enumerate(a["token_send_ns"]))


def test_send_log_body_read_time_is_when_the_last_body_byte_was_read(tmp_path: Path) -> None:
    """t_recv_ns (the body-read time the benchmark's send side ends at) is after the client wrote the body's last
    bytes, even when the head came earlier, and the reply is planned from it."""
    log = tmp_path / "sends.jsonl"
    body = json.dumps(chat_body(stream=True)).encode()
    head = (f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Request-Id: split\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    with mock(ttft_ms=5, output_tokens=2, send_log=str(log)) as srv:
        host, port = srv.url.rsplit("/", 1)[-1].split(":")
        with socket.create_connection((host, int(port)), timeout=TIMEOUT) as sock:
            sock.sendall(head + body[:10])
            time.sleep(0.05)  # the head is read and parsed while the rest of the body is still to come
            t_before_rest = time.perf_counter_ns()
            sock.sendall(body[10:])
            while sock.recv(65536):
                pass
    (rec,) = read_log(log)
    assert rec["request_id"] == "split" and rec["status"] == 200
    assert t_before_rest <= rec["t_recv_ns"] <= rec["t_first_token_ns"] - 5_000_000


@pytest.mark.skipif(sys.platform != "linux", reason="the kernel's receive stamp (SO_TIMESTAMPNS) is Linux's")
def test_send_log_arrival_is_the_kernels_stamp_of_the_last_bytes(tmp_path: Path) -> None:
    """t_arrive_ns is when the request's last bytes arrived on the mock's socket (the kernel's stamp, within the
    client's send call on loopback): after the client started that send, before the mock read them, for a
    connection opened before the request and for one that sends at once."""
    log = tmp_path / "sends.jsonl"
    body = json.dumps(chat_body(stream=True)).encode()
    head = (f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Request-Id: %s\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    with mock(ttft_ms=5, output_tokens=2, send_log=str(log)) as srv:
        host, port = srv.url.rsplit("/", 1)[-1].split(":")
        sends = {}
        for rid, wait in (("opened-before", 0.05), ("at-once", 0.0)):
            with socket.create_connection((host, int(port)), timeout=TIMEOUT) as sock:
                time.sleep(wait)
                sends[rid] = time.perf_counter_ns()
                sock.sendall((head % rid).encode() + body)
                while sock.recv(65536):
                    pass
    recs = {r["request_id"]: r for r in read_log(log)}
    for rid, t_send in sends.items():
        rec = recs[rid]
        assert t_send <= rec["t_arrive_ns"] <= rec["t_recv_ns"] <= rec["t_first_token_ns"], rid


def test_cli_send_log_and_ttft(cli: tuple[str, Path]) -> None:
    url, log = cli
    before = len(read_log(log)) if log.exists() else 0
    t0 = time.perf_counter_ns()
    with requests.post(url + CHAT, json=chat_body(), stream=True, timeout=TIMEOUT,
                       headers={"X-Request-Id": "timing"}) as r:
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


def test_queue_model_ttft_grows_with_requests_in_flight(tmp_path: Path) -> None:
    """--ttft-per-active-ms: each request's first token is due ttft + per_active * (others in flight) after it."""
    assert make_script(MockConfig(ttft_ms=10, ttft_per_active_ms=4), 0, 1, others=3).ttft_ns == 22_000_000
    log = tmp_path / "sends.jsonl"
    body = json.dumps(chat_body(max_tokens=2)).encode()
    with mock(ttft_ms=100, ttft_per_active_ms=300, send_log=str(log)) as srv:
        socks = []
        for _ in range(3):  # each opened once the ones before it are in flight (their head and role chunk read)
            sock = socket.create_connection(("127.0.0.1", srv.port), timeout=TIMEOUT)
            sock.sendall(f"POST {CHAT} HTTP/1.1\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
            sock.recv(65536)
            socks.append(sock)
        for sock in socks:
            while b"[DONE]" not in sock.recv(65536):
                pass
            sock.close()
    waits = [(x["t_first_token_ns"] - x["t_recv_ns"]) / 1e6 for x in read_log(log)]
    assert len(waits) == 3
    assert all(w >= 100 + 300 * i for i, w in enumerate(waits))  # never early: 100, 400, 700 ms


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


# -- Anthropic, Gemini / Vertex, Workers AI wire formats ---------------------------------------------

CLAUDE, GEMINI, CF_MODEL = "claude-3-7-sonnet-latest", "gemini-2.5-flash", "@cf/meta/llama-3.1-8b-instruct"
ANTHROPIC_BODY = {"model": CLAUDE, "max_tokens": 100, "stream": True, "system": "be brief",
                  "messages": [{"role": "user", "content": [{"type": "text", "text": "say some words please"}]}],
                  }
GEMINI_BODY = {"contents": [{"role": "user", "parts": [{"text": "say some words please"}]}],
               "systemInstruction": {"parts": [{"text": "be brief"}]}}
GEMINI_PATH = f"/v1beta/models/{GEMINI}:streamGenerateContent?alt=sse"
VERTEX_HOST = "/v1/projects/p/locations/us-central1"
WORKERS_AI_PATH = f"/client/v4/accounts/acct/ai/run/{CF_MODEL}"
WORKERS_AI_BODY = {"messages": MESSAGES, "stream": True}


def apis(url: str) -> dict[str, tuple[str, str]]:
    """Every protocol the client speaks directly: api -> (host, model)."""
    return {
        "openai-chat": (url, "gpt-4o"), "openai-completions": (url, "gpt-3.5-turbo-instruct"),
        "ollama-chat": (url, "llama3"), "ollama-generate": (url, "llama3"), "anthropic": (url, CLAUDE),
        "gemini": (url, GEMINI), "vertex": (url + VERTEX_HOST, "gemini-2.5-pro"),
        "workers-ai": (url + "/client/v4/accounts/acct", CF_MODEL),
    }


NEW_APIS = ("anthropic", "gemini", "vertex", "workers-ai")


@pytest.fixture(scope="module")
def reasoner() -> Iterator[MockServer]:
    """9 output tokens, the first 3 of them reasoning, 2 tokens per chunk."""
    with mock(output_tokens=9, reasoning_tokens=3, tokens_per_chunk=2, ttft_ms=3, itl_ms=0.5) as srv:
        yield srv


@pytest.fixture(scope="module")
def plain() -> Iterator[MockServer]:
    """6 output tokens, one per chunk, no reasoning."""
    with mock(ttft_ms=3, itl_ms=0.5) as srv:
        yield srv


def test_anthropic_stream_format(reasoner: MockServer) -> None:
    events = post_sse(reasoner.url, "/v1/messages", ANTHROPIC_BODY)
    assert all(name and data["type"] == name for name, data in events)
    assert [n for n, _ in events] == [
        "message_start", "content_block_start", "ping", "content_block_delta", "content_block_delta",
        "content_block_delta", "content_block_stop", "content_block_start",  # signature, end of thinking, text block
        "content_block_delta", "content_block_delta", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop",
    ]
    message = events[0][1]["message"]
    assert (message["model"], message["role"], message["content"]) == (CLAUDE, "assistant", [])
    assert message["usage"] == {"input_tokens": PROMPT_WORDS, "cache_creation_input_tokens": 0,
                                "cache_read_input_tokens": 0, "output_tokens": 1}
    assert events[1][1]["content_block"] == {"type": "thinking", "thinking": ""}
    deltas = [d["delta"] | {"index": d["index"]} for n, d in events if n == "content_block_delta"]
    assert [d["type"] for d in deltas] == ["thinking_delta"] * 2 + ["signature_delta"] + ["text_delta"] * 3
    assert "".join(d.get("thinking", "") for d in deltas) == words(3) and deltas[2]["signature"]
    assert "".join(d.get("text", "") for d in deltas) == token_text(3, 6)
    assert [d["index"] for d in deltas] == [0, 0, 0, 1, 1, 1]
    assert events[6][1]["index"] == 0 and events[7][1] == {"type": "content_block_start", "index": 1,
                                                           "content_block": {"type": "text", "text": ""}}
    assert events[-2][1] == {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                             "usage": {"output_tokens": 9}}

    events = post_sse(reasoner.url, "/v1/messages", {**ANTHROPIC_BODY, "max_tokens": 2})  # nothing but thinking
    assert [n for n, _ in events][3:] == ["content_block_delta", "content_block_delta", "content_block_stop",
                                          "message_delta", "message_stop"]
    assert events[-2][1]["delta"]["stop_reason"] == "max_tokens" and events[-2][1]["usage"]["output_tokens"] == 2


def test_anthropic_whole_reply_and_request_errors(plain: MockServer) -> None:
    body = {**ANTHROPIC_BODY, "stream": False, "max_tokens": 4}
    r = requests.post(plain.url + "/v1/messages", json=body, timeout=TIMEOUT)
    assert r.status_code == 200 and r.json()["content"] == [{"type": "text", "text": words(4)}]
    assert r.json()["stop_reason"] == "max_tokens" and r.json()["usage"]["output_tokens"] == 4
    for missing, field_name in (("max_tokens", "max_tokens"), ("messages", "messages"), ("model", "model")):
        r = requests.post(plain.url + "/v1/messages", json={k: v for k, v in body.items() if k != missing},
                          timeout=TIMEOUT)
        err = r.json()
        assert r.status_code == 400 and err["type"] == "error" and err["request_id"].startswith("req_")
        assert err["error"] == {"type": "invalid_request_error", "message": f"{field_name}: Field required"}
    r = requests.get(plain.url + "/v1/messages", timeout=TIMEOUT)
    assert r.status_code == 405 and r.json()["error"]["type"] == "invalid_request_error"


def test_gemini_stream_format(reasoner: MockServer) -> None:
    events = post_sse(reasoner.url, GEMINI_PATH, GEMINI_BODY)
    assert all(name == "" and isinstance(data, dict) for name, data in events)  # data-only, no [DONE]
    cands = [d["candidates"][0] for _, d in events]
    assert all(c["content"]["role"] == "model" and len(c["content"]["parts"]) == 1 for c in cands)
    parts = [c["content"]["parts"][0] for c in cands]
    assert [p.get("thought", False) for p in parts] == [True, True, False, False, False]
    assert "".join(p["text"] for p in parts[:2]) == words(3)
    assert "".join(p["text"] for p in parts[2:]) == token_text(3, 6)
    assert [c.get("finishReason") for c in cands] == [None, None, None, None, "STOP"]
    usage = [d["usageMetadata"] for _, d in events]
    assert all(u["promptTokenCount"] == PROMPT_WORDS for u in usage)
    assert [u.get("thoughtsTokenCount") for u in usage] == [2, 3, 3, 3, 3]
    assert [u.get("candidatesTokenCount") for u in usage] == [None, None, 2, 4, 6]
    assert [u["totalTokenCount"] for u in usage] == [PROMPT_WORDS + n for n in (2, 3, 5, 7, 9)]
    assert {d["modelVersion"] for _, d in events} == {GEMINI}

    vertex = post_sse(reasoner.url, f"{VERTEX_HOST}/publishers/google/models/gemini-2.5-pro:streamGenerateContent"
                                    "?alt=sse", GEMINI_BODY)
    assert [d["candidates"] for _, d in vertex] == [d["candidates"] for _, d in events]
    assert {d["modelVersion"] for _, d in vertex} == {"gemini-2.5-pro"}
    body = {**GEMINI_BODY, "generationConfig": {"maxOutputTokens": 4}}
    events = post_sse(reasoner.url, f"/v1/models/{GEMINI}:streamGenerateContent?alt=sse", body)  # v1 too
    assert events[-1][1]["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert events[-1][1]["usageMetadata"]["candidatesTokenCount"] == 1

    r = requests.post(reasoner.url + f"/v1beta/models/{GEMINI}:streamGenerateContent", json=GEMINI_BODY,
                      timeout=TIMEOUT)  # no alt=sse
    assert r.status_code == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT"
    r = requests.post(reasoner.url + GEMINI_PATH, json={"contents": []}, timeout=TIMEOUT)
    assert r.status_code == 400 and r.json()["error"]["code"] == 400
    whole = requests.post(reasoner.url + f"/v1beta/models/{GEMINI}:generateContent", json=GEMINI_BODY,
                          timeout=TIMEOUT).json()
    assert whole["candidates"][0]["content"]["parts"] == [{"text": words(3), "thought": True},
                                                          {"text": token_text(3, 6)}]
    assert whole["usageMetadata"]["thoughtsTokenCount"] == 3 and whole["candidates"][0]["finishReason"] == "STOP"


def test_workers_ai_stream_format(plain: MockServer, reasoner: MockServer) -> None:
    events = post_sse(plain.url, WORKERS_AI_PATH, WORKERS_AI_BODY)
    *chunks, usage, done = [d for _, d in events]
    assert chunks == [{"response": WORDS[i]} for i in range(6)] and done == "[DONE]"
    assert usage == {"response": "", "usage": {"prompt_tokens": PROMPT_WORDS, "completion_tokens": 6,
                                               "total_tokens": PROMPT_WORDS + 6}}
    events = post_sse(plain.url, WORKERS_AI_PATH, {"prompt": "one two", "stream": True, "max_tokens": 2})
    assert [d for _, d in events][:2] == [{"response": " the"}, {"response": " of"}]
    assert events[2][1]["usage"]["prompt_tokens"] == 2
    whole = requests.post(plain.url + WORKERS_AI_PATH, json={"messages": MESSAGES}, timeout=TIMEOUT).json()
    assert whole == {"result": {"response": words(6), "usage": {"prompt_tokens": PROMPT_WORDS, "completion_tokens": 6,
                     "total_tokens": PROMPT_WORDS + 6}}, "success": True, "errors": [], "messages": []}
    r = requests.post(plain.url + WORKERS_AI_PATH, json={"stream": True}, timeout=TIMEOUT)
    assert r.status_code == 400 and r.json()["success"] is False and r.json()["errors"][0]["code"] == 3003

    # reasoning models answer in OpenAI-shaped chunks on the same route
    *chunks, done = [d for _, d in post_sse(reasoner.url, WORKERS_AI_PATH, WORKERS_AI_BODY)]
    assert done == "[DONE]" and all(c["object"] == "chat.completion.chunk" and c["model"] == CF_MODEL for c in chunks)
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas == [{"reasoning_content": words(2)}, {"reasoning_content": WORDS[2]}, {"content": token_text(3, 2)},
                      {"content": token_text(5, 2)}, {"content": token_text(7, 2)}, {}]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["completion_tokens"] == 9 and "usage" not in chunks[0]


def test_workers_ai_default_max_tokens_is_256() -> None:
    with mock(output_tokens=300, itl_ms=0, ttft_ms=0) as srv:
        r = requests.post(srv.url + WORKERS_AI_PATH, json={"messages": MESSAGES}, timeout=TIMEOUT).json()
        assert r["result"]["usage"]["completion_tokens"] == 256
        r = requests.post(srv.url + WORKERS_AI_PATH, json={"messages": MESSAGES, "max_tokens": 280}, timeout=TIMEOUT)
        assert r.json()["result"]["usage"]["completion_tokens"] == 280


# -- the client's own parsers on every protocol ----------------------------------------------------

FINISH = {"openai-chat": ("stop", "length"), "openai-completions": ("stop", "length"),
          "ollama-chat": ("stop", "length"), "ollama-generate": ("stop", "length"),
          "anthropic": ("end_turn", "max_tokens"), "gemini": ("STOP", "MAX_TOKENS"), "vertex": ("STOP", "MAX_TOKENS"),
          "workers-ai": ("stop", "length")}
#: the reasoning-token count each protocol reports in its usage (None: the format has no field for it)
REASONING_USAGE = {"openai-chat": 3, "openai-completions": 0, "gemini": 3, "vertex": 3, "workers-ai": 3}


@pytest.mark.parametrize("api", list(FINISH))
def test_client_parser_agrees_with_the_mock(reasoner: MockServer, api: str, monkeypatch: pytest.MonkeyPatch) -> None:
    host, model = apis(reasoner.url)[api]
    call = client_call(api, host, model)
    r = 0 if api == "openai-completions" else 3  # legacy completions have no field for reasoning
    assert call.status == 200 and call.errors == [] and call.done
    assert call.reasoning == words(r) and call.text == token_text(r, 9 - r)
    assert len(call.clock.token_ns) == 5  # ceil(3 / 2) + ceil(6 / 2) chunks (ceil(9 / 2) for completions)
    usage = call.clock.usage
    assert (usage.input_tokens, usage.output_tokens) == (PROMPT_WORDS, 9)
    assert usage.reasoning_tokens == REASONING_USAGE.get(api)
    assert call.finish == FINISH[api][0]
    if api in ("gemini", "vertex"):  # usage on every chunk: the client splits multi-token gaps
        assert call.clock.cumulative_usage and call.clock.cumulative == [2, 3, 5, 7, 9]
    if TIKTOKEN_FILES:
        tiktoken = pytest.importorskip("tiktoken")
        assert len(tiktoken.get_encoding("o200k_base").encode(call.reasoning + call.text)) == 9

    call = client_call(api, host, model, max_tokens=4)
    assert call.done and call.finish == FINISH[api][1] and call.clock.usage.output_tokens == 4
    assert call.reasoning + call.text == words(4)


# -- Cloudflare AI Gateway --------------------------------------------------------------------------

GATEWAY_ROUTES = [
    ("openai", "openai-chat", "gpt-4o-mini"), ("openai", "openai-completions", "gpt-3.5-turbo-instruct"),
    ("anthropic", "anthropic", CLAUDE), ("google-ai-studio", "gemini", GEMINI),
    ("google-vertex-ai" + VERTEX_HOST, "vertex", "gemini-2.5-pro"), ("workers-ai", "workers-ai", CF_MODEL),
    ("workers-ai", "openai-chat", CF_MODEL), ("mistral", "openai-chat", "mistral-small-latest"),
    ("deepseek", "openai-chat", "deepseek-chat"), ("compat", "openai-chat", "anthropic/claude-3-5-haiku"),
]


def as_gateway(monkeypatch: pytest.MonkeyPatch, srv: MockServer) -> str:
    """Make the client treat the mock as a gateway (LLM_GATEWAY_URL); returns the gateway base URL."""
    base = srv.url + "/v1/acct/gw"
    monkeypatch.setenv("LLM_GATEWAY_URL", base)
    monkeypatch.delenv("CF_AIG_TOKEN", raising=False)
    return base


@pytest.mark.parametrize(("slug", "api", "model"), GATEWAY_ROUTES)
def test_gateway_provider_routes(plain: MockServer, monkeypatch: pytest.MonkeyPatch, slug: str, api: str,
                                 model: str) -> None:
    call = client_call(api, f"{as_gateway(monkeypatch, plain)}/{slug}", model)
    assert call.status == 200 and call.errors == [] and call.done and call.text == words(6)
    native_workers_ai = api == "workers-ai"  # its native chunks carry no finish reason
    assert call.clock.usage.output_tokens == 6 and call.finish == (None if native_workers_ai else FINISH[api][0])
    fields = call.proto.response_fields(call.headers)
    assert fields["gateway_cache"] == "MISS" and fields["gateway_step"] is None  # the client sends skip-cache
    assert len(fields["gateway_log_id"]) == 26


def test_gateway_headers_and_compat_model_names(plain: MockServer) -> None:
    base = plain.url + "/v1/acct/gw"
    r = requests.post(base + "/groq/chat/completions", json=chat_body(stream=False), timeout=TIMEOUT)
    assert r.status_code == 200 and r.headers["cf-aig-cache-status"] == "HIT" and "cf-aig-step" not in r.headers
    r2 = requests.post(base + "/openai/chat/completions", json=chat_body(stream=False), timeout=TIMEOUT,
                       headers={"cf-aig-skip-cache": "true"})
    assert r2.headers["cf-aig-cache-status"] == "MISS" and r2.headers["cf-aig-log-id"] != r.headers["cf-aig-log-id"]
    r = requests.post(base + "/compat/chat/completions", json=chat_body(stream=False), timeout=TIMEOUT)
    assert r.status_code == 400 and "provider/model" in r.json()["error"]["message"]
    r = requests.post(plain.url + CHAT, json=chat_body(stream=False), timeout=TIMEOUT)  # not through the gateway
    assert not any(h.startswith("cf-aig-") for h in r.headers)


UNIVERSAL_CHAIN = f"workers-ai/{CF_MODEL},openai/gpt-4o-mini,anthropic/{CLAUDE},google-ai-studio/{GEMINI}"


@pytest.mark.parametrize("fail_steps", [0, 1, 2, 3, 4])
def test_universal_endpoint_answers_with_the_first_step_that_does_not_fail(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fail_steps: int
) -> None:
    log = tmp_path / "sends.jsonl"
    with mock(fail_steps=fail_steps, output_tokens=5, send_log=str(log)) as srv:
        call = client_call("cf-universal", as_gateway(monkeypatch, srv), UNIVERSAL_CHAIN)
    (rec,) = read_log(log)  # complete once the server has stopped
    step = min(fail_steps, 3)
    assert call.headers["cf-aig-step"] == str(step) and call.headers["cf-aig-cache-status"] == "MISS"
    answering = ("workers-ai", "openai-chat", "anthropic", "gemini")[step]
    assert (rec["protocol"], rec["step"], rec["path"]) == (answering, step, "/v1/acct/gw")
    if fail_steps < 4:
        assert call.status == 200 and call.proto.name == answering and call.done and call.errors == []
        assert call.text == words(5) and call.clock.usage.output_tokens == 5
        assert call.proto.response_fields(call.headers)["gateway_step"] == str(step)
        assert rec["model"] == UNIVERSAL_CHAIN.split(",")[step].split("/", 1)[1] and rec["tokens"] == 5
    else:  # every step failed: the last one's error, in its provider's shape
        assert call.status == 500 and json.loads(call.body)["error"]["status"] == "INTERNAL"
        assert call.error.error_class == "server_error" and rec["status"] == 500 and rec["tokens"] == 0


def test_universal_endpoint_rejects_malformed_steps(plain: MockServer) -> None:
    base = plain.url + "/v1/acct/gw"
    r = requests.post(base, json=[{"provider": "nope", "endpoint": "x", "headers": {}, "query": {}}], timeout=TIMEOUT)
    assert r.status_code == 400 and r.json()["success"] is False and "nope/x" in r.json()["error"][0]["message"]
    assert requests.post(base, json=[], timeout=TIMEOUT).status_code == 400
    assert requests.post(base, json=[{"provider": "openai"}], timeout=TIMEOUT).status_code == 400
    r = requests.post(base, json=chat_body(), timeout=TIMEOUT)  # an object: not the universal endpoint's body
    assert r.status_code == 404 and "array of steps" in r.json()["error"][0]["message"]
    r = requests.get(base, timeout=TIMEOUT)
    assert r.status_code == 405


def test_gateway_token(monkeypatch: pytest.MonkeyPatch) -> None:
    with mock(gateway_token="sekret") as srv:
        base = as_gateway(monkeypatch, srv)
        for headers in ({}, {"cf-aig-authorization": "Bearer wrong"}):
            r = requests.post(base + "/openai/chat/completions", json=chat_body(), headers=headers, timeout=TIMEOUT)
            assert r.status_code == 401 and "cf-aig-log-id" in r.headers
            assert r.json() == {"success": False, "result": [], "messages": [],
                                "error": [{"code": 2009, "message": "Unauthorized"}]}
        call = client_call("cf-universal", base, UNIVERSAL_CHAIN)
        assert call.status == 401 and call.error.error_class == "auth" and "Unauthorized" in str(call.error)
        monkeypatch.setenv("CF_AIG_TOKEN", "sekret")  # the client sends cf-aig-authorization
        assert client_call("anthropic", base + "/anthropic", CLAUDE).text == words(6)
        assert client_call("cf-universal", base, UNIVERSAL_CHAIN).text == words(6)
        assert requests.post(srv.url + CHAT, json=chat_body(), timeout=TIMEOUT).status_code == 200  # direct route


# -- faults and --no-usage in every protocol -------------------------------------------------------

ANTHROPIC_TYPES = {401: "authentication_error", 403: "permission_error", 404: "not_found_error",
                   429: "rate_limit_error", 500: "api_error", 503: "overloaded_error",
                   529: "overloaded_error"}
GOOGLE_STATUS = {401: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED",
                 500: "INTERNAL", 503: "UNAVAILABLE", 529: "UNAVAILABLE"}
CF_CODES = {401: 10000, 403: 3041, 404: 3042, 429: 3040, 500: 3043, 503: 3040, 529: 3043}
ERROR_CLASS = {401: "auth", 403: "auth", 404: "not_found", 429: "rate_limit", 500: "server_error", 503: "overloaded",
               529: "overloaded"}


@pytest.mark.parametrize("status", [401, 403, 404, 429, 500, 503, 529])
def test_status_faults_in_each_protocols_shape(status: int) -> None:
    with mock(fault=f"status-{status}", retry_after=7) as srv:
        calls = {api: client_call(api, *apis(srv.url)[api]) for api in NEW_APIS}
        for api, call in calls.items():  # the client classifies each the same way, retry hint included
            assert call.error.error_class == ERROR_CLASS[status], (api, call.error)
            assert call.error.retry_after_s == (7.0 if status == 429 else None), api
        a = calls["anthropic"]
        assert a.status == status and (a.headers.get("retry-after") == "7") == (status == 429)
        body = json.loads(a.body)
        assert body["type"] == "error" and body["request_id"].startswith("req_mock") and body["error"]["message"]
        assert body["error"]["type"] == ANTHROPIC_TYPES[status]
        g, v = calls["gemini"], calls["vertex"]
        assert g.status == (400 if status == 401 else status) and "retry-after" not in g.headers
        err = json.loads(g.body)["error"]
        assert err["status"] == GOOGLE_STATUS[status] and err["code"] == g.status and err["message"]
        details = {d["@type"].rsplit(".", 1)[1]: d for d in err.get("details", [])}
        if status == 401:
            assert details["ErrorInfo"]["reason"] == "API_KEY_INVALID"
            assert v.status == 401 and json.loads(v.body)["error"]["status"] == "UNAUTHENTICATED"
        if status == 429:
            assert details["RetryInfo"]["retryDelay"] == "7s"
        w = calls["workers-ai"]
        assert w.status == status and (w.headers.get("retry-after") == "7") == (status == 429)
        body = json.loads(w.body)
        assert body["success"] is False and body["result"] is None and body["errors"][0]["code"] == CF_CODES[status]
        assert srv.stats["faults"] == 4


def test_midstream_error_in_each_protocol() -> None:
    with mock(fault="midstream-error", fault_after_tokens=2) as srv:
        for api, (host, model) in apis(srv.url).items():
            call = client_call(api, host, model)
            assert call.status == 200 and call.text == words(2), api
            assert len(call.errors) == 1 and call.finish is None, (api, call.errors)
            if api != "gemini" and api != "vertex":  # Gemini has no end marker: a clean end of the body is the end
                assert not call.done, api
        overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        assert post_sse(srv.url, "/v1/messages", ANTHROPIC_BODY)[-1] == ("error", overloaded)
        last = post_sse(srv.url, GEMINI_PATH, GEMINI_BODY)[-1][1]
        assert last["error"]["code"] == 500 and last["error"]["status"] == "INTERNAL"
        last = post_sse(srv.url, WORKERS_AI_PATH, WORKERS_AI_BODY)[-1][1]
        assert last["success"] is False and last["errors"][0]["code"] == 3043
        r = requests.post(srv.url + "/v1/messages", json={**ANTHROPIC_BODY, "stream": False}, timeout=TIMEOUT)
        assert r.status_code == 529 and r.json()["error"]["type"] == "overloaded_error"


def test_malformed_and_disconnect_in_each_protocol() -> None:
    with mock(fault="malformed", fault_after_tokens=2) as srv:
        for api, (host, model) in apis(srv.url).items():
            call = client_call(api, host, model)
            assert call.text == words(6) and call.done, api
            assert len(call.errors) == 1 and "not JSON" in call.errors[0], (api, call.errors)
    with mock(fault="disconnect", fault_after_tokens=2) as srv:
        for api in NEW_APIS:
            call = client_call(api, *apis(srv.url)[api])
            assert call.text == words(2) and not call.done, api
            assert [e for e in call.errors if e.startswith("incomplete")], (api, call.errors)


def test_no_usage_in_any_protocol() -> None:
    with mock(no_usage=True, reasoning_tokens=2, continuous_usage=True) as srv:
        for api, (host, model) in apis(srv.url).items():
            call = client_call(api, host, model)
            r = 0 if api == "openai-completions" else 2
            assert call.done and call.errors == [] and call.reasoning + call.text == words(6), api
            assert call.reasoning == words(r), api
            usage = call.clock.usage  # Ollama's last line still makes a Usage, with nothing in it
            assert usage is None or (usage.input_tokens, usage.output_tokens) == (None, None), (api, usage)
        events = sse(srv.url, body=chat_body(stream_options={"include_usage": True, "continuous_usage_stats": True}))
        assert not any(isinstance(e, dict) and "usage" in e for e in events)
        events = post_sse(srv.url, "/v1/messages", ANTHROPIC_BODY)
        assert "usage" not in events[0][1]["message"] and "usage" not in events[-2][1]
        assert not any("usageMetadata" in d for _, d in post_sse(srv.url, GEMINI_PATH, GEMINI_BODY))
        whole = requests.post(srv.url + CHAT, json=chat_body(stream=False), timeout=TIMEOUT).json()
        assert "usage" not in whole
        last = ndjson(srv.url, "/api/generate", {"prompt": "hi"})[-1]
        assert last["done"] and "eval_count" not in last and "prompt_eval_count" not in last
        assert "eval_duration" in last
    with mock(no_usage=True) as srv:  # Workers AI's native shape (no reasoning): no usage chunk, just [DONE]
        events = [d for _, d in post_sse(srv.url, WORKERS_AI_PATH, WORKERS_AI_BODY)]
        assert events == [{"response": WORDS[i]} for i in range(6)] + ["[DONE]"]


def test_send_log_names_the_protocol(tmp_path: Path) -> None:
    log = tmp_path / "sends.jsonl"
    with mock(send_log=str(log)) as srv:
        post_sse(srv.url, "/v1/messages", ANTHROPIC_BODY)
        post_sse(srv.url, GEMINI_PATH, GEMINI_BODY)
        post_sse(srv.url, f"/v1/acct/gw/workers-ai/{CF_MODEL}", WORKERS_AI_BODY)
        sse(srv.url)
    a, g, w, o = read_log(log)
    assert [x["protocol"] for x in (a, g, w, o)] == ["anthropic", "gemini", "workers-ai", "openai-chat"]
    assert all(x["step"] is None and x["tokens"] == 6 and x["status"] == 200 for x in (a, g, w, o))
    assert (a["model"], g["model"], w["model"]) == (CLAUDE, GEMINI, CF_MODEL)
    assert a["prompt_tokens"] == g["prompt_tokens"] == w["prompt_tokens"] == PROMPT_WORDS
    assert w["path"] == f"/v1/acct/gw/workers-ai/{CF_MODEL}"
