"""``llm-benchmark``: the seeds' command lines, run for real against the mock server on 127.0.0.1."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


def bench(tmp_path: Path, *args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``python -m llm_locust`` (the llm-benchmark entry point) in tmp_path, reports under tmp_path/reports."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith(("_API_KEY", "_TOKEN")) and not k.startswith("CLOUDFLARE_")
    }
    full_env = {**base, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "llm_locust", "--report-dir", str(tmp_path / "reports"), *args],
        cwd=tmp_path, capture_output=True, text=True, timeout=timeout, env=full_env,
    )


def _folder(tmp_path: Path) -> Path:
    runs = [p for p in (tmp_path / "reports").iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(runs) == 1, runs
    return runs[0]


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.yaml"
    path.write_text((ROOT / "tests/data/prompts_small.yaml").read_text())
    return path


def test_seed000_openai_example(tmp_path, prompts, mock_server):
    # python llm_benchmark.py --endpoint https://api.openai.com/v1 --model gpt-4o --api-key $OPENAI_API_KEY
    mock = mock_server("--ttft-ms", "10", "--itl-ms", "1", "--output-tokens", "12")
    key = "sk-test-KEYKEYKEYKEYKEYKEYKEY0123"
    run = bench(tmp_path, "--endpoint", f"{mock.url}/v1", "--model", "gpt-4o", "--api-key", key)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"Benchmark Results for gpt-4o @ {mock.url}/v1\n")
    for line in (
        "- Time to First Token:",
        "- Total Generation Time:",
        "- Tokens Per Second:",
        "- Input Tokens:",
        "- Output Tokens:",
        "- Total Tokens:",
        "- Cost Estimate:",
        "Summary Metrics (Average)",
        "- Avg Time to First Token:",
        "- Avg Tokens Per Second:",
        "- Avg Response Time:",
        "- Total Cost:",
    ):
        assert line in run.stdout
    folder = _folder(tmp_path)
    names = {p.name for p in folder.iterdir()}
    assert {"summary.txt", "summary.json", "summary.csv", "requests.csv", "all_requests_log.csv",
            "gpt-4o_requests_log.csv"} <= names
    assert any(n.startswith("benchmark_") and n.endswith(".log") for n in names)
    assert len(mock.sent()) == 2  # --runs 1: each of the two prompts once
    assert all("KEYKEYKEY" not in p.read_text() for p in folder.iterdir() if p.is_file())
    assert "KEYKEYKEY" not in run.stdout + run.stderr


def test_seed000_ollama_example(tmp_path, mock_server):
    # python llm_benchmark.py --endpoint http://localhost:11434/api/generate --model llama3 \
    #     --prompt-file custom_prompts.yaml
    (tmp_path / "custom_prompts.yaml").write_text(
        "prompts:\n  - {name: q, text: 'Why is the sky blue?', token_limit: 5}\n"
    )
    mock = mock_server("--ttft-ms", "10", "--itl-ms", "1", "--output-tokens", "12")
    run = bench(tmp_path, "--endpoint", f"{mock.url}/api/generate", "--model", "llama3",
                "--prompt-file", "custom_prompts.yaml")
    assert run.returncode == 0, run.stderr
    summary = json.loads((_folder(tmp_path) / "summary.json").read_text())
    assert summary["run"]["api"] == "ollama-generate"
    assert summary["overall"]["output_tokens"]["mean"] == 5
    assert [s["path"] for s in mock.sent()] == ["/api/generate"]


def test_seed000_vllm_example_with_token_limit_and_verbose(tmp_path, prompts, mock_server):
    # python llm_benchmark.py --endpoint http://localhost:8000/v1 --model mistral-7b --token-limit 2048 --verbose
    mock = mock_server("--ttft-ms", "10", "--itl-ms", "1", "--output-tokens", "12")
    run = bench(tmp_path, "--endpoint", f"{mock.url}/v1", "--model", "mistral-7b", "--token-limit", "2048", "--verbose")
    assert run.returncode == 0, run.stderr
    folder = _folder(tmp_path)
    log = next(folder.glob("benchmark_*.log")).read_text()
    assert "DEBUG" in log
    assert json.loads((folder / "summary.json").read_text())["run"]["token_limit"] == 2048


def test_seed000_runs_and_json_output(tmp_path, prompts, mock_server):
    # python llm_benchmark.py --endpoint https://api.openai.com/v1 --model gpt-3.5-turbo --runs 5 --output json
    mock = mock_server("--ttft-ms", "10", "--itl-ms", "1", "--output-tokens", "12")
    run = bench(tmp_path, "--endpoint", f"{mock.url}/v1", "--model", "gpt-3.5-turbo", "--runs", "5", "--output", "json")
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)  # nothing but JSON on stdout
    assert doc["overall"]["requests"] == 10 and {p["requests"] for p in doc["prompts"]} == {5}
    assert doc["providers"][0]["requests"] == 10
    tool = subprocess.run([sys.executable, "-m", "json.tool"], input=run.stdout, capture_output=True, text=True)
    assert tool.returncode == 0
    assert len(mock.sent()) == 10


def test_csv_output_has_one_header_row(tmp_path, prompts, mock_server):
    mock = mock_server("--ttft-ms", "5", "--itl-ms", "1", "--output-tokens", "4")
    run = bench(tmp_path, "--endpoint", f"{mock.url}/v1", "--model", "m", "--output", "csv")
    assert run.returncode == 0, run.stderr
    rows = list(csv.reader(io.StringIO(run.stdout)))
    assert rows[0][:3] == ["target", "prompt", "requests"]
    assert sum(1 for r in rows if r[:2] == ["target", "prompt"]) == 1
    assert [r[1] for r in rows[1:]] == ["Short", "Chat", "Overall"]


def test_config_file_and_flags_win(tmp_path, prompts, mock_server):
    mock = mock_server("--ttft-ms", "5", "--itl-ms", "1", "--output-tokens", "20")
    (tmp_path / "bench.yaml").write_text(f"endpoint: {mock.url}/v1\nmodel: from-config\nruns: 2\ntoken-limit: 3\n")
    run = bench(tmp_path, "--config", "bench.yaml", "--runs", "1", "--output", "json")
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert doc["run"]["model"] == "from-config" and doc["overall"]["requests"] == 2  # --runs 1 won
    assert doc["overall"]["output_tokens"]["mean"] == 3


def test_plot_writes_charts(tmp_path, prompts, mock_server):
    pytest.importorskip("matplotlib", reason="--plot needs the optional matplotlib (pip install '.[plot]')")
    mock = mock_server("--ttft-ms", "5", "--itl-ms", "1", "--output-tokens", "4")
    run = bench(tmp_path, "--endpoint", f"{mock.url}/v1", "--model", "m", "--plot")
    assert run.returncode == 0, run.stderr
    for name in ("ttft_ms.png", "output_tokens_per_s.png", "cost_usd.png"):
        assert (_folder(tmp_path) / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_failed_requests_give_exit_1(tmp_path, prompts, mock_server):
    mock = mock_server("--ttft-ms", "5", "--itl-ms", "1", "--output-tokens", "4", "--fault", "status-500",
                       "--fault-every", "2")
    run = bench(tmp_path, "--endpoint", f"{mock.url}/v1", "--model", "m", "--runs", "2")
    assert run.returncode == 1
    assert "server_error 2" in run.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--endpoint", "http://127.0.0.1:9/v1"], "--model is required with --endpoint"),
        (["--endpoint", "http://127.0.0.1:9/odd", "--model", "m"], "cannot tell the API"),
        (["--endpoint", "http://127.0.0.1:9/v1", "--model", "m", "--runs", "0"], "--runs must be a positive"),
        (["--providers", "openai", "nosuch"], "unknown provider(s) ['nosuch']"),
        (["--providers", "openai"], "missing key(s): OPENAI_API_KEY (or OPENAI_TOKEN)"),
        (["--all-anthropic"], "missing key(s): ANTHROPIC_API_KEY"),
        (["--output", "xml"], "invalid choice: 'xml'"),
        (
            ["--endpoint", "http://127.0.0.1:9/v1", "--model", "m", "--prompt-file", "nope.yaml"],
            "prompt file not found",
        ),
    ],
)
def test_bad_flags_and_missing_keys_exit_2_before_any_request(tmp_path, args, expected):
    run = bench(tmp_path, *args, timeout=60)
    assert run.returncode == 2
    assert expected in run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "reports").exists() or not any(
        p for p in (tmp_path / "reports").iterdir() if not p.name.startswith(".")
    )


# ---------------------------------------------------------------- seed 001: providers through the gateway


def gateway(mock) -> dict:
    """Point the catalog's Cloudflare AI Gateway at the mock server, and give every provider a (fake) key, some
    under seed 001's names."""
    return {
        "LLM_GATEWAY_URL": f"{mock.url}/v1/acct/gw",
        "OPENAI_TOKEN": "sk-openai-dummy",
        "ANTHROPIC_API_KEY": "sk-ant-dummy",
        "GEMINI_API_KEY": "g-dummy",
        "DEEPSEEK_TOKEN": "ds-dummy",
        "CLOUDFLARE_API_TOKEN": "cf-dummy",
        "MISTRAL_API_KEY": "m-dummy",
    }


@pytest.fixture
def fast_gateway(mock_server):
    return mock_server("--ttft-ms", "1", "--itl-ms", "0.2", "--output-tokens", "6")


SEED001 = [
    # (arguments, models, requests per model)
    (["--all-openai", "--attempts", "50"], 8, 50),
    (["--all-models", "--attempts", "10"], 31, 10),
    (["--providers", "openai", "anthropic", "--attempts", "50"], 2, 50),
    (["--all-mistral", "--log-level", "DEBUG"], 4, 100),
    (["--prompt-mode", "simple", "--max-tokens", "50"], 6, 100),
    (["--parallel", "--prompt-mode", "simple", "--max-tokens", "100"], 6, 100),
]


@pytest.mark.parametrize(
    ("args", "models", "attempts"), SEED001, ids=lambda v: " ".join(v) if isinstance(v, list) else None
)
def test_seed001_examples(tmp_path, fast_gateway, args, models, attempts):
    run = bench(tmp_path, *args, "--output", "json", env=gateway(fast_gateway), timeout=240)
    assert run.returncode == 0, run.stderr[-2000:]
    doc = json.loads(run.stdout)
    assert len(doc["providers"]) == models
    assert {p["requests"] for p in doc["providers"]} == {attempts} and {p["failures"] for p in doc["providers"]} == {0}
    assert len(fast_gateway.sent()) == models * attempts
    # hosted providers are priced from genai-prices' data, which lacks two of the catalog's models
    unpriced = {p["target"] for p in doc["providers"] if not p["cost_usd_total"]}
    assert unpriced <= {"google:gemini-2.0-pro-exp-02-05", "workers:@cf/meta/llama-3.1-70b-instruct"}
    folder = _folder(tmp_path)
    assert (folder / "all_requests_log.csv").exists() and any(folder.glob("benchmark_*.log"))
    if "--prompt-mode" in args:
        limit = int(args[args.index("--max-tokens") + 1])
        assert doc["run"]["token_limit"] == limit
        assert {s["prompt_tokens"] for s in fast_gateway.sent()} <= {1, 2}  # "hi!"
    if "--log-level" in args:
        assert "DEBUG" in next(folder.glob("benchmark_*.log")).read_text()


def test_parallel_sweep_over_three_providers_writes_all_logs(tmp_path, fast_gateway):
    run = bench(tmp_path, "--providers", "openai", "anthropic", "google", "--attempts", "20", "--parallel",
                env=gateway(fast_gateway))
    assert run.returncode == 0, run.stderr[-2000:]
    folder = _folder(tmp_path)
    for provider in ("openai", "anthropic", "google"):
        with (folder / f"{provider}_requests_log.csv").open() as f:
            assert len(list(csv.DictReader(f))) == 20
    with (folder / "all_requests_log.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 60
    log = next(folder.glob("benchmark_*.log")).read_text()
    assert "llm-locust" in log
    assert "Per provider / model" in run.stdout and "tok/s median" in run.stdout


def test_a_failing_provider_is_reported_while_the_others_go_on(tmp_path, mock_server):
    mock = mock_server("--ttft-ms", "1", "--itl-ms", "0.2", "--output-tokens", "6", "--fault", "status-401",
                       "--fault-model", "claude")
    run = bench(tmp_path, "--providers", "openai", "anthropic", "deepseek", "--attempts", "5", "--output", "json",
                env=gateway(mock))
    assert run.returncode == 1
    doc = json.loads(run.stdout)
    by = {p["target"].split(":")[0]: p for p in doc["providers"]}
    assert by["anthropic"]["failures"] == 5 and by["anthropic"]["errors"] == {"auth": 5}
    assert by["openai"]["failures"] == 0 and by["deepseek"]["failures"] == 0
    assert by["openai"]["requests"] == by["deepseek"]["requests"] == 5


def test_each_run_takes_its_report_folder_from_the_run_not_the_newest_folder(tmp_path, prompts, mock_server):
    """Two benchmarks at once into one report folder, beside a stale folder that looks newest: each reports its own."""
    mock = mock_server("--ttft-ms", "5", "--itl-ms", "1", "--output-tokens", "4")
    stale = tmp_path / "reports" / "29991231-235959"
    stale.mkdir(parents=True)
    (stale / "summary.json").write_text("{}")
    (stale / "requests.csv").write_text("")
    os.utime(stale, (4102444800, 4102444800))  # year 2100: newer than anything this run writes
    env = {**{k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_TOKEN"))}, "PYTHONPATH": str(ROOT)}
    procs = {
        model: subprocess.Popen(
            [sys.executable, "-m", "llm_locust", "--report-dir", str(tmp_path / "reports"), "--endpoint",
             f"{mock.url}/v1", "--model", model, "--output", "json"],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        for model in ("model-one", "model-two")
    }
    folders = set()
    for model, proc in procs.items():
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err[-2000:]
        doc = json.loads(out)
        assert doc["run"]["model"] == model and doc["overall"]["requests"] == 2
        assert [(p["model"], p["requests"]) for p in doc["providers"]] == [(model, 2)]
        folder = tmp_path / "reports" / doc["run"]["run_id"]
        assert json.loads((folder / "summary.json").read_text())["run"]["model"] == model
        with (folder / "all_requests_log.csv").open() as f:
            assert {r["model"] for r in csv.DictReader(f)} == {model}
        folders.add(folder)
    assert len(folders) == 2 and stale not in folders
    assert (stale / "summary.json").read_text() == "{}"


def test_the_api_of_an_endpoint_url_comes_from_the_catalog():
    from llm_locust.cli import infer_api
    from llm_locust.targets import catalog

    for name, entry in catalog()["providers"].items():
        host = entry["host"].replace("${CLOUDFLARE_ACCOUNT_ID}", "acct")
        assert infer_api(host) == entry["api"], name
        assert infer_api(f"https://gateway.ai.cloudflare.com/v1/a/g/{entry['gateway_slug']}") == entry["api"], name
    assert infer_api("https://gateway.ai.cloudflare.com/v1/a/g") == "cf-universal"
    assert infer_api("https://europe-west4-aiplatform.googleapis.com/v1/projects/p/locations/l") == "vertex"
    assert infer_api("https://api.openai.com/v1/completions") == "openai-completions"  # the path says more
    assert infer_api("http://127.0.0.1:8000/v1/messages") == "anthropic"


BAD_CONFIGS = {
    "not a mapping": "- runs\n- 3\n",
    "unknown key": "rnus: 3\n",
    "a list for a plain value": "runs: [1, 2]\n",
    "a mapping for a value": "model: {name: x}\n",
    "a word for a number": "runs: many\n",
    "a number for a switch": "parallel: 1\n",
    "null value": "model: null\n",
    "not yaml": "runs: [1,\n",
    "alias bomb": "a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b]\n"
                  "d: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n",
    "deep nesting": "a: " + "[" * 200 + "]" * 200 + "\n",
    "a bad choice": "output: xml\n",
    "a lone surrogate": 'model: "\\ud800"\n',
    "an infinite timeout": "timeout: .inf\n",
}


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
def test_a_bad_config_file_is_one_line_and_exit_2(tmp_path, name):
    """``llm-benchmark --config`` goes through the hardened YAML loader and argparse's checks of each value."""
    from llm_locust.cli import UsageError, parse_args

    path = tmp_path / "bench.yaml"
    path.write_text(BAD_CONFIGS[name], encoding="utf-8")
    try:
        parse_args(["--config", str(path), "--mock-server"])
    except UsageError as e:
        assert "\n" not in str(e) and str(path) in str(e), str(e)
    except SystemExit as e:  # argparse's own check of a value: its usage line and one error line, exit 2
        assert e.code == 2
    else:
        pytest.fail(f"{name}: accepted")


def test_a_config_file_of_every_kind_of_value_parses(tmp_path):
    from llm_locust.cli import parse_args

    path = tmp_path / "bench.yaml"
    path.write_text("providers: [openai, anthropic]\nparallel: true\nplot: false\ntimeout: 30\nmax-tokens: 5\n")
    args = parse_args(["--config", str(path), "--timeout", "12"])
    assert args.providers == ["openai", "anthropic"] and args.parallel and not args.plot
    assert args.timeout == 12.0 and args.max_tokens == 5


BAD_ENV_FILES = {
    "not utf-8": b"OPENAI_API_KEY=\xff\xfe\n",
    "a nul byte": b"OPENAI_API_KEY=a\x00b\n",
    "a directory": None,
}


@pytest.mark.parametrize("name", sorted(BAD_ENV_FILES))
def test_a_bad_env_file_is_one_line_and_exit_2(tmp_path, name):
    env_file = tmp_path / ".env"
    if BAD_ENV_FILES[name] is None:
        env_file.mkdir()
    else:
        env_file.write_bytes(BAD_ENV_FILES[name])
    run = bench(tmp_path, "--locust-options")
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llm-benchmark: error: ") and ".env" in lines[0], run.stderr
    assert "Traceback" not in run.stderr


def test_env_file_lines_that_cannot_be_parsed_are_warned_about_and_the_rest_is_used(tmp_path):
    (tmp_path / ".env").write_text("=oops\n'unclosed\nLOG_LEVEL=WARNING\n\x1b[31m\n" + "x" * 10_000 + "\n")
    run = bench(tmp_path, "--locust-options")
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr


@pytest.mark.parametrize(("slo", "code", "verdict"), [("ttft_p99=60s,error_rate=0%", 0, "SLO: PASS"),
                                                       ("ttft_p50=0.001ms", 4, "SLO: FAIL")])
def test_slo_passes_through_to_the_run_and_sets_the_exit_code(tmp_path, prompts, mock_server, slo, code, verdict):
    mock = mock_server("--ttft-ms", "5", "--itl-ms", "1", "--output-tokens", "5")
    run = bench(tmp_path, "--endpoint", f"{mock.url}/v1", "--model", "m", "--runs", "2", "--slo", slo)
    assert run.returncode == code, run.stderr
    assert verdict in run.stdout
    summary = json.loads((_folder(tmp_path) / "summary.json").read_text())
    assert summary["slo"]["pass"] is (code == 0)
