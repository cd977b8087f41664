"""The columnar record store: the same summary as from the records, and about 100 bytes per request."""

from __future__ import annotations

import random
import tracemalloc
from array import array

from llm_locust.measure.record import FIELDS, STATUS_CANCELLED, STATUS_FAILED, STATUS_OK
from llm_locust.report import summarize
from llm_locust.table import RecordTable


def synthetic(i: int, rng: random.Random) -> dict:
    status = rng.choice([STATUS_OK] * 8 + [STATUS_FAILED, STATUS_CANCELLED])
    ok = status == STATUS_OK
    gaps = array("q", [rng.randint(1, 50_000) for _ in range(rng.randint(0, 40))]) if ok else array("q")
    n_out = rng.randint(1, 500) if ok else None
    rec = {f: None for f in FIELDS}
    rec.update(
        timestamp="2025-01-01T00:00:00.000+00:00", request_id=f"r{i}", user="u1", target=rng.choice(["a", "b"]),
        api="openai-chat", host="http://127.0.0.1:1", model=rng.choice(["m1", "m2"]),
        prompt=rng.choice(["p1", "p2", "p3"]), status=status,
        error_class=None if ok else "http_500", error=None if ok else "HTTP 500",
        ttft_ms=rng.random() * 500 if ok else None, ttft_text_ms=rng.random() * 500 if ok else None,
        e2e_ms=rng.random() * 5000 if ok else None, elapsed_ms=rng.random() * 5000,
        tpot_ms=rng.random() * 50 if ok and rng.random() > 0.1 else None,
        itl_rule="per-event", token_events=len(gaps) + 1 if ok else 0,
        output_tokens_per_s=rng.random() * 100 if ok else None,
        input_tokens=rng.randint(1, 2000), input_tokens_source="server", input_tokens_local=7,
        output_tokens=n_out, output_tokens_source="server" if ok else "tiktoken",
        output_tokens_server=n_out, output_tokens_local=rng.randint(0, 500), local_tokens_source="tiktoken",
        reasoning_tokens=rng.choice([None, 3]), cached_tokens=None,
        cost_usd=rng.random() / 1000 if ok else None, cost_source="genai-prices" if ok else None,
        t0_ns=10**15 + i * 1_000_003, itl_us=gaps.tobytes(),
    )
    rec["total_tokens"] = rec["input_tokens"] + n_out if n_out is not None else None
    return rec


def test_summary_from_the_table_equals_the_summary_from_the_records():
    rng = random.Random(7)
    records = [synthetic(i, rng) for i in range(3000)]
    table = RecordTable()
    for r in records:
        table.add(r)
    meta = {"run_id": "x"}
    order = ["p3", "p1", "p2"]
    assert summarize(table.frame(), meta, order, table.itl()) == summarize(records, meta, order)
    # (plugin.reports.run_summary adds per-target extras from the same frame; importing it would import locust)


def test_gaps_spill_to_disk_and_come_back_in_order(monkeypatch):
    import llm_locust.table as table_mod

    monkeypatch.setattr(table_mod, "SPILL_EVERY", 100)
    rng = random.Random(3)
    records = [synthetic(i, rng) for i in range(500)]
    table = RecordTable()
    for r in records:
        table.add(r)
    assert table._spill is not None
    expected = [g for r in records for g in array("q", r["itl_us"])]
    assert table.itl().tolist() == expected
    assert table.frame()["itl_n"].sum() == len(expected)


def test_memory_per_request_stays_near_100_bytes():
    rng = random.Random(1)
    pool = [synthetic(i, rng) for i in range(1000)]  # records made before measuring: only the table counts
    table = RecordTable()
    for r in pool:  # first values of every category, first array blocks
        table.add(r)
    n = 100_000
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(n):
            table.add(pool[i % len(pool)])
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert table.count == n + len(pool)
    print(f"table: {grown / n:.0f} bytes per record")
    assert grown / n < 150, f"{grown / n:.0f} bytes per record"
