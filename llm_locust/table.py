"""The run's records kept compactly for its reports: columns of numbers, strings as codes, gaps spilled to disk.

A :class:`RecordTable` keeps, per request, only what the end-of-run reports read (``report.REPORT_FIELDS`` and the
per-target extras of :mod:`llm_locust.plugin.reports`), one typed :mod:`array` per field:

* text fields (``STRING_FIELDS``: target, prompt, status, sources, ...) as codes into a per-field list of the
  distinct values (one byte each while a field has fewer than 256 values, widened when it grows);
* float fields (``FLOAT_FIELDS``) as ``array("d")``, ``NaN`` for "no value": the same doubles the record holds,
  so percentiles are exactly the ones computed from the records; a number column (float or count) is made when
  its first value comes, so the fields a run never fills (open-loop send times in a closed-loop run, turns without
  sessions, the asked length without ``--fixed-output``) cost it nothing;
* yes/no fields (``BOOL_FIELDS``: ``warmup``) as one byte each;
* count fields (``INT_FIELDS``) as ``array("i")`` with ``INT_NONE`` for "no value"; ``t0_ns`` as ``array("q")``;
  ``total_tokens`` is not kept (it is input + output);
* the inter-token gaps (``itl_us``) are appended, as int32 microseconds, to an anonymous temporary file; a
  request keeps only its gap count (``itl_n``). :meth:`itl` reads them back, in record order, for a report.

That is about 100 bytes of memory per request whatever the response length (``tests/test_table.py`` measures it
with tracemalloc), so 10 million requests fit in about 1 GB. :meth:`frame` is the DataFrame that
:func:`llm_locust.report.summarize` reads (string fields as pandas categoricals), with ``itl_n`` instead of
``itl_us``; pass :meth:`itl` beside it.
"""

from __future__ import annotations

import math
import tempfile
from array import array
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .measure.record import Record

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

STRING_FIELDS = (
    "target", "api", "prompt", "status", "error_class", "cost_source", "itl_rule", "input_tokens_source",
    "output_tokens_source", "model", "error",
)
FLOAT_FIELDS = (
    "ttft_ms", "ttft_text_ms", "tpot_ms", "e2e_ms", "output_tokens_per_s", "cost_usd", "elapsed_ms", "backoff_s",
    "intended_send_ms", "queue_wait_ms", "send_lag_ms",
)
INT_FIELDS = (
    "input_tokens", "output_tokens", "reasoning_tokens", "output_tokens_server", "output_tokens_local",
    "token_events", "output_tokens_asked", "turn", "cached_tokens",
)
#: yes/no fields, one byte each (``None`` is no)
BOOL_FIELDS = ("warmup",)
#: every record field the table keeps (plus the derived ``total_tokens`` and ``itl_n`` in :meth:`frame`)
KEPT_FIELDS = (*STRING_FIELDS, *FLOAT_FIELDS, *INT_FIELDS, *BOOL_FIELDS, "t0_ns", "itl_us", "timestamp")
INT_NONE = -(2**31)
_INT_MAX = 2**31 - 1
_NAN = math.nan
#: gaps buffered in memory before they are written to the spill file
SPILL_EVERY = 1 << 16


class _Codes:
    """One text column: codes into ``values`` (``None`` is code 0), one byte wide until it needs more."""

    __slots__ = ("codes", "index", "values")

    def __init__(self) -> None:
        self.codes = array("B")
        self.values: list[str | None] = [None]
        self.index: dict[str | None, int] = {None: 0}

    def append(self, value: str | None) -> None:
        code = self.index.get(value)
        if code is None:
            code = self.index[value] = len(self.values)
            self.values.append(value)
            if code == 256 or code == 65536:
                self.codes = array("H" if code == 256 else "I", self.codes)
        self.codes.append(code)


class RecordTable:
    """The records' report fields as columns; :meth:`add` one record, :meth:`frame` and :meth:`itl` to report."""

    def __init__(self) -> None:
        self.count = 0
        self._text = {name: _Codes() for name in STRING_FIELDS}
        # a number column is made when its first value comes (a run that never has one costs nothing for it)
        self._floats: dict[str, array | None] = dict.fromkeys(FLOAT_FIELDS)
        self._ints: dict[str, array | None] = dict.fromkeys(INT_FIELDS)
        self._itl_n = array("i")
        self._bools = {name: array("B") for name in BOOL_FIELDS}
        self._t0 = array("q")
        self._stamps = array("d")  # the ISO ``timestamp`` as unix seconds
        self._gaps = array("i")
        self._spill: Any = None
        self._spilled = 0

    def add(self, r: Record) -> None:
        for name, col in self._text.items():
            col.append(r[name])
        floats, ints = self._floats, self._ints
        for name, arr in floats.items():
            v = r[name]
            if arr is None:
                if v is None:
                    continue
                arr = floats[name] = array("d", [_NAN]) * self.count
            arr.append(_NAN if v is None else v)
        for name, arr in ints.items():
            v = r[name]
            if arr is None:
                if v is None:
                    continue
                arr = ints[name] = array("i", [INT_NONE]) * self.count
            arr.append(INT_NONE if v is None else min(v, _INT_MAX))
        for name, flags in self._bools.items():
            flags.append(1 if r.get(name) else 0)
        self._t0.append(r["t0_ns"])
        self._stamps.append(datetime.fromisoformat(r["timestamp"]).timestamp() if r["timestamp"] else _NAN)
        gaps = r["itl_us"]
        n = len(gaps) // 8
        self._itl_n.append(n)
        if n:
            wide = array("q")
            wide.frombytes(gaps)
            try:
                self._gaps.fromlist(wide.tolist())
            except OverflowError:  # a gap over 35 minutes: kept as the largest int32
                self._gaps.fromlist([min(g, _INT_MAX) for g in wide.tolist()])
            if len(self._gaps) >= SPILL_EVERY:
                self._flush_gaps()
        self.count += 1

    def _flush_gaps(self) -> None:
        if self._spill is None:
            self._spill = tempfile.TemporaryFile(prefix="llm-locust-itl-")
        self._gaps.tofile(self._spill)
        self._spilled += len(self._gaps)
        self._gaps = array("i")

    def itl(self) -> np.ndarray:
        """Every request's inter-token gaps in µs, concatenated in record order (``itl_n`` of each in turn)."""
        import numpy as np

        tail = np.frombuffer(self._gaps, dtype=np.int32).copy() if self._gaps else np.empty(0, dtype=np.int32)
        if self._spill is None:
            return tail
        self._spill.flush()
        self._spill.seek(0)
        try:
            head = np.fromfile(self._spill, dtype=np.int32, count=self._spilled)
        finally:
            self._spill.seek(0, 2)
        return np.concatenate([head, tail])

    def frame(self) -> pd.DataFrame:
        """The columns as a DataFrame: the report fields (``itl_n`` in place of ``itl_us``) and the extras."""
        import numpy as np
        import pandas as pd

        data: dict[str, Any] = {}
        for name, col in self._text.items():
            codes = np.frombuffer(col.codes, dtype=np.dtype(col.codes.typecode)).astype(np.int64) - 1
            data[name] = pd.Categorical.from_codes(codes, categories=col.values[1:])
        for name, arr in self._floats.items():
            data[name] = np.full(self.count, np.nan) if arr is None else np.frombuffer(arr, dtype=np.float64).copy()
        for name, arr in self._ints.items():
            if arr is None:
                data[name] = np.full(self.count, np.nan)
                continue
            values = np.frombuffer(arr, dtype=np.int32).astype(np.float64)
            values[values == INT_NONE] = np.nan
            data[name] = values
        for name, flags in self._bools.items():
            data[name] = np.frombuffer(flags, dtype=np.uint8).astype(bool) if flags else np.empty(0, dtype=bool)
        data["total_tokens"] = data["input_tokens"] + data["output_tokens"]
        data["t0_ns"] = np.frombuffer(self._t0, dtype=np.int64).copy() if self._t0 else np.empty(0, dtype=np.int64)
        data["itl_n"] = np.frombuffer(self._itl_n, dtype=np.int32).astype(np.int64) if self._itl_n else np.empty(
            0, dtype=np.int64)
        stamps = np.frombuffer(self._stamps, dtype=np.float64) if self._stamps else np.empty(0)
        data["timestamp"] = pd.to_datetime(stamps, unit="s", utc=True)
        return pd.DataFrame(data)

    def close(self) -> None:
        if self._spill is not None:
            self._spill.close()
            self._spill = None
