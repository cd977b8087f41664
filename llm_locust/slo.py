"""Service-level objectives: the ``--slo`` spec, its verdict over a run's records, goodput and attainment.

Spec: comma-separated objectives, each ``METRIC_STAT[SCOPE]=LIMIT``::

    --slo "ttft_p99=500ms,tpot_p50=40ms,e2e_p95=10s,error_rate=1%"
    --slo "ttft_p95[prompt=Short chat]=300ms,tokens_per_s_p10[target=vllm]=20,attainment=95%"

* ``METRIC`` (:data:`METRICS`): ``ttft``, ``ttft_text``, ``tpot``, ``itl``, ``e2e`` (times: a unit is required,
  ``us``, ``ms`` or ``s``), ``tokens_per_s`` (output tokens/s per request, a floor: the statistic must be at least
  the limit), ``error_rate`` (failed ÷ (ok + failed), a ceiling) and ``attainment`` (good ÷ (ok + failed), a floor);
  the last two take ``%`` or a fraction and no ``STAT``.
* ``STAT``: ``pNN`` (any percentile, ``0 < NN <= 100``, decimals allowed: ``p99.9``; linear interpolation as in the
  summary) or ``mean``.
* ``SCOPE`` (optional): ``[prompt=NAME]`` or ``[target=NAME]``: the objective is judged on that prompt's or
  target's requests only (the name must exist in the prompt or targets file; a malformed spec or unknown name is one
  line and exit code 2 at start, see :func:`check_names`).

Locust config files take it like any flag (``slo = ttft_p99=500ms,error_rate=1%`` in ``locust.conf``).

Per-request objectives (every time metric but ``itl``, and ``tokens_per_s``) also define a *good* request: one that
succeeded and whose own value meets each such objective that applies to it (a request without the value, e.g. TPOT
of a one-token reply, does not break it). ``itl`` is judged over every pooled gap and has no per-request meaning, so
it does not enter goodput. **Goodput** = good requests per second of the run's window; **attainment** = good ÷
(ok + failed), so errors count against it. Cancelled requests (in flight at the stop) count nowhere.

:func:`evaluate` gives the ``slo`` block of summary.json; :func:`render` its text; :data:`EXIT_SLO_FAILED` is the
exit code of a run whose objectives failed (see :data:`EXIT_CODES`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .measure.record import STATUS_FAILED, STATUS_OK

if TYPE_CHECKING:
    import pandas as pd

#: process exit codes of a run (README, docs/slo.md); Locust's own 1 (failed requests) does not apply under --slo
EXIT_CODES = {
    0: "the run completed (with --slo: every objective held)",
    1: "requests failed (Locust's own rule; with --slo, error_rate and attainment judge failures instead)",
    2: "bad input: a flag, file or spec is malformed (one line names it), nothing was measured",
    3: "incomplete run: a distributed report is missing records of a worker",
    4: "the answer is no: an --slo objective failed, or llm-benchmark compare flagged a regression",
}
EXIT_SLO_FAILED = 4


@dataclass(frozen=True)
class Metric:
    """An SLO metric: the record field it reads, its unit kind and whether the limit is a ceiling or a floor."""

    field: str | None  # record column; None for the run-level ratios
    kind: str  # "time" (ms), "rate" (tokens/s) or "ratio" (0..1)
    ceiling: bool  # True: measured <= limit passes; False: measured >= limit passes
    per_request: bool  # enters goodput
    title: str  # as the reports name it


METRICS: dict[str, Metric] = {
    "ttft": Metric("ttft_ms", "time", True, True, "TTFT"),
    "ttft_text": Metric("ttft_text_ms", "time", True, True, "TTFT (text)"),
    "tpot": Metric("tpot_ms", "time", True, True, "TPOT"),
    "itl": Metric("itl_us", "time", True, False, "ITL"),
    "e2e": Metric("e2e_ms", "time", True, True, "E2E"),
    "tokens_per_s": Metric("output_tokens_per_s", "rate", False, True, "output tokens/s"),
    "error_rate": Metric(None, "ratio", True, False, "error rate"),
    "attainment": Metric(None, "ratio", False, False, "SLO attainment"),
}
TIME_UNITS = {"us": 0.001, "µs": 0.001, "ms": 1.0, "s": 1000.0}
UNIT_LABEL = {"time": "ms", "rate": "tokens/s", "ratio": ""}


class SLOError(ValueError):
    """A malformed ``--slo`` spec; the message names the part and the fix."""


@dataclass(frozen=True)
class SLO:
    """One objective: ``metric`` ``stat`` (``p99``, ``mean``; ``""`` for ratios) over ``scope`` vs ``limit``."""

    text: str
    metric: str
    stat: str
    limit: float  # ms for times, tokens/s for rates, a fraction for ratios
    scope: str | None = None  # "prompt" or "target"
    name: str | None = None

    @property
    def spec(self) -> Metric:
        return METRICS[self.metric]

    @property
    def quantile(self) -> float | None:
        return float(self.stat[1:]) if self.stat.startswith("p") else None

    def applies(self, prompt: str, target: str) -> bool:
        return self.scope is None or (prompt if self.scope == "prompt" else target) == self.name

    def label(self) -> str:
        """e.g. ``p99 TTFT ≤ 500 ms``."""
        op = "≤" if self.spec.ceiling else "≥"
        what = self.spec.title
        scope = f" [{self.scope} {self.name}]" if self.scope else ""
        return f"{(self.stat + ' ') if self.stat else ''}{what}{scope} {op} {format_value(self.limit, self.spec.kind)}"


_ITEM = re.compile(r"^(?P<key>[a-z0-9_]+?)(?:_(?P<stat>p[0-9.]+|mean))?(?:\[(?P<scope>[a-z]+)=(?P<name>[^\]]+)\])?"
                   r"=(?P<value>[^=]+)$")
_NUMBER = re.compile(r"^(?P<num>[0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)\s*(?P<unit>[a-zµ/%]*)$")


def _split(spec: str) -> list[str]:
    """Split on commas outside ``[...]``."""
    items, depth, cur = [], 0, ""
    for ch in spec:
        depth += ch == "["
        depth -= ch == "]"
        if ch == "," and depth <= 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    items.append(cur)
    return [i.strip() for i in items if i.strip()]


def parse(spec: str) -> list[SLO]:
    """The objectives of an ``--slo`` spec; :class:`SLOError` naming the first bad item."""
    out = []
    names = ", ".join(METRICS)
    for item in _split(spec or ""):
        m = _ITEM.match(item)
        if not m:
            raise SLOError(f"--slo item {item!r} is not METRIC_STAT=LIMIT (e.g. ttft_p99=500ms, error_rate=1%)")
        key, stat, value = m["key"], m["stat"] or "", m["value"].strip()
        if key not in METRICS and stat == "" and "_" in key:
            key, _, stat = key.rpartition("_")  # e.g. "ttft_max" -> a stat we do not take: named below
        if key not in METRICS:
            raise SLOError(f"--slo item {item!r}: unknown metric {key!r}; choose from {names}")
        metric = METRICS[key]
        if metric.kind == "ratio":
            if stat:
                raise SLOError(f"--slo item {item!r}: {key} takes no statistic (write {key}=1%)")
        elif not stat:
            raise SLOError(f"--slo item {item!r}: name a statistic, e.g. {key}_p99 or {key}_mean")
        elif stat != "mean" and not stat.startswith("p"):
            raise SLOError(f"--slo item {item!r}: statistic {stat!r}; use a percentile pNN (e.g. p99) or mean")
        elif stat != "mean":
            try:
                q = float(stat[1:])
            except ValueError:
                q = -1.0
            if not 0 < q <= 100:
                raise SLOError(f"--slo item {item!r}: percentile {stat} is out of range; use p1 .. p100 (e.g. p99.9)")
        if m["scope"] is not None and m["scope"] not in ("prompt", "target"):
            raise SLOError(f"--slo item {item!r}: scope [{m['scope']}=...] must be [prompt=NAME] or [target=NAME]")
        out.append(SLO(item, key, stat, _limit(item, metric, value), m["scope"], m["name"]))
    if not out:
        raise SLOError("--slo is empty; give objectives like ttft_p99=500ms,error_rate=1%")
    return out


def _limit(item: str, metric: Metric, value: str) -> float:
    m = _NUMBER.match(value.lower())
    if not m:
        raise SLOError(f"--slo item {item!r}: {value!r} is not a number with a unit (e.g. 500ms, 0.5s, 1%)")
    num, unit = float(m["num"]), m["unit"]
    if metric.kind == "time":
        if unit not in TIME_UNITS:
            what = f"unit {unit!r}" if unit else "no unit"
            raise SLOError(f"--slo item {item!r}: {what}; a time takes us, ms or s (e.g. 500ms)")
        return num * TIME_UNITS[unit]
    if metric.kind == "rate":
        if unit not in ("", "tok/s", "tokens/s"):
            raise SLOError(f"--slo item {item!r}: unit {unit!r}; tokens_per_s takes a number of tokens/s (e.g. 20)")
        return num
    if unit == "%":
        num /= 100.0
    elif unit:
        raise SLOError(f"--slo item {item!r}: unit {unit!r}; a ratio takes % or a fraction (e.g. 1% or 0.01)")
    if not 0 <= num <= 1:
        raise SLOError(f"--slo item {item!r}: {value} is not between 0 and 100%")
    return num


def check_names(slos: list[SLO], prompts: list[str], targets: list[str]) -> None:
    """:class:`SLOError` for a scope naming a prompt or target the run does not have."""
    for s in slos:
        known = prompts if s.scope == "prompt" else targets
        if s.scope and s.name not in known:
            raise SLOError(f"--slo item {s.text!r}: no {s.scope} named {s.name!r}; the run has {', '.join(known)}")


def format_value(v: float | None, kind: str) -> str:
    if v is None:
        return "n/a"
    if kind == "time":
        return f"{v:.3g} ms" if v < 10 else f"{v:.1f} ms" if v < 1000 else f"{v / 1000:.2f} s"
    if kind == "ratio":
        return f"{v * 100:.2f}%"
    return f"{v:.1f} tokens/s"


# ---------------------------------------------------------------- verdict


def _names(df: pd.DataFrame) -> tuple[Any, Any]:
    target = df["target"].astype(object).where(df["target"].astype(object).fillna("") != "", df["api"].astype(object))
    return df["prompt"], target


def _gaps_ms(ok: pd.DataFrame, itl: Any) -> Any:
    """The pooled inter-token gaps (ms) of the rows ``ok``: from their ``itl_us`` bytes, or, for a frame of the
    run's :class:`~llm_locust.table.RecordTable`, from ``itl`` (every row's gaps in order) by the ``itl_start`` and
    ``itl_n`` columns :func:`evaluate` adds."""
    import numpy as np

    if "itl_us" in ok.columns:
        gaps = [g for g in ok["itl_us"].tolist() if isinstance(g, bytes | bytearray) and len(g)]
        return np.concatenate([np.frombuffer(g, dtype=np.int64) for g in gaps]) / 1000.0 if gaps else np.empty(0)
    parts = [itl[a : a + n] for a, n in zip(ok["itl_start"].tolist(), ok["itl_n"].tolist(), strict=True) if n]
    return np.concatenate(parts) / 1000.0 if parts else np.empty(0)


def _measure(slo: SLO, df: pd.DataFrame, good: Any, itl: Any = None) -> tuple[float | None, int]:
    """The measured value of ``slo`` over ``df`` (already scoped) and the number of samples it rests on."""
    import numpy as np

    status = df["status"]
    counted = int(((status == STATUS_OK) | (status == STATUS_FAILED)).sum())
    if slo.metric == "error_rate":
        return (int((status == STATUS_FAILED).sum()) / counted if counted else None), counted
    if slo.metric == "attainment":
        return (int(good.sum()) / counted if counted else None), counted
    ok = df[status == STATUS_OK]
    if slo.metric == "itl":
        values = _gaps_ms(ok, itl)
    else:
        values = ok[slo.spec.field].dropna().to_numpy(dtype="float64")
    if not values.size:
        return None, 0
    q = slo.quantile
    return float(np.percentile(values, q) if q is not None else values.mean()), int(values.size)


def good_mask(slos: list[SLO], df: pd.DataFrame) -> Any:
    """A boolean Series: which requests are good (succeeded and met every per-request objective applying to them)."""
    prompt, target = _names(df)
    good = df["status"] == STATUS_OK
    for s in slos:
        if not s.spec.per_request:
            continue
        values = df[s.spec.field]
        meets = (values <= s.limit) if s.spec.ceiling else (values >= s.limit)
        meets = meets | values.isna()
        if s.scope is not None:
            meets = meets | ((prompt if s.scope == "prompt" else target) != s.name)
        good = good & meets
    return good


def evaluate(slos: list[SLO], df: pd.DataFrame, duration_s: float | None, itl: Any = None) -> dict[str, Any]:
    """summary.json's ``slo`` block: each objective with its measured value and verdict, goodput and attainment.

    ``df``: the run's records as :func:`llm_locust.report.frame` gives them (``itl_us`` included), or the frame of
    its :class:`~llm_locust.table.RecordTable` (``itl_n``) with ``itl``, every row's gaps in order."""
    if "itl_us" not in df.columns and "itl_n" in df.columns:
        n = df["itl_n"].fillna(0).astype("int64")
        df = df.assign(itl_n=n, itl_start=n.cumsum() - n)
    prompt, target = _names(df)
    good = good_mask(slos, df)
    results = []
    for s in slos:
        scoped = df if s.scope is None else df[(prompt if s.scope == "prompt" else target) == s.name]
        measured, samples = _measure(s, scoped, good[scoped.index], itl)
        passed = measured is not None and (measured <= s.limit if s.spec.ceiling else measured >= s.limit)
        results.append({
            "spec": s.text, "metric": s.metric, "stat": s.stat or None, "scope": s.scope, "name": s.name,
            "limit": s.limit, "unit": UNIT_LABEL[s.spec.kind] or "fraction", "measured": measured,
            "samples": samples, "pass": passed, "label": s.label(),
        })
    status = df["status"]
    counted = int(((status == STATUS_OK) | (status == STATUS_FAILED)).sum())
    n_good = int(good.sum())
    return {
        "pass": all(r["pass"] for r in results),
        "objectives": results,
        "good_requests": n_good,
        "counted_requests": counted,
        "goodput_rps": n_good / duration_s if duration_s else None,
        "attainment": n_good / counted if counted else None,
    }


def first_failure(block: dict[str, Any]) -> dict[str, Any] | None:
    return next((r for r in block["objectives"] if not r["pass"]), None)


def describe(result: dict[str, Any]) -> str:
    """One objective's verdict, e.g. ``p99 TTFT ≤ 500.0 ms: 612.0 ms FAIL``."""
    kind = METRICS[result["metric"]].kind
    verdict = "pass" if result["pass"] else "FAIL"
    return f"{result['label']}: {format_value(result['measured'], kind)} {verdict}"


def short(result: dict[str, Any]) -> str:
    """An objective's measured value, e.g. ``p99 TTFT 612.0 ms`` (``[prompt X]`` when scoped)."""
    m = METRICS[result["metric"]]
    scope = f" [{result['scope']} {result['name']}]" if result["scope"] else ""
    stat = f"{result['stat']} " if result["stat"] else ""
    return f"{stat}{m.title}{scope} {format_value(result['measured'], m.kind)}"


def render(block: dict[str, Any]) -> str:
    """The text of the ``slo`` block (summary.txt and the console)."""
    lines = [f"SLO: {'PASS' if block['pass'] else 'FAIL'}"]
    lines += [f"- {describe(r)} ({r['samples']} samples; {r['spec']})" for r in block["objectives"]]
    goodput = block["goodput_rps"]
    att = block["attainment"]
    lines.append(
        f"- Goodput: {'n/a' if goodput is None else f'{goodput:.2f} req/s'} ({block['good_requests']} good of "
        f"{block['counted_requests']} requests; attainment {'n/a' if att is None else f'{att * 100:.1f}%'})"
    )
    return "\n".join(lines)
