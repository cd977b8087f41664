"""Protocol parsers on recorded example streams (tests/data/streams, written from the providers' documented formats).

Each stream is fed line by line, with one millisecond between lines, through the stream reader that the user
class reads responses with (``llm_locust.measure.stream.read_stream``): a fake body hands out the recorded lines
and a fake clock reads 1 ms, 2 ms, ... for them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_locust import errors
from llm_locust.errors import MalformedChunk
from llm_locust.measure.metrics import ITL_PER_EVENT, ITL_USAGE_SPLIT, timing
from llm_locust.measure.stream import StreamResult, parse_lines, read_lines, read_stream
from llm_locust.protocols import EndpointError, Protocol, check_endpoint, get_protocol
from llm_locust.protocols.cloudflare import gateway_api, gateway_base

STREAMS = Path(__file__).parent / "data" / "streams"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
MS = 1_000_000


class Body:
    """A recorded body: ``readline`` hands out its lines, then ``b""``; ``now`` reads line number x 1 ms."""

    def __init__(self, data: bytes) -> None:
        self.lines = data.splitlines(keepends=True)
        self.n = 0

    def readline(self, sep: bytes = b"\n") -> bytes:
        assert sep == b"\n"
        self.n += 1
        return self.lines[self.n - 1] if self.n <= len(self.lines) else b""

    def now(self) -> int:
        return self.n * MS


def read(proto: Protocol, data: bytes, secrets: tuple[str, ...] = ()) -> StreamResult:
    """Read ``data`` as a response body with ``proto``, line i arriving at t = i ms."""
    body = Body(data)
    return read_stream(StreamResult(proto), body, secrets, now=body.now)


def replay(api: str, name: str) -> StreamResult:
    """Read the recorded stream tests/data/streams/``name`` with the ``api`` protocol."""
    return read(get_protocol(api)("http://127.0.0.1:1", "m"), (STREAMS / name).read_bytes())


def test_openai_chat_role_chunk_and_empty_delta_are_not_tokens():
    out = replay("openai-chat", "openai_chat.sse")
    assert "".join(out.clock.text) == "Paris is the capital."
    assert out.clock.token_ns == [3 * MS, 5 * MS, 9 * MS]  # lines 3, 5 and 9 carry content
    assert out.clock.usage.input_tokens == 14 and out.clock.usage.output_tokens == 5
    assert out.done
    t = timing(0, out.clock, out.clock.usage.output_tokens)
    assert t.ttft_ms == 3.0 and t.e2e_ms == 9.0
    assert t.tpot_ms == pytest.approx((9 - 3) / 4)
    assert t.itl_rule == ITL_PER_EVENT and list(t.itl_us) == [2000, 4000]


def test_deepseek_keepalive_comments_skipped_and_reasoning_counts_for_ttft():
    out = replay("openai-chat", "deepseek_reasoner.sse")
    assert "".join(out.clock.reasoning) == "Thinking." and "".join(out.clock.text) == "42"
    t = timing(0, out.clock, 4)
    assert t.ttft_ms == 7.0  # first reasoning delta, after two keep-alives and the role chunk
    assert t.ttft_text_ms == 11.0
    assert out.clock.usage.reasoning_tokens == 3 and out.clock.usage.cached_tokens == 0


def test_vllm_continuous_usage_splits_multi_token_chunks():
    out = replay("openai-chat", "vllm_continuous_usage.sse")
    assert out.clock.cumulative_usage
    t = timing(0, out.clock, out.clock.usage.output_tokens)
    assert t.itl_rule == ITL_USAGE_SPLIT
    # events at 3, 5, 7 ms carrying 2, 3, 1 tokens: the 2 ms gap before the 3-token chunk counts 3 times
    assert list(t.itl_us) == [666, 666, 666, 2000]
    assert t.tpot_ms == pytest.approx((7 - 3) / 5)


def test_mistral_content_lists_with_thinking():
    out = replay("openai-chat", "mistral_thinking.sse")
    assert "".join(out.clock.reasoning) == "Hmm" and "".join(out.clock.text) == "Bonjour!"


def test_openai_error_event_mid_stream():
    out = replay("openai-chat", "openai_midstream_error.sse")
    assert isinstance(out.error, errors.StreamError) and out.error.message.startswith("The server had an error")


def test_sse_multiline_data_is_joined_and_timed_by_its_first_line():
    out = replay("openai-chat", "multiline.sse")
    assert "".join(out.clock.text) == "joined"
    assert out.clock.token_ns == [MS]  # the event: line opened it
    assert out.done


def test_ollama_chat_ndjson_with_final_usage():
    out = replay("ollama-chat", "ollama_chat.ndjson")
    assert "".join(out.clock.text) == "The sky is blue."
    assert out.clock.token_ns == [MS, 2 * MS, 4 * MS]  # the blank line 3 is skipped
    assert out.done and out.finish == "stop"
    assert out.clock.usage.input_tokens == 26 and out.clock.usage.output_tokens == 5


def test_ollama_generate_thinking_then_response():
    out = replay("ollama-generate", "ollama_generate_thinking.ndjson")
    t = timing(0, out.clock, 3)
    assert t.ttft_ms == 1.0 and t.ttft_text_ms == 3.0


def test_ollama_error_line():
    out = replay("ollama-chat", "ollama_error.ndjson")
    assert isinstance(out.error, errors.StreamError) and "unexpected EOF" in out.error.message


def test_malformed_chunk_raises_a_classified_error():
    proto = get_protocol("openai-chat")("http://127.0.0.1:1", "m")
    with pytest.raises(MalformedChunk, match="not JSON"):
        proto.parse("", b"{not json")


# ---------------------------------------------------------------- how a stream ends

CHUNK = b'data: {"choices":[{"index":0,"delta":{"content":"%s"}}]}\n\n'
DONE = b"data: [DONE]\n\n"


def chat() -> Protocol:
    return get_protocol("openai-chat")("http://127.0.0.1:1", "m")


def test_a_stream_without_its_end_marker_is_incomplete():
    out = read(chat(), CHUNK % b"a" + CHUNK % b"b")
    assert isinstance(out.error, errors.IncompleteStream) and not out.done
    assert "".join(out.clock.text) == "ab"  # what came is kept


def test_a_complete_stream_without_tokens_is_empty():
    out = read(chat(), b'data: {"choices":[{"index":0,"delta":{"role":"assistant"}}]}\n\n' + DONE)
    assert out.done and isinstance(out.error, errors.EmptyResponse)


def test_a_malformed_chunk_is_the_first_error_and_reading_goes_on():
    out = read(chat(), CHUNK % b"a" + b"data: {not json\n\n" + b"data: [1]\n\n" + CHUNK % b"b" + DONE)
    assert isinstance(out.error, MalformedChunk) and "not JSON" in str(out.error)
    assert out.done and "".join(out.clock.text) == "ab"


def test_a_stream_error_is_redacted_of_the_run_secrets():
    body = CHUNK % b"a" + b'data: {"error":{"message":"bad key sk-secret-123 for you"}}\n\n' + DONE
    out = read(chat(), body, secrets=("sk-secret-123",))
    assert isinstance(out.error, errors.StreamError)
    assert "sk-secret-123" not in str(out.error) and "bad key" in str(out.error)


def test_an_ndjson_stream_that_ends_at_the_close_of_the_body():
    proto = get_protocol("ollama-chat")("http://127.0.0.1:1", "m")
    line = b'{"message":{"role":"assistant","content":"hi"},"done":false}\n'
    assert not proto.ends_at_close and isinstance(read(proto, line).error, errors.IncompleteStream)
    proto.ends_at_close = True  # as for protocols whose stream has no end marker
    out = read(proto, line)
    assert out.done and out.error is None


def test_a_readline_failure_propagates_and_keeps_what_was_read():
    class Broken(Body):
        def readline(self, sep: bytes = b"\n") -> bytes:
            if self.n == 2:
                raise ConnectionResetError("peer went away")
            return super().readline(sep)

    body = Broken(CHUNK % b"a" + DONE)
    out = StreamResult(chat())
    with pytest.raises(ConnectionResetError):
        read_stream(out, body, now=body.now)
    assert out.clock.token_ns == [MS] and not out.done and out.error is None


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
    out = replay("anthropic", "anthropic_thinking.sse")
    assert "".join(out.clock.reasoning) == "Let me think." and "".join(out.clock.text) == "Paris."
    assert out.done
    u = out.clock.usage
    # input normalised to input + cache creation + cache read; output from the last message_delta (never summed)
    assert (u.input_tokens, u.output_tokens, u.cached_tokens) == (125, 9, 100)
    t = timing(0, out.clock, u.output_tokens)
    assert t.ttft_ms == 10.0 and t.ttft_text_ms == 22.0  # the ping and the signature delta are not tokens


def test_anthropic_overloaded_error_event_mid_stream():
    out = replay("anthropic", "anthropic_overloaded.sse")
    assert out.error.message == "overloaded_error: Overloaded"


def test_gemini_thought_parts_usage_and_finish():
    out = replay("gemini", "gemini_thoughts.sse")
    assert "".join(out.clock.reasoning) == "Considering the question."
    assert "".join(out.clock.text) == "The answer is 42."
    assert out.done and out.finish == "STOP"
    u = out.clock.usage
    assert (u.input_tokens, u.output_tokens, u.reasoning_tokens, u.cached_tokens) == (9, 35, 30, 4)


def test_workers_ai_native_response_chunks_and_trailing_usage():
    out = replay("workers-ai", "workers_ai.sse")
    assert "".join(out.clock.text) == "Hello world" and len(out.clock.token_ns) == 2
    assert out.clock.usage.input_tokens == 18 and out.clock.usage.output_tokens == 2
    assert out.done


def test_workers_ai_openai_shaped_chunks_on_the_native_route():
    out = replay("workers-ai", "workers_ai_openai_shape.sse")
    assert "".join(out.clock.reasoning) == "Hmm." and "".join(out.clock.text) == "Yes"
    assert out.clock.usage.output_tokens == 6


def test_custom_template_tgi_stream(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_dummy")
    from llm_locust.prompts import Prompt
    from llm_locust.protocols.custom import CustomREST

    proto = CustomREST("http://127.0.0.1:1", "tgi", template=str(EXAMPLES / "custom-tgi-stream.yaml"))
    body = proto.body(Prompt(name="a", text="Why is the sky blue?"), 64)
    assert body == {"inputs": "Why is the sky blue?", "parameters": {"max_new_tokens": 64, "details": True}}
    assert proto.headers(None)["Authorization"] == "Bearer hf_dummy"
    out = read(proto, (STREAMS / "tgi_generate_stream.sse").read_bytes())
    assert "".join(out.clock.text) == " The sky"  # the special </s> token is skipped
    assert out.done and out.error is None and out.clock.usage.output_tokens == 3


def test_custom_template_single_json_body(monkeypatch):
    monkeypatch.setenv("MY_LLM_KEY", "k")
    from llm_locust.prompts import Prompt
    from llm_locust.protocols.custom import CustomREST

    proto = CustomREST("http://127.0.0.1:1", "my-model", template=str(EXAMPLES / "custom-json-endpoint.yaml"))
    body = proto.body(Prompt(name="a", text="hi", system="be brief"), None)
    assert body["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert body["max_output_tokens"] is None and body["model"] == "my-model"
    assert proto.framing == "json"
    out = read(proto, b'{\n"output": {"text": "Hello there"},\n"usage": {"input_tokens": 5, "output_tokens": 2}}\n')
    assert out.clock.token_ns == [3 * MS]  # timed by the last line: the answer is complete only then
    assert "".join(out.clock.text) == "Hello there" and out.done and out.clock.usage.output_tokens == 2


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
)
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
        "cf-universal", "anthropic", "openai-chat", None]
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
                                                                 expected):
    monkeypatch.setenv("CF_AIG_TOKEN", "gw-secret")
    if gateway_url:
        monkeypatch.setenv("LLM_GATEWAY_URL", gateway_url)
    with pytest.raises(EndpointError) as e:
        check_endpoint(api, host, model)
    assert expected in str(e.value) and "\n" not in str(e.value) and "gw-secret" not in str(e.value)


def test_gateway_routes_that_fit_pass_the_check():
    for api, host in [("openai-chat", GW + "/workers-ai"), ("workers-ai", GW + "/workers-ai"), ("cf-universal", GW),
                      ("openai-chat", GW + "/azure-openai"), ("custom", GW + "/anthropic"),
                      ("ollama-chat", "http://127.0.0.1:11434")]:
        check_endpoint(api, host, "openai/gpt-4o")


def test_gemini_errors_map_with_retry_info():
    proto = get_protocol("gemini")("https://generativelanguage.googleapis.com", "gemini-2.0-flash")
    body = (b'{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED","details":'
            b'[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}}')
    err = proto.classify(429, body, {})
    assert err.error_class == "rate_limit" and err.retry_after_s == 37.0 and "Quota exceeded" in str(err)
    body = (b'{"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT","details":'
            b'[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID"}]}}')
    assert proto.classify(400, body, {}).error_class == "auth"


# -- the deferred parse gives what parsing each line as it came gave ------------------------------------------------


def inline_read(out: StreamResult, body: Body, secrets: tuple[str, ...] = ()) -> StreamResult:
    """The reader as it was before parsing moved off the hot path: frame and parse each line as it is read."""
    from llm_locust.measure.framing import DECODERS

    proto, clock = out.proto, out.clock
    decoder = DECODERS[proto.framing]()
    done = False
    finish = None
    while True:
        line = body.readline(b"\n")
        t = body.now()
        if not line:
            event = decoder.flush()
            if event is None:
                break
        else:
            event = decoder.feed(t, line)
            if event is None:
                continue
        try:
            delta = proto.parse(event[1], event[2])
        except errors.LLMError as e:
            out.fail(e)
            continue
        if delta.error is not None:
            out.fail(errors.StreamError(errors.redact(delta.error, secrets)))
        clock.add(event[0], delta.text, delta.reasoning, delta.usage)
        if delta.finish_reason:
            finish = delta.finish_reason
        if delta.done:
            done = True
        if not line:
            break
    if proto.ends_at_close and not line:
        done = True
    out.done = done
    out.finish = finish
    if out.error is None and not done:
        out.error = errors.IncompleteStream("the stream ended before its end marker")
    if out.error is None and not clock.token_ns:
        out.error = errors.EmptyResponse("the stream completed without a single output token")
    return out


def outcome(out: StreamResult) -> tuple:
    c = out.clock
    t = timing(0, c, c.usage.output_tokens if c.usage is not None else len(c.token_ns))
    error = None if out.error is None else (type(out.error), str(out.error))
    return (c.token_ns, c.text, c.reasoning, c.usage, c.first_text_ns, c.cumulative, c.cumulative_usage,
            out.done, out.finish, error, list(t.itl_us), t.itl_rule)


def _protocols() -> list[Protocol]:
    from llm_locust.protocols import PROTOCOLS

    out = []
    for cls in PROTOCOLS.values():
        try:
            out.append(cls("http://127.0.0.1:1", "m"))
        except Exception:  # noqa: BLE001 - gateway-only and template APIs need more setup; covered elsewhere
            continue
    return out


class CutBody(Body):
    """A recorded body whose connection breaks before line ``cut``."""

    def __init__(self, data: bytes, cut: int) -> None:
        super().__init__(data)
        self.cut = cut

    def readline(self, sep: bytes = b"\n") -> bytes:
        if self.n + 1 == self.cut:
            raise ConnectionResetError("cut")
        return super().readline(sep)


def in_steps(proto: Protocol, data: bytes, limit: int | None) -> tuple[StreamResult, int]:
    """Read ``data`` whole, then parse it as the bookkeeper does, ``limit`` lines a step; (result, steps)."""
    body = Body(data)
    out = StreamResult(proto)
    read_lines(out, body, now=body.now)
    steps = 1
    while not parse_lines(out, ("secret",), limit):
        steps += 1
    return out, steps


@pytest.mark.parametrize("name", sorted(p.name for p in STREAMS.iterdir()))
def test_deferred_parsing_equals_parsing_as_lines_come_on_every_recorded_stream(name):
    data = (STREAMS / name).read_bytes()
    n_lines = len(data.splitlines()) + 1
    protos = _protocols()
    assert len(protos) >= 6
    for proto in protos:
        want = outcome(inline_read(StreamResult(proto), Body(data), ("secret",)))
        assert outcome(read(proto, data, ("secret",))) == want, proto.name
        for limit in (1, 3):  # in bounded steps, as the bookkeeper parses
            out, steps = in_steps(proto, data, limit)
            assert outcome(out) == want and steps >= len(out.lines) // limit, (proto.name, limit)
        for cut in range(1, n_lines + 1):  # a connection that breaks before any line
            ref, new = StreamResult(proto), StreamResult(proto)
            with pytest.raises(ConnectionResetError):
                body = CutBody(data, cut)
                inline_read(ref, body)
            with pytest.raises(ConnectionResetError):
                body = CutBody(data, cut)
                read_stream(new, body, now=body.now)
            assert outcome(new) == outcome(ref), (proto.name, cut)


SSE_EDGE_BODIES = (
    b'data: {"choices":[{"delta":{"content":"a"}}]}\r\n\r\ndata:  {"choices":[{"delta":{"content":"b"}}]}\n\n'
    b"data: [DONE]\r\n\r\n",
    b'event: message\ndata: {"choices":[{"delta":{"content":"a"}}]}\n\n: keep-alive\n\n'
    b'data: {"choices":[{"delta":\ndata: {"content":"b"}}]}\n\ndata:{"choices":[{"delta":{"content":"c"}}]}\n\n'
    b"data: [DONE]\n\n",
    b'data: {"choices":[{"delta":{"content":"a"}}]}\n\ndata: \n\ndata: [DONE]\n',  # no blank line after the marker
    b'data: {"choices":[{"delta":{"content":"a"}}]}\n\ndata: {"error":{"message":"secret boom"}}\n\n',
)


@pytest.mark.parametrize("data", SSE_EDGE_BODIES)
def test_the_sse_fast_path_frames_as_the_decoder_does(data):
    """parse_lines frames the common "data: " + blank-line event in place; it must equal SSEDecoder's framing
    (with limit=1 the fast path never runs: each step sees one line)."""
    for proto in _protocols():
        if proto.framing != "sse":
            continue
        want = outcome(inline_read(StreamResult(proto), Body(data), ("secret",)))
        for limit in (None, 1, 2):
            out, _ = in_steps(proto, data, limit)
            assert outcome(out) == want, (proto.name, limit)


# ---------------------------------------------------------------- the envelope (chunks read without a JSON parse)

#: JSON string literals a token chunk may carry: plain ones (the envelope's), and every kind it must leave to the
#: full parse (escapes, raw control characters, bytes that are not UTF-8, a value that is also the model's name)
LITERALS = (
    b'" the"', b'" capital"', b'""', '"é ü 日本"'.encode(), b'"\\u00e9"', b'"\\"q\\""', b'"a\\\\b"', b'"a\\nb"',
    b'"a\x01b"', b'"\xff\xfe"', b'"m"', b'"}]}"', b'" of"',
)
#: per protocol: the stream's start, one token chunk (its literal where %s is), its end
ENVELOPES = {
    "openai-chat": (
        b'data: {"id":"c1","model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n',
        b'data: {"id":"c1","model":"m","choices":[{"index":0,"delta":{"content":%s},"finish_reason":null}]}\n\n',
        b'data: {"id":"c1","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],'
        b'"usage":{"prompt_tokens":3,"completion_tokens":30}}\n\ndata: [DONE]\n\n',
    ),
    "openai-chat-reasoning": (
        b"",
        b'data: {"id":"c1","choices":[{"index":0,"delta":{"reasoning_content":%s}}]}\n\n',
        b'data: {"id":"c1","choices":[{"index":0,"delta":{"content":"ok"}}]}\n\ndata: [DONE]\n\n',
    ),
    "openai-completions": (
        b"",
        b'data: {"id":"c1","choices":[{"text":%s,"index":0,"finish_reason":null}]}\n\n',
        b'data: {"id":"c1","choices":[{"text":"","index":0,"finish_reason":"length"}]}\n\ndata: [DONE]\n\n',
    ),
    "anthropic": (
        b'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":3}}}\n\n',
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":%s}}\n\n',
        b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},'
        b'"usage":{"output_tokens":30}}\n\nevent: message_stop\ndata: {"type":"message_stop"}\n\n',
    ),
    "anthropic-thinking": (
        b"",
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"thinking_delta","thinking":%s}}\n\n',
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n',
    ),
    "gemini": (
        b"",
        b'data: {"candidates":[{"content":{"parts":[{"text":%s}],"role":"model"},"index":0}]}\n\n',
        b'data: {"candidates":[{"content":{"parts":[{"text":"."}],"role":"model"},"finishReason":"STOP"}],'
        b'"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":30}}\n\n',
    ),
    "ollama-chat": (
        b"",
        b'{"model":"m","message":{"role":"assistant","content":%s},"done":false}\n',
        b'{"model":"m","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop",'
        b'"prompt_eval_count":3,"eval_count":30}\n',
    ),
    "ollama-generate": (
        b"",
        b'{"model":"m","response":%s,"done":false}\n',
        b'{"model":"m","response":"","done":true,"prompt_eval_count":3,"eval_count":30}\n',
    ),
}


def _enveloped(kind: str, literals: tuple[bytes, ...]) -> bytes:
    start, chunk, end = ENVELOPES[kind]
    return start + b"".join(chunk.replace(b"%s", lit) for lit in literals) + end


def _counting(proto: Protocol) -> list[int]:
    calls = [0]
    parse = proto.parse

    def counted(event: str, data: bytes):
        calls[0] += 1
        return parse(event, data)

    proto.parse = counted  # an instance attribute: parse_lines binds proto.parse
    return calls


@pytest.mark.parametrize("kind", sorted(ENVELOPES))
def test_the_envelope_gives_what_the_full_parse_gives(kind, monkeypatch):
    """Chunks that differ from the envelope's only inside the text are read without a JSON parse; every other
    chunk (escapes, control characters, bad UTF-8, changed fields) is parsed in full, and the results equal the
    full parse's on every protocol, in one pass and in the bookkeeper's bounded steps."""
    api = kind.removesuffix("-reasoning").removesuffix("-thinking")
    for literals in (LITERALS * 2, LITERALS[::-1] * 2, (b'" a"',) * 40):
        data = _enveloped(kind, literals)
        proto = get_protocol(api)("http://127.0.0.1:1", "m")
        assert proto.literal_text
        want = outcome(inline_read(StreamResult(proto), Body(data), ("secret",)))
        calls = _counting(proto)
        for limit in (None, 1, 5):
            out, _ = in_steps(proto, data, limit)
            assert outcome(out) == want, (kind, limit)
            assert out.envelope is not None, kind
        # the plain chunks after the envelope's own were not parsed (3 passes; a pass parses the first chunks and
        # the probe)
        plain = sum(_PLAIN_LITERAL(lit) for lit in literals)
        assert calls[0] <= 3 * (len(data.splitlines()) - plain + 5), (kind, calls[0])
        monkeypatch.setattr(type(proto), "literal_text", False)  # the full parse only: the same results
        slow, _ = in_steps(get_protocol(api)("http://127.0.0.1:1", "m"), data, None)
        assert outcome(slow) == want and slow.envelope is None
        monkeypatch.undo()


def _PLAIN_LITERAL(lit: bytes) -> bool:
    inner = lit[1:-1]
    return not any(c in inner for c in b'"\\') and all(c >= 0x20 for c in inner) and _utf8(inner)


def _utf8(b: bytes) -> bool:
    try:
        b.decode()
    except UnicodeDecodeError:
        return False
    return True


def test_no_envelope_where_the_text_is_not_one_plain_string():
    """A text that is also another field's value (the model's name), or that only escapes spell, gives no
    envelope: those streams are parsed in full, chunk by chunk."""
    proto = get_protocol("openai-chat")("http://127.0.0.1:1", "m")
    for literals in ((b'"m"',) * 6, (b'"\\u00e9"',) * 6, (b'"a\\nb"',) * 6):
        out = read(proto, _enveloped("openai-chat", literals))
        assert out.envelope is None and out.error is None and len(out.clock.token_ns) == 6


def test_a_two_choice_chunk_keeps_the_first_choice_text():
    """OpenAI's n > 1: the text is the first choice's; the envelope holds the second choice's bytes unchanged."""
    chunk = b'data: {"choices":[{"index":0,"delta":{"content":%s}},{"index":1,"delta":{"content":"b"}}]}\n\n'
    data = b"".join(chunk.replace(b"%s", lit) for lit in (b'" x"', b'" y"', b'"b"', b'" z"')) + b"data: [DONE]\n\n"
    proto = get_protocol("openai-chat")("http://127.0.0.1:1", "m")
    out = read(proto, data)
    assert out.envelope is not None and out.clock.text == [" x", " y", "b", " z"]
    assert outcome(out) == outcome(inline_read(StreamResult(proto), Body(data)))
