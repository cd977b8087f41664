"""Soak benchmark: run the llm-locust profile against the mock server for a while and watch the memory.

Starts the mock LLM server (fast: ``--ttft-ms``, ``--itl-ms``, ``--output-tokens``) and one headless Locust process
with the bundled profile and ``-u USERS``, for ``--duration`` seconds; every ``--every`` seconds it prints the
Locust process's resident memory (psutil) and the requests booked so far (rows of the run's ``requests.csv``).
At the end it prints the growth in bytes per request: the least-squares slope of resident memory over requests,
from the samples after ``--warmup`` seconds (start-up, imports and the first allocations excluded).

    python bench/soak.py --duration 600 --users 64            # the 10-minute figures of docs/performance.md
    python bench/soak.py --duration 60 --users 16 --json out.json

``--pacing S`` makes each user wait S seconds between requests (Locust's ``constant_pacing`` via the profile's
``LLM_WAIT`` would be the open-loop way; here the rate is whatever the users and the mock sustain). Loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def count_rows(folder: Path) -> int:
    files = list(folder.glob("*/requests.csv"))
    if not files:
        return 0
    with files[0].open("rb") as f:
        return max(0, sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b"")) - 1)


def slope(xs: list[float], ys: list[float]) -> float | None:
    n = len(xs)
    if n < 2:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=600.0, help="seconds of load (default 600)")
    ap.add_argument("--users", type=int, default=64, help="Locust users (default 64)")
    ap.add_argument("--every", type=float, default=10.0, help="seconds between samples (default 10)")
    ap.add_argument("--warmup", type=float, default=60.0, help="seconds left out of the slope (default 60)")
    ap.add_argument("--ttft-ms", type=float, default=2.0)
    ap.add_argument("--itl-ms", type=float, default=0.5)
    ap.add_argument("--output-tokens", type=int, default=32)
    ap.add_argument("--root", type=Path, default=ROOT, help="the llm-locust checkout to run (default: this one)")
    ap.add_argument("--json", type=Path, default=None, help="write the samples and the figures to this file")
    args = ap.parse_args()

    root = args.root.resolve()
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    mock = subprocess.Popen(
        [sys.executable, "-m", "llm_locust.mockserver", "--port", str(port), "--ttft-ms", str(args.ttft_ms),
         "--itl-ms", str(args.itl_ms), "--output-tokens", str(args.output_tokens)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    samples: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        reports = Path(tmp) / "reports"
        time.sleep(1.0)
        cmd = [
            sys.executable, "-m", "locust", "-f", str(root / "llm_locust" / "locustfile.py"), "--headless",
            "-u", str(args.users), "-r", str(args.users), "-t", f"{int(args.duration)}s", "--only-summary",
            "--host", f"http://127.0.0.1:{port}", "--model", "mock-model",
            "--prompt-file", str(root / "prompts.yaml"), "--report-dir", str(reports),
        ]
        loc = subprocess.Popen(cmd, env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        proc = psutil.Process(loc.pid)
        start = time.monotonic()
        try:
            while loc.poll() is None and time.monotonic() - start < args.duration + 120:
                time.sleep(args.every)
                try:
                    rss = proc.memory_info().rss
                except psutil.Error:
                    break
                t = time.monotonic() - start
                n = count_rows(reports)
                samples.append({"t_s": round(t, 1), "rss_mb": round(rss / 2**20, 1), "requests": n})
                print(f"{t:7.1f} s  rss {rss / 2**20:8.1f} MB  requests {n:>9}", flush=True)
            loc.wait(timeout=120)
        finally:
            for p in (loc, mock):
                if p.poll() is None:
                    p.terminate()
                    p.wait(timeout=10)
    late = [s for s in samples if s["t_s"] >= args.warmup and s["t_s"] <= args.duration]
    per_request = slope([s["requests"] for s in late], [s["rss_mb"] * 2**20 for s in late])
    total = samples[-1]["requests"] if samples else 0
    summary = {
        "users": args.users,
        "duration_s": args.duration,
        "requests": total,
        "requests_per_s": total / args.duration if args.duration else None,
        "rss_start_mb": late[0]["rss_mb"] if late else None,
        "rss_end_mb": late[-1]["rss_mb"] if late else None,
        "bytes_per_request": per_request,
        "machine": f"{os.cpu_count()} CPU(s), {psutil.virtual_memory().total / 2**30:.0f} GiB, Python "
        f"{sys.version.split()[0]}",
    }
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "samples": samples}, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
