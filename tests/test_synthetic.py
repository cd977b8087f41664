"""Synthetic prompts (llm_locust/synthetic.py, sources.py): exact lengths with a known tokenizer, seeded draws, the
drawn output length as the token limit, and one line with exit code 2 for a spec that cannot be met."""

from __future__ import annotations

import random
from argparse import Namespace
from pathlib import Path

import pytest

from llm_locust import sources
from llm_locust.prompts import Prompt, PromptFileError, load_prompts
from llm_locust.synthetic import (
    FALLBACK_WORDS,
    Length,
    LengthError,
    Spec,
    Vocabulary,
    parse_length,
    pool_size,
    synthetic_prompts,
    text_of,
    vocabulary,
)
from tests.conftest import needs_tiktoken, run_locust


def opts(**kw) -> Namespace:
    base = dict.fromkeys(sources.OPTION_NAMES)
    base["prompt_file"] = str(Path(__file__).resolve().parents[1] / "prompts.yaml")
    return Namespace(**{**base, **kw})


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("512", Length(512)), (512, Length(512)), ("512,64", Length(512, 64.0)), (" 100 , 0 ", Length(100)),
     ([256, 32], Length(256, 32.0)), ("1e3", Length(1000))],
)
def test_lengths_parse(spec, expected):
    assert parse_length(spec, "--input-tokens") == expected


@pytest.mark.parametrize(
    ("spec", "problem"),
    [("0", "at least 1 token"), ("-5", "at least 1 token"), ("abc", "MEAN[,STDDEV]"), ("512,-1", "0 or more"),
     ("2000000", "over the cap"), ("1.5", "whole number"), ("1,2,3", "MEAN[,STDDEV]"), (True, "MEAN[,STDDEV]"),
     ("nan", "whole number"), ("512,inf", "0 or more")],
)
def test_bad_lengths_name_the_problem(spec, problem):
    with pytest.raises(LengthError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        parse_length(spec, "--input-tokens")


def test_draws_stay_within_one_and_the_cap():
    rng = random.Random(1)
    drawn = [Length(5, 50.0, cap=20).draw(rng) for _ in range(2000)]
    assert min(drawn) == 1 and max(drawn) == 20


@needs_tiktoken
@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4", "text-davinci-003"])
def test_exact_length_with_a_known_tokenizer(model):
    import tiktoken

    vocab = vocabulary(model)
    assert vocab.exact
    enc = tiktoken.get_encoding(vocab.source.split(":", 1)[1])
    rng = random.Random(7)
    for n in (1, 2, 17, 512, 3000):
        assert len(enc.encode(text_of(n, vocab, rng))) == n


@needs_tiktoken
def test_unknown_model_is_marked_estimated():
    vocab = vocabulary("meta-llama/Llama-3.1-8B-Instruct")
    assert not vocab.exact and vocab.source == "tiktoken:o200k_base"


def test_fallback_words_without_tiktoken_are_marked():
    vocab = Vocabulary(FALLBACK_WORDS, "estimate:common-words", False)
    text = text_of(10, vocab, random.Random(1))
    assert len(text.split()) == 10


def test_pool_bounds_memory_for_long_prompts():
    assert pool_size(512) == 1000 and pool_size(1000) == 1000
    assert pool_size(4096) == 244 and pool_size(100_000) == 16
    assert pool_size(1_000_000) == 16
    assert pool_size(8, count=3) == 3


def test_same_seed_same_prompts_other_seed_other_prompts():
    first = sources._resolve.__wrapped__("gpt-4o", "x", "64,16", "8,2", 42, *[None] * 6)[0]
    again = sources._resolve.__wrapped__("gpt-4o", "x", "64,16", "8,2", 42, *[None] * 6)[0]
    other = sources._resolve.__wrapped__("gpt-4o", "x", "64,16", "8,2", 43, *[None] * 6)[0]
    assert [(p.text, p.token_limit) for p in first] == [(p.text, p.token_limit) for p in again]
    assert [p.text for p in first] != [p.text for p in other]
    assert len({p.text for p in first}) == len(first), "distinct prompts"
    assert {p.name for p in first} == {"synthetic"}
    assert abs(sum(p.weight for p in first) - 1.0) < 1e-9


def test_each_worker_draws_its_own_prompts_reproducibly():
    def texts(process: int) -> list[str]:
        return [p.text for p in sources.run_prompts(opts(input_tokens="16", seed=9), "gpt-4o", process)[0]]

    assert texts(0) == texts(0) and texts(1) == texts(1)
    assert texts(0) != texts(1) != texts(2), "workers do not send each other's prompts (prefix caches)"


def test_prompt_file_synthetic_entry(tmp_path: Path):
    path = tmp_path / "p.yaml"
    path.write_text(
        "prompts:\n"
        "  - {name: fixed, text: hello}\n"
        "  - name: rand\n    weight: 3\n"
        "    synthetic: {input_tokens: [40, 5], output_tokens: '16,4', count: 20}\n"
    )
    prompts, source = sources.run_prompts(opts(prompt_file=str(path), seed=1), "gpt-4o")
    assert source["kind"] == "prompt-file"
    rand = [p for p in prompts if p.name == "rand"]
    assert len(rand) == 20 and len(prompts) == 21
    assert abs(sum(p.weight for p in rand) - 3.0) < 1e-9
    assert all(p.input_tokens_asked and len(p.text.split()) == p.input_tokens_asked for p in rand)
    assert all(p.token_limit and p.token_limit >= 1 for p in rand)
    assert len({p.token_limit for p in rand}) > 1


@pytest.mark.parametrize(
    ("entry", "problem"),
    [("{input_tokens: 0}", "at least 1 token"), ("{output_tokens: 5}", "with input_tokens"),
     ("{input_tokens: 5, count: 0}", "count must be a positive integer"), ("{input_tokens: 5, size: 3}", "mapping"),
     ("7", "mapping")],
)
def test_bad_synthetic_entries(tmp_path: Path, entry, problem):
    path = tmp_path / "p.yaml"
    path.write_text(f"prompts:\n  - name: r\n    synthetic: {entry}\n")
    with pytest.raises(PromptFileError, match=problem):
        load_prompts(path)


def test_synthetic_beside_text_is_refused(tmp_path: Path):
    path = tmp_path / "p.yaml"
    path.write_text("prompts:\n  - {name: r, text: hi, synthetic: {input_tokens: 5}}\n")
    with pytest.raises(PromptFileError, match="'text' beside"):
        load_prompts(path)


def test_the_output_length_is_the_token_limit():
    prompts = synthetic_prompts(Prompt(name="s", text="-"), Spec(Length(10), Length(7)), vocabulary("gpt-4o"),
                                random.Random(1))
    assert {p.token_limit for p in prompts} == {7}
    assert {p.input_tokens_asked for p in prompts} == {10}


@needs_tiktoken
def test_run_sends_the_asked_input_length_exactly(mock_server, locust_run, tmp_path: Path):
    """The mock counts the prompt's words: each word is one token, so server == asked == local (tiktoken)."""
    mock = mock_server("--ttft-ms", "5", "--itl-ms", "1")
    run = locust_run("-H", mock.url, "--model", "gpt-4o", "-u", "2", "--max-requests", "12",
                     "--input-tokens", "200,50", "--output-tokens", "12,4", "--seed", "5")
    assert run.returncode == 0, run.stderr[-3000:]
    rows = run.requests()
    assert len(rows) == 12
    for r in rows:
        asked = int(r["input_tokens_asked"])
        assert int(r["input_tokens_server"]) == asked == int(r["input_tokens_local"]), r
        assert r["prompt"] == "synthetic" and r["session"] == "" and r["turn"] == ""
    assert len({r["input_tokens_asked"] for r in rows}) > 1, "lengths are drawn"
    sent = sorted(s["tokens"] for s in mock.sent())
    assert min(sent) >= 1 and len(set(sent)) > 1, "the drawn output length is the token limit"
    source = run.summary()["run"]["prompt_source"]
    assert source["kind"] == "synthetic" and source["exact"] is True and source["tokenizer"] == "tiktoken:o200k_base"
    # the same seed sends the same lengths again
    (tmp_path / "again").mkdir()
    again = run_locust(tmp_path / "again", "-H", mock.url, "--model", "gpt-4o", "-u", "2", "--max-requests", "12",
                       "--input-tokens", "200,50", "--output-tokens", "12,4", "--seed", "5")
    assert again.returncode == 0, again.stderr[-3000:]
    assert sorted(r["input_tokens_asked"] for r in again.requests()) == sorted(r["input_tokens_asked"] for r in rows)


@pytest.mark.parametrize(
    ("args", "expected"),
    [(["--input-tokens", "0"], "--input-tokens: the mean must be at least 1 token"),
     (["--input-tokens", "-3"], "--input-tokens: the mean must be at least 1 token"),
     (["--input-tokens", "512,-2"], "standard deviation must be 0 or more"),
     (["--input-tokens", "5000000"], "over the cap"),
     (["--input-tokens", "many"], "--input-tokens must be MEAN[,STDDEV]"),
     (["--input-tokens", "8", "--output-tokens", "0"], "--output-tokens: the mean must be at least 1"),
     (["--output-tokens", "64"], "--output-tokens needs --input-tokens or --dataset"),
     (["--input-tokens", "8", "--seed", "-1"], "--seed must be at least 0")],
)
def test_bad_length_options_exit_2_with_one_line(args, expected, locust_run):
    run = locust_run("-u", "1", "--max-requests", "1", *args, timeout=60)
    assert run.returncode == 2, run.stderr[-2000:]
    errors = [line for line in run.stderr.splitlines() if "llm-locust: error:" in line]
    assert len(errors) == 1 and expected in errors[0], run.stderr[-2000:]
    assert "Traceback" not in run.stderr
