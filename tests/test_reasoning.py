"""Reasoning on request and extra_body: what each protocol sends, what the mock server answers, what is measured.

Per protocol, a real `locust` run against the mock server with ``--reasoning``: the provider's switch reaches the
server (the send log's ``reasoning_asked``), the reasoning tokens are counted (``reasoning_tokens`` where the
server reports them), TTFT is the first token of any kind and ``ttft_text_ms`` the first visible one, their gap
matching the server's own send times of the reasoning chunks; ``off`` gives no reasoning. Bad values stop the run
at start-up with one line and exit code 2.
"""

from __future__ import annotations

import statistics

import pytest

from llm_locust.prompts import Prompt
from llm_locust.protocols import get_protocol
from llm_locust.reasoning import deep_merge, parse_reasoning
from llm_locust.run import Target
from llm_locust.targets import TargetSpec
from tests.test_profile import _check_books

TTFT, ITL, N_OUT, N_THINK = 10.0, 4.0, 12, 5

# api, host suffix on the mock, model, the switch as the mock reads it for --reasoning high, usage reports reasoning
PROTOCOLS = [
    ("openai-chat", "", "o4-mini", "reasoning_effort:high", True),
    ("anthropic", "", "claude-sonnet-4-5", "thinking:16384", False),
    ("gemini", "", "gemini-2.5-flash", "thinkingBudget:16384,includeThoughts", True),
    ("vertex", "/v1/projects/p/locations/us-central1", "gemini-2.5-flash", "thinkingBudget:16384,includeThoughts",
     True),
    ("ollama-chat", "", "qwen3", "think:true", False),
    ("ollama-generate", "", "qwen3", "think:true", False),
]


def _run(locust_run, mock, suffix: str, api: str, model: str, *extra: str):
    return locust_run(
        "-u", "2", "-r", "2", "--max-requests", "6", "-H", mock.url + suffix, "--llm-api", api, "--model", model,
        "--prompt-file", "tests/data/prompts_small.yaml", *extra, env={"ANTHROPIC_API_KEY": "sk-ant-dummy"},
        timeout=60,
    )


def _ok_rows(run, mock) -> list[dict]:
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [r for r in _check_books(run, mock) if r["status"] == "ok"]
    assert len(rows) == 6
    return rows


@pytest.mark.parametrize(("api", "suffix", "model", "asked", "reported"), PROTOCOLS)
def test_reasoning_on_request_is_counted_and_timed(api, suffix, model, asked, reported, mock_server, locust_run):
    mock = mock_server("--ttft-ms", str(TTFT), "--itl-ms", str(ITL), "--output-tokens", str(N_OUT),
                       "--thinking-tokens", str(N_THINK))
    run = _run(locust_run, mock, suffix, api, model, "--reasoning", "high")
    sent = {s["request_id"]: s for s in mock.sent()}
    diffs = []
    for r in _ok_rows(run, mock):
        s = sent[r["request_id"]]
        assert s["reasoning_asked"] == asked and s["reasoning_tokens"] == N_THINK
        assert int(r["output_tokens"]) == N_OUT and int(r["output_tokens_local"]) == N_OUT
        assert r["reasoning_tokens"] == (str(N_THINK) if reported else "")
        ttft, ttft_text = float(r["ttft_ms"]), float(r["ttft_text_ms"])
        assert ttft <= ttft_text
        # the server sent the reasoning chunks (one token each) from token_send_ns[0] to token_send_ns[N_THINK]
        server_gap = (s["token_send_ns"][N_THINK] - s["token_send_ns"][0]) / 1e6
        diffs.append((ttft_text - ttft) - server_gap)
    # the client's gap between first token and first visible token is the server's, to measurement error
    assert abs(statistics.median(diffs)) < ITL, diffs


@pytest.mark.parametrize(("api", "suffix", "model", "asked", "reported"), PROTOCOLS)
def test_reasoning_off_gives_none(api, suffix, model, asked, reported, mock_server, locust_run):
    mock = mock_server("--ttft-ms", str(TTFT), "--itl-ms", "1", "--output-tokens", "6", "--thinking-tokens", "3")
    run = _run(locust_run, mock, suffix, api, model, "--reasoning", "off")
    sent = {s["request_id"]: s for s in mock.sent()}
    for r in _ok_rows(run, mock):
        assert sent[r["request_id"]]["reasoning_tokens"] == 0
        assert r["ttft_ms"] == r["ttft_text_ms"]
        assert r["reasoning_tokens"] in ("", "0")


@pytest.mark.parametrize("api", ["gemini", "ollama-chat"])
def test_off_turns_off_a_model_that_reasons_by_default(api, mock_server, locust_run):
    mock = mock_server("--ttft-ms", "5", "--itl-ms", "1", "--output-tokens", "6", "--reasoning-tokens", "3")
    run = _run(locust_run, mock, "", api, "gemini-2.5-flash", "--reasoning", "off")
    sent = {s["request_id"]: s for s in mock.sent()}
    for r in _ok_rows(run, mock):
        assert sent[r["request_id"]]["reasoning_asked"] in ("thinkingBudget:0", "think:false")
        assert sent[r["request_id"]]["reasoning_tokens"] == 0 and r["ttft_ms"] == r["ttft_text_ms"]


def test_prompt_beats_target_beats_option_and_extra_body_merges(tmp_path, mock_server, locust_run):
    prompts = tmp_path / "prompts.yaml"
    prompts.write_text(
        "prompts:\n"
        "  - {name: budget, text: hi there, reasoning: 3}\n"
        "  - {name: hidden, text: hi there,\n"
        "     extra_body: {generationConfig: {thinkingConfig: {includeThoughts: false}}}}\n"
    )
    targets = tmp_path / "targets.yaml"
    mock = mock_server("--ttft-ms", "5", "--itl-ms", "2", "--output-tokens", "10", "--thinking-tokens", "6")
    targets.write_text(f"targets:\n  - {{name: g, api: gemini, host: '{mock.url}', model: gemini-2.5-flash, "
                       "reasoning: low, extra_body: {generationConfig: {temperature: 0}}}\n")
    run = locust_run("-u", "1", "-r", "1", "--max-requests", "4", "--targets", str(targets), "--prompt-file",
                     str(prompts), "--reasoning", "off", timeout=60)
    assert run.returncode == 0, run.stderr[-3000:]
    sent = {s["request_id"]: s for s in mock.sent()}
    for r in run.requests():
        s = sent[r["request_id"]]
        if r["prompt"] == "budget":  # the prompt's budget, over the target's low and the option's off
            assert s["reasoning_asked"] == "thinkingBudget:3,includeThoughts" and s["reasoning_tokens"] == 3
            assert float(r["ttft_text_ms"]) > float(r["ttft_ms"])
        else:  # the target's low (1024), its thoughts hidden by the prompt's extra_body: counted, never streamed
            assert s["reasoning_asked"] == "thinkingBudget:1024" and s["reasoning_tokens"] == 6
            assert r["reasoning_tokens"] == "6" and r["ttft_ms"] == r["ttft_text_ms"]
            assert len(s["token_send_ns"]) == 4


def test_request_bodies_per_protocol():
    p = Prompt("p", "hi")
    body = get_protocol("anthropic")("http://h", "m").request_body(p, 100, 500)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 500} and body["max_tokens"] == 600
    assert get_protocol("anthropic")("http://h", "m").request_body(p, 2000, 500)["max_tokens"] == 2000
    assert "thinking" not in get_protocol("anthropic")("http://h", "m").request_body(p, 100, "off")
    chat = get_protocol("openai-chat")
    assert chat("http://h", "m").request_body(p, None, 2000)["reasoning_effort"] == "medium"  # budget -> level
    assert chat("http://h", "m").request_body(p, None, 99999)["reasoning_effort"] == "high"
    assert "reasoning_effort" not in chat("http://h", "m").request_body(p, None, "off")
    mistral = chat("https://api.mistral.ai", "magistral-medium-latest").request_body(p, None, "low")
    assert mistral["prompt_mode"] == "reasoning" and "reasoning_effort" not in mistral
    gem = get_protocol("gemini")("http://h", "m").request_body(p, 50, "low", [{"generationConfig": {"topK": 1}}])
    assert gem["generationConfig"] == {"maxOutputTokens": 50, "topK": 1,
                                       "thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True}}
    assert get_protocol("ollama-generate")("http://h", "m").request_body(p, None, "medium")["think"] is True
    for api in ("openai-completions", "workers-ai"):  # no switch: nothing is sent
        plain = get_protocol(api)("http://h/client/v4/accounts/a", "m")
        assert plain.request_body(p, None, "high") == plain.body(p, None)
    assert deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}, "d": [1]}) == {"a": {"b": 1, "c": 3}, "d": [1]}


def test_target_precedence_without_a_server():
    spec = TargetSpec(name="t", api="openai-chat", host="http://h", model="m", reasoning="low",
                      extra_body={"temperature": 0, "n": 1})
    target = Target(spec, api_key=None, price_file=None, continuous_usage=False, reasoning="high")
    import json

    own = json.loads(target.prepare(Prompt("a", "x", reasoning="medium", extra_body={"n": 2}), None).body)
    assert own["reasoning_effort"] == "medium" and own["temperature"] == 0 and own["n"] == 2
    assert json.loads(target.prepare(Prompt("b", "x"), None).body)["reasoning_effort"] == "low"
    spec2 = TargetSpec(name="t2", api="openai-chat", host="http://h", model="m")
    opt = Target(spec2, api_key=None, price_file=None, continuous_usage=False, reasoning="high")
    assert json.loads(opt.prepare(Prompt("c", "x"), None).body)["reasoning_effort"] == "high"


@pytest.mark.parametrize("value", ["max", "0", "-5", "true", "1.5"])
def test_bad_values_are_refused(value):
    with pytest.raises(ValueError, match="off, low, medium, high or a positive token budget"):
        parse_reasoning(value if value != "1.5" else 1.5)


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("option", "--reasoning must be off, low, medium, high"),
        ("prompt", "prompt 'p': reasoning must be off, low, medium, high"),
        ("target", "target 't': reasoning must be off, low, medium, high"),
        ("extra_body", "prompt 'p': extra_body must be a mapping"),
    ],
)
def test_bad_settings_stop_the_run_with_one_line(where, message, tmp_path, locust_run):
    prompts = tmp_path / "prompts.yaml"
    item = {"prompt": ", reasoning: lots", "extra_body": ", extra_body: [1]"}.get(where, "")
    prompts.write_text(f"prompts:\n  - {{name: p, text: hi{item}}}\n")
    args = ["--prompt-file", str(prompts), "--max-requests", "1"]
    if where == "option":
        args += ["--reasoning", "lots"]
    if where == "target":
        targets = tmp_path / "targets.yaml"
        targets.write_text("targets:\n  - {name: t, api: openai-chat, host: 'http://127.0.0.1:9', model: m, "
                           "reasoning: lots}\n")
        args += ["--targets", str(targets)]
    run = locust_run(*args, timeout=60)
    assert run.returncode == 2
    lines = [line for line in run.stderr.splitlines() if "error" in line.lower()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in run.stderr, run.stderr[-2000:]
