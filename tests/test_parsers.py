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
from llm_locust.protocols import EndpointError, check_endpoint, get_protocol
from llm_locust.protocols.cloudflare import gateway_api, gateway_base

STREAMS = Path(__file__).parent / "data" / "streams"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
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


# ---------------------------------------------------------------- providers


def test_anthropic_thinking_then_text_with_cumulative_usage():
    clock, deltas, _ = replay("anthropic", "anthropic_thinking.sse")
    assert "".join(clock.reasoning) == "Let me think." and "".join(clock.text) == "Paris."
    assert deltas[-1].done
    u = clock.usage
    # input normalised to input + cache creation + cache read; output from the last message_delta (never summed)
    assert (u.input_tokens, u.output_tokens, u.cached_tokens) == (125, 9, 100)
    t = timing(0, clock, u.output_tokens)
    assert t.ttft_ms == 10.0 and t.ttft_text_ms == 22.0  # the ping and the signature delta are not tokens


def test_anthropic_overloaded_error_event_mid_stream():
    _, deltas, _ = replay("anthropic", "anthropic_overloaded.sse")
    assert deltas[-1].error == "overloaded_error: Overloaded"


def test_gemini_thought_parts_usage_and_finish():
    clock, deltas, _ = replay("gemini", "gemini_thoughts.sse")
    assert "".join(clock.reasoning) == "Considering the question." and "".join(clock.text) == "The answer is 42."
    assert deltas[-1].done and deltas[-1].finish_reason == "STOP"
    u = clock.usage
    assert (u.input_tokens, u.output_tokens, u.reasoning_tokens, u.cached_tokens) == (9, 35, 30, 4)


def test_workers_ai_native_response_chunks_and_trailing_usage():
    clock, deltas, _ = replay("workers-ai", "workers_ai.sse")
    assert "".join(clock.text) == "Hello world" and len(clock.token_ns) == 2
    assert clock.usage.input_tokens == 18 and clock.usage.output_tokens == 2
    assert deltas[-1].done


def test_workers_ai_openai_shaped_chunks_on_the_native_route():
    clock, _, _ = replay("workers-ai", "workers_ai_openai_shape.sse")
    assert "".join(clock.reasoning) == "Hmm." and "".join(clock.text) == "Yes"
    assert clock.usage.output_tokens == 6


def test_custom_template_tgi_stream(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_dummy")
    from llm_locust.prompts import Prompt
    from llm_locust.protocols.custom import CustomREST

    proto = CustomREST("http://127.0.0.1:1", "tgi", template=str(EXAMPLES / "custom-tgi-stream.yaml"))
    body = proto.body(Prompt(name="a", text="Why is the sky blue?"), 64)
    assert body == {"inputs": "Why is the sky blue?", "parameters": {"max_new_tokens": 64, "details": True}}
    assert proto.headers(None)["Authorization"] == "Bearer hf_dummy"
    decoder = DECODERS[proto.framing]()
    clock = StreamClock()
    last = None
    for i, line in enumerate((STREAMS / "tgi_generate_stream.sse").read_bytes().splitlines(keepends=True), 1):
        event = decoder.feed(i * MS, line)
        if event:
            last = proto.parse(event[1], event[2])
            clock.add(event[0], last.text, last.reasoning, last.usage)
    assert "".join(clock.text) == " The sky"  # the special </s> token is skipped
    assert last.done and clock.usage.output_tokens == 3


def test_custom_template_single_json_body(monkeypatch):
    monkeypatch.setenv("MY_LLM_KEY", "k")
    from llm_locust.prompts import Prompt
    from llm_locust.protocols.custom import CustomREST

    proto = CustomREST("http://127.0.0.1:1", "my-model", template=str(EXAMPLES / "custom-json-endpoint.yaml"))
    body = proto.body(Prompt(name="a", text="hi", system="be brief"), None)
    assert body["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert body["max_output_tokens"] is None and body["model"] == "my-model"
    decoder = DECODERS["json"]()
    lines = [b"{\n", b'"output": {"text": "Hello there"},\n', b'"usage": {"input_tokens": 5, "output_tokens": 2}}\n']
    for i, line in enumerate(lines, 1):
        assert decoder.feed(i * MS, line) is None
    t, _, data = decoder.flush()
    assert t == 3 * MS  # timed by the last line: the answer is complete only then
    delta = proto.parse("", data)
    assert delta.text == "Hello there" and delta.done and delta.usage.output_tokens == 2


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("path: /x\nbody: {}\nframing: sse\n", "missing 'text'"),
        ("path: /x\nbody: {}\nframing: grpc\ntext: a\n", "framing must be sse, ndjson or json"),
        ("path: x\nbody: {}\nframing: sse\ntext: a\n", "'path' must be a string starting with '/'"),
        ("path: /x\nbody: {}\nframing: sse\ntext: 'a..b'\n", "'text' is not a JSON path"),
        ("path: /x\nbody: {}\nframing: sse\ntext: a\nheaders: {A: '${NOPE_NOT_SET_1}'}\n", "NOPE_NOT_SET_1"),
        ("path: /x\nbody: {}\nframing: sse\ntext: a\nstream: true\n", "unknown key(s) ['stream']"),
    ],
)
def test_custom_template_validation(tmp_path, content, expected):
    from llm_locust.protocols.custom import TemplateError, load_template

    path = tmp_path / "t.yaml"
    path.write_text(content)
    with pytest.raises(TemplateError) as e:
        load_template(path)
    assert expected in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("host", "api", "path"),
    [
        ("https://gateway.ai.cloudflare.com/v1/acct/gw/openai", "openai-chat", "/chat/completions"),
        ("https://gateway.ai.cloudflare.com/v1/acct/gw/deepseek", "openai-chat", "/chat/completions"),
        ("https://gateway.ai.cloudflare.com/v1/acct/gw/mistral", "openai-chat", "/v1/chat/completions"),
        ("https://gateway.ai.cloudflare.com/v1/acct/gw/compat", "openai-chat", "/chat/completions"),
        ("https://gateway.ai.cloudflare.com/v1/acct/gw/anthropic", "anthropic", "/v1/messages"),
        ("https://gateway.ai.cloudflare.com/v1/acct/gw/google-ai-studio", "gemini",
         "/v1beta/models/m:streamGenerateContent?alt=sse"),
        ("https://gateway.ai.cloudflare.com/v1/acct/gw/workers-ai", "workers-ai", "/m"),
        ("https://api.cloudflare.com/client/v4/accounts/acct", "workers-ai", "/ai/run/m"),
        ("https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1", "vertex",
         "/publishers/google/models/m:streamGenerateContent?alt=sse"),
    ],
)  # fmt: skip
def test_provider_and_gateway_paths(host, api, path):
    assert get_protocol(api)(host, "m").request_path() == path


def test_gateway_headers_and_pricing_by_upstream_provider(monkeypatch):
    monkeypatch.setenv("CF_AIG_TOKEN", "gw-token")
    proto = get_protocol("openai-chat")("https://gateway.ai.cloudflare.com/v1/a/g/compat", "anthropic/claude-3-5-haiku")
    headers = proto.headers("sk-x")
    assert headers["cf-aig-skip-cache"] == "true" and headers["cf-aig-authorization"] == "Bearer gw-token"
    assert proto.price_ref() == ("anthropic", "claude-3-5-haiku")
    proto = get_protocol("gemini")("https://gateway.ai.cloudflare.com/v1/a/g/google-ai-studio", "gemini-2.0-flash")
    assert proto.price_ref() == ("google", "gemini-2.0-flash")


def test_universal_endpoint_steps_and_the_answering_step(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-dummy")
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "cf-dummy")
    from llm_locust.prompts import Prompt

    proto = get_protocol("cf-universal")(
        "https://gateway.ai.cloudflare.com/v1/a/g", "workers-ai/@cf/meta/llama-3.1-8b-instruct,openai/gpt-4o-mini"
    )
    steps = proto.body(Prompt(name="p", text="hi"), 16)
    assert [s["provider"] for s in steps] == ["workers-ai", "openai"]
    assert steps[0]["endpoint"] == "@cf/meta/llama-3.1-8b-instruct" and steps[1]["endpoint"] == "chat/completions"
    assert steps[1]["headers"]["Authorization"] == "Bearer sk-openai-dummy"
    assert steps[1]["query"]["max_tokens"] == 16 and steps[1]["query"]["model"] == "gpt-4o-mini"
    answered = proto.for_response({"cf-aig-step": "1"})
    assert answered.name == "openai-chat" and answered.model == "gpt-4o-mini"
    assert answered.price_ref() == ("openai", "gpt-4o-mini")
    assert proto.for_response({}).name == "workers-ai"


def test_llm_gateway_url_makes_every_host_under_it_a_gateway(monkeypatch):
    monkeypatch.setenv("LLM_GATEWAY_URL", "http://127.0.0.1:9/gw/")  # any gateway or test server, any path
    monkeypatch.setenv("CF_AIG_TOKEN", "gw-token")
    proto = get_protocol("openai-chat")("http://127.0.0.1:9/gw/openai", "gpt-4o-mini")
    assert proto.request_path() == "/chat/completions" and proto.price_ref() == ("openai", "gpt-4o-mini")
    assert proto.headers("sk-x")["cf-aig-authorization"] == "Bearer gw-token"
    assert proto.response_fields({"cf-aig-step": "0"})["gateway_step"] == "0"
    direct = get_protocol("openai-chat")("http://127.0.0.1:9", "gpt-4o-mini")  # the same server, not under the URL
    assert direct.request_path() == "/v1/chat/completions" and direct.response_fields({}) == {}
    assert set(direct.headers("sk-x")) == {"Authorization"}
    assert gateway_base() == "http://127.0.0.1:9/gw"
    assert [gateway_api(u) for u in ("http://127.0.0.1:9/gw", "http://127.0.0.1:9/gw/anthropic",
                                     "http://127.0.0.1:9/gw/azure-openai", "http://127.0.0.1:9/v1")] == [
        "cf-universal", "anthropic", "openai-chat", None]  # fmt: skip
    assert get_protocol("cf-universal")("http://127.0.0.1:9/gw", "openai/gpt-4o").steps[0].request_path() == (
        "/chat/completions"
    )


GW = "https://gateway.ai.cloudflare.com/v1/acct/gw"


@pytest.mark.parametrize(
    ("gateway_url", "api", "host", "model", "expected"),
    [
        (None, "cf-universal", "http://127.0.0.1:9", "openai/gpt-4o", "is not a Cloudflare AI Gateway URL"),
        (None, "cf-universal", GW, "gpt-4o", "is not 'provider/model'"),
        (None, "openai-chat", GW, "gpt-4o", "universal endpoint"),
        (None, "openai-chat", GW + "/anthropic", "claude-3-5-haiku-latest", "use --llm-api anthropic"),
        (None, "gemini", GW + "/workers-ai", "@cf/m", "speaks workers-ai or openai-chat"),
        ("gateway.ai.cloudflare.com/v1/a/g", "openai-chat", "http://127.0.0.1:9", "m", "LLM_GATEWAY_URL="),
    ],
)
def test_gateway_misconfiguration_is_one_line_before_any_request(monkeypatch, gateway_url, api, host, model,
                                                                 expected):  # fmt: skip
    monkeypatch.setenv("CF_AIG_TOKEN", "gw-secret")
    if gateway_url:
        monkeypatch.setenv("LLM_GATEWAY_URL", gateway_url)
    with pytest.raises(EndpointError) as e:
        check_endpoint(api, host, model)
    assert expected in str(e.value) and "\n" not in str(e.value) and "gw-secret" not in str(e.value)


def test_gateway_routes_that_fit_pass_the_check():
    for api, host in [("openai-chat", GW + "/workers-ai"), ("workers-ai", GW + "/workers-ai"), ("cf-universal", GW),
                      ("openai-chat", GW + "/azure-openai"), ("custom", GW + "/anthropic"),
                      ("ollama-chat", "http://127.0.0.1:11434")]:  # fmt: skip
        check_endpoint(api, host, "openai/gpt-4o")


def test_gemini_errors_map_with_retry_info():
    proto = get_protocol("gemini")("https://generativelanguage.googleapis.com", "gemini-2.0-flash")
    body = (b'{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED","details":'
            b'[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}}')  # fmt: skip
    err = proto.classify(429, body, {})
    assert err.error_class == "rate_limit" and err.retry_after_s == 37.0 and "Quota exceeded" in str(err)
    body = (b'{"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT","details":'
            b'[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID"}]}}')  # fmt: skip
    assert proto.classify(400, body, {}).error_class == "auth"
