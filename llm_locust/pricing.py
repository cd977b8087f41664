"""Cost in USD per request: a user's price file first, then genai-prices' bundled data, else no price.

Override file (``--prices FILE``, YAML)::

    prices:
      - model: "mistral-7b*"      # exact model name or a glob
        input_per_mtok: 0.10      # USD per million input tokens
        output_per_mtok: 0.20     # USD per million output tokens
        cache_read_per_mtok: 0.05 # optional, for cached input tokens

Hosted endpoints are priced from genai-prices (bundled data, no network), matched by the endpoint's URL and the
model name, at the request's own start time (some prices depend on the time of day). Self-hosted endpoints
(vLLM, SGLang, llama.cpp, Ollama, the mock server) have no price unless the override file gives one. Every cost
carries its source: ``override:<file>`` or ``genai-prices==<version>:<provider>/<model>``.
"""

from __future__ import annotations

import fnmatch
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from .yamlfile import load_yaml

logger = logging.getLogger(__name__)

_RATE_KEYS = ("input_per_mtok", "output_per_mtok", "cache_read_per_mtok")


class PriceFileError(ValueError):
    """A price file that cannot be used; ``str()`` is one line naming the file, the entry and the fix."""


@dataclass(frozen=True)
class Rate:
    pattern: str
    input_per_mtok: float
    output_per_mtok: float
    cache_read_per_mtok: float | None = None

    def cost(self, input_tokens: int, output_tokens: int, cached_tokens: int) -> float:
        cache_rate = self.input_per_mtok if self.cache_read_per_mtok is None else self.cache_read_per_mtok
        uncached = max(0, input_tokens - cached_tokens)
        return (
            uncached * self.input_per_mtok + cached_tokens * cache_rate + output_tokens * self.output_per_mtok
        ) / 1e6


def load_price_file(path: str | Path) -> list[Rate]:
    path = Path(path)
    data = load_yaml(path, PriceFileError, "price file", "--prices")
    if not isinstance(data, dict) or not isinstance(data.get("prices"), list):
        raise PriceFileError(f"{path}: no 'prices:' list; start the file with 'prices:' and a list of entries")
    if set(data) - {"prices"}:
        raise PriceFileError(f"{path}: unknown top-level key(s) {sorted(map(str, set(data) - {'prices'}))}; only "
                             "'prices' is allowed")
    rates = []
    for i, item in enumerate(data["prices"], 1):
        where = f"{path}: prices entry #{i}"
        if not isinstance(item, dict) or not isinstance(item.get("model"), str):
            raise PriceFileError(f"{where}: missing 'model'; give the model name or a glob such as 'llama-3*'")
        unknown = set(item) - {"model", *_RATE_KEYS}
        if unknown:
            raise PriceFileError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: model, {', '.join(_RATE_KEYS)}")
        values = {}
        for key in _RATE_KEYS:
            v = item.get(key)
            if v is None and key != "cache_read_per_mtok":
                raise PriceFileError(f"{where}: missing '{key}'; give the USD price per million tokens")
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or v < 0):
                raise PriceFileError(f"{where}: '{key}' must be a number >= 0 (got {v!r})")
            values[key] = None if v is None else float(v)
        rates.append(Rate(item["model"], **values))
    return rates


class PriceBook:
    """Prices requests of one endpoint and model family. ``cost()`` returns ``(usd, source)`` or ``(None, None)``."""

    def __init__(self, host: str, price_file: str | Path | None = None) -> None:
        self.host = host
        self.price_file = str(price_file) if price_file else None
        self.rates = load_price_file(price_file) if price_file else []
        self._unpriced: set[str] = set()
        try:
            self._genai_version = metadata.version("genai-prices")
        except metadata.PackageNotFoundError:  # pragma: no cover - it is a dependency
            self._genai_version = None

    def _override(self, model: str) -> Rate | None:
        for rate in self.rates:
            if rate.pattern == model or fnmatch.fnmatchcase(model, rate.pattern):
                return rate
        return None

    def cost(
        self,
        model: str,
        input_tokens: int | None,
        output_tokens: int | None,
        cached_tokens: int | None,
        start: float,
        provider_id: str | None = None,
    ) -> tuple[float | None, str | None]:
        """Price one request; ``provider_id`` (genai-prices' id) when known, else the provider is matched by the
        endpoint's URL (so self-hosted endpoints stay unpriced)."""
        if input_tokens is None or output_tokens is None:
            return None, None
        rate = self._override(model)
        if rate is not None:
            return rate.cost(input_tokens, output_tokens, cached_tokens or 0), f"override:{self.price_file}"
        key = f"{provider_id}/{model}"
        if self._genai_version is None or key in self._unpriced:
            return None, None
        from genai_prices import Usage, calc_price

        try:
            calc = calc_price(
                Usage(input_tokens=input_tokens, output_tokens=output_tokens, cache_read_tokens=cached_tokens or None),
                model,
                provider_id=provider_id,
                provider_api_url=None if provider_id else self.host,
                genai_request_timestamp=datetime.fromtimestamp(start, UTC),
            )
        except LookupError:
            self._unpriced.add(key)
            logger.info("No price known for model %r at %s: cost is left empty (see --prices)", model, self.host)
            return None, None
        return float(calc.total_price), f"genai-prices=={self._genai_version}:{calc.provider.id}/{calc.model.id}"
