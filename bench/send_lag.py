"""Send lag of open-loop arrivals: how late one Locust process sends a request after its intended send time.

For each rate (``--rates``, default 50, 200 and 1,000 requests/s) the script starts the mock LLM server and one
``locust`` process running the bundled locustfile with ``--request-rate R --max-requests N`` (N = R x
``--duration``), Poisson arrivals, seeded; the mock answers quickly (``--ttft-ms 20 --itl-ms 2 --output-tokens 8``),
so the server never holds the arrivals back and no ``--max-concurrency`` cap is set. The sender pool (``-u``) is
sized to the expected concurrency, so spare senders are rarely needed. From ``requests.csv`` it prints, per rate,
the p50/p90/p99/max of ``send_lag_ms`` (actual send t0 - intended send time; docs/metrics.md), the asked, intended
and sent rates, and the machine (CPU model, cores, load average before and after).

Run::

    TIKTOKEN_CACHE_DIR=/path/to/cache python bench/send_lag.py               # ~1 minute
    python bench/send_lag.py --rates 50,200,1000 --duration 10 --out bench/results-send-lag.json

Everything binds to 127.0.0.1; every run is bounded by its request count and a timeout.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llm_locust.mockserver import start_subprocess  # noqa: E402

MOCK_ARGS = ["--ttft-ms", "20", "--itl-ms", "2", "--output-tokens", "8"]
#: the mock's time per request in seconds (about), to size the sender pool
RESPONSE_S = 0.04


def machine() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor()
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version(),
            "loadavg": [round(x, 2) for x in os.getloadavg()]}


def run_rate(rate: float, duration: float, workdir: Path) -> dict:
    n = int(rate * duration)
    users = int(rate * RESPONSE_S * 1.5) + 4
    proc, url = start_subprocess(MOCK_ARGS, timeout=15)
    reports = workdir / f"reports-{rate:g}"
    try:
        done = subprocess.run(
            [sys.executable, "-m", "locust", "-f", str(ROOT / "locustfile.py"), "--headless", "-u", str(users),
             "-r", str(users), "--request-rate", str(rate), "--seed", "1", "--max-requests", str(n),
             "-H", url, "--model", "m", "--prompt-file", str(ROOT / "tests/data/prompts_small.yaml"),
             "--report-dir", str(reports), "--loglevel", "INFO", "--only-summary"],
            cwd=ROOT, capture_output=True, text=True, timeout=duration * 4 + 120,
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    if done.returncode != 0:
        raise SystemExit(f"locust failed at {rate:g}/s (exit {done.returncode}):\n{done.stderr[-3000:]}")
    folder = next(p for p in reports.iterdir() if p.is_dir())
    with (folder / "requests.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    lag = np.array([float(r["send_lag_ms"]) for r in rows if r["send_lag_ms"]])
    block = json.loads((folder / "summary.json").read_text())["overall"]["arrivals"]
    spares = next((line for line in done.stderr.splitlines() if "spare senders" in line), "")
    return {
        "rate": rate, "requests": len(rows), "users": users,
        "intended_rate_per_s": block["intended_rate_per_s"], "sent_rate_per_s": block["sent_rate_per_s"],
        "send_lag_ms": {f"p{p}": float(np.percentile(lag, p)) for p in (50, 90, 99)} | {"max": float(lag.max())},
        "spares": spares.split("arrivals: ", 1)[-1] if spares else "none",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rates", default="50,200,1000", help="requests/s, comma-separated (default %(default)s)")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds of arrivals per rate (default %(default)s)")
    ap.add_argument("--out", default=None, help="write the results as JSON to this file")
    args = ap.parse_args()
    before = machine()
    results = []
    with tempfile.TemporaryDirectory(prefix="send-lag-") as tmp:
        for rate in (float(r) for r in args.rates.split(",")):
            results.append(run_rate(rate, args.duration, Path(tmp)))
    after = machine()["loadavg"]
    print(f"machine: {before['cpu']}, {before['cores']} cores, Python {before['python']}; load average "
          f"{before['loadavg']} before, {after} after")
    print(f"{'rate/s':>8} {'requests':>8} {'intended/s':>10} {'sent/s':>8} {'lag p50':>8} {'p90':>8} {'p99':>8} "
          f"{'max':>8}  (ms)")
    for r in results:
        lag = r["send_lag_ms"]
        print(f"{r['rate']:>8g} {r['requests']:>8} {r['intended_rate_per_s']:>10.1f} {r['sent_rate_per_s']:>8.1f} "
              f"{lag['p50']:>8.3f} {lag['p90']:>8.3f} {lag['p99']:>8.3f} {lag['max']:>8.3f}")
    if args.out:
        Path(args.out).write_text(json.dumps({"machine": before, "loadavg_after": after, "results": results},
                                             indent=2) + "\n")


if __name__ == "__main__":
    main()
