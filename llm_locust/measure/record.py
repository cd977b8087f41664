"""The per-request record: one flat dict per LLM call, the unit every report is computed from, defined once here.

:class:`Record` is the only definition of the record's fields, their order and their types. Everything else is
derived from it:

* ``FIELDS``: every field, in order (the worker wire order);
* ``COLUMNS``: the columns of ``requests.csv``, in order: ``FIELDS`` less ``NOT_IN_CSV`` (``docs/reports.md``
  describes each, and ``tests/test_record.py`` checks that the docs, the CSV header, the builder and the wire
  packing all name exactly these);
* ``WIRE_COLUMNS``: the order of a record's values in the compact rows that workers send to the master
  (:func:`llm_locust.distributed.pack` / ``unpack``), ``itl_us`` included;
* :func:`csv_row`: one record as a ``requests.csv`` row.

A record is built by :func:`llm_locust.measure.build.build_record` when a request ends, travels in the Locust
request event's ``context["llm"]``, is written as one row of ``requests.csv`` the moment the request ends, and is
kept in memory for the run's summary. Fields are plain JSON/msgpack values, except ``itl_us`` (the bytes of an
``array("q")`` of this request's inter-token gaps in microseconds), which never goes to CSV.

Why a dict and not an object: a record holds only atomic values, so CPython's garbage collector stops tracking
the dict, and a run's hundreds of thousands of records cost the collector nothing. An instance of any class
(``__slots__`` or not) stays tracked: with 200,000 records a full collection takes ~10x longer (measured 144 ms
against 14 ms). So the type is a :class:`~typing.TypedDict`: checked by type checkers, a plain dict at run time.
Adding a field: add it to :class:`Record` (CSV position = position here), to the builder, and to the table in
``docs/reports.md``; the test fails until all three agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, TypedDict

STATUS_OK = "ok"
STATUS_FAILED = "failed"
#: in flight when the run stopped: kept in the books, left out of latency statistics and of Locust's stats
STATUS_CANCELLED = "cancelled"


class Record(TypedDict):
    """One LLM call. ``None`` means "no value" (an empty CSV cell); docs/reports.md says what each field means."""

    timestamp: str  # request start, UTC, ISO 8601, milliseconds
    request_id: str
    user: str
    target: str
    api: str
    host: str
    model: str
    prompt: str
    session: str | None  # the multi-turn session's id (llm_locust/sessions.py); None: a single-turn request
    turn: int | None  # the request's turn in its session, from 1
    input_tokens_asked: int | None  # a synthetic prompt's drawn input length (llm_locust/synthetic.py)
    status: str  # STATUS_OK, STATUS_FAILED or STATUS_CANCELLED
    warmup: bool  # sent during --warmup: logged, left out of every statistic (llm_locust.warmup)
    error_class: str | None
    error: str | None
    http_status: int | None
    retry_after_s: float | None
    backoff_s: float  # the wait this request imposed on its user before the user's next request (llm_locust.backoff)
    intended_send_ms: float | None  # open loop: intended send time, ms from the arrival timeline's start
    queue_wait_ms: float | None  # open loop: time waiting for a --max-concurrency slot
    send_lag_ms: float | None  # open loop: actual send (t0) - max(intended, slot free): how late the client sent
    ttft_ms: float | None
    ttft_text_ms: float | None
    e2e_ms: float | None
    elapsed_ms: float
    tpot_ms: float | None
    itl_mean_ms: float | None
    itl_max_ms: float | None
    itl_rule: str
    token_events: int
    output_tokens_per_s: float | None
    decode_tokens_per_s: float | None
    input_tokens: int | None
    input_tokens_source: str
    input_tokens_server: int | None
    input_tokens_local: int
    output_tokens: int | None
    output_tokens_source: str
    output_tokens_server: int | None
    output_tokens_local: int
    output_tokens_asked: int | None  # the token limit asked for with --fixed-output, else None
    local_tokens_source: str
    reasoning_tokens: int | None
    cached_tokens: int | None
    total_tokens: int | None
    cost_usd: float | None
    cost_source: str | None
    finish_reason: str | None
    gateway_cache: str | None
    gateway_step: str | None
    gateway_log_id: str | None
    t0_ns: int
    itl_us: bytes  # array("q") bytes, not the array: keeps the record dict out of the GC's sight


#: every field of a record, in order: the worker wire order
FIELDS: tuple[str, ...] = tuple(Record.__annotations__)
#: fields kept in memory and shipped to the master, never written to requests.csv
NOT_IN_CSV = ("itl_us",)
#: columns of requests.csv, in order (docs/reports.md describes each)
COLUMNS: tuple[str, ...] = tuple(f for f in FIELDS if f not in NOT_IN_CSV)
WIRE_COLUMNS = FIELDS


_csv_values = itemgetter(*COLUMNS)
#: the columns rounded to 6 decimals (the float fields by the record's annotations, but the cost: a request's cost is
#: often under a millionth of a dollar, and rounding it would lose it)
_FLOAT_AT = tuple(
    i for i, f in enumerate(COLUMNS) if "float" in str(Record.__annotations__[f]) and f != "cost_usd"
)


def csv_row(record: Record) -> list[Any]:
    """One record as a ``requests.csv`` row (for ``csv.writer``, which writes ``None`` as an empty cell): times,
    rates and waits have at most 6 decimals (a nanosecond, in ms), the cost all its digits. A record missing a field
    (not one the builder made) has that cell empty."""
    try:
        row = list(_csv_values(record))
    except KeyError:
        row = list(map(record.get, COLUMNS))
    for i in _FLOAT_AT:
        v = row[i]
        if v.__class__ is float:
            row[i] = round(v, 6)
    return row


_second: list[Any] = [None, ""]  # the last second formatted: [epoch second, "YYYY-MM-DDTHH:MM:SS"]


def timestamp_of(t: float) -> str:
    """The record's ``timestamp`` of epoch seconds ``t``: exactly what
    ``datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")`` writes (``2026-12-03T05:38:09.123+00:00``),
    at a fifth of its cost: a second's date and time are formatted once (a request's tail runs this per request)."""
    sec = int(t)
    if t < 0:
        return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")
    us = round((t - sec) * 1e6)  # as datetime.fromtimestamp rounds (half to even), carried into the second
    if us >= 1_000_000:
        sec, us = sec + 1, us - 1_000_000
    cache = _second
    if cache[0] != sec:
        cache[0], cache[1] = sec, datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{cache[1]}.{us // 1000:03d}+00:00"
