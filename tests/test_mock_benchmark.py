"""The mock server's benchmark models: ignore_eos / min_tokens and --early-eos, prefix-cache accounting
(usage ``cached_tokens``), and the --max-batch queue. Over real HTTP on 127.0.0.1, in tests/test_mockserver.py's
style (an in-process server in its own thread), plus the client's own parsing of the usage it sends.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from llm_locust.mockserver import MockConfig, MockServer
from llm_locust.mockserver.prefixcache import MockPrefixCache, prompt_words
from llm_locust.protocols import get_protocol

CHAT = "/v1/chat/completions"
TIMEOUT = 10
LONG = " ".join(f"w{i}" for i in range(40))  # 40 words: two whole blocks of 16 and a part


def mock(**cfg: Any) -> MockServer:
    defaults: dict[str, Any] = {"ttft_ms": 5, "itl_ms": 1, "output_tokens": 6}
    return MockServer(MockConfig(**{**defaults, **cfg})).start(in_thread=True)


def chat(url: str, messages: list[dict], **extra: Any) -> dict:
    body = {"model": "m", "messages": messages, "stream": False, **extra}
    r = requests.post(url + CHAT, json=body, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    return r.json()


def test_ignore_eos_and_min_tokens_over_http():
    with mock(output_tokens=6, early_eos=1.0) as srv:
        msgs = [{"role": "user", "content": "hi"}]
        plain = [chat(srv.url, msgs, max_tokens=6)["usage"]["completion_tokens"] for _ in range(5)]
        assert all(n < 6 for n in plain)  # every answer stops early
        fixed = chat(srv.url, msgs, max_tokens=20, ignore_eos=True)
        assert fixed["usage"]["completion_tokens"] == 20 and fixed["choices"][0]["finish_reason"] == "length"
        at_least = chat(srv.url, msgs, max_tokens=20, min_tokens=9)
        assert at_least["usage"]["completion_tokens"] == 9 and at_least["choices"][0]["finish_reason"] == "stop"
        r = requests.post(srv.url + CHAT, json={"model": "m", "messages": msgs, "min_tokens": -1}, timeout=TIMEOUT)
        assert r.status_code == 400


def test_prefix_cache_reports_the_repeated_prefix_in_whole_blocks():
    cache = MockPrefixCache(blocks=100, block_tokens=16)
    words = LONG.split()
    assert cache.cached(words) == 0
    assert cache.cached(words) == 32  # two whole blocks seen before
    assert cache.cached(words[:20] + ["other"] * 20) == 16  # only the first block is the same prefix
    assert cache.cached(["other"] * 16 + words[16:]) == 0  # block 2 alone is no prefix
    small = MockPrefixCache(blocks=2, block_tokens=16)
    small.cached(words)
    small.cached([f"x{i}" for i in range(32)])  # two new blocks push the first prompt's out
    assert small.cached(words) == 0


def test_cached_tokens_in_openai_usage_for_a_growing_conversation():
    with mock(prefix_cache_blocks=1000, prefix_block_tokens=16, output_tokens=20) as srv:
        turn1 = [{"role": "system", "content": LONG}, {"role": "user", "content": "first question"}]
        first = chat(srv.url, turn1)
        assert first["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}
        answer = first["choices"][0]["message"]["content"]
        turn2 = [*turn1, {"role": "assistant", "content": answer}, {"role": "user", "content": "and then?"}]
        second = chat(srv.url, turn2)
        cached = second["usage"]["prompt_tokens_details"]["cached_tokens"]
        # the history is the same prefix: every whole block of turn 1's words (its 3 role markers count too)
        assert cached == (len(prompt_words({"messages": turn1})) // 16) * 16 == 32
        assert cached < second["usage"]["prompt_tokens"]
        # streamed, the final usage chunk carries it, and the client reads it into the record's cached_tokens
        body = {"model": "m", "messages": turn2, "stream": True, "stream_options": {"include_usage": True}}
        with requests.post(srv.url + CHAT, json=body, stream=True, timeout=TIMEOUT) as r:
            lines = [line for line in r.iter_lines() if line.startswith(b"data: {")]
        proto = get_protocol("openai-chat")("http://x", "m")
        usage = [d.usage for d in (proto.parse("", line[6:]) for line in lines) if d.usage is not None]
        assert usage[-1].cached_tokens >= 32
    with mock() as srv:  # off by default: no prompt_tokens_details at all
        assert "prompt_tokens_details" not in chat(srv.url, [{"role": "user", "content": LONG}])["usage"]


def test_completions_prompts_are_cached_too():
    with mock(prefix_cache_blocks=10, prefix_block_tokens=8) as srv:
        body = {"model": "m", "prompt": LONG, "max_tokens": 2}
        usages = [requests.post(srv.url + "/v1/completions", json=body, timeout=TIMEOUT).json()["usage"]
                  for _ in range(2)]
        assert [u["prompt_tokens_details"]["cached_tokens"] for u in usages] == [0, 40]


def test_max_batch_queues_requests_beyond_the_batch():
    """With --max-batch 1 the second of two simultaneous requests starts after the first has ended: its first token
    comes after the first request's last one (order only, no time threshold)."""
    with mock(max_batch=1, ttft_ms=30, itl_ms=5, output_tokens=10) as srv:
        def one(_: int) -> tuple[float, float]:
            body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
            with requests.post(srv.url + CHAT, json=body, stream=True, timeout=TIMEOUT) as r:
                stamps = [time.perf_counter() for line in r.iter_lines() if b'"content":" ' in line]
            return stamps[0], stamps[-1]

        with ThreadPoolExecutor(2) as pool:
            (a_first, a_last), (b_first, b_last) = sorted(pool.map(one, range(2)))
        assert b_first >= a_last


def test_the_send_log_shows_what_was_asked_cached_and_queued(tmp_path):
    log = tmp_path / "send.jsonl"
    with mock(prefix_cache_blocks=100, max_batch=2, send_log=str(log)) as srv:
        msgs = [{"role": "user", "content": LONG}]
        chat(srv.url, msgs, max_tokens=8, ignore_eos=True, min_tokens=8)
        chat(srv.url, msgs, max_tokens=8)
    first, second = (json.loads(line) for line in log.read_text().splitlines())
    assert first["length_asked"] == "ignore_eos,min_tokens:8" and second["length_asked"] is None
    assert first["cached_tokens"] == 0 and second["cached_tokens"] == 32
    assert first["t_admitted_ns"] >= first["t_recv_ns"]


def test_bad_values_of_the_new_options():
    for bad in ({"early_eos": 1.5}, {"prefix_cache_blocks": -1}, {"prefix_block_tokens": 0}, {"max_batch": -2}):
        with pytest.raises(ValueError):
            MockConfig(**bad)
