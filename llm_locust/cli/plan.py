"""What ``llm-benchmark`` runs: targets, prompts, request counts and the child's environment, from the arguments.

:func:`plan` turns the parsed arguments into a :class:`BenchPlan`, checking every flag and key first
(:class:`~.args.UsageError` on a problem). With ``--endpoint`` (or ``--mock-server``) it is one target whose API
:func:`infer_api` reads from the URL: a Cloudflare AI Gateway URL by its provider slug
(:func:`llm_locust.protocols.cloudflare.gateway_api`), a provider's host from the catalog (``llm_locust/catalog.yaml``:
``providers.*.host`` and ``host_apis``), else the path's conventions (``/messages``, ``/api/generate``, ``/v1``
...). With the provider flags it is one target per catalog model, through the gateway when
``CLOUDFLARE_ACCOUNT_ID`` and ``CLOUDFLARE_GATEWAY_ID`` (or ``LLM_GATEWAY_URL``) are set, each provider's key
read from its usual variable or seed 001's name (:data:`SEED_KEY_NAMES`).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from ..protocols import PROTOCOLS, get_protocol
from ..protocols.cloudflare import gateway_api, gateway_base
from ..targets import catalog
from .args import PROVIDER_FLAGS, UsageError

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
#: the API of a gateway URL with no provider slug (the universal endpoint)
DEFAULT_API = "openai-chat"


@dataclass
class BenchPlan:
    """The Locust run ``llm-benchmark`` starts."""

    targets: list[dict[str, Any]]  # entries of the targets file (llm_locust/targets.py)
    prompt_file: str | None  # None: a generated prompt of ``mode``
    per_target: int | None  # requests per target (--attempts), or None: ``runs`` times each prompt
    runs: int | None
    env: dict[str, str]  # the child's environment (keys included)
    token_limit: int | None
    mode: str | None = None  # --prompt-mode


@cache
def _provider_hosts() -> dict[str, str]:
    """Host name of each catalog provider -> its API."""
    return {urlsplit(p["host"]).hostname or "": p["api"] for p in catalog()["providers"].values()}


def _api_of_host(host: str) -> str | None:
    """The API a host name tells: a catalog provider's host, or a ``host_apis`` name (or a name ending in it)."""
    if host in _provider_hosts():
        return _provider_hosts()[host]
    for known, api in (catalog().get("host_apis") or {}).items():
        if host.endswith(known):
            return api
    return None


def infer_api(url: str) -> str:
    """The wire protocol of an endpoint URL, where the URL tells; else a UsageError asking for --api."""
    u = urlsplit(url)
    host, path = (u.hostname or ""), u.path.rstrip("/")
    api = gateway_api(url)
    if api is not None:
        return api
    by_host = _api_of_host(host)
    if path.endswith("/messages"):
        return "anthropic"
    if by_host is not None and by_host != DEFAULT_API:
        return by_host
    if "/ai/run" in path:
        return "workers-ai"
    if path.endswith("/api/generate"):
        return "ollama-generate"
    if path.endswith("/api/chat") or u.port == 11434:
        return "ollama-chat"
    if path.endswith("/completions") and not path.endswith("/chat/completions"):
        return "openai-completions"
    if path.endswith("/v1") or path.endswith("/chat/completions") or by_host == DEFAULT_API:
        return DEFAULT_API
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


def _check_flags(args: argparse.Namespace) -> None:
    from ..pricing import PriceFileError, load_price_file

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


def _endpoint_plan(args: argparse.Namespace, env: dict[str, str]) -> BenchPlan:
    if args.providers or args.all_models or any(getattr(args, f) for f in PROVIDER_FLAGS):
        raise UsageError("--endpoint and the provider flags (--providers, --all-*) exclude each other")
    if not args.model and not args.mock_server:
        raise UsageError("--model is required with --endpoint (the model name the endpoint serves)")
    if args.runs <= 0:
        raise UsageError(f"--runs must be a positive integer (got {args.runs})")
    api = args.api or (infer_api(args.endpoint) if args.endpoint else DEFAULT_API)
    key_env = get_protocol(api).key_env
    target: dict[str, Any] = {"name": args.model or "mock-model", "api": api, "model": args.model or "mock-model"}
    if args.endpoint:
        target["host"] = args.endpoint
    if key_env:
        target["key_env"] = key_env
    if args.api_key:
        env = {**env, "LLM_BENCH_API_KEY": args.api_key}
        target["key_env"] = "LLM_BENCH_API_KEY"
    return BenchPlan([target], args.prompt_file or "prompts.yaml", None, args.runs, env, args.token_limit)


def _catalog_plan(args: argparse.Namespace, env: dict[str, str]) -> BenchPlan:
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
    return BenchPlan(targets, args.prompt_file, args.attempts, None, child_env, args.max_tokens, args.prompt_mode)


def plan(args: argparse.Namespace, env: dict[str, str]) -> BenchPlan:
    """Turn the arguments into targets, prompts, request counts and the child's environment."""
    _check_flags(args)
    if args.endpoint or args.mock_server:
        return _endpoint_plan(args, env)
    return _catalog_plan(args, env)
