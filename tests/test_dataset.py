"""Datasets (llm_locust/dataset.py): ShareGPT JSON and JSONL read record by record in bounded memory, field
mappings, malformed records counted and skipped, length filters, a seeded sample, and one line with exit code 2
for a dataset that cannot be used."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from llm_locust.dataset import DatasetError, Fields, load_dataset, parse_fields
from tests.conftest import ROOT


def conv(i: int, turns: int = 2) -> dict:
    out = []
    for k in range(turns):
        out += [{"from": "human", "value": f"question {i}.{k}"}, {"from": "gpt", "value": f"answer {i}.{k}"}]
    return {"id": str(i), "conversations": out}


def write_json(path: Path, records: list) -> Path:
    path.write_text(json.dumps(records, indent=2))
    return path


def write_jsonl(path: Path, lines: list) -> Path:
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return path


def test_sharegpt_json(tmp_path: Path):
    records = [conv(i) for i in range(50)]
    records[3]["conversations"].insert(0, {"from": "system", "value": "be brief"})
    prompts, stats = load_dataset(write_json(tmp_path / "share.json", records), sample=100)
    assert stats.records == 50 and stats.used == 50 and stats.malformed == 0
    assert [p.text for p in prompts] == [f"question {i}.0" for i in range(50)], "file order, first user turn"
    assert prompts[3].system == "be brief" and prompts[0].system is None
    assert {p.name for p in prompts} == {"share"} and not any(p.turns for p in prompts)


def test_sessions_take_the_first_k_user_turns(tmp_path: Path):
    prompts, _ = load_dataset(write_json(tmp_path / "s.json", [conv(0, 4), conv(1, 1)]), session_turns=3)
    assert prompts[0].turns == ("question 0.0", "question 0.1", "question 0.2")
    assert prompts[1].turns == ("question 1.0",)


def test_jsonl_prompts_messages_and_bare_strings(tmp_path: Path):
    path = write_jsonl(tmp_path / "p.jsonl", [
        {"prompt": "one"}, {"text": "two"}, '"three"', "",
        {"messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "four"},
                      {"role": "assistant", "content": "x"}]},
        conv(5),
    ])
    prompts, stats = load_dataset(path)
    assert [p.text for p in prompts] == ["one", "two", "three", "four", "question 5.0"]
    assert prompts[3].system == "sys"
    assert stats.malformed == 0 and stats.records == 5


def test_field_mapping(tmp_path: Path):
    path = write_jsonl(tmp_path / "q.jsonl", [{"question": "why?"}, {"dialog": [{"speaker": "user", "text": "hi"}]}])
    fields = parse_fields("prompt=question,conversations=dialog,role=speaker,content=text")
    prompts, _ = load_dataset(path, fields=fields)
    assert [p.text for p in prompts] == ["why?", "hi"]
    assert parse_fields(None) == Fields()


@pytest.mark.parametrize(
    ("spec", "problem"),
    [("prompt", "is not KEY=NAME"), ("answer=x", "unknown key 'answer'"), ("prompt=a,prompt=b", "given twice"),
     ("prompt=", "is not KEY=NAME")],
)
def test_bad_field_mappings(spec, problem):
    with pytest.raises(DatasetError, match=problem):
        parse_fields(spec)


def test_malformed_records_are_counted_and_skipped(tmp_path: Path):
    path = write_jsonl(tmp_path / "m.jsonl", [
        {"prompt": "good"}, "{not json", {"other": 1}, {"conversations": "x"}, {"conversations": [1]},
        {"conversations": [{"from": "gpt", "value": "only an answer"}]}, "[1, 2]", {"prompt": "also good"},
        b"\xff\xfe".decode("latin-1"),
    ])
    prompts, stats = load_dataset(path)
    assert [p.text for p in prompts] == ["good", "also good"]
    assert stats.malformed == 7 and stats.records == 9
    line = stats.line()
    assert "\n" not in line and "7 malformed and skipped" in line and "2 used" in line


def test_a_line_over_the_record_limit_is_malformed_and_memory_stays_bounded(tmp_path: Path, monkeypatch):
    from llm_locust import dataset

    monkeypatch.setattr(dataset, "MAX_RECORD_BYTES", 1000)
    path = write_jsonl(tmp_path / "long.jsonl", [{"prompt": "a"}, {"prompt": "x" * 5000}, {"prompt": "b"}])
    prompts, stats = load_dataset(path)
    assert [p.text for p in prompts] == ["a", "b"] and stats.reasons == {"line too long": 1}


def test_a_broken_json_array_is_read_up_to_the_error(tmp_path: Path):
    text = json.dumps([conv(i) for i in range(20)])
    path = tmp_path / "broken.json"
    path.write_text(text[: len(text) // 2] + '"oops: }}]')
    prompts, stats = load_dataset(path)
    assert 0 < stats.used < 20 and stats.stopped and "syntax error" in stats.stopped
    assert "stopped early" in stats.line()


def test_length_filters(tmp_path: Path):
    records = [{"prompt": "w " * n} for n in (1, 5, 10, 50, 100)]
    path = write_jsonl(tmp_path / "len.jsonl", records)
    count = lambda text: len(text.split())  # noqa: E731 - a tokenizer of words
    prompts, stats = load_dataset(path, count=count, min_input=5, max_input=50)
    assert sorted(len(p.text.split()) for p in prompts) == [5, 10, 50] and stats.filtered == 2


def test_the_sample_is_uniform_seeded_and_in_file_order(tmp_path: Path):
    path = write_jsonl(tmp_path / "many.jsonl", [{"prompt": f"p{i}"} for i in range(2000)])
    a, _ = load_dataset(path, sample=100, rng=random.Random(3))
    b, _ = load_dataset(path, sample=100, rng=random.Random(3))
    c, _ = load_dataset(path, sample=100, rng=random.Random(4))
    assert [p.text for p in a] == [p.text for p in b] != [p.text for p in c]
    index = [int(p.text[1:]) for p in a]
    assert index == sorted(index) and len(index) == 100
    assert index[-1] > 1000, "drawn from the whole file, not its head"


def test_output_tokens_draw_the_limit(tmp_path: Path):
    from llm_locust.synthetic import Length

    prompts, _ = load_dataset(write_jsonl(tmp_path / "o.jsonl", [{"prompt": "a"}] * 3), output=Length(9))
    assert [p.token_limit for p in prompts] == [9, 9, 9]


@pytest.mark.parametrize(
    ("content", "problem"),
    [(None, "file not found"), ("", "no usable record"), ("[]", "no usable record"), ("garbage\n", "no usable record"),
     ("[{\"x\": 1}]", "no usable record")],
)
def test_unusable_datasets(tmp_path: Path, content, problem):
    path = tmp_path / "d.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DatasetError, match=problem):
        load_dataset(path)


LOADER = """
import json, random, resource, sys, tracemalloc
from llm_locust.dataset import load_dataset
tracemalloc.start()
prompts, stats = load_dataset(sys.argv[1], sample=1000, rng=random.Random(1))
peak = tracemalloc.get_traced_memory()[1]
print(json.dumps({"peak": peak, "records": stats.records, "used": stats.used, "malformed": stats.malformed}))
"""


@pytest.mark.parametrize("kind", ["json", "jsonl"])
def test_100k_conversations_stream_in_bounded_memory(tmp_path: Path, kind):
    path = tmp_path / f"big.{kind}"
    pad = "lorem ipsum dolor sit amet " * 8
    with path.open("w") as f:
        f.write("[" if kind == "json" else "")
        for i in range(100_000):
            record = {"conversations": [{"from": "human", "value": f"q{i} {pad}"}, {"from": "gpt", "value": pad}]}
            sep = (",\n" if i else "") if kind == "json" else ""
            f.write(sep + json.dumps(record) + ("" if kind == "json" else "\n"))
            if i % 10_000 == 5:  # a malformed record: no prompt (array), not JSON (lines)
                f.write(',\n{"x": 1}' if kind == "json" else "{broken\n")
        f.write("]" if kind == "json" else "")
    size = path.stat().st_size
    out = subprocess.run([sys.executable, "-c", LOADER, str(path)], capture_output=True, text=True, timeout=300,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert result["used"] == 1000
    assert result["records"] == 100_010 and result["malformed"] == 10
    # the file is ~52 MB; the loader holds the sample (~0.4 MB) and a chunk or two, never the file (peak ~0.9 MB)
    assert size > 30e6 and result["peak"] < size / 20, (size, result["peak"])
    print(f"{kind}: {size / 1e6:.1f} MB file, loader peak {result['peak'] / 1e6:.2f} MB")


@pytest.mark.parametrize(
    ("args", "expected"),
    [(["--dataset", "/nonexistent/data.jsonl"], "--dataset /nonexistent/data.jsonl: file not found"),
     (["--dataset", "{empty}"], "no usable record"),
     (["--dataset", "{good}", "--dataset-fields", "question"], "--dataset-fields: 'question' is not KEY=NAME"),
     (["--dataset", "{good}", "--dataset-min-input-tokens", "50", "--dataset-max-input-tokens", "5"],
      "is above --dataset-max-input-tokens"),
     (["--dataset", "{good}", "--dataset-sample", "0"], "--dataset-sample must be at least 1"),
     (["--dataset", "{good}", "--session-turns", "0"], "--session-turns must be at least 1"),
     (["--dataset", "{good}", "--input-tokens", "8"], "--dataset and --input-tokens both given"),
     (["--session-turns", "3"], "--session-turns needs --dataset FILE"),
     (["--dataset", "{folder}"], "is a folder")],
)
def test_bad_dataset_options_exit_2_with_one_line(args, expected, tmp_path: Path, locust_run):
    (tmp_path / "empty.jsonl").write_text("\n")
    write_jsonl(tmp_path / "good.jsonl", [{"prompt": "hello there"}])
    args = [a.format(empty=tmp_path / "empty.jsonl", good=tmp_path / "good.jsonl", folder=tmp_path) for a in args]
    run = locust_run("-u", "1", "--max-requests", "1", *args, timeout=60)
    assert run.returncode == 2, run.stderr[-2000:]
    errors = [line for line in run.stderr.splitlines() if "llm-locust: error:" in line]
    assert len(errors) == 1 and expected in errors[0], run.stderr[-2000:]
    assert "Traceback" not in run.stderr


def test_run_from_a_sharegpt_file(tmp_path: Path, mock_server, locust_run):
    path = write_json(tmp_path / "sharegpt.json", [conv(i) for i in range(30)] + [{"bad": 1}])
    mock = mock_server("--ttft-ms", "5", "--itl-ms", "1")
    run = locust_run("-H", mock.url, "--model", "gpt-4o", "-u", "2", "--max-requests", "8", "--dataset", str(path),
                     "--dataset-sample", "8", "--output-tokens", "6", "--seed", "1")
    assert run.returncode == 0, run.stderr[-3000:]
    rows = run.requests()
    assert len(rows) == 8 and {r["prompt"] for r in rows} == {"sharegpt"}
    assert {int(r["input_tokens_server"]) for r in rows} == {2}, "'question i.0': two words"
    assert sorted(s["tokens"] for s in mock.sent()) == [6] * 8
    assert "31 records read, 8 used; 1 malformed and skipped" in run.stderr
    source = run.summary()["run"]["prompt_source"]
    assert source["kind"] == "dataset" and source["malformed"] == 1 and source["used"] == 8
