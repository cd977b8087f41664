"""--fixed-output: what each protocol sends, the mock honouring it, and the output shortfall in every report.

End to end: real `locust` processes against a mock server whose answers stop early (``--early-eos``); without
--fixed-output the short answers are counted and flagged in summary.json and summary.txt; with it every answer has
the length asked.
"""

from __future__ import annotations

import json

import pytest

from llm_locust import fixedoutput
from llm_locust.mockserver.config import MockConfig
from llm_locust.mockserver.script import reply_length
from llm_locust.prompts import Prompt
from llm_locust.protocols import get_protocol
from llm_locust.report import summarize
from llm_locust.run import Target
from llm_locust.targets import TargetSpec

PROMPTS = "tests/data/prompts_small.yaml"
LIMIT = 40


def _body(api: str, fixed: bool, limit: int | None = LIMIT) -> tuple[dict, int | None]:
    spec = TargetSpec(name=api, api=api, host="http://127.0.0.1:9", model="m", key_env=None)
    target = Target(spec, api_key=None, price_file=None, continuous_usage=False, fixed_output=fixed)
    prep = target.prepare(Prompt(name="p", text="say hi"), limit)
    return json.loads(prep.body), prep.output_tokens_asked


@pytest.mark.parametrize("api", ["openai-chat", "openai-completions"])
def test_openai_protocols_send_ignore_eos_and_min_tokens(api):
    body, asked = _body(api, True)
    assert body["ignore_eos"] is True and body["min_tokens"] == LIMIT and body["max_tokens"] == LIMIT
    assert asked == LIMIT
    plain, asked = _body(api, False)
    assert "ignore_eos" not in plain and "min_tokens" not in plain and asked is None


@pytest.mark.parametrize("api", ["anthropic", "gemini", "ollama-chat", "ollama-generate"])
def test_apis_without_a_way_send_the_limit_only_but_still_ask(api):
    body, asked = _body(api, True)
    assert "ignore_eos" not in json.dumps(body) and "min_tokens" not in json.dumps(body)
    assert asked == LIMIT  # the shortfall is still counted against the limit
    assert get_protocol(api).fixed_output(LIMIT) is None


def test_no_limit_means_nothing_asked():
    body, asked = _body("openai-chat", True, limit=None)
    assert "ignore_eos" not in body and asked is None


def test_startup_note_names_the_apis_without_a_way():
    assert fixedoutput.startup_note(["openai-chat"]) is None
    note = fixedoutput.startup_note(["openai-chat", "anthropic", "gemini", "anthropic"])
    assert note is not None and "\n" not in note and "anthropic, gemini" in note


def test_mock_reply_length_honours_ignore_eos_and_min_tokens():
    cfg = MockConfig(output_tokens=64)
    assert reply_length(cfg, 1, 100) == (64, "stop")  # the model stops before the limit
    assert reply_length(cfg, 1, 100, ignore_eos=True) == (100, "length")
    assert reply_length(cfg, 1, 100, min_tokens=80) == (80, "stop")
    assert reply_length(cfg, 1, 32) == (32, "length")
    early = MockConfig(output_tokens=64, early_eos=1.0)
    lengths = [reply_length(early, seq, 64)[0] for seq in range(1, 50)]
    assert all(1 <= n < 64 for n in lengths) and len(set(lengths)) > 1
    assert lengths == [reply_length(early, seq, 64)[0] for seq in range(1, 50)]  # deterministic per request
    assert all(reply_length(early, seq, 64, ignore_eos=True) == (64, "length") for seq in range(1, 50))
    assert all(reply_length(early, seq, 64, min_tokens=64)[0] == 64 for seq in range(1, 50))


def _record(i: int, out: int, asked: int | None) -> dict:
    return {
        "target": "t", "api": "openai-chat", "prompt": "p", "status": "ok", "error_class": None, "error": None,
        "ttft_ms": 10.0, "ttft_text_ms": 10.0, "tpot_ms": 1.0, "e2e_ms": 50.0, "output_tokens_per_s": 10.0,
        "input_tokens": 5, "output_tokens": out, "total_tokens": 5 + out, "reasoning_tokens": None,
        "cost_usd": None, "cost_source": None, "itl_us": b"", "itl_rule": "per-event", "token_events": 1,
        "input_tokens_source": "server", "output_tokens_source": "server", "t0_ns": 10**9 * i, "elapsed_ms": 50.0,
        "timestamp": "2026-01-01T00:00:00.000+00:00", "backoff_s": 0.0, "warmup": False,
        "output_tokens_asked": asked,
    }


def test_summary_counts_the_shortfall_and_warns_above_five_percent():
    records = [_record(i, 40, 40) for i in range(18)] + [_record(18, 30, 40), _record(19, 20, 40)]
    s = summarize(records, {"run_id": "x", "model": "m", "host": "h", "api": "openai-chat"})
    short = s["overall"]["output_shortfall"]
    assert short == {"asked": 20, "missed": 2, "missed_share": 0.1, "mean_shortfall": 15.0, "flagged": True,
                     "unverified": 0}
    assert s["prompts"][0]["output_shortfall"]["missed"] == 2
    warning = fixedoutput.warning(s)
    assert warning is not None and "2 of 20" in warning and "\n" not in warning
    one_miss = [_record(i, 40, 40) for i in range(20)] + [_record(20, 39, 40)]
    assert fixedoutput.warning(summarize(one_miss, {"run_id": "x", "model": "m", "host": "h", "api": "a"})) is None
    # a local count (another tokenizer's estimate) cannot tell a miss: counted apart, never flagged
    local = [{**_record(i, 30, 40), "output_tokens_source": "local"} for i in range(5)]
    est = summarize(local, {"run_id": "x", "model": "m", "host": "h", "api": "a"})["overall"]["output_shortfall"]
    assert est["asked"] == 0 and est["unverified"] == 5 and not est["flagged"]
    unasked = summarize([_record(0, 3, None)], {"run_id": "x", "model": "m", "host": "h", "api": "a"})
    assert unasked["overall"]["output_shortfall"]["asked"] == 0 and fixedoutput.warning(unasked) is None


# -- end to end ------------------------------------------------------------------------------------------------


def _run(mock_server, locust_run, *extra: str):
    mock = mock_server("--ttft-ms", "5", "--itl-ms", "1", "--output-tokens", str(LIMIT), "--early-eos", "0.5")
    run = locust_run(
        "-u", "3", "-r", "3", "--max-requests", "12", "-H", mock.url, "--model", "mock-model",
        "--token-limit", str(LIMIT), "--prompt-file", PROMPTS, *extra,
    )
    run.sent = mock.sent()
    return run


def test_without_fixed_output_the_early_answers_are_counted_and_flagged(mock_server, locust_run):
    run = _run(mock_server, locust_run)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [r for r in run.requests() if r["status"] == "ok"]
    assert len(rows) == 12 and all(r["output_tokens_asked"] == "" for r in rows)
    assert any(int(r["output_tokens"]) < LIMIT for r in rows)  # the mock stopped some early
    assert len(run.sent) == 12 and all(s["length_asked"] is None for s in run.sent)
    short = run.summary()["overall"]["output_shortfall"]
    assert short["asked"] == 0  # nothing was asked for: nothing to flag


def test_fixed_output_gets_every_answer_to_the_limit(mock_server, locust_run):
    run = _run(mock_server, locust_run, "--fixed-output")
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [r for r in run.requests() if r["status"] == "ok"]
    assert len(rows) == 12
    assert all(int(r["output_tokens"]) == LIMIT and int(r["output_tokens_asked"]) == LIMIT for r in rows)
    # on the wire: every request carried ignore_eos and min_tokens = the limit
    assert len(run.sent) == 12 and all(s["length_asked"] == f"ignore_eos,min_tokens:{LIMIT}" for s in run.sent)
    summary = run.summary()
    assert summary["overall"]["output_shortfall"] == {"asked": 12, "missed": 0, "missed_share": 0.0,
                                                      "mean_shortfall": None, "flagged": False, "unverified": 0}
    assert summary["run"]["fixed_output"] is True
    assert "WARNING" not in (run.folder / "summary.txt").read_text()


def test_an_api_that_cannot_pin_the_length_is_named_once_and_its_shortfall_flagged(mock_server, locust_run):
    run = _run(mock_server, locust_run, "--fixed-output", "--llm-api", "anthropic")
    assert run.returncode == 0, run.stderr[-3000:]
    notes = [line for line in run.stderr.splitlines() if "--fixed-output" in line and "note" in line]
    assert len(notes) == 1 and "anthropic" in notes[0]
    rows = [r for r in run.requests() if r["status"] == "ok"]
    missed = [r for r in rows if int(r["output_tokens"]) != LIMIT]
    assert missed and all(int(r["output_tokens_asked"]) == LIMIT for r in rows)
    summary = run.summary()
    short = summary["overall"]["output_shortfall"]
    assert short["asked"] == len(rows) and short["missed"] == len(missed)
    expected = sum(LIMIT - int(r["output_tokens"]) for r in missed) / len(missed)
    assert short["mean_shortfall"] == pytest.approx(expected)
    text = (run.folder / "summary.txt").read_text()
    assert "Output length:" in text
    assert short["flagged"] is True and short["missed_share"] > fixedoutput.WARN_SHARE  # half stop early
    assert "WARNING" in text and "output length other than" in text
    assert "output length other than" in run.stdout + run.stderr  # the console summary too


def test_fixed_output_without_a_token_limit_exits_2_with_one_line(locust_run, tmp_path):
    run = locust_run("-u", "1", "--max-requests", "1", "--prompt-file", PROMPTS, "--fixed-output")
    assert run.returncode == 2
    lines = [line for line in run.stderr.splitlines() if line.startswith("llm-locust: error:")]
    assert len(lines) == 1 and "--token-limit" in lines[0] and "Traceback" not in run.stderr
