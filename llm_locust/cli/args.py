"""``llm-benchmark``'s arguments: the parser, a ``--config`` YAML file under the flags, and :class:`UsageError`.

:func:`parse_args` reads the command line; with ``--config FILE`` it reads the file's options (long flag names,
``-`` or ``_``; a switch as ``true``/``false``, a many-valued option as a list) with the hardened YAML loader, turns
them into command-line words placed before the given flags, and parses again: argparse checks every value the way
it checks flags, and flags given on the command line win. Any problem with the file or its keys is a
:class:`UsageError`: one line, exit code 2, before any request.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ..protocols import PROTOCOLS
from ..targets import catalog
from ..yamlfile import load_yaml

#: the ``--all-<provider>`` flags (argparse dest -> catalog provider)
PROVIDER_FLAGS = {
    "all_openai": "openai",
    "all_anthropic": "anthropic",
    "all_google": "google",
    "all_deepseek": "deepseek",
    "all_workers": "workers",
    "all_mistral": "mistral",
}


class UsageError(Exception):
    """Bad flags or missing keys: one line, exit code 2."""


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
                      help="requests per model (default: 100, or BENCHMARK_ATTEMPTS)")
    pick = many.add_mutually_exclusive_group()
    pick.add_argument("--providers", nargs="+", metavar="PROVIDER",
                      help=f"providers to benchmark, one model each ({', '.join(catalog()['providers'])})")
    for flag, provider in PROVIDER_FLAGS.items():
        pick.add_argument(f"--{flag.replace('_', '-')}", action="store_true", help=f"all {provider} models")
    pick.add_argument("--all-models", action="store_true", help="all models of all providers")
    many.add_argument(
        "--prompt-mode", choices=["decode", "simple"], default="decode",
        help="decode: a list of integers (UTF-8 bytes) to decode; simple: 'hi!' (default: decode)",
    )
    many.add_argument("--max-tokens", type=int, default=None, help="maximum output tokens (default: the provider's)")

    run = p.add_argument_group("running and output")
    run.add_argument("--parallel", action="store_true", help="all targets at once, one user each (default: in turn)")
    run.add_argument("--output", choices=["text", "json", "csv"], default="text", help="stdout format (default: text)")
    run.add_argument("--timeout", type=float, default=120.0, help="seconds per request (default: 120)")
    run.add_argument("--report-dir", default="reports", help="where the run's report folder goes (default: reports)")
    run.add_argument("--prices", help="YAML price file overriding genai-prices (see docs/reports.md)")
    run.add_argument("--slo", default=None,
                     help='service-level objectives, e.g. "ttft_p99=500ms,error_rate=1%%" (docs/slo.md): the verdict '
                     "is printed and the exit code is 4 when one fails")
    run.add_argument("--plot", action="store_true", help="write PNG charts of TTFT, tokens/s and cost")
    run.add_argument("--verbose", action="store_true", help="verbose logging (same as --log-level DEBUG)")
    run.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
                     default=os.environ.get("LOG_LEVEL", "INFO"), help="logging level (default: INFO)")
    run.add_argument("--config", help="YAML file holding any of these options (flags given here win)")
    run.add_argument("--locust-options", action="store_true",
                     help="list every llm-locust option of the locustfile (locust -f locustfile.py ...) with its "
                     "default and environment variable, and exit")
    return p


def load_env_file(path: Path) -> None:
    """Set the variables of a ``.env`` file that the environment does not already have (python-dotenv; a line it
    cannot parse is one warning from it). A file that is no UTF-8 text, too large or unreadable is a UsageError."""
    from dotenv import load_dotenv

    from ..yamlfile import MAX_BYTES

    if not path.exists():
        return
    try:
        if not path.is_file():
            raise UsageError(f"{path}: not a file; remove it or make it a .env file of NAME=value lines")
        if path.stat().st_size > MAX_BYTES:
            raise UsageError(f"{path}: over {MAX_BYTES // 2**20} MiB; a .env file holds a few NAME=value lines")
        text = path.read_bytes().decode("utf-8")
    except OSError as e:
        raise UsageError(f"{path}: cannot read it ({e.strerror or e}); check its permissions") from None
    except UnicodeDecodeError as e:
        raise UsageError(f"{path}: byte {e.start}: not UTF-8 text; save the file as UTF-8") from None
    if "\x00" in text:
        raise UsageError(f"{path}: holds a NUL byte; a .env file holds NAME=value lines of text")
    load_dotenv(stream=io.StringIO(text), override=False)


class ConfigFileError(ValueError):
    """An unusable ``--config`` file (raised as a :class:`UsageError`)."""


def _config_argv(parser: argparse.ArgumentParser, path: str) -> list[str]:
    """The ``--config`` file's options as command-line words, so argparse checks each value as it checks flags.

    Read by the hardened loader (:mod:`llm_locust.yamlfile`: size, nesting, aliases, encoding bounded)."""
    try:
        config = load_yaml(Path(path), ConfigFileError, "config file", "--config") or {}
    except ConfigFileError as e:
        raise UsageError(str(e)) from None
    if not isinstance(config, dict):
        raise UsageError(f"--config {path}: expected a mapping of option names to values, e.g. `runs: 3`")
    actions = {a.dest: a for a in parser._actions if a.option_strings}
    argv: list[str] = []
    for key, value in config.items():
        action = actions.get(str(key).replace("-", "_"))
        if action is None or action.dest in ("config", "help"):
            raise UsageError(f"--config {path}: unknown option {key!r}; use the long flag names (llm-benchmark --help)")
        flag = action.option_strings[-1]
        if action.nargs == 0:  # a switch
            if not isinstance(value, bool):
                raise UsageError(f"--config {path}: {key}: expected true or false (got {value!r})")
            argv += [flag] if value else []
            continue
        values = value if isinstance(value, list) and action.nargs in ("+", "*") else [value]
        if not values or any(isinstance(v, bool) or not isinstance(v, (str, int, float)) for v in values):
            raise UsageError(f"--config {path}: {key}: expected a plain value (got {value!r})")
        argv += [flag, *map(str, values)]
    return argv


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.config:
        words = list(sys.argv[1:] if argv is None else argv)
        args = parser.parse_args(_config_argv(parser, args.config) + words)  # flags on the command line win
    return args
