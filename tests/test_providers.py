"""Every provider protocol for real: a `locust` run against the mock server speaking it, and the reports checked.

Per protocol: time to first token (reasoning counts) and to the first visible token, token counts from the server and
counted locally, reasoning tokens, cost priced as that provider; then each provider's error classes; then the
Cloudflare AI Gateway (provider routes, compat, the universal endpoint with fallback); then a run with three targets
of different protocols.
"""

from __future__ import annotations

import statistics

import pytest

from tests.conftest import check_local_count, needs_tiktoken
from tests.test_profile import _check_books

TTFT, ITL, N_OUT, N_REASON = 20.0, 3.0, 12, 4

PROVIDERS = [
    # api, host suffix on the mock, model, genai-prices provider
    ("anthropic", "", "claude-3-5-haiku-latest", "anthropic"),
    ("gemini", "", "gemini-2.0-flash", "google"),
    ("vertex", "/v1/projects/p/locations/us-central1", "gemini-2.0-flash", "google"),
    ("workers-ai", "/client/v4/accounts/acct", "@cf/meta/llama-3.1-8b-instruct", "cloudflare"),
]


def _run(locust_run, host: str, api: str, model: str, *extra: str, env: dict | None = None):
    return locust_run(
        "-u", "2", "-r", "2", "--max-requests", "6", "-H", host, "--llm-api", api, "--model", model,
        "--prompt-file", "tests/data/prompts_small.yaml", *extra, env=env, timeout=60,
    )


def _ok(run, mock) -> list[dict]:
    assert run.returncode == 0, run.stderr[-3000:]
    rows = _check_books(run, mock)
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == 6
    return ok


@pytest.mark.parametrize(("api", "suffix", "model", "provider"), PROVIDERS)
def test_provider_protocol_end_to_end(api, suffix, model, provider, mock_server, locust_run):
    mock = mock_server("--ttft-ms", str(TTFT), "--itl-ms", str(ITL), "--output-tokens", str(N_OUT),
                       "--reasoning-tokens", str(N_REASON))
    run = _run(locust_run, mock.url + suffix, api, model, env={"ANTHROPIC_API_KEY": "sk-ant-dummy"})
    gaps = []
    for r in _ok(run, mock):
        assert r["api"] == api and r["model"] == model
        ttft, ttft_text = float(r["ttft_ms"]), float(r["ttft_text_ms"])
        assert ttft >= TTFT
        assert ttft_text > ttft, "the first visible token comes after the reasoning"
        gaps.append(ttft_text - ttft)
        assert int(r["output_tokens"]) == N_OUT and r["output_tokens_source"] == "server"
        check_local_count(r, "output_tokens_local", N_OUT)  # local count covers reasoning and visible text
        if api in ("gemini", "vertex"):
            assert int(r["reasoning_tokens"]) == N_REASON
        assert float(r["cost_usd"]) > 0 and r["cost_source"].split(":")[1].startswith(f"{provider}/")
    assert statistics.median(gaps) >= N_REASON * ITL * 0.6
    summary = run.summary()
    assert summary["overall"]["cost_usd"]["total"] > 0
    assert summary["overall"]["ttft_text_ms"]["p50"] > summary["overall"]["ttft_ms"]["p50"]


@needs_tiktoken
@pytest.mark.parametrize("api", ["anthropic", "gemini", "workers-ai", "ollama-chat"])
def test_local_count_when_the_server_reports_no_usage(api, mock_server, locust_run):
    mock = mock_server("--ttft-ms", "5", "--itl-ms", "1", "--output-tokens", "9", "--no-usage")
    suffix = "/client/v4/accounts/acct" if api == "workers-ai" else ""
    run = _run(locust_run, mock.url + suffix, api, "claude-3-5-haiku-latest")
    for r in _ok(run, mock):
        assert r["output_tokens_server"] == "" and r["output_tokens_source"].startswith("tiktoken:")
        assert int(r["output_tokens"]) == 9


ERRORS = [
    # api, host suffix, fault, error class, retry hint
    ("anthropic", "", "status-401", "auth", None),
    ("anthropic", "", "status-429", "rate_limit", "7.0"),
    ("anthropic", "", "status-404", "not_found", None),
    ("anthropic", "", "status-529", "overloaded", None),
    ("anthropic", "", "midstream-error", "stream_error", None),
    ("gemini", "", "status-401", "auth", None),  # Google: 400 INVALID_ARGUMENT / API_KEY_INVALID
    ("gemini", "", "status-429", "rate_limit", "7.0"),  # from RetryInfo.retryDelay in the body
    ("gemini", "", "status-404", "not_found", None),
    ("gemini", "", "midstream-error", "stream_error", None),
    ("workers-ai", "/client/v4/accounts/acct", "status-401", "auth", None),
    ("workers-ai", "/client/v4/accounts/acct", "status-429", "rate_limit", "7.0"),
    ("workers-ai", "/client/v4/accounts/acct", "status-503", "overloaded", None),
]


@pytest.mark.parametrize(("api", "suffix", "fault", "error_class", "retry"), ERRORS)
def test_provider_errors_are_classified(api, suffix, fault, error_class, retry, mock_server, locust_run):
    mock = mock_server("--ttft-ms", "5", "--itl-ms", "1", "--output-tokens", "6", "--fault", fault,
                       "--fault-every", "2", "--retry-after", "7")
    run = _run(locust_run, mock.url + suffix, api, "gemini-2.0-flash")
    assert run.returncode == 1
    rows = _check_books(run, mock)
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 3 and len(rows) == 6
    for r in failed:
        assert r["error_class"] == error_class, r["error"]
        assert (r["retry_after_s"] or None) == retry
        assert "\n" not in r["error"]
    if fault == "midstream-error" and api == "anthropic":
        assert "overloaded_error" in failed[0]["error"]


GATEWAY = "/v1/acct/gw"
#: the path after the gateway base URL, per slug (the gateway's rules, not the provider's own paths)
GATEWAY_PATHS = {
    "openai": "/openai/chat/completions",
    "anthropic": "/anthropic/v1/messages",
    "google-ai-studio": "/google-ai-studio/v1beta/models/gemini-2.0-flash:streamGenerateContent",
    "workers-ai": "/workers-ai/@cf/meta/llama-3.1-8b-instruct",
    "deepseek": "/deepseek/chat/completions",
    "mistral": "/mistral/v1/chat/completions",
    "compat": "/compat/chat/completions",
}


def _gateway_env(mock) -> dict:
    """The mock server as the gateway, the documented way (LLM_GATEWAY_URL), with fake keys and gateway token."""
    return {
        "LLM_GATEWAY_URL": mock.url + GATEWAY, "OPENAI_API_KEY": "sk-openai-dummy",
        "CLOUDFLARE_API_TOKEN": "cf-dummy", "ANTHROPIC_API_KEY": "sk-ant-dummy", "CF_AIG_TOKEN": "gw-secret",
    }


@pytest.mark.parametrize(
    ("slug", "api", "model", "provider"),
    [
        ("openai", "openai-chat", "gpt-4o-mini", "openai"),
        ("anthropic", "anthropic", "claude-3-5-haiku-latest", "anthropic"),
        ("google-ai-studio", "gemini", "gemini-2.0-flash", "google"),
        ("workers-ai", "workers-ai", "@cf/meta/llama-3.1-8b-instruct", "cloudflare"),
        ("deepseek", "openai-chat", "deepseek-chat", "deepseek"),
        ("mistral", "openai-chat", "mistral-small-latest", "mistral"),
        ("compat", "openai-chat", "anthropic/claude-3-5-haiku-latest", "anthropic"),
    ],
)
def test_gateway_provider_routes(slug, api, model, provider, mock_server, locust_run):
    # an authenticated gateway: without cf-aig-authorization (from CF_AIG_TOKEN) every request would be a 401
    mock = mock_server("--ttft-ms", "5", "--itl-ms", "1", "--output-tokens", "8", "--gateway-token", "gw-secret")
    run = _run(locust_run, f"{mock.url}{GATEWAY}/{slug}", api, model, env=_gateway_env(mock))
    assert {s["path"] for s in mock.sent()} == {GATEWAY + GATEWAY_PATHS[slug]}, "the gateway's path for the slug"
    assert "gw-secret" not in run.stdout + run.stderr + (run.folder / "requests.csv").read_text()
    for r in _ok(run, mock):
        assert r["gateway_cache"] == "MISS", "cf-aig-skip-cache is sent"
        assert r["gateway_log_id"]
        assert int(r["output_tokens"]) == 8
        assert r["cost_source"].split(":")[1].startswith(f"{provider}/")


def test_gateway_universal_endpoint_fallback(mock_server, locust_run):
    mock = mock_server("--ttft-ms", "5", "--itl-ms", "1", "--output-tokens", "8", "--fail-steps", "1")
    chain = "workers-ai/@cf/meta/llama-3.1-8b-instruct,openai/gpt-4o-mini"
    run = _run(locust_run, f"{mock.url}{GATEWAY}", "cf-universal", chain, env=_gateway_env(mock))
    for r in _ok(run, mock):
        # the primary step failed: the record names the step that answered, and prices it
        assert r["gateway_step"] == "1" and r["api"] == "openai-chat" and r["model"] == "gpt-4o-mini"
        assert r["cost_source"].split(":")[1].startswith("openai/")
    assert {s["step"] for s in mock.sent()} == {1}
    assert {e["method"] for e in run.locust_entries()} == {"cf-universal"}


def test_gateway_token_is_required_and_never_logged(mock_server, locust_run):
    mock = mock_server("--ttft-ms", "5", "--itl-ms", "1", "--output-tokens", "8", "--gateway-token", "right")
    env = {**_gateway_env(mock), "CF_AIG_TOKEN": "wrong-token-value"}
    run = _run(locust_run, f"{mock.url}{GATEWAY}/openai", "openai-chat", "gpt-4o-mini", env=env)
    assert run.returncode == 1
    rows = run.requests()
    assert rows and {r["error_class"] for r in rows} == {"auth"}
    assert "wrong-token-value" not in run.stdout + run.stderr + (run.folder / "requests.csv").read_text()


def _one_line_exit_2(run, *needles: str) -> None:
    """The run stopped before any request with code 2 and one line naming the problem, and no traceback."""
    assert run.returncode == 2, run.stderr[-3000:]
    lines = [line for line in (run.stdout + run.stderr).splitlines() if "not a Cloudflare AI Gateway URL" in line]
    assert len(lines) == 1 and all(n in lines[0] for n in needles), run.stderr[-3000:]
    assert "Traceback" not in run.stderr and "gw-secret" not in run.stdout + run.stderr


def test_universal_endpoint_on_a_host_that_is_no_gateway_exits_2(tmp_path, mock_server, locust_run):
    mock = mock_server("--ttft-ms", "5", "--itl-ms", "1", "--output-tokens", "8")
    targets = tmp_path / "targets.yaml"
    targets.write_text(f"targets:\n  - {{name: chain, api: cf-universal, host: '{mock.url}', model: openai/gpt-4o}}\n")
    run = locust_run("-u", "1", "--max-requests", "2", "--targets", str(targets),
                     "--prompt-file", "tests/data/prompts_small.yaml", env=_gateway_env(mock), timeout=60)
    _one_line_exit_2(run, "target 'chain'", "LLM_GATEWAY_URL")
    assert mock.sent() == []


def test_universal_endpoint_on_a_host_that_is_no_gateway_exits_2_with_host_flag(mock_server, locust_run):
    mock = mock_server("--ttft-ms", "5", "--itl-ms", "1", "--output-tokens", "8")
    run = locust_run("-u", "1", "--max-requests", "2", "-H", mock.url, "--llm-api", "cf-universal", "--model",
                     "openai/gpt-4o-mini", "--prompt-file", "tests/data/prompts_small.yaml", timeout=20)
    _one_line_exit_2(run, mock.url, "LLM_GATEWAY_URL")
    assert mock.sent() == []


def test_three_targets_of_three_protocols(tmp_path, mock_server, locust_run):
    mock = mock_server("--ttft-ms", "5", "--itl-ms", "1", "--output-tokens", "8")
    targets = tmp_path / "targets.yaml"
    targets.write_text(
        "targets:\n"
        f"  - {{name: claude, api: anthropic, host: '{mock.url}', model: claude-3-5-haiku-latest}}\n"
        f"  - {{name: gemini, api: gemini, host: '{mock.url}', model: gemini-2.0-flash}}\n"
        f"  - {{name: vllm, api: openai-chat, host: '{mock.url}/v1', model: mistral-7b}}\n"
    )
    run = locust_run("-u", "3", "-r", "3", "--max-requests", "4", "--targets", str(targets),
                     "--prompt-file", "tests/data/prompts_small.yaml", timeout=60)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = _check_books(run, mock)
    assert sorted(r["target"] for r in rows) == sorted(["claude", "gemini", "vllm"] * 4)
    summary = run.summary()
    assert {(p["target"], p["name"]) for p in summary["prompts"]} == {
        (t, p) for t in ("claude", "gemini", "vllm") for p in ("Short", "Chat")
    }
    priced = {t["name"]: t["cost_usd"]["total"] for t in summary["targets"]}
    assert priced["claude"] > 0 and priced["gemini"] > 0 and priced["vllm"] is None
    csv_text = (run.folder / "summary.csv").read_text()
    for t in ("claude", "gemini", "vllm"):
        assert f"{t},Short," in csv_text and f"{t},Overall," in csv_text
