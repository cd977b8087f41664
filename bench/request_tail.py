"""In-process cost of one request's tail: ``parse_lines`` + ``build_record`` + ``Recorder.add`` (CSV row, table,
live view), for a 2-token and a 128-token answer as the mock server streams them (OpenAI chat, usage included),
with the local token count (tiktoken) and the price book of a self-hosted endpoint; plus the request id.

    TIKTOKEN_CACHE_DIR=../shared/tiktoken taskset -c 1 python bench/request_tail.py

Best of 9 repeats of 2,000 calls; prints microseconds. No I/O, no Locust: what the bookkeeper runs per request
(docs/performance.md, "fifth pass"); under load the same work costs more (cache misses), which only the
end-to-end bench (``bench/measurement_error.py``) shows.
"""

from __future__ import annotations

import sys
import tempfile
import time
import timeit
from array import array
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llm_locust import requestid  # noqa: E402
from llm_locust.live import LiveView  # noqa: E402
from llm_locust.measure.build import build_record  # noqa: E402
from llm_locust.measure.stream import StreamResult, parse_lines  # noqa: E402
from llm_locust.mockserver.openai import OpenAIEncoder  # noqa: E402
from llm_locust.mockserver.script import token_text  # noqa: E402
from llm_locust.mockserver.wire import GenRequest, Reply  # noqa: E402
from llm_locust.pricing import PriceBook  # noqa: E402
from llm_locust.prompts import Prompt  # noqa: E402
from llm_locust.protocols import get_protocol  # noqa: E402
from llm_locust.recorder import Recorder  # noqa: E402
from llm_locust.tokens import TokenCounter  # noqa: E402

HOST = "http://127.0.0.1:1"


def lines_of(n: int) -> list[bytes]:
    """The body lines of an n-token answer, as the mock server writes them (b"" at the end)."""
    enc = OpenAIEncoder(GenRequest("m", True, None, 5, True, False), Reply(1, "x", 1700000000, 5, 0), True, False)
    body = b"".join(enc.opening())
    for k in range(n):
        body += enc.tokens(token_text(k, 1), False, k + 1, 0)
    body += b"".join(enc.closing("length", n, 0))
    return [line + b"\n" for line in body.split(b"\n")[:-1]] + [b""]


def main() -> None:
    proto = get_protocol("openai-chat")(HOST, "m")
    target = SimpleNamespace(name="default", host=HOST, tokens=TokenCounter("m"), prices=PriceBook(HOST, None))
    prompt = Prompt("p", "Say hello in five words.")
    recorder = Recorder(Path(tempfile.mkdtemp(prefix="llm-locust-tail-")) / "requests.csv")
    recorder.listeners.append(LiveView(["p"], ["default"]).add)

    def read(lines: list[bytes], stamps: list[int]) -> StreamResult:
        out = StreamResult(proto)
        out.lines, out.stamps, out.ended, out.status, out.t_end = list(lines), array("q", stamps), True, 200, stamps[-1]
        return out

    def tail(lines: list[bytes], stamps: list[int]) -> StreamResult:
        out = read(lines, stamps)
        parse_lines(out)
        recorder.add(build_record(user="U", target=target, prompt=prompt, input_tokens_local=7,
                                  request_id=requestid.new(), start_wall=time.time(), t0=0, out=out))
        return out

    def best(fn: object, number: int = 2000) -> float:
        return min(timeit.repeat(fn, number=number, repeat=9)) / number * 1e6

    for n in (2, 128):
        lines = lines_of(n)
        stamps = [1_000_000 + 1_000_003 * i for i in range(len(lines))]
        out = tail(lines, stamps)
        assert out.error is None and len(out.clock.token_ns) == n, out.error
        parse = best(lambda lines=lines, stamps=stamps: parse_lines(read(lines, stamps)))
        whole = best(lambda lines=lines, stamps=stamps: tail(lines, stamps))
        print(f"{n:4d} tokens: tail {whole:7.1f} us  (parse_lines {parse:6.1f} us, {parse / n:.2f} us a token)")
    print(f"request id: {best(requestid.new, 20000):.2f} us")


if __name__ == "__main__":
    main()
