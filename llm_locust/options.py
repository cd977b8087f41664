"""llm-locust's command-line options: one Locust argument group, each option with an environment variable.

Registered through Locust's ``init_command_line_parser`` event, so they appear in ``locust --help``, in config
files (``locust.conf``, ``[tool.locust]``), in the web UI's start form (secrets masked, paths hidden) and reach
workers with the master's values at test start.
"""

from __future__ import annotations

from typing import Any

from .protocols import PROTOCOLS

DEFAULT_MOCK_MODEL = "mock-model"


def _add(group: Any, *flags: str, include_in_web_ui: bool = True, is_secret: bool = False, **kwargs: Any) -> Any:
    # argument groups bypass LocustArgumentParser.add_argument, so set the web-UI attributes here
    action = group.add_argument(*flags, **kwargs)
    action.include_in_web_ui = include_in_web_ui
    action.is_secret = is_secret
    action.is_required = False
    action.is_multiple = False
    return action


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
    _add(
        g,
        "--api-key",
        default=None,
        is_secret=True,
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
        "--continuous-usage",
        action="store_true",
        default=False,
        env_var="LLM_CONTINUOUS_USAGE",
        help="Ask OpenAI-compatible servers (vLLM, SGLang) for cumulative usage on every chunk, so chunks carrying "
        "several tokens split their inter-token gap exactly. Not for api.openai.com",
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
