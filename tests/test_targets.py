"""Several targets in one Locust run, and fixed request counts (--max-requests), against real mock servers."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pytest

from llm_locust.targets import TargetFileError, load_targets
from tests.test_profile import _check_books


def _targets_file(tmp_path: Path, entries: list[str]) -> Path:
    path = tmp_path / "targets.yaml"
    path.write_text("targets:\n" + "".join(entries))
    return path


def test_three_targets_of_different_protocols_in_one_run(tmp_path, mock_server, locust_run):
    a = mock_server("--ttft-ms", "10", "--itl-ms", "2", "--output-tokens", "6")
    b = mock_server("--ttft-ms", "30", "--itl-ms", "2", "--output-tokens", "9")
    targets = _targets_file(tmp_path, [
        f"  - {{name: fast-chat, api: openai-chat, host: '{a.url}', model: m1}}\n",
        f"  - {{name: slow-ollama, api: ollama-chat, host: '{b.url}', model: m2}}\n",
        f"  - {{name: legacy, api: openai-completions, host: '{a.url}/v1', model: m3,"
        " prices: {input_per_mtok: 1.0, output_per_mtok: 2.0}}\n",
    ])
    run = locust_run("-u", "6", "-r", "6", "--max-requests", "4", "--targets", str(targets),
                     "--prompt-file", "tests/data/prompts_small.yaml")
    assert run.returncode == 0, run.stderr[-3000:]
    rows = run.requests()
    assert sorted(r["target"] for r in rows) == sorted(["fast-chat", "slow-ollama", "legacy"] * 4)
    by_target = {t: [r for r in rows if r["target"] == t and r["status"] == "ok"] for t in ("fast-chat", "legacy")}
    assert {r["output_tokens"] for r in by_target["fast-chat"]} == {"6"}
    assert {r["api"] for r in by_target["legacy"]} == {"openai-completions"}
    assert all(r["cost_source"] == "override:targets:legacy" for r in by_target["legacy"])
    assert all(r["cost_usd"] == "" for r in by_target["fast-chat"])
    # every request the two servers saw is in the books
    assert len(a.sent()) + len(b.sent()) == len(rows)
    # Locust's stats: one row per (target, prompt): request type = target name
    assert {(e["method"], e["name"]) for e in run.locust_entries()} == {
        (t, p) for t in ("fast-chat", "slow-ollama", "legacy") for p in ("Short", "Chat")
    }
    summary = run.summary()
    assert {(p["target"], p["name"]) for p in summary["prompts"]} == {
        (t, p) for t in ("fast-chat", "slow-ollama", "legacy") for p in ("Short", "Chat")
    }
    assert {t["name"] for t in summary["targets"]} == {"fast-chat", "slow-ollama", "legacy"}
    for t in summary["targets"]:  # each target's statistics are of its own requests
        own = [float(r["ttft_ms"]) for r in rows if r["target"] == t["name"] and r["status"] == "ok"]
        assert t["ttft_ms"]["p50"] == pytest.approx(statistics.median(own))
    slow = next(t for t in summary["targets"] if t["name"] == "slow-ollama")
    assert slow["ttft_ms"]["min"] >= 30, "the slow server's 30 ms before the first token"
    with (run.folder / "summary.csv").open(newline="") as f:
        csv_rows = list(csv.DictReader(f))
    assert {(r["target"], r["prompt"]) for r in csv_rows} >= {("legacy", "Short"), ("slow-ollama", "Overall")}
    text = (run.folder / "summary.txt").read_text()
    assert 'Prompt: "Short" @ target slow-ollama' in text
    assert "slow-ollama / Chat" in run.stdout


def test_max_requests_sends_exactly_n_and_stops_by_itself(mock_server, locust_run):
    mock = mock_server("--ttft-ms", "5", "--itl-ms", "1", "--output-tokens", "4")
    run = locust_run("-u", "2", "-r", "2", "-H", mock.url, "--model", "m", "--max-requests", "7",
                     "--prompt-file", "tests/data/prompts_small.yaml", timeout=60)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = _check_books(run, mock)
    assert len(rows) == 7 and all(r["status"] == "ok" for r in rows)
    assert sorted(r["prompt"] for r in rows) == sorted(["Short", "Chat"] * 3 + ["Short"])


def test_fewer_users_than_targets_serve_targets_one_after_the_other(tmp_path, mock_server, locust_run):
    a = mock_server("--ttft-ms", "5", "--itl-ms", "1", "--output-tokens", "4")
    b = mock_server("--ttft-ms", "5", "--itl-ms", "1", "--output-tokens", "4")
    targets = _targets_file(tmp_path, [
        f"  - {{name: first, api: openai-chat, host: '{a.url}', model: m}}\n",
        f"  - {{name: second, api: ollama-generate, host: '{b.url}', model: m}}\n",
    ])
    run = locust_run("-u", "1", "-r", "1", "--targets", str(targets), "--max-requests", "3",
                     "--prompt-file", "tests/data/prompts_small.yaml", timeout=60)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = run.requests()
    assert [r["target"] for r in rows] == ["first"] * 3 + ["second"] * 3
    assert len(a.sent()) == 3 and len(b.sent()) == 3
    summary = json.loads((run.folder / "summary.json").read_text())
    assert summary["overall"]["requests"] == 6


def test_bad_targets_file_exits_2(tmp_path, locust_run):
    targets = _targets_file(tmp_path, ["  - {name: x, provider: nosuch, model: m}\n"])
    run = locust_run("-u", "1", "--max-requests", "1", "--targets", str(targets))
    assert run.returncode == 2
    assert "unknown provider 'nosuch'" in run.stderr and str(targets) in run.stderr


def test_catalog_targets_via_gateway_go_through_llm_gateway_url(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_GATEWAY_URL", "http://127.0.0.1:9/v1/acct/gw")
    entry = "  - {name: h, provider: anthropic, via: gateway, model: claude-3-5-haiku-latest}\n"
    path = _targets_file(tmp_path, [entry])
    (spec,) = load_targets(path)
    assert (spec.api, spec.host) == ("anthropic", "http://127.0.0.1:9/v1/acct/gw/anthropic")
    monkeypatch.delenv("LLM_GATEWAY_URL")
    monkeypatch.delenv("CLOUDFLARE_ACCOUNT_ID", raising=False)
    with pytest.raises(TargetFileError, match="target 'h': needs environment variable CLOUDFLARE_ACCOUNT_ID"):
        load_targets(path)


def test_a_gateway_route_named_with_the_wrong_api_is_a_targets_file_error(tmp_path):
    path = _targets_file(tmp_path, [
        "  - {name: h, api: openai-chat, host: 'https://gateway.ai.cloudflare.com/v1/a/g/anthropic', model: m}\n"
    ])
    with pytest.raises(TargetFileError, match=r"target 'h': .*'anthropic' route, which speaks anthropic"):
        load_targets(path)
