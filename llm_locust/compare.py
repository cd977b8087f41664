"""Comparing two runs: per prompt and metric, both values, the change, and whether it is more than noise.

``llm-benchmark compare RUN_A RUN_B`` (:mod:`llm_locust.cli.compare`) calls :func:`compare` on two run folders (or
their ``summary.json`` files; a folder's ``requests.csv`` is read when it is there). RUN_A is the baseline.

* **Rows**: one per (target, prompt) present in both runs, and ``Overall``; runs whose targets are named apart (one
  target each) are matched by prompt. Runs that share no prompt are an error (:class:`CompareError`, exit 2).
* **Metrics** (:data:`METRICS`): TTFT p50/p95/p99, TPOT p50, ITL p95, E2E p50/p95 (lower is better) and output
  tokens/s per request (mean; higher is better), from each run's summary.json.
* **Noise**: where both runs have per-request data (``requests.csv``), a bootstrap (:data:`BOOTSTRAP` resamples of
  each run's successful requests, seeded, so the verdict is reproducible) gives a 95 % interval of the difference of
  the statistic; the change is *significant* when the interval excludes zero. ITL is tested on the per-request mean
  gap (the CSV holds no single gaps).
* **Regression**: worse by more than ``threshold`` percent (default 10) and, where it could be tested, significant.
  Any regression makes the exit code :data:`~llm_locust.slo.EXIT_SLO_FAILED` (4), so it can gate CI.
* **Validity**: each run's own ``run.valid`` verdict (:mod:`llm_locust.validity`) is carried into the document
  (``validity``) and a run that its load generator distorted is named under the table: its differences may be the
  generator's, not the server's. It does not change the exit code.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BOOTSTRAP = 2000
SEED = 13
MAX_SAMPLES = 5000  # per-request values per side used by the bootstrap (a deterministic subsample beyond)


@dataclass(frozen=True)
class Metric:
    key: str  # summary.json group key
    stat: str
    column: str  # requests.csv column of the per-request value
    higher_is_better: bool = False

    @property
    def name(self) -> str:
        return f"{self.key}_{self.stat}"


METRICS = (
    Metric("ttft_ms", "p50", "ttft_ms"),
    Metric("ttft_ms", "p95", "ttft_ms"),
    Metric("ttft_ms", "p99", "ttft_ms"),
    Metric("tpot_ms", "p50", "tpot_ms"),
    Metric("itl_ms", "p95", "itl_mean_ms"),
    Metric("e2e_ms", "p50", "e2e_ms"),
    Metric("e2e_ms", "p95", "e2e_ms"),
    Metric("output_tokens_per_s", "mean", "output_tokens_per_s", higher_is_better=True),
)


class CompareError(ValueError):
    """A run that cannot be read, or two runs with nothing in common: one line, exit 2."""


@dataclass
class Run:
    path: Path
    summary: dict[str, Any]
    requests: list[dict[str, str]] | None  # successful requests' rows, if requests.csv is there


def load(path: str | Path) -> Run:
    """A run folder or a summary.json file."""
    p = Path(path)
    file = p / "summary.json" if p.is_dir() else p
    try:
        summary = json.loads(file.read_text(encoding="utf-8"))
        summary["prompts"], summary["overall"]  # noqa: B018 - a summary.json has both
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CompareError(f"{path}: not a run folder or summary.json ({' '.join(str(e).split())[:200]})") from None
    rows = None
    csv_file = file.parent / "requests.csv"
    if csv_file.exists():
        with csv_file.open(newline="", encoding="utf-8") as f:
            # warm-up rows (--warmup) are in no statistic: not in the bootstrap either
            rows = [r for r in csv.DictReader(f) if r.get("status") == "ok" and r.get("warmup") != "True"]
    return Run(p, summary, rows)


def _key(entry: dict[str, Any]) -> tuple[str, str]:
    return entry.get("target") or "", entry["name"]


def pairs(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, dict[str, Any], dict[str, Any], Any]]:
    """``(label, entry_a, entry_b, match)`` per prompt both runs have, and Overall; match selects requests.csv rows."""
    pa = {_key(e): e for e in a["prompts"]}
    pb = {_key(e): e for e in b["prompts"]}
    common = [k for k in pa if k in pb]
    by_prompt = False
    if not common and len(a.get("targets") or ()) <= 1 and len(b.get("targets") or ()) <= 1:
        names_b = {k[1]: k for k in pb}
        common = [k for k in pa if k[1] in names_b]
        pb = {k: pb[names_b[k[1]]] for k in common}
        by_prompt = True
    if not common:
        raise CompareError(
            "the two runs share no prompt or target (A: "
            + ", ".join(sorted({f'{t}/{p}' for t, p in pa})[:5])
            + "; B: " + ", ".join(sorted({f"{t}/{p}" for t, p in pb})[:5])
            + "); compare runs of the same prompt file"
        )
    multi = len(a.get("targets") or ()) > 1
    out = []
    for t, p in common:
        label = f"{t} / {p}" if multi else p
        out.append((label, pa[(t, p)], pb[(t, p)], (None if by_prompt else t, p)))
    out.append(("Overall", a["overall"], b["overall"], None))
    return out


def _values(rows: list[dict[str, str]] | None, match: Any, column: str) -> Any:
    import numpy as np

    if rows is None:
        return None
    target, prompt = match if match is not None else (None, None)
    vals = []
    for r in rows:
        if prompt is not None and r["prompt"] != prompt:
            continue
        if target is not None and (r.get("target") or r.get("api")) != target:
            continue
        v = r.get(column)
        if v not in (None, ""):
            vals.append(float(v))
    arr = np.asarray(vals, dtype="float64")
    if arr.size > MAX_SAMPLES:
        arr = arr[np.linspace(0, arr.size - 1, MAX_SAMPLES).astype(int)]
    return arr


def _stat(arr: Any, stat: str, axis: int | None = None) -> Any:
    import numpy as np

    return arr.mean(axis=axis) if stat == "mean" else np.percentile(arr, float(stat[1:]), axis=axis)


def bootstrap_interval(a: Any, b: Any, stat: str) -> tuple[float, float] | None:
    """95 % bootstrap interval of ``stat(b) - stat(a)``; None with fewer than 5 values on a side."""
    import numpy as np

    if a is None or b is None or a.size < 5 or b.size < 5:
        return None
    rng = np.random.default_rng(SEED)
    diffs = np.empty(BOOTSTRAP)
    step = max(1, 200_000 // max(a.size, b.size))  # resamples per batch, bounding memory
    for lo in range(0, BOOTSTRAP, step):
        n = min(step, BOOTSTRAP - lo)
        ra = a[rng.integers(0, a.size, (n, a.size))]
        rb = b[rng.integers(0, b.size, (n, b.size))]
        diffs[lo : lo + n] = _stat(rb, stat, axis=1) - _stat(ra, stat, axis=1)
    low, high = np.percentile(diffs, [2.5, 97.5])
    return float(low), float(high)


def compare(a: Run, b: Run, threshold_pct: float = 10.0, metrics: tuple[Metric, ...] = METRICS) -> dict[str, Any]:
    """The comparison document (``--output json``): ``rows`` (one per prompt and metric) and ``regressions``."""
    rows = []
    for label, ea, eb, match in pairs(a.summary, b.summary):
        for m in metrics:
            va = (ea.get(m.key) or {}).get(m.stat)
            vb = (eb.get(m.key) or {}).get(m.stat)
            change = (vb - va) / va * 100.0 if va not in (None, 0) and vb is not None else None
            worse = change is not None and (-change if m.higher_is_better else change) > threshold_pct
            interval = bootstrap_interval(_values(a.requests, match, m.column), _values(b.requests, match, m.column),
                                          m.stat)
            significant = None if interval is None else not (interval[0] <= 0.0 <= interval[1])
            rows.append({
                "prompt": label, "metric": m.name, "a": va, "b": vb, "change_pct": change,
                "interval": list(interval) if interval else None, "significant": significant,
                "regression": bool(worse and significant is not False),
                "improvement": bool(change is not None and (change if m.higher_is_better else -change) > threshold_pct
                                    and significant is not False),
            })
    return {
        "a": str(a.path),
        "b": str(b.path),
        "threshold_pct": threshold_pct,
        "validity": {"a": _validity(a), "b": _validity(b)},
        "noise_test": f"bootstrap, {BOOTSTRAP} resamples, 95% interval of the difference",
        "rows": rows,
        "regressions": [r for r in rows if r["regression"]],
    }


def _validity(run: Run) -> dict[str, Any]:
    """The run's own verdict on its load generator (summary.json ``run.valid``; None for runs that predate it)."""
    r = run.summary.get("run") or {}
    return {"valid": r.get("valid"), "warnings": list((r.get("validity") or {}).get("warnings") or [])}


def render(doc: dict[str, Any]) -> str:
    """The comparison as a text table, regressions marked, and a one-line verdict."""

    def num(v: float | None) -> str:
        return "n/a" if v is None else f"{v:,.2f}"

    head = ("prompt", "metric", "A", "B", "change", "noise (95% interval of B-A)", "")
    body = []
    for r in doc["rows"]:
        iv = r["interval"]
        noise = "no per-request data" if iv is None else f"[{iv[0]:+.2f}, {iv[1]:+.2f}]" + (
            " significant" if r["significant"] else " within noise")
        flag = "REGRESSION" if r["regression"] else ("improved" if r["improvement"] else "")
        change = "n/a" if r["change_pct"] is None else f"{r['change_pct']:+.1f}%"
        body.append((r["prompt"][:40], r["metric"], num(r["a"]), num(r["b"]), change, noise, flag))
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" if i in (0, 1, 5, 6) else f"{{:>{w}}}" for i, w in enumerate(widths))
    lines = [f"A: {doc['a']}", f"B: {doc['b']}", fmt.format(*head), *(fmt.format(*x) for x in body)]
    for side, v in (doc.get("validity") or {}).items():
        if v["valid"] is False:
            lines.append(f"Run {side.upper()} is not valid (its load generator distorted it: "
                         f"{'; '.join(v['warnings'][:2]) or 'see its summary.json'}): differences may be the "
                         "generator's, not the server's; rerun it with more processes")
    n = len(doc["regressions"])
    lines.append(
        f"{n} regression(s) beyond {doc['threshold_pct']:g}% and the noise: "
        + ", ".join(f"{r['prompt']} {r['metric']} {r['change_pct']:+.1f}%" for r in doc["regressions"][:8])
        if n else f"No regression beyond {doc['threshold_pct']:g}% and the noise."
    )
    return "\n".join(lines)
