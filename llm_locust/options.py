"""llm-locust's command-line options: one Locust argument group, each option with an environment variable.

Registered through Locust's ``init_command_line_parser`` event, so they work on the command line, in config
files (``locust.conf``, ``[tool.locust]``), in the web UI's start form (secrets masked, paths hidden) and reach
workers with the master's values at test start.

They do **not** appear in ``locust -f locustfile.py --help``: Locust prints its help while it parses ``-f``, before
it imports any locustfile (``locust.argument_parser.parse_locustfile_option`` calls ``get_parser().parse_args()``
on ``--help``), so no locustfile's parser listener has run. ``llm-benchmark --locust-options`` (or ``python -m
llm_locust --locust-options``) lists them instead, each with its default and environment variable
(:func:`describe`).
"""

from __future__ import annotations

from typing import Any

from .backoff import DEFAULT_MAX_RETRY_AFTER_S
from .protocols import PROTOCOLS

DEFAULT_MOCK_MODEL = "mock-model"
#: the options (``dest``) that hold a secret: masked in the web UI (``is_secret``), never sent to workers
SECRET_OPTIONS = ("api_key",)


def _add(group: Any, *flags: str, include_in_web_ui: bool = True, is_secret: bool = False, **kwargs: Any) -> Any:
    # argument groups bypass LocustArgumentParser.add_argument, so set the web-UI attributes here
    action = group.add_argument(*flags, **kwargs)
    action.include_in_web_ui = include_in_web_ui
    action.is_secret = is_secret
    action.is_required = False
    action.is_multiple = False
    return action


def options() -> list[tuple[str, str | None, Any, str]]:
    """(flag, environment variable, default, help) of every llm-locust option, in ``--help`` order."""
    import configargparse

    parser = configargparse.ArgumentParser(add_help=False)
    add_arguments(parser)
    return [
        (", ".join(a.option_strings), getattr(a, "env_var", None), a.default, a.help or "")
        for a in parser._actions
        if a.option_strings
    ]


def describe() -> str:
    """The option list ``llm-benchmark --locust-options`` prints: flag, default, environment variable, help."""
    lines = ["llm-locust options (for locust -f locustfile.py ...; Locust's own are in locust --help):", ""]
    for flag, env, default, text in options():
        shown = "off" if default is False else ("none" if default in (None, "") else default)
        lines.append(f"  {flag}")
        lines.append(f"      default: {shown}; env: {env or 'none'}")
        lines.append(f"      {text}")
    return "\n".join(lines)


def add_arguments(parser: Any) -> None:
    g = parser.add_argument_group(
        "llm-locust",
        "LLM endpoint, prompts, measurement and reports. The endpoint is Locust's --host; without "
        "--host the embedded mock LLM server is started on 127.0.0.1 and used.",
    )
    apis = ", ".join(f"{name}: {cls.summary}" for name, cls in PROTOCOLS.items())
    _add(
        g,
        "--llm-api",
        choices=list(PROTOCOLS),
        default="openai-chat",
        env_var="LLM_API",
        help=f"Wire protocol of the endpoint ({apis}). Default: openai-chat",
    )
    _add(
        g,
        "--model",
        default=None,
        env_var="LLM_MODEL",
        help=f"Model name to request. Required with --host; default {DEFAULT_MOCK_MODEL} for the mock server",
    )
    _add(
        g,
        "--prompt-file",
        default="prompts.yaml",
        env_var="LLM_PROMPT_FILE",
        include_in_web_ui=False,
        help="YAML prompt file (see prompts.yaml). Default: prompts.yaml",
    )
    _add(
        g,
        "--token-limit",
        type=int,
        default=None,
        env_var="LLM_TOKEN_LIMIT",
        help="Default output-token cap per request; a prompt's token_limit overrides it. Default: the server's",
    )
    add_source_arguments(g)
    _add(
        g,
        "--fixed-output",
        action="store_true",
        default=False,
        env_var="LLM_FIXED_OUTPUT",
        help="Ask for exactly the token limit (--token-limit or a prompt's token_limit): ignore_eos and min_tokens "
        "on the OpenAI-compatible APIs (vLLM, SGLang, llama.cpp; hosted OpenAI rejects them), the limit alone where "
        "an API has no such field (said at start-up). The reports count the answers whose length differs. "
        "Default: off",
    )
    _add(
        g,
        "--warmup",
        default=None,
        env_var="LLM_WARMUP",
        help="Send and log, but leave out of every statistic, the first N requests (--warmup 100, per load-generator "
        "process) or the requests sent in the first seconds (--warmup 30s; ms, s, m, h); run-level throughput is "
        "over the measured window after it (see docs/metrics.md). Default: none",
    )
    _add(
        g,
        "--api-key",
        default=None,
        is_secret="api_key" in SECRET_OPTIONS,
        help="API key. Default: the provider's usual environment variable (OPENAI_API_KEY, OLLAMA_API_KEY)",
    )
    _add(
        g,
        "--timeout",
        type=float,
        default=120.0,
        env_var="LLM_TIMEOUT",
        help="Seconds a whole LLM call may take, stream included, before it fails as a timeout. Default: 120",
    )
    _add(
        g,
        "--no-backoff",
        action="store_true",
        default=False,
        env_var="LLM_NO_BACKOFF",
        help="Send the next request at once after a failure. Default: back off like a careful client: wait what "
        "the server asks (Retry-After, retry-after-ms, RetryInfo) after a 429/503/529, and 0.1 s doubling to 5 s "
        "after quick failures and refused connections (see llm_locust/backoff.py)",
    )
    _add(
        g,
        "--max-retry-after",
        type=float,
        default=DEFAULT_MAX_RETRY_AFTER_S,
        env_var="LLM_MAX_RETRY_AFTER",
        help=f"Longest wait, in seconds, a server's retry hint can impose on a user. Default: "
        f"{DEFAULT_MAX_RETRY_AFTER_S:g}",
    )
    _add(
        g,
        "--prices",
        default=None,
        env_var="LLM_PRICES",
        include_in_web_ui=False,
        help="YAML price file overriding genai-prices (USD per million tokens; see docs/reports.md)",
    )
    _add(
        g,
        "--max-requests",
        type=int,
        default=None,
        env_var="LLM_MAX_REQUESTS",
        help="Send exactly N requests to each target, the prompts in file order, then stop (per load-generator "
        "process). With fewer users than targets the targets are served one after the other",
    )
    _add(
        g,
        "--stagger",
        action="store_true",
        default=False,
        env_var="LLM_STAGGER",
        help="Spread the users' first requests evenly over the spawn interval (user k of a batch Locust starts "
        "together waits (k mod floor(r))/r s, r = --spawn-rate) instead of all at once: staggered instead of "
        "lockstep streams. Default: off (lockstep)",
    )
    _add(
        g,
        "--max-response-bytes",
        type=int,
        default=16 * 1024 * 1024,
        env_var="LLM_MAX_RESPONSE_BYTES",
        help="A response body beyond N bytes is cut there and fails as response_too_large. Default: 16 MiB",
    )
    _add(
        g,
        "--targets",
        default=None,
        env_var="LLM_TARGETS",
        include_in_web_ui=False,
        help="YAML file naming several endpoints to load side by side (see llm_locust/targets.py); replaces "
        "--host/--llm-api/--model",
    )
    _add(
        g,
        "--template",
        default=None,
        env_var="LLM_TEMPLATE",
        include_in_web_ui=False,
        help="YAML template describing a custom REST endpoint, for --llm-api custom (see examples/)",
    )
    _add(
        g,
        "--report-dir",
        default="reports",
        env_var="LLM_REPORT_DIR",
        include_in_web_ui=False,
        help="Folder under which each run writes its report folder. Default: reports",
    )
    _add(
        g,
        "--run-info",
        default=None,
        env_var="LLM_RUN_INFO",
        include_in_web_ui=False,
        help="JSON file where each run writes its run id and report folder when it starts and when its reports are "
        "written (see llm_locust/runinfo.py)",
    )
    _add(
        g,
        "--reasoning",
        default=None,
        env_var="LLM_REASONING",
        help="Ask for reasoning: off, low, medium, high or a token budget, mapped to each provider's switch "
        "(Anthropic thinking, Gemini thinkingConfig, reasoning_effort, Ollama think; see docs/providers.md). A "
        "target's or a prompt's own 'reasoning' wins. Default: unset (the model's default)",
    )
    _add(
        g,
        "--continuous-usage",
        action="store_true",
        default=False,
        env_var="LLM_CONTINUOUS_USAGE",
        help="Ask OpenAI-compatible servers (vLLM, SGLang) for cumulative usage on every chunk, so chunks carrying "
        "several tokens split their inter-token gap exactly. Not for api.openai.com",
    )
    _add(
        g,
        "--server-metrics",
        default=None,
        env_var="LLM_SERVER_METRICS",
        include_in_web_ui=False,
        help="Prometheus metrics URL of the server under test, scraped every second into the reports (see "
        "llm_locust/servermetrics/). Default: each self-hosted target's /metrics (never a hosted API's), when it "
        "answers in Prometheus text",
    )
    _add(
        g,
        "--no-server-metrics",
        action="store_true",
        default=False,
        env_var="LLM_NO_SERVER_METRICS",
        include_in_web_ui=False,
        help="Do not scrape the server's Prometheus metrics",
    )
    _add(
        g,
        "--metrics-port",
        type=int,
        default=None,
        env_var="LLM_METRICS_PORT",
        include_in_web_ui=False,
        help="Serve our own figures at /metrics in Prometheus format on this port (local runner or master; see "
        "llm_locust/exporter.py and docs/grafana-dashboard.json). Default: off",
    )
    _add(
        g,
        "--metrics-host",
        default="127.0.0.1",
        env_var="LLM_METRICS_HOST",
        include_in_web_ui=False,
        help="Address for --metrics-port (0.0.0.0 for every interface). Default: 127.0.0.1",
    )
    _add(
        g,
        "--mock-server-args",
        default="",
        env_var="LLM_MOCK_ARGS",
        include_in_web_ui=False,
        help='Arguments for the embedded mock server when no --host is given, e.g. "--ttft-ms 100 --itl-ms 20" '
        "(see python -m llm_locust.mockserver --help)",
    )
    _add(
        g,
        "--slo",
        default=None,
        env_var="LLM_SLO",
        help='Service-level objectives, e.g. "ttft_p99=500ms,tpot_p50=40ms,e2e_p95=10s,error_rate=1%%" (any metric '
        "and percentile; [prompt=NAME] or [target=NAME] scopes one). The reports state each with its measured value, "
        "goodput and attainment; exit code 4 when one fails (see docs/slo.md)",
    )
    _add(
        g,
        "--capacity-search",
        action="store_true",
        include_in_web_ui=False,  # the shape is set up at start-up, not per run
        default=False,
        env_var="LLM_CAPACITY_SEARCH",
        help="Find the largest user count at which --slo holds: levels from --capacity-start doubling up to "
        "--capacity-max, then bisected; each level warms up, then measures --level-requests requests (replaces "
        "-u/-r/-t; see docs/slo.md)",
    )
    _add(g, "--capacity-start", include_in_web_ui=False, type=int, default=1, env_var="LLM_CAPACITY_START",
         help="Users of the capacity search's first level. Default: 1")
    _add(g, "--capacity-max", include_in_web_ui=False, type=int, default=256, env_var="LLM_CAPACITY_MAX",
         help="Most users the capacity search tries. Default: 256")
    _add(g, "--level-requests", include_in_web_ui=False, type=int, default=100, env_var="LLM_LEVEL_REQUESTS",
         help="Requests measured at each capacity-search level, after its warm-up. Default: 100")
    _add(g, "--level-warmup", include_in_web_ui=False, type=float, default=5.0, env_var="LLM_LEVEL_WARMUP",
         help="Seconds of each capacity-search level (once all its users run) not measured. Default: 5")
    _add(g, "--level-timeout", include_in_web_ui=False, type=float, default=300.0, env_var="LLM_LEVEL_TIMEOUT",
         help="Seconds a capacity-search level may take to measure its requests before it counts as broken. "
         "Default: 300")
    # open-loop arrivals (llm_locust/arrivals.py, llm_locust/plugin/dispatch.py)
    _add(
        g,
        "--request-rate",
        type=float,
        default=None,
        env_var="LLM_REQUEST_RATE",
        help="Open loop: send R requests per second in all (a master's workers share it), on a timeline that "
        "does not wait for responses; -u is then only the sender pool the run starts with (more are added when it "
        "runs dry). Default: off (closed-loop users, each sending its next request when the last one ends)",
    )
    _add(
        g,
        "--arrival",
        choices=["poisson", "gamma", "constant"],
        default="poisson",
        env_var="LLM_ARRIVAL",
        help="Distribution of the gaps between arrivals with --request-rate: poisson (exponential gaps), gamma "
        "(shape --burstiness) or constant. Default: poisson",
    )
    _add(
        g,
        "--burstiness",
        type=float,
        default=1.0,
        env_var="LLM_BURSTINESS",
        help="Gamma shape of --arrival gamma (as vLLM's --burstiness): 1 is Poisson, below 1 burstier, above 1 "
        "more regular. Default: 1",
    )
    _add(
        g,
        "--max-concurrency",
        type=int,
        default=None,
        env_var="LLM_MAX_CONCURRENCY",
        help="With --request-rate: at most C requests in flight (a master's workers share it); arrivals that find "
        "them all taken wait in a client queue (queue_wait_ms in requests.csv). Default: no cap",
    )
    _add(
        g,
        "--seed",
        type=int,
        default=None,
        env_var="LLM_SEED",
        help="Seed of the random draws (arrival times, synthetic prompts, the dataset sample), so a run can be "
        "repeated exactly. Default: unseeded",
    )


def add_source_arguments(g: Any) -> None:
    """Synthetic prompts, datasets and sessions (llm_locust/sources.py, docs/datasets.md)."""
    _add(g, "--input-tokens", default=None, env_var="LLM_INPUT_TOKENS",
         help="Synthetic prompts of MEAN[,STDDEV] input tokens (e.g. 512,64), made with the model's tokenizer "
         "(exact for models tiktoken knows, estimated otherwise); replaces the prompt file")
    _add(g, "--output-tokens", default=None, env_var="LLM_OUTPUT_TOKENS",
         help="Token limit of each synthetic or dataset prompt, drawn as MEAN[,STDDEV] (e.g. 128)")
    _add(g, "--dataset", default=None, env_var="LLM_DATASET", include_in_web_ui=False,
         help="Prompts from a ShareGPT-style JSON or a JSONL file (prompts or conversations), streamed and sampled; "
         "replaces the prompt file (see docs/datasets.md)")
    _add(g, "--dataset-fields", default=None, env_var="LLM_DATASET_FIELDS", include_in_web_ui=False,
         help="Key names where the dataset's differ, e.g. prompt=question or conversations=dialog,role=speaker,"
         "content=text")
    _add(g, "--dataset-sample", type=int, default=None, env_var="LLM_DATASET_SAMPLE", include_in_web_ui=False,
         help="Records sampled from the dataset (uniformly, seeded by --seed). Default: 1000")
    _add(g, "--dataset-min-input-tokens", type=int, default=None, env_var="LLM_DATASET_MIN_INPUT_TOKENS",
         include_in_web_ui=False, help="Leave out dataset prompts shorter than N tokens")
    _add(g, "--dataset-max-input-tokens", type=int, default=None, env_var="LLM_DATASET_MAX_INPUT_TOKENS",
         include_in_web_ui=False, help="Leave out dataset prompts longer than N tokens")
    _add(g, "--session-turns", type=int, default=None, env_var="LLM_SESSION_TURNS", include_in_web_ui=False,
         help="Multi-turn sessions from the dataset's conversations: up to K user turns each, every request "
         "carrying the conversation so far with the answers received. Default: single-turn (the first user turn)")
