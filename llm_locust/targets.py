"""Targets: the endpoints a run loads, one or several at once, and the provider catalog they can draw on.

Without ``--targets`` a run has one target made of ``--host``, ``--llm-api``, ``--model`` and ``--api-key``.
With ``--targets FILE`` one Locust run loads several endpoints side by side; users are spread over the targets in
turn (by weight), and every report breaks down by target and prompt. The file::

    targets:
      - name: gpt-4o-mini              # unique; the Locust request type and the reports' target column
        provider: openai               # from the catalog: api, host and key variable (llm_locust/catalog.yaml)
        model: gpt-4o-mini
      - name: claude-via-gateway
        provider: anthropic
        via: gateway                   # through Cloudflare AI Gateway (LLM_GATEWAY_URL, or CLOUDFLARE_ACCOUNT_ID
                                       # and CLOUDFLARE_GATEWAY_ID)
        model: claude-3-5-haiku-latest
      - name: local-vllm
        api: openai-chat               # or give api and host yourself
        host: http://localhost:8000
        model: mistral-7b
        key_env: VLLM_API_KEY          # optional: which environment variable holds the key
        prices: {input_per_mtok: 0.05, output_per_mtok: 0.10}   # optional price for this target
        weight: 2                      # optional share of the users (default 1)
        reasoning: medium              # optional: off, low, medium, high or a token budget; a prompt's wins
        extra_body: {top_k: 1}         # optional mapping deep-merged into every request body (a prompt's on top)

``${VAR}`` in a host is read from the environment. Problems are reported in one line naming the file, the
target and the fix, including what a protocol can tell of its host (``check_endpoint``: e.g. a gateway route
named with the wrong API).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from .protocols import PROTOCOLS, EndpointError, check_endpoint, check_host
from .protocols.cloudflare import gateway_base
from .protocols.cloudflare.gateway import GATEWAY_HOST
from .reasoning import Reasoning, check_extra_body, parse_reasoning
from .yamlfile import load_yaml

CATALOG = Path(__file__).with_name("catalog.yaml")
TARGET_KEYS = {"name", "provider", "via", "api", "host", "model", "key_env", "prices", "weight", "reasoning",
               "extra_body"}
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class TargetFileError(ValueError):
    """A targets file that cannot be used; one line naming the file, the target and the fix."""


@dataclass(frozen=True)
class TargetSpec:
    name: str
    api: str
    host: str
    model: str
    key_env: str | None = None
    prices: dict[str, float] | None = None
    weight: float = 1.0
    provider: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    reasoning: Reasoning | None = None
    extra_body: dict[str, Any] | None = None


@cache
def catalog() -> dict[str, Any]:
    return yaml.safe_load(CATALOG.read_text(encoding="utf-8"))


def hosted_api(host: str) -> bool:
    """Whether ``host`` (a host name) is a hosted API's: a catalog provider's host, a ``host_apis`` name (or a
    name ending in it), or Cloudflare's. Nothing is scraped there by default (it is not the user's server)."""
    cat = catalog()
    known = {urlsplit(p["host"]).hostname or "" for p in cat["providers"].values()} | {GATEWAY_HOST}
    return host in known or any(host.endswith(h) for h in (cat.get("host_apis") or {}))


def expand_env(text: str, where: str) -> str:
    def sub(m: re.Match[str]) -> str:
        value = os.environ.get(m.group(1))
        if value is None:
            raise TargetFileError(f"{where}: needs environment variable {m.group(1)}; set it (or use a .env file)")
        return value

    return _ENV.sub(sub, text)


def from_catalog(provider: str, model: str, via: str | None, where: str) -> dict[str, Any]:
    """api, host and key variable of a catalog provider, direct or through the Cloudflare AI Gateway."""
    providers = catalog()["providers"]
    if provider not in providers:
        raise TargetFileError(f"{where}: unknown provider {provider!r}; one of {', '.join(providers)} (catalog.yaml)")
    entry = providers[provider]
    host = entry["host"]
    if via == "gateway":
        try:
            host = f"{gateway_base()}/{entry['gateway_slug']}"
        except EndpointError as e:
            raise TargetFileError(f"{where}: {e}") from None
    elif via is not None:
        raise TargetFileError(f"{where}: 'via' must be 'gateway' (got {via!r})")
    return {"api": entry["api"], "host": expand_env(host, where), "key_env": entry.get("key_env")}


def load_targets(path: str | Path) -> list[TargetSpec]:
    path = Path(path)
    data = load_yaml(path, TargetFileError, "targets file", "--targets")
    items = data.get("targets") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise TargetFileError(f"{path}: no 'targets:' list; start the file with 'targets:' and one entry per endpoint")
    if set(data) - {"targets"}:
        raise TargetFileError(f"{path}: unknown top-level key(s) {sorted(map(str, set(data) - {'targets'}))}; only "
                              "'targets' is allowed")
    out: list[TargetSpec] = []
    for i, item in enumerate(items, 1):
        where = f"{path}: target #{i}"
        if not isinstance(item, dict):
            raise TargetFileError(f"{where}: not a mapping; write '- name: ...' entries")
        if isinstance(item.get("name"), str):
            where = f"{path}: target {item['name']!r}"
        unknown = set(item) - TARGET_KEYS
        if unknown:
            allowed = ", ".join(sorted(TARGET_KEYS))
            raise TargetFileError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {allowed}")
        for key in ("name", "model"):
            if not isinstance(item.get(key), str) or not item[key].strip():
                raise TargetFileError(f"{where}: missing '{key}'")
        for key in ("provider", "via", "api", "host", "key_env"):
            if item.get(key) is not None and not isinstance(item[key], str):
                raise TargetFileError(f"{where}: '{key}' must be text (got {type(item[key]).__name__}); quote it")
        if item.get("via") is not None and not item.get("provider"):
            raise TargetFileError(f"{where}: 'via' needs a 'provider' from the catalog; add one or drop 'via'")
        fields: dict[str, Any] = {}
        if item.get("provider"):
            fields = from_catalog(item["provider"], item["model"], item.get("via"), where)
        for key in ("api", "host", "key_env"):
            if item.get(key) is not None:
                fields[key] = expand_env(str(item[key]), where) if key == "host" else item[key]
        if fields.get("api") not in PROTOCOLS:
            raise TargetFileError(f"{where}: 'api' must be one of {', '.join(PROTOCOLS)} (or give a 'provider')")
        if not fields.get("host"):
            raise TargetFileError(f"{where}: missing 'host' (or give a 'provider' from the catalog)")
        try:
            check_host(fields["host"], "'host'")
            check_endpoint(fields["api"], fields["host"], item["model"])
        except EndpointError as e:
            raise TargetFileError(f"{where}: {e}") from None
        weight = item.get("weight", 1)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight <= 1e6:
            raise TargetFileError(f"{where}: weight must be a positive number (got {weight!r})")
        prices = item.get("prices")
        if prices is not None and (
            not isinstance(prices, dict)
            or not {"input_per_mtok", "output_per_mtok"} <= set(prices)
            or set(prices) - {"input_per_mtok", "output_per_mtok", "cache_read_per_mtok"}
            or any(isinstance(v, bool) or not isinstance(v, int | float) or v < 0 for v in prices.values())
        ):
            raise TargetFileError(
                f"{where}: 'prices' needs input_per_mtok and output_per_mtok, numbers >= 0 (USD per million)"
            )
        try:
            reasoning = parse_reasoning(item.get("reasoning"))
            extra_body = check_extra_body(item.get("extra_body"))
        except ValueError as e:
            raise TargetFileError(f"{where}: {e}") from None
        if any(t.name == item["name"] for t in out):
            raise TargetFileError(f"{where}: duplicate name; target names must be unique")
        out.append(
            TargetSpec(
                name=item["name"],
                api=fields["api"],
                host=fields["host"],
                model=item["model"],
                key_env=fields.get("key_env"),
                prices=prices,
                weight=float(weight),
                provider=item.get("provider"),
                reasoning=reasoning,
                extra_body=extra_body,
            )
        )
    return out
