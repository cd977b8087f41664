"""The benchmark's own arithmetic (bench/measurement_error.py): ratios to the bare reader pair runs of one repeat."""

from __future__ import annotations

import importlib.util

from tests.conftest import ROOT


def _bench():
    spec = importlib.util.spec_from_file_location("measurement_error", ROOT / "bench" / "measurement_error.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_issue_14_table_divides_by_the_bare_run_of_the_same_repeat(capsys):
    """With --repeat 2 each full run's "x bare" is against the bare reader's run of its own repeat (the printer once
    divided the first repeat by the second's bare run), in both tables and in the JSON's comparison."""
    bench = _bench()
    split = {"p50": 0.1, "p99": 1.0}
    runs = []
    for rep, (full_us, bare_us, bare_p99) in enumerate(((30.0, 20.0, 4.0), (30.0, 10.0, 8.0)), start=1):
        for profile, us, p99 in (("full", full_us, 2.0), ("bare", bare_us, bare_p99)):
            runs.append({
                "scenario": "table", "profile": profile, "users": 64, "mock_args": "m", "repeat": rep,
                "chunks_per_s": 1000.0, "cpu_us_per_chunk": us, "cpu_us_per_request": us * 100,
                "ttft_whole_err_ms": {"p50": 0.1, "p99": p99}, "send_ms": split, "ttft_err_ms": split,
                "ttft_client_err_ms": {"p50": 0.1, "p99": p99}, "send_arrive_ms": split, "server_read_wait_ms": split,
            })
    bench.print_whole_table(runs)
    full_rows = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("full")]
    whole, client = full_rows[:2], full_rows[2:]
    # CPU per chunk x bare, whole p99 x bare: 30/20 and 2/4 in repeat 1, 30/10 and 2/8 in repeat 2
    assert [(r[-4], r[-1]) for r in whole] == [("1.50", "0.50"), ("3.00", "0.25")]
    assert [r[-1] for r in client] == ["0.50", "0.25"]
    ratios = [c["cpu_us_per_chunk_full_over_bare"] for c in bench.compare(runs)]
    assert ratios == [1.5, 3.0]
