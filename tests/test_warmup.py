"""--warmup: the first requests (or seconds) are logged, marked, and left out of every statistic.

End to end: real `locust` processes against the embedded mock, bounded by ``--max-requests``: the warm-up rows are
in requests.csv with ``warmup = True``, and every count in summary.json is the total less them; warm-up by time
marks the first requests only; bad values end the run at start-up with one line and exit code 2.
"""

from __future__ import annotations

import csv
import json
from array import array
from datetime import datetime

import numpy as np
import pytest

from llm_locust import slo, warmup
from llm_locust.measure.record import FIELDS
from llm_locust.report import summarize
from llm_locust.table import RecordTable
from tests.conftest import free_port

PROMPTS = "tests/data/prompts_small.yaml"
MOCK = "--ttft-ms 5 --itl-ms 1 --output-tokens 8"


@pytest.mark.parametrize(("value", "spec"), [
    ("100", warmup.Spec(requests=100)), ("30s", warmup.Spec(seconds=30.0)), ("500ms", warmup.Spec(seconds=0.5)),
    ("2m", warmup.Spec(seconds=120.0)), ("1.5s", warmup.Spec(seconds=1.5)), ("0", warmup.Spec()),
    (None, warmup.Spec()), ("", warmup.Spec()),
])
def test_parse(value, spec):
    assert warmup.parse(value) == spec


@pytest.mark.parametrize("value", ["-1", "5x", "1.5", "s", "10 requests", "-3s"])
def test_parse_rejects_with_the_fix(value):
    with pytest.raises(ValueError, match="--warmup") as e:
        warmup.parse(value)
    assert "\n" not in str(e.value)


def test_by_count_the_first_n_requests():
    w = warmup.Warmup(warmup.Spec(requests=3))
    assert [w.take() for _ in range(6)] == [True, True, True, False, False, False]
    assert w.taken == 3
    assert not any(warmup.Warmup().take() for _ in range(3))


def test_by_time_from_the_first_request():
    w = warmup.Warmup(warmup.Spec(seconds=3600))
    assert all(w.take() for _ in range(5))
    w = warmup.Warmup(warmup.Spec(seconds=1e-9))
    w.take()  # the first request starts the clock; a nanosecond later the warm-up is over
    assert not w.take()


def _record(i: int, warm: bool, ttft: float) -> dict:
    gaps = array("q", [1000 * (i + 1)] * 3)
    rec = {f: None for f in FIELDS}
    rec.update(
        timestamp=f"2026-01-01T00:00:{i:02d}.000+00:00", request_id=f"r{i}", user="u", target="t",
        api="openai-chat", host="h", model="m", prompt="p", status="ok", warmup=warm, ttft_ms=ttft,
        ttft_text_ms=ttft, e2e_ms=500.0, elapsed_ms=500.0, tpot_ms=1.0, itl_rule="per-event", token_events=4,
        output_tokens_per_s=8.0, input_tokens=5, input_tokens_source="server", input_tokens_local=5,
        output_tokens=4, output_tokens_source="server", output_tokens_server=4, output_tokens_local=4,
        local_tokens_source="tiktoken", total_tokens=9, backoff_s=0.0, t0_ns=i * 10**9, itl_us=gaps.tobytes(),
    )
    return rec


def test_summaries_leave_the_warm_up_out_and_state_the_window():
    records = [_record(i, i < 3, 1000.0 if i < 3 else 10.0) for i in range(10)]
    s = summarize(records, {"run_id": "x", "model": "m", "host": "h", "api": "openai-chat"})
    o = s["overall"]
    assert o["requests"] == 7 and s["run"]["requests"] == 7
    assert o["ttft_ms"]["max"] == 10.0  # the slow warm-up requests are not in the figures
    assert o["itl_ms"]["samples"] == 21 and o["itl_ms"]["min"] == 4.0  # nor their gaps
    window = s["run"]["window"]
    assert window["warmup_requests"] == 3
    assert window["duration_s"] == pytest.approx(6.5)  # request 3's send to request 9's end
    assert window["start"].startswith("2026-01-01T00:00:03")
    assert o["throughput"]["requests_per_s"] == pytest.approx(7 / 6.5)
    line = warmup.render(s)
    assert line is not None and "3 warm-up" in line and "\n" not in line
    table = RecordTable()
    for r in records:
        table.add(r)
    from_table = summarize(table.frame(), {"run_id": "x", "model": "m", "host": "h", "api": "a"}, None, table.itl())
    assert from_table["overall"]["itl_ms"] == o["itl_ms"] and from_table["run"]["window"] == window


def test_measured_drops_the_warm_up_rows_and_their_gaps_for_the_slo():
    records = [_record(i, i < 3, 1000.0 if i < 3 else 10.0) for i in range(10)]
    table = RecordTable()
    for r in records:
        table.add(r)
    df, itl = warmup.measured(table.frame(), table.itl())
    assert len(df) == 7 and not df["warmup"].any()
    assert itl is not None and len(itl) == 21 and int(np.min(itl)) == 4000
    verdict = slo.evaluate(slo.parse("ttft_p99=100ms,itl_mean=1s"), df, 6.5, itl)
    assert verdict["pass"], verdict
    ttft, itl_mean = (o["measured"] for o in verdict["objectives"])
    assert ttft == pytest.approx(10.0) and itl_mean == pytest.approx(7.0)  # gaps 4 .. 10 ms, not the warm-up's


# -- end to end ------------------------------------------------------------------------------------------------


def test_warm_up_requests_are_logged_marked_and_left_out(locust_run):
    run = locust_run(
        "-u", "2", "-r", "2", "--max-requests", "12", "--warmup", "4", "--prompt-file", PROMPTS,
        "--mock-server-args", MOCK,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    rows = run.requests()
    assert len(rows) == 12 and all(r["status"] == "ok" for r in rows)
    warm = [r for r in rows if r["warmup"] == "True"]
    assert len(warm) == 4 and all(r["warmup"] in ("True", "False") for r in rows)
    # the warm-up requests are the first four sent
    starts = sorted(rows, key=lambda r: int(r["t0_ns"]))
    assert {r["request_id"] for r in starts[:4]} == {r["request_id"] for r in warm}
    summary = run.summary()
    assert summary["overall"]["requests"] == summary["run"]["requests"] == 8
    assert sum(p["requests"] for p in summary["prompts"]) == 8
    assert summary["run"]["window"]["warmup_requests"] == 4 and summary["run"]["warmup"] == "4 request(s)"
    measured = [r for r in rows if r["warmup"] == "False"]
    t0 = min(int(r["t0_ns"]) for r in measured)
    end = max(int(r["t0_ns"]) + float(r["elapsed_ms"]) * 1e6 for r in measured)
    assert summary["run"]["duration_s"] == pytest.approx((end - t0) / 1e9, rel=1e-6)
    assert summary["overall"]["throughput"]["requests_per_s"] == pytest.approx(8 / summary["run"]["duration_s"])
    assert "Measured window" in (run.folder / "summary.txt").read_text()
    assert "4 warm-up request(s)" in (run.folder / "report.html").read_text()
    # Locust's own request statistics are Locust's: one event per LLM call, warm-up included
    assert run.locust_stats()["Aggregated"]["num_requests"] == 12


def test_warm_up_by_time_marks_the_first_requests_only(locust_run):
    run = locust_run(
        "-u", "1", "-r", "1", "--max-requests", "16", "--warmup", "1s", "--prompt-file", PROMPTS,
        "--mock-server-args", "--ttft-ms 150 --itl-ms 1 --output-tokens 4",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    rows = sorted(run.requests(), key=lambda r: int(r["t0_ns"]))
    flags = [r["warmup"] == "True" for r in rows]
    n_warm = sum(flags)
    # one user, each request >= 150 ms: the first is warm-up, 16 requests outlast 1 s, and no measured request
    # comes before a warm-up one
    assert 1 <= n_warm < 16 and flags == [True] * n_warm + [False] * (16 - n_warm)
    first = datetime.fromisoformat(rows[0]["timestamp"])
    for r in rows[n_warm:]:
        assert (datetime.fromisoformat(r["timestamp"]) - first).total_seconds() >= 0.99
    assert run.summary()["overall"]["requests"] == 16 - n_warm


@pytest.mark.parametrize("value", ["-1", "5x"])
def test_bad_values_exit_2_with_one_line(locust_run, value):
    run = locust_run("-u", "1", "--max-requests", "1", "--prompt-file", PROMPTS, f"--warmup={value}")
    assert run.returncode == 2, run.stderr[-2000:]
    lines = [line for line in run.stderr.splitlines() if line.startswith("llm-locust: error:")]
    assert len(lines) == 1 and "--warmup" in lines[0] and "30s" in lines[0]
    assert "Traceback" not in run.stderr


def test_warm_up_by_count_is_per_load_generator_process(tmp_path, mock_server, locust_run):
    """Master and two workers (--processes 2): each worker marks its own first 2 requests, the master's reports
    leave all 4 out."""
    mock = mock_server("--ttft-ms", "10", "--itl-ms", "2", "--output-tokens", "6")
    port = str(free_port())
    run = locust_run("--processes", "2", "--master-bind-port", port, "--master-port", port,
                     "-u", "4", "-r", "4", "-t", "4s", "-H", mock.url, "--model", "m", "--warmup", "2",
                     "--prompt-file", PROMPTS, json_stats=False)
    assert run.returncode == 0, run.stderr[-3000:]
    folder = next(p for p in run.report_dir.iterdir() if p.name != "workers")
    with (folder / "requests.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    summary = json.loads((folder / "summary.json").read_text())
    warm = [r for r in rows if r["warmup"] == "True"]
    assert len(warm) == 4 and summary["run"]["window"]["warmup_requests"] == 4
    done = [r for r in rows if r["status"] != "cancelled" and r["warmup"] == "False"]
    assert summary["overall"]["requests"] == len(done) > 0
