"""``llm-benchmark``: the seeds' plain command line, run on the same measurement core as a Locust run.

Two ways to pick what to measure:

* one endpoint (seed 000): ``llm-benchmark --endpoint http://localhost:8000/v1 --model mistral-7b --runs 5`` — every
  prompt of ``--prompt-file`` is sent ``--runs`` times; the API is inferred from the URL (or ``--api``);
* providers and models from the catalog (seed 001): ``llm-benchmark --providers openai anthropic --attempts 50``,
  ``--all-openai``, ..., ``--all-models`` — ``--attempts`` requests per model with a generated prompt
  (``--prompt-mode decode|simple``), through the Cloudflare AI Gateway when ``CLOUDFLARE_ACCOUNT_ID`` and
  ``CLOUDFLARE_GATEWAY_ID`` are set, else directly.

Either way it writes a targets file and a prompt file and runs the bundled locustfile headless with
``--max-requests`` (exact counts, one user per target with ``--parallel``, else one target after the other): the
same users, parsers, records and report writers as any Locust run. Then it prints the seed's text layout (or JSON or
CSV on stdout, nothing else there), and adds to the run's report folder the per-provider request logs
(``<provider>_requests_log.csv``), ``all_requests_log.csv``, the run log ``benchmark_<timestamp>.log`` and, with
``--plot``, PNG charts. Keys come from the environment or a ``.env`` file (``cp .env.example .env``).

Exit codes: 0 all requests succeeded, 1 some failed, 2 bad flags or missing keys (before any request).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from . import gateway
from .protocols import PROTOCOLS, get_protocol
from .targets import catalog, gateway_base

PROVIDER_FLAGS = {
    "all_openai": "openai",
    "all_anthropic": "anthropic",
    "all_google": "google",
    "all_deepseek": "deepseek",
    "all_workers": "workers",
    "all_mistral": "mistral",
}
#: seed 001's key variable names, accepted beside each provider's usual one
SEED_KEY_NAMES = {
    "openai": "OPENAI_TOKEN",
    "anthropic": "ANTHROPIC_TOKEN",
    "google": "GOOGLE_TOKEN",
    "deepseek": "DEEPSEEK_TOKEN",
    "workers": "WORKERS_TOKEN",
    "mistral": "MISTRAL_TOKEN",
}
DECODE_SENTENCE = "The quick brown fox jumps over the lazy dog while the benchmark counts every token it sends."
SIMPLE_PROMPT = "hi!"


class UsageError(Exception):
    """Bad flags or missing keys: one line, exit code 2."""


# ---------------------------------------------------------------- arguments


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="llm-benchmark",
        description="Benchmark LLM endpoints and providers: TTFT, tokens/s, token counts and cost per prompt.",
        epilog="Examples: llm-benchmark --endpoint http://localhost:8000/v1 --model mistral-7b --runs 5 | "
        "llm-benchmark --providers openai anthropic --attempts 50 --parallel",
    )
    one = p.add_argument_group("one endpoint (seed 000)")
    one.add_argument("--endpoint", help="URL of the API endpoint (e.g. https://api.openai.com/v1)")
    one.add_argument("--model", help="model name (e.g. gpt-4o, llama3)")
    one.add_argument("--api", choices=sorted(PROTOCOLS), help="wire protocol, when the URL does not tell")
    one.add_argument("--prompt-file", default=None, help="YAML prompt file (default: prompts.yaml)")
    one.add_argument("--token-limit", type=int, default=None, help="maximum output tokens (default: the model's)")
    one.add_argument("--runs", type=int, default=1, help="times each prompt is sent (default: 1)")
    one.add_argument("--api-key", default=None, help="API key (default: the provider's environment variable)")
    one.add_argument("--mock-server", action="store_true", help="start the embedded mock LLM server and use it")

    many = p.add_argument_group("providers and models from the catalog (seed 001)")
    default_attempts = int(os.environ.get("BENCHMARK_ATTEMPTS", "100"))
    many.add_argument("--attempts", type=int, default=default_attempts,
                      help="requests per model (default: 100, or BENCHMARK_ATTEMPTS)")  # fmt: skip
    pick = many.add_mutually_exclusive_group()
    pick.add_argument("--providers", nargs="+", metavar="PROVIDER",
                      help=f"providers to benchmark, one model each ({', '.join(catalog()['providers'])})")  # fmt: skip
    for flag, provider in PROVIDER_FLAGS.items():
        pick.add_argument(f"--{flag.replace('_', '-')}", action="store_true", help=f"all {provider} models")
    pick.add_argument("--all-models", action="store_true", help="all models of all providers")
    many.add_argument(
        "--prompt-mode", choices=["decode", "simple"], default="decode",
        help="decode: a list of integers (UTF-8 bytes) to decode; simple: 'hi!' (default: decode)",
    )  # fmt: skip
    many.add_argument("--max-tokens", type=int, default=None, help="maximum output tokens (default: the provider's)")

    run = p.add_argument_group("running and output")
    run.add_argument("--parallel", action="store_true", help="all targets at once, one user each (default: in turn)")
    run.add_argument("--output", choices=["text", "json", "csv"], default="text", help="stdout format (default: text)")
    run.add_argument("--timeout", type=float, default=120.0, help="seconds per request (default: 120)")
    run.add_argument("--report-dir", default="reports", help="where the run's report folder goes (default: reports)")
    run.add_argument("--prices", help="YAML price file overriding genai-prices (see docs/reports.md)")
    run.add_argument("--plot", action="store_true", help="write PNG charts of TTFT, tokens/s and cost")
    run.add_argument("--verbose", action="store_true", help="verbose logging (same as --log-level DEBUG)")
    run.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
                     default=os.environ.get("LOG_LEVEL", "INFO"), help="logging level (default: INFO)")  # fmt: skip
    run.add_argument("--config", help="YAML file holding any of these options (flags given here win)")
    return p


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.config:
        try:
            config = yaml.safe_load(Path(args.config).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as e:
            raise UsageError(f"--config {args.config}: cannot read it ({' '.join(str(e).split())})") from None
        if not isinstance(config, dict):
            raise UsageError(f"--config {args.config}: expected a mapping of option names to values")
        known = {a.dest for a in parser._actions}
        config = {k.replace("-", "_"): v for k, v in config.items()}
        unknown = sorted(set(config) - known - {"config"})
        if unknown:
            raise UsageError(f"--config {args.config}: unknown option(s) {unknown}; use the long flag names")
        parser.set_defaults(**config)
        args = parser.parse_args(argv)  # flags on the command line win over the file
    return args


# ---------------------------------------------------------------- what to run


def infer_api(url: str) -> str:
    """The wire protocol of an endpoint URL, where the URL tells; else a UsageError asking for --api."""
    u = urlsplit(url)
    host, path = (u.hostname or ""), u.path.rstrip("/")
    parts = gateway.parts(url)
    if parts is not None:
        slug = parts[1]
        by_slug = {"": "cf-universal", "anthropic": "anthropic", "google-ai-studio": "gemini",
                   "workers-ai": "workers-ai"}  # fmt: skip
        return by_slug.get(slug, "openai-chat")
    if host == "api.anthropic.com" or path.endswith("/messages"):
        return "anthropic"
    if host == "generativelanguage.googleapis.com":
        return "gemini"
    if host.endswith("aiplatform.googleapis.com"):
        return "vertex"
    if host == "api.cloudflare.com" or "/ai/run" in path:
        return "workers-ai"
    if path.endswith("/api/generate"):
        return "ollama-generate"
    if path.endswith("/api/chat") or u.port == 11434:
        return "ollama-chat"
    if path.endswith("/completions") and not path.endswith("/chat/completions"):
        return "openai-completions"
    if path.endswith("/v1") or path.endswith("/chat/completions") or host in (
        "api.openai.com", "api.mistral.ai", "api.deepseek.com",
    ):  # fmt: skip
        return "openai-chat"
    raise UsageError(f"cannot tell the API of {url} from its URL; pass --api ({', '.join(sorted(PROTOCOLS))})")


def _key_for(provider: str, key_env: str | None, env: dict[str, str]) -> str | None:
    if key_env and env.get(key_env):
        return env[key_env]
    seed_name = SEED_KEY_NAMES.get(provider)
    return env.get(seed_name) if seed_name else None


def selected_providers(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """(provider, models) pairs the provider flags select, in catalog order."""
    providers = catalog()["providers"]
    if args.all_models:
        return [(name, list(p["models"])) for name, p in providers.items()]
    for flag, name in PROVIDER_FLAGS.items():
        if getattr(args, flag):
            return [(name, list(providers[name]["models"]))]
    names = args.providers or list(providers)
    unknown = [n for n in names if n not in providers]
    if unknown:
        raise UsageError(f"unknown provider(s) {unknown}; choose from {', '.join(providers)}")
    return [(name, [providers[name]["models"][0]]) for name in names]


def decode_prompt() -> str:
    numbers = list(DECODE_SENTENCE.encode("utf-8"))
    return (
        "The following list of integers are the bytes of a UTF-8 encoded English sentence. Decode them and reply "
        f"with the sentence only, then explain in two sentences how you decoded it.\n{numbers}"
    )


def plan(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    """Turn the arguments into targets, prompts, request counts and the child's environment."""
    from .pricing import PriceFileError, load_price_file

    for flag, value in (("--token-limit", args.token_limit), ("--max-tokens", args.max_tokens)):
        if value is not None and value <= 0:
            raise UsageError(f"{flag} must be a positive integer (got {value})")
    if args.timeout <= 0:
        raise UsageError(f"--timeout must be a positive number of seconds (got {args.timeout:g})")
    if args.prices:
        try:
            load_price_file(args.prices)
        except PriceFileError as e:
            raise UsageError(str(e)) from None
    if args.endpoint or args.mock_server:
        if args.providers or args.all_models or any(getattr(args, f) for f in PROVIDER_FLAGS):
            raise UsageError("--endpoint and the provider flags (--providers, --all-*) exclude each other")
        if not args.model and not args.mock_server:
            raise UsageError("--model is required with --endpoint (the model name the endpoint serves)")
        if args.runs <= 0:
            raise UsageError(f"--runs must be a positive integer (got {args.runs})")
        api = args.api or (infer_api(args.endpoint) if args.endpoint else "openai-chat")
        key_env = get_protocol(api).key_env
        target: dict[str, Any] = {"name": args.model or "mock-model", "api": api, "model": args.model or "mock-model"}
        if args.endpoint:
            target["host"] = args.endpoint
        if key_env:
            target["key_env"] = key_env
        if args.api_key:
            env = {**env, "LLM_BENCH_API_KEY": args.api_key}
            target["key_env"] = "LLM_BENCH_API_KEY"
        prompt_file = args.prompt_file or "prompts.yaml"
        return {"targets": [target], "prompt_file": prompt_file, "per_target": None, "runs": args.runs, "env": env,
                "token_limit": args.token_limit}  # fmt: skip
    if args.attempts <= 0:
        raise UsageError(f"--attempts must be a positive integer (got {args.attempts})")
    via_gateway = bool(
        env.get("LLM_GATEWAY_URL") or (env.get("CLOUDFLARE_ACCOUNT_ID") and env.get("CLOUDFLARE_GATEWAY_ID"))
    )
    targets = []
    missing: list[str] = []
    child_env = dict(env)
    for provider, models in selected_providers(args):
        entry = catalog()["providers"][provider]
        key_env = entry.get("key_env")
        key = _key_for(provider, key_env, env)
        if key is None:
            missing.append(f"{key_env} (or {SEED_KEY_NAMES[provider]})")
        elif key_env:
            child_env[key_env] = key
        if provider == "workers" and not via_gateway and not env.get("CLOUDFLARE_ACCOUNT_ID"):
            missing.append("CLOUDFLARE_ACCOUNT_ID")
        for model in models:
            t: dict[str, Any] = {"name": f"{provider}:{model}", "provider": provider, "model": model}
            if via_gateway:
                t["via"] = "gateway"
            targets.append(t)
    if missing:
        raise UsageError(f"missing key(s): {', '.join(dict.fromkeys(missing))}; set them in the environment or .env")
    if via_gateway and not env.get("LLM_GATEWAY_URL"):
        gateway_base()  # the catalog's URL needs CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_GATEWAY_ID: both are set
    prompt_file = args.prompt_file
    return {"targets": targets, "prompt_file": prompt_file, "per_target": args.attempts, "runs": None,
            "env": child_env, "token_limit": args.max_tokens, "mode": args.prompt_mode}  # fmt: skip


# ---------------------------------------------------------------- running


def _write_inputs(work: Path, p: dict[str, Any]) -> tuple[Path, Path, int]:
    """Write the targets and prompt files the Locust run reads; return them and the requests per target."""
    from .prompts import load_prompts

    work.mkdir(parents=True, exist_ok=True)
    targets_file = work / "targets.yaml"
    targets_file.write_text(yaml.safe_dump({"targets": p["targets"]}, sort_keys=False), encoding="utf-8")
    if p["prompt_file"]:
        prompt_file = Path(p["prompt_file"])
        count = len(load_prompts(prompt_file))
    else:
        prompt_file = work / "prompts.yaml"
        text = decode_prompt() if p.get("mode") == "decode" else SIMPLE_PROMPT
        prompt_file.write_text(yaml.safe_dump({"prompts": [{"name": p.get("mode", "decode"), "text": text}]}))
        count = 1
    per_target = p["per_target"] or p["runs"] * count
    return targets_file, prompt_file, per_target


def run(args: argparse.Namespace, p: dict[str, Any], console: Any) -> tuple[Path, int]:
    """Run the bundled locustfile; return the run's report folder and Locust's exit code."""
    from .prompts import PromptFileError

    stamp = time.strftime("%Y%m%d-%H%M%S")
    report_dir = Path(args.report_dir)
    work = report_dir / ".bench" / stamp
    try:
        targets_file, prompt_file, per_target = _write_inputs(work, p)
    except PromptFileError as e:
        raise UsageError(str(e)) from None
    users = len(p["targets"]) if args.parallel else 1
    log_file = work / f"benchmark_{stamp}.log"
    level = "DEBUG" if args.verbose else args.log_level
    cmd = [
        sys.executable, "-m", "locust", "-f", str(Path(__file__).with_name("locustfile.py")), "--headless",
        "-u", str(users), "-r", str(users), "--max-requests", str(per_target), "--prompt-file", str(prompt_file),
        "--report-dir", str(report_dir), "--timeout", str(args.timeout), "--loglevel", level,
        "--logfile", str(log_file), "--only-summary",
    ]  # fmt: skip
    if args.mock_server and not args.endpoint:
        cmd += ["--model", p["targets"][0]["model"]]
    else:
        cmd += ["--targets", str(targets_file)]
    if p["token_limit"]:
        cmd += ["--token-limit", str(p["token_limit"])]
    if args.prices:
        cmd += ["--prices", str(args.prices)]
    before = set(report_dir.iterdir()) if report_dir.exists() else set()
    total = per_target * len(p["targets"])
    env = {**p["env"], "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                      p["env"].get("PYTHONPATH", "")])}  # fmt: skip
    console_file = work / "locust-console.txt"  # Locust's own tables; a file, so a full pipe never blocks it
    with console_file.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
        folder = _progress(proc, report_dir, before, total, console)
        proc.wait()
    folder = folder or _new_folder(report_dir, before)
    if folder is None or not (folder / "summary.json").exists():
        text = console_file.read_text(errors="replace")
        text += log_file.read_text(errors="replace") if log_file.exists() else ""
        errors = [line for line in text.splitlines() if "error" in line.lower()][-3:]
        raise UsageError(f"the benchmark run did not complete ({' | '.join(errors) or 'no output'}); see {work}")
    for path in (log_file, targets_file, console_file, *([prompt_file] if prompt_file.parent == work else [])):
        if path.exists():
            path.replace(folder / path.name)
    try:
        work.rmdir()
        work.parent.rmdir()
    except OSError:
        pass
    return folder, proc.returncode


def _new_folder(report_dir: Path, before: set[Path]) -> Path | None:
    if not report_dir.exists():
        return None
    new = [p for p in report_dir.iterdir() if p.is_dir() and p not in before and not p.name.startswith(".")]
    new = [p for p in new if p.name != "workers"]
    return max(new, key=lambda p: p.stat().st_mtime) if new else None


def _progress(proc: subprocess.Popen, report_dir: Path, before: set[Path], total: int, console: Any) -> Path | None:
    """Follow the run's requests.csv (written row by row) with a progress bar on stderr."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    folder = None
    with Progress(TextColumn("requests"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:  # fmt: skip
        task = bar.add_task("requests", total=total)
        while proc.poll() is None:
            time.sleep(0.2)
            folder = folder or _new_folder(report_dir, before)
            if folder is not None and (folder / "requests.csv").exists():
                with (folder / "requests.csv").open("rb") as f:
                    bar.update(task, completed=max(0, sum(1 for _ in f) - 1))
    return folder


# ---------------------------------------------------------------- outputs


def _rows(folder: Path) -> list[dict[str, str]]:
    with (folder / "requests.csv").open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def write_request_logs(folder: Path, p: dict[str, Any]) -> None:
    """``<provider>_requests_log.csv`` per provider (or target) and ``all_requests_log.csv``."""
    rows = _rows(folder)
    if not rows:
        return
    provider_of = {t["name"]: t.get("provider") or t["name"] for t in p["targets"]}
    fields = list(rows[0])
    with (folder / "all_requests_log.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fields)
        w.writeheader()
        w.writerows(rows)
    by_provider: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_provider.setdefault(provider_of.get(r["target"], r["target"]), []).append(r)
    for provider, group in by_provider.items():
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in provider)
        with (folder / f"{safe}_requests_log.csv").open("w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fields)
            w.writeheader()
            w.writerows(group)


def provider_table(folder: Path) -> list[dict[str, Any]]:
    """Per target: requests, failures with classes, average and median tokens/s, tokens (API vs local), cost."""
    import statistics

    out = []
    rows = _rows(folder)
    for target in dict.fromkeys(r["target"] for r in rows):
        group = [r for r in rows if r["target"] == target and r["status"] != "cancelled"]
        ok = [r for r in group if r["status"] == "ok"]
        tps = [float(r["output_tokens_per_s"]) for r in ok if r["output_tokens_per_s"]]

        def mean(key: str, rs: list[dict[str, str]] = ok) -> float | None:
            values = [float(r[key]) for r in rs if r[key] != ""]
            return sum(values) / len(values) if values else None

        errors: dict[str, int] = {}
        for r in group:
            if r["status"] == "failed":
                errors[r["error_class"]] = errors.get(r["error_class"], 0) + 1
        costs = [float(r["cost_usd"]) for r in ok if r["cost_usd"]]
        out.append({
            "target": target,
            "model": group[0]["model"] if group else "",
            "requests": len(group),
            "failures": len(group) - len(ok),
            "errors": errors,
            "ttft_ms_mean": mean("ttft_ms"),
            "tokens_per_s_mean": sum(tps) / len(tps) if tps else None,
            "tokens_per_s_median": statistics.median(tps) if tps else None,
            "total_tokens_mean": mean("total_tokens"),
            "prompt_tokens_mean": mean("input_tokens"),
            "completion_tokens_mean": mean("output_tokens"),
            "completion_tokens_api_mean": mean("output_tokens_server"),
            "completion_tokens_local_mean": mean("output_tokens_local"),
            "cost_usd_total": sum(costs) if costs else None,
        })  # fmt: skip
    return out


def _fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return "n/a"
    return f"{v:,.{digits}f}" if isinstance(v, float) else str(v)


def print_text(folder: Path, table: list[dict[str, Any]], console: Any) -> None:
    from rich.table import Table

    print((folder / "summary.txt").read_text(encoding="utf-8"), flush=True)
    t = Table(title="Per provider / model", title_justify="left")
    for col in ("target", "reqs", "failed", "TTFT ms", "tok/s avg", "tok/s median", "total tok", "prompt tok",
                "completion tok (API / local)", "cost $", "errors"):  # fmt: skip
        t.add_column(col, justify="left" if col in ("target", "errors") else "right")
    for row in table:
        t.add_row(
            row["target"], str(row["requests"]), str(row["failures"]), _fmt(row["ttft_ms_mean"]),
            _fmt(row["tokens_per_s_mean"]), _fmt(row["tokens_per_s_median"]), _fmt(row["total_tokens_mean"]),
            _fmt(row["prompt_tokens_mean"]),
            f"{_fmt(row['completion_tokens_api_mean'])} / {_fmt(row['completion_tokens_local_mean'])}",
            "n/a" if row["cost_usd_total"] is None else f"{row['cost_usd_total']:.6f}",
            ", ".join(f"{k} {v}" for k, v in row["errors"].items()),
        )  # fmt: skip
    console.print(t)
    console.print(f"Reports: {folder}/", markup=False, highlight=False)


def plot(folder: Path) -> list[Path]:
    """Bar charts of TTFT, output tokens/s and cost per prompt and per target (PNG, in the report folder)."""
    try:
        import matplotlib
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'llm-locust[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    multi = len(summary.get("targets") or ()) > 1
    groups = summary["targets"] if multi else summary["prompts"]
    labels = [g["name"] for g in groups]
    charts = [("ttft_ms", "mean", "TTFT (ms, mean)"), ("output_tokens_per_s", "mean", "Output tokens/s (mean)"),
              ("cost_usd", "total", "Cost (USD, total)")]  # fmt: skip
    written = []
    for key, stat, title in charts:
        values = [g[key][stat] or 0.0 for g in groups]
        fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(labels) + 2), 4))
        ax.bar(range(len(labels)), values, color="#4c72b0")
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
        ax.set_title(f"{title} per {'target' if multi else 'prompt'}")
        fig.tight_layout()
        path = folder / f"{key}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    from rich.console import Console

    err_console = Console(stderr=True)
    try:
        from dotenv import load_dotenv

        load_dotenv(Path.cwd() / ".env", override=False)
        args = parse_args(argv)
        p = plan(args, dict(os.environ))
        folder, _ = run(args, p, err_console)
    except UsageError as e:
        print(f"llm-benchmark: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    write_request_logs(folder, p)
    table = provider_table(folder)
    if args.plot:
        try:
            plot(folder)
        except UsageError as e:
            print(f"llm-benchmark: error: {e}", file=sys.stderr)
            return 2
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    if args.output == "json":
        print(json.dumps({**summary, "providers": table}, indent=2))
    elif args.output == "csv":
        sys.stdout.write((folder / "summary.csv").read_text(encoding="utf-8"))
    else:
        print_text(folder, table, Console(width=None if sys.stdout.isatty() else 200))
    return 1 if summary["overall"]["failures"] else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
