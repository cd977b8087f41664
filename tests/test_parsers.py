"""Protocol parsers on recorded example streams (tests/data/streams, written from the providers' documented formats).

Each stream is fed line by line, with one millisecond between lines, through the framing decoder, the protocol
parser and the stream clock, exactly as the user class does it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_locust.errors import MalformedChunk
from llm_locust.framing import DECODERS
from llm_locust.metrics import ITL_PER_EVENT, ITL_USAGE_SPLIT, StreamClock, timing
from llm_locust.protocols import get_protocol

STREAMS = Path(__file__).parent / "data" / "streams"
MS = 1_000_000


def replay(api: str, name: str) -> tuple[StreamClock, list, int]:
    """Feed the file's lines at t = 1 ms, 2 ms, ...; return the clock, the deltas and the line count."""
    proto = get_protocol(api)("http://127.0.0.1:1", "m")
    decoder = DECODERS[proto.framing]()
    clock = StreamClock()
    deltas = []
    lines = (STREAMS / name).read_bytes().splitlines(keepends=True)
    for i, line in enumerate(lines, 1):
        event = decoder.feed(i * MS, line)
        if event is None:
            continue
        delta = proto.parse(event[1], event[2])
        deltas.append(delta)
        clock.add(event[0], delta.text, delta.reasoning, delta.usage)
    tail = decoder.flush()
    assert tail is None
    return clock, deltas, len(lines)


def test_openai_chat_role_chunk_and_empty_delta_are_not_tokens():
    clock, deltas, _ = replay("openai-chat", "openai_chat.sse")
    assert "".join(clock.text) == "Paris is the capital."
    assert clock.token_ns == [3 * MS, 5 * MS, 9 * MS]  # lines 3, 5 and 9 carry content
    assert clock.usage.input_tokens == 14 and clock.usage.output_tokens == 5
    assert deltas[-1].done
    t = timing(0, clock, clock.usage.output_tokens)
    assert t.ttft_ms == 3.0 and t.e2e_ms == 9.0
    assert t.tpot_ms == pytest.approx((9 - 3) / 4)
    assert t.itl_rule == ITL_PER_EVENT and list(t.itl_us) == [2000, 4000]


def test_deepseek_keepalive_comments_skipped_and_reasoning_counts_for_ttft():
    clock, deltas, _ = replay("openai-chat", "deepseek_reasoner.sse")
    assert "".join(clock.reasoning) == "Thinking." and "".join(clock.text) == "42"
    t = timing(0, clock, 4)
    assert t.ttft_ms == 7.0  # first reasoning delta, after two keep-alives and the role chunk
    assert t.ttft_text_ms == 11.0
    assert clock.usage.reasoning_tokens == 3 and clock.usage.cached_tokens == 0


def test_vllm_continuous_usage_splits_multi_token_chunks():
    clock, _, _ = replay("openai-chat", "vllm_continuous_usage.sse")
    assert clock.cumulative_usage
    t = timing(0, clock, clock.usage.output_tokens)
    assert t.itl_rule == ITL_USAGE_SPLIT
    # events at 3, 5, 7 ms carrying 2, 3, 1 tokens: the 2 ms gap before the 3-token chunk counts 3 times
    assert list(t.itl_us) == [666, 666, 666, 2000]
    assert t.tpot_ms == pytest.approx((7 - 3) / 5)


def test_mistral_content_lists_with_thinking():
    clock, _, _ = replay("openai-chat", "mistral_thinking.sse")
    assert "".join(clock.reasoning) == "Hmm" and "".join(clock.text) == "Bonjour!"


def test_openai_error_event_mid_stream():
    _, deltas, _ = replay("openai-chat", "openai_midstream_error.sse")
    assert deltas[-1].error.startswith("The server had an error")


def test_sse_multiline_data_is_joined_and_timed_by_its_first_line():
    clock, deltas, _ = replay("openai-chat", "multiline.sse")
    assert "".join(clock.text) == "joined"
    assert clock.token_ns == [MS]  # the event: line opened it
    assert deltas[-1].done


def test_ollama_chat_ndjson_with_final_usage():
    clock, deltas, _ = replay("ollama-chat", "ollama_chat.ndjson")
    assert "".join(clock.text) == "The sky is blue."
    assert clock.token_ns == [MS, 2 * MS, 4 * MS]  # the blank line 3 is skipped
    assert deltas[-1].done and deltas[-1].finish_reason == "stop"
    assert clock.usage.input_tokens == 26 and clock.usage.output_tokens == 5


def test_ollama_generate_thinking_then_response():
    clock, _, _ = replay("ollama-generate", "ollama_generate_thinking.ndjson")
    t = timing(0, clock, 3)
    assert t.ttft_ms == 1.0 and t.ttft_text_ms == 3.0


def test_ollama_error_line():
    _, deltas, _ = replay("ollama-chat", "ollama_error.ndjson")
    assert "unexpected EOF" in deltas[-1].error


def test_malformed_chunk_raises_a_classified_error():
    proto = get_protocol("openai-chat")("http://127.0.0.1:1", "m")
    with pytest.raises(MalformedChunk, match="not JSON"):
        proto.parse("", b"{not json")


@pytest.mark.parametrize(
    ("host", "api", "path"),
    [
        ("http://localhost:8000", "openai-chat", "/v1/chat/completions"),
        ("http://localhost:8000/v1", "openai-chat", "/chat/completions"),
        ("https://api.openai.com/v1/", "openai-completions", "/completions"),
        ("http://localhost:11434/api/generate", "ollama-generate", ""),
        ("http://localhost:11434/api", "ollama-chat", "/chat"),
    ],
)
def test_request_path_joins_with_a_base_url(host, api, path):
    assert get_protocol(api)(host, "m").request_path() == path


def test_openai_uses_max_completion_tokens_only_on_api_openai_com():
    from llm_locust.prompts import Prompt

    p = Prompt(name="a", text="x")
    assert "max_completion_tokens" in get_protocol("openai-chat")("https://api.openai.com/v1", "o3-mini").body(p, 5)
    body = get_protocol("openai-chat")("http://localhost:8000", "m").body(p, 5)
    assert body["max_tokens"] == 5 and body["stream_options"] == {"include_usage": True}
