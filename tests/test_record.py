"""The per-request record is defined once (``llm_locust.measure.record.Record``): every other list of its fields
must agree with it, so a field added in one place only fails here instead of silently vanishing.

Checked: the record builder's keys, the ``requests.csv`` header and row, the worker wire packing (through
msgpack, as Locust's messages encode it), the fields the report reads, the gateway's response fields, and the column
table of ``docs/reports.md``.
"""

from __future__ import annotations

import csv
import gc
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import msgpack

from llm_locust import distributed, report
from llm_locust.errors import RateLimited
from llm_locust.measure.build import build_record
from llm_locust.measure.record import COLUMNS, FIELDS, NOT_IN_CSV, STATUS_FAILED, STATUS_OK, Record
from llm_locust.measure.stream import StreamResult, read_stream
from llm_locust.prompts import Prompt
from llm_locust.protocols import get_protocol
from llm_locust.protocols.cloudflare import gateway
from llm_locust.recorder import Recorder

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "reports.md"
BODY = (
    b'data: {"choices":[{"index":0,"delta":{"content":"Hello"}}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{"content":" world"},"finish_reason":"stop"}]}\n\n'
    b'data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":2}}\n\n'
    b"data: [DONE]\n\n"
)


class Body:
    def __init__(self, data: bytes) -> None:
        self.lines = iter(data.splitlines(keepends=True))

    def readline(self, sep: bytes) -> bytes:
        return next(self.lines, b"")


def target() -> SimpleNamespace:
    return SimpleNamespace(
        name="t",
        host="http://127.0.0.1:1",
        tokens=SimpleNamespace(
            count_bounded=lambda parts: (len("".join(parts)) // 4, "estimate:chars/4"), source="estimate:chars/4"
        ),
        prices=SimpleNamespace(cost=lambda *_: (0.25, "override:prices.yaml")),
    )


def record(out: StreamResult) -> Record:
    return build_record(
        user="U", target=target(), prompt=Prompt(name="p", text="hi"), input_tokens_local=3,
        request_id="r-1", start_wall=1_700_000_000.0, t0=1_000, out=out,
    )


def streamed(fields: dict | None = None) -> Record:
    out = StreamResult(get_protocol("openai-chat")("http://127.0.0.1:1", "m"))
    read_stream(out, Body(BODY))
    out.status, out.fields = 200, fields or {}
    out.t_end = out.clock.token_ns[-1] + 5
    return record(out)


def failed() -> Record:
    out = StreamResult(get_protocol("openai-chat")("http://127.0.0.1:1", "m"))
    out.status, out.retry_after, out.error = 429, 2.0, RateLimited("slow down", 429, 2.0)
    return record(out)


def test_the_builder_fills_exactly_the_record_fields_in_order():
    for rec in (streamed(), failed()):
        assert tuple(rec) == FIELDS
    ok, bad = streamed(), failed()
    assert ok["status"] == STATUS_OK and ok["output_tokens"] == 2 and ok["output_tokens_source"] == "server"
    assert ok["finish_reason"] == "stop" and ok["cost_usd"] == 0.25 and ok["token_events"] == 2
    assert bad["status"] == STATUS_FAILED and bad["error_class"] == "rate_limit" and bad["retry_after_s"] == 2.0
    assert bad["cost_usd"] is None and bad["output_tokens"] == 0  # no tokens, no cost


def test_a_record_holds_only_atomic_values_so_the_gc_does_not_track_it():
    rec = streamed()
    assert all(v is None or isinstance(v, str | int | float | bytes) for v in rec.values())
    gc.collect()
    assert not gc.is_tracked(rec)


def test_csv_header_and_rows_are_the_record_columns(tmp_path):
    assert COLUMNS == tuple(f for f in FIELDS if f not in NOT_IN_CSV) and "itl_us" in NOT_IN_CSV
    rec = streamed({"gateway_cache": "HIT", "gateway_step": "0", "gateway_log_id": "log-1"})
    recorder = Recorder(tmp_path / "requests.csv")
    recorder.add(rec)
    recorder.close()
    with (tmp_path / "requests.csv").open(newline="", encoding="utf-8") as f:
        header, row = list(csv.reader(f))
    assert tuple(header) == COLUMNS
    assert dict(zip(header, row, strict=True))["gateway_log_id"] == "log-1"


def test_csv_cells_times_to_the_nanosecond_the_cost_in_full_none_empty(tmp_path):
    rec = streamed()
    rec.update(ttft_ms=5.1234567, tpot_ms=2.0, cost_usd=1.234e-07, queue_wait_ms=None)
    del rec["gateway_step"]  # a record missing a field (not from the builder): an empty cell
    recorder = Recorder(tmp_path / "requests.csv")
    recorder.add(rec)
    recorder.close()
    with (tmp_path / "requests.csv").open(newline="", encoding="utf-8") as f:
        row = dict(zip(*csv.reader(f), strict=True))
    assert row["ttft_ms"] == "5.123457" and row["tpot_ms"] == "2.0"
    assert row["cost_usd"] == "1.234e-07"  # rounded to 6 decimals it was 0.0: a cheap request's cost lost
    assert row["queue_wait_ms"] == "" and row["gateway_step"] == "" and row["warmup"] == "False"


def test_worker_packing_round_trips_every_field_through_msgpack():
    # msgpack as Locust's messages use it (locust/rpc/protocol.py; importing locust here would monkey-patch pytest)
    records = [streamed({"gateway_cache": "MISS", "gateway_step": None, "gateway_log_id": None}), failed()]
    rows = distributed.pack(records)
    assert all(len(row) == len(FIELDS) for row in rows)
    sent = msgpack.loads(
        msgpack.dumps(("stats", {distributed.REPORT_KEY: rows}, "w1")), raw=False, strict_map_key=False
    )
    back = distributed.unpack(sent[1][distributed.REPORT_KEY])
    assert back == records and isinstance(back[0]["itl_us"], bytes) and back[0]["itl_us"]


def test_fields_read_elsewhere_are_record_fields():
    assert set(report.REPORT_FIELDS) <= set(FIELDS)
    assert set(gateway.RESPONSE_HEADERS) <= set(FIELDS)  # what response_fields() returns


def docs_columns() -> list[str]:
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("## `requests.csv`", 1)[1].split("\n## ", 1)[0]
    names = []
    for line in section.splitlines():
        if line.startswith("| `"):
            names += re.findall(r"`([a-z0-9_]+)`", line.split("|")[1])
    return names


def test_docs_reports_md_lists_every_requests_csv_column_once():
    names = docs_columns()
    assert len(names) == len(set(names)), "a column is listed twice in docs/reports.md"
    assert set(names) == set(COLUMNS), (
        f"docs/reports.md lacks {sorted(set(COLUMNS) - set(names))}, lists unknown {sorted(set(names) - set(COLUMNS))}"
    )


def test_fields_not_in_csv_are_not_documented_as_columns():
    assert not set(NOT_IN_CSV) & set(docs_columns())


def test_the_measuring_core_imports_neither_locust_nor_gevent():
    code = (
        "import sys, llm_locust.measure.stream, llm_locust.measure.build, llm_locust.measure.record; "
        "print(sorted(m for m in ('locust', 'gevent', 'geventhttpclient') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == "[]"


def test_timestamp_of_writes_what_datetime_isoformat_writes():
    """The record's timestamp comes from a per-second cache: the same string as datetime's, at every rounding edge
    (half a microsecond, a carry into the next second, the turn of a second, a year, a leap day)."""
    import random
    from datetime import UTC, datetime

    from llm_locust.measure.record import timestamp_of

    rng = random.Random(14)
    edges = [1_700_000_000.0, 1_700_000_000.9999995, 1_700_000_000.0000005, 1_700_000_000.0015, 1_703_980_799.9996,
             1_709_164_800.0, 0.0, 0.0004, 2_000_000_000.123456]
    values = edges + [rng.uniform(0, 4e9) for _ in range(20_000)]
    values += [1_764_730_000 + k / 1000 + rng.choice((0.0, 0.0005, 0.0004999, 0.0009999)) for k in range(5_000)]
    for t in values:
        assert timestamp_of(t) == datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds"), t
