"""Bad input gets one clear line and exit code 2 before any user starts; good input options do what they say."""

from __future__ import annotations

from pathlib import Path

import pytest

BAD_PROMPT_FILES = {
    "missing": (None, "prompt file not found"),
    "syntax": ("prompts:\n  - name: a\n    text: [unclosed\n", "line 4"),
    "no_name": ("prompts:\n  - text: hello\n", "missing 'name'"),
    "no_text": ("prompts:\n  - name: a\n", "missing 'text'"),
    "duplicate": ("prompts:\n  - {name: a, text: x}\n  - {name: a, text: y}\n", "duplicate name"),
    "limit_negative": ("prompts:\n  - {name: a, text: x, token_limit: -5}\n", "token_limit must be a positive"),
    "limit_float": ("prompts:\n  - {name: a, text: x, token_limit: 2.5}\n", "token_limit must be a positive"),
    "unknown_key": ("prompts:\n  - {name: a, text: x, max_tokens: 5}\n", "unknown key(s) ['max_tokens']"),
    "empty_list": ("prompts: []\n", "the list is empty"),
    "not_prompts": ("questions:\n  - a\n", "no 'prompts:' list"),
    "bad_weight": ("prompts:\n  - {name: a, text: x, weight: 0}\n", "weight must be a positive number"),
}


@pytest.mark.parametrize("case", sorted(BAD_PROMPT_FILES))
def test_bad_prompt_file_exits_2_with_one_line(case, tmp_path: Path, locust_run):
    content, expected = BAD_PROMPT_FILES[case]
    path = tmp_path / f"{case}.yaml"
    if content is not None:
        path.write_text(content)
    run = locust_run("-u", "1", "--max-requests", "1", "--prompt-file", str(path), timeout=60)
    assert run.returncode == 2
    errors = [line for line in run.stderr.splitlines() if "llm-locust: error:" in line]
    assert len(errors) == 1, run.stderr
    assert str(path) in errors[0] and expected in errors[0]
    assert "Traceback" not in run.stderr
    assert not run.report_dir.exists(), "no run started"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--token-limit", "0"], "--token-limit must be a positive integer"),
        (["--timeout", "-1"], "--timeout must be a positive number"),
        (["-H", "http://127.0.0.1:9"], "--model is required with --host"),
        (["--prices", "/nonexistent/prices.yaml"], "price file not found"),
    ],
)
def test_bad_flags_exit_2_with_one_line(args, expected, locust_run):
    run = locust_run("-u", "1", "--max-requests", "1", *args, timeout=60)
    assert run.returncode == 2
    assert expected in run.stderr
    assert "Traceback" not in run.stderr


def test_unknown_api_is_rejected_by_the_parser(locust_run):
    run = locust_run("--llm-api", "grpc", timeout=60)
    assert run.returncode == 2
    assert "invalid choice: 'grpc'" in run.stderr


def test_price_override_file_gives_a_cost_with_its_source(tmp_path: Path, mock_server, locust_run):
    prices = tmp_path / "prices.yaml"
    prices.write_text("prices:\n  - model: 'my-*'\n    input_per_mtok: 1.0\n    output_per_mtok: 4.0\n")
    mock = mock_server("--ttft-ms", "5", "--itl-ms", "1", "--output-tokens", "10")
    run = locust_run("-u", "1", "-r", "1", "--max-requests", "2", "-H", mock.url, "--model", "my-model",
                     "--prices", str(prices), "--prompt-file", "tests/data/prompts_small.yaml")
    assert run.returncode == 0, run.stderr[-2000:]
    ok = [r for r in run.requests() if r["status"] == "ok"]
    assert ok
    for r in ok:
        expected = (int(r["input_tokens"]) * 1.0 + int(r["output_tokens"]) * 4.0) / 1e6
        assert float(r["cost_usd"]) == pytest.approx(expected, rel=1e-6)
        assert r["cost_source"] == f"override:{prices}"
    summary = run.summary()
    assert summary["overall"]["cost_usd"]["total"] == pytest.approx(sum(float(r["cost_usd"]) for r in ok), rel=1e-4)


def test_self_hosted_endpoint_has_no_price(mock_server, locust_run):
    mock = mock_server("--ttft-ms", "5", "--itl-ms", "1", "--output-tokens", "4")
    run = locust_run("-u", "1", "-r", "1", "--max-requests", "2", "-H", mock.url, "--model", "gpt-4o",
                     "--prompt-file", "tests/data/prompts_small.yaml")
    assert run.returncode == 0
    assert all(r["cost_usd"] == "" for r in run.requests())
    assert "n/a (no price known" in (run.folder / "summary.txt").read_text()


def test_token_limits_prompt_overrides_default(tmp_path: Path, mock_server, locust_run):
    prompts = tmp_path / "p.yaml"
    prompts.write_text("prompts:\n  - {name: capped, text: x y z, token_limit: 3}\n  - {name: default, text: a b}\n")
    mock = mock_server("--ttft-ms", "5", "--itl-ms", "1", "--output-tokens", "40")
    run = locust_run("-u", "1", "-r", "1", "--max-requests", "2", "-H", mock.url, "--model", "m", "--token-limit", "7",
                     "--prompt-file", str(prompts))
    assert run.returncode == 0
    by_prompt = {r["prompt"]: int(r["output_tokens"]) for r in run.requests() if r["status"] == "ok"}
    assert by_prompt == {"capped": 3, "default": 7}


def test_offline_tokenizer_falls_back_to_an_estimate_quickly(tmp_path: Path, mock_server, locust_run):
    empty = tmp_path / "no-tiktoken"
    empty.mkdir()
    # no cached encoding and no way out (a proxy on a closed loopback port): the fallback must not hang
    env = {"TIKTOKEN_CACHE_DIR": str(empty), "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}
    mock = mock_server("--ttft-ms", "5", "--itl-ms", "1", "--output-tokens", "6")
    run = locust_run("-u", "1", "-r", "1", "--max-requests", "2", "-H", mock.url, "--model", "m",
                     "--prompt-file", "tests/data/prompts_small.yaml", env=env, timeout=45)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "local token counts are estimates" in run.stderr
    ok = [r for r in run.requests() if r["status"] == "ok"]
    assert ok and all(r["output_tokens_source"] == "server" for r in ok)
    assert all(r["local_tokens_source"] == "estimate:chars/4" for r in ok)
    assert all(int(r["output_tokens_local"]) > 0 and int(r["input_tokens_local"]) > 0 for r in ok)
