"""The live view's summaries: quantiles within their 2 % buckets, and merging equals summarising everything at once."""

from __future__ import annotations

import random
from array import array

import numpy as np
import pytest

from llm_locust import live
from llm_locust.live import FOLD_AT, Histogram, LiveView, Summary


def _record(rng: random.Random, status: str = "ok") -> dict:
    gaps = array("q", (rng.randint(500, 40_000) for _ in range(rng.randint(1, 50))))
    return {
        "status": status, "input_tokens": rng.randint(5, 500), "output_tokens": len(gaps) + 1,
        "cost_usd": rng.random() / 1000, "output_tokens_per_s": rng.uniform(10, 200),
        "ttft_ms": rng.uniform(0.2, 3000), "tpot_ms": rng.uniform(1, 80), "e2e_ms": rng.uniform(100, 20000),
        "itl_us": gaps.tobytes(),
    }


def test_quantiles_are_within_the_bucket_resolution():
    rng = random.Random(1)
    values = [rng.lognormvariate(3, 1.5) for _ in range(5000)]
    h = Histogram()
    for v in values:
        h.add(v)
    for q in (0.5, 0.9, 0.95, 0.99):
        exact = float(np.quantile(values, q, method="inverted_cdf"))
        assert abs(h.quantile(q) - exact) <= 0.021 * exact


def test_merged_summaries_equal_one_summary_of_everything():
    rng = random.Random(2)
    records = [_record(rng, "ok" if i % 7 else "failed") for i in range(900)]
    parts = [Summary(), Summary(), Summary()]
    whole = Summary()
    for i, r in enumerate(records):
        parts[i % 3].add(r)
        whole.add(r)
    merged = Summary()
    for part in parts:
        merged.merge(part)
    # counts and quantiles exactly; sums up to the order of float additions
    a, b = merged.row("x", 10.0), whole.row("x", 10.0)
    assert a.pop("name") == b.pop("name")
    assert a == pytest.approx(b, rel=1e-12)
    assert merged.itl.counts == whole.itl.counts and merged.itl.n == sum(
        len(r["itl_us"]) // 8 for r in records if r["status"] == "ok"
    )


def _ok(ttft: float, tpot: float, tokens: int = 10) -> dict:
    return {"warmup": False, "prompt": "p", "target": "t", "status": "ok", "ttft_ms": ttft, "tpot_ms": tpot,
            "e2e_ms": ttft + tpot * tokens, "output_tokens": tokens, "input_tokens": 5, "cost_usd": None,
            "output_tokens_per_s": 1.0, "itl_us": b""}


def test_the_window_quantiles_are_the_last_seconds_within_the_bucket_resolution(monkeypatch):
    """The time series' window is per-second bucket counts: its quantiles are within 2 % of the exact ones of the
    last WINDOW_S seconds, older requests drop out, and the cost of a sample does not grow with the request rate."""
    clock = [1000.0]
    monkeypatch.setattr(live.time, "time", lambda: clock[0])
    view = LiveView(["p"])
    rng = random.Random(3)
    for _ in range(2000):  # an old second: out of the window later
        view.add(_ok(5000.0, 50.0))
    clock[0] += live.WINDOW_S + 2
    recent = []
    for _ in range(3000):
        clock[0] += 0.003
        ttft, tpot = rng.lognormvariate(4, 1), rng.uniform(1, 20)
        recent.append((ttft, tpot))
        view.add(_ok(ttft, tpot))
    point = view.sample(7)
    for key, values, q in (("ttft_p50_ms", [r[0] for r in recent], 0.5), ("ttft_p95_ms", [r[0] for r in recent], 0.95),
                           ("tpot_p50_ms", [r[1] for r in recent], 0.5)):
        exact = float(np.quantile(values, q, method="inverted_cdf"))
        assert abs(point[key] - exact) <= 0.021 * exact, key
    assert point["users"] == 7 and point["output_tokens_per_s"] == pytest.approx(30000 / view._window.span(clock[0]))
    assert len(view._window._slots) <= live.WINDOW_S + 1


def test_gap_arrays_are_folded_by_their_values_not_their_count():
    """An ITL histogram buckets at FOLD_AT pending *gaps*: 2,048 pending arrays of 128 tokens each were 260,000
    values in one fold (20 ms of the event loop)."""
    h = Histogram()
    gaps = array("q", [5000] * 127).tobytes()
    for _ in range(FOLD_AT // 127 + 1):
        h.add_us_bytes(gaps)
    assert h._pending < 127 and h.n >= FOLD_AT and h.quantile(0.5) == pytest.approx(5.0, rel=0.02)


def test_a_nan_or_infinite_value_is_left_out_of_the_live_view():
    """The live view is fed while streams are open: a value it cannot bucket is skipped, never an exception."""
    view = LiveView(["p"])
    for v in (float("nan"), float("inf"), 12.0):
        view.add(_ok(v, v))
    point = view.sample(1)
    assert point["ttft_p50_ms"] == pytest.approx(12.0, rel=0.02)
    assert point["tpot_p50_ms"] == pytest.approx(12.0, rel=0.02)
    h = Histogram()
    for v in (float("nan"), float("inf"), 3.0):
        h.add(v)
    assert h.quantile(0.5) == pytest.approx(3.0, rel=0.02) and h.n == 1
