"""A huge response neither stalls the event loop nor grows without bound: estimate beyond a size, cut beyond a limit.

In-process, on the same stream loop and record builder the users run: the path taken is asserted (the estimate
source, the error class), never a wall-clock threshold; the bookkeeping time is printed for the record.
"""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

from llm_locust.measure.build import build_record
from llm_locust.measure.stream import StreamResult, read_stream
from llm_locust.prompts import Prompt
from llm_locust.protocols import get_protocol
from llm_locust.tokens import COUNT_LIMIT, ESTIMATE_SOURCE, TokenCounter

HUGE = 5 * 1024 * 1024


class Body:
    def __init__(self, lines: list[bytes]) -> None:
        self.lines = iter(lines)

    def readline(self, sep: bytes) -> bytes:
        return next(self.lines, b"")


def sse(content: str, finish: str | None = None) -> bytes:
    chunk = {"choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n"


def lines(content: str) -> list[bytes]:
    return [sse(content), b"\n", sse(" end", "stop"), b"\n", b"data: [DONE]\n", b"\n"]


_COUNTERS: list[TokenCounter] = []


def counter() -> TokenCounter:
    if not _COUNTERS:
        _COUNTERS.append(TokenCounter("gpt-4o"))
    return _COUNTERS[0]


def build(out: StreamResult) -> dict:
    tgt = SimpleNamespace(name="t", host="http://127.0.0.1:1", tokens=counter(),
                          prices=SimpleNamespace(cost=lambda *_: (None, None)))
    return build_record(
        user="U", target=tgt, prompt=Prompt(name="p", text="hi"), input_tokens_local=1,
        request_id="r", start_wall=1.7e9, t0=0, out=out,
    )


def new() -> StreamResult:
    return StreamResult(get_protocol("openai-chat")("http://127.0.0.1:1", "gpt-4o"))


def test_a_5mb_sse_line_is_counted_by_estimate_not_tiktoken():
    out = read_stream(new(), Body(lines("word " * (HUGE // 5))), max_bytes=16 * 1024 * 1024)
    assert out.error is None and out.done
    counter()  # loaded before the clock starts
    t = time.perf_counter()
    rec = build(out)
    print(f"bookkeeping of a 5 MB response: {(time.perf_counter() - t) * 1000:.2f} ms")
    assert rec["status"] == "ok"
    assert rec["output_tokens_source"] == ESTIMATE_SOURCE and rec["local_tokens_source"] == ESTIMATE_SOURCE
    assert rec["output_tokens"] == (HUGE // 5 * 5 + 4 + 3) // 4


def test_a_small_response_is_still_counted_with_tiktoken():
    rec = build(read_stream(new(), Body(lines("hello world")), max_bytes=1024))
    assert rec["output_tokens_source"].startswith("tiktoken:") and rec["output_tokens"] == 3
    assert len("hello world") < COUNT_LIMIT


def test_a_response_beyond_the_limit_is_cut_and_classified():
    body = Body(lines("x" * 4096) + [b"never read\n"])
    out = read_stream(new(), body, max_bytes=1000)
    assert out.error is not None and out.error.error_class == "response_too_large"
    assert "--max-response-bytes 1000" in str(out.error)
    assert next(body.lines) == b"\n"  # reading stopped at the line that crossed the limit
    rec = build(out)
    assert rec["status"] == "failed" and rec["error_class"] == "response_too_large"
