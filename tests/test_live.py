"""The live view's summaries: quantiles within their 2 % buckets, and merging equals summarising everything at once."""

from __future__ import annotations

import random
from array import array

import numpy as np
import pytest

from llm_locust.live import Histogram, Summary


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
