"""Everything one test run needs, resolved once from the options at ``test_start``.

A :class:`LLMRun` holds the prompts, the wire protocol, the model, the API key, the token counter, the price book
and the recorder. It is built when a run starts (on a worker that is after the master's options have arrived) and
hung on the Locust environment, where the users find it with :func:`current_run`.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .prompts import Prompt
from .protocols import Protocol, get_protocol
from .tokens import TokenCounter

if TYPE_CHECKING:
    from .pricing import PriceBook
    from .recorder import Recorder

ATTR = "llm_run"


@dataclass
class Prepared:
    """A prompt turned into bytes once, so nothing is serialised on the request path."""

    path: str
    body: bytes
    headers: dict[str, str]
    input_tokens_local: int


@dataclass
class LLMRun:
    run_id: str
    api: str
    host: str
    model: str
    prompts: list[Prompt]
    api_key: str | None
    token_limit: int | None
    timeout: float
    continuous_usage: bool
    tokens: TokenCounter
    prices: PriceBook
    recorder: Recorder
    live: Any = None  # the LiveView, on a local runner or a master
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    _prepared: dict[tuple[str, str, str], Prepared] = field(default_factory=dict)
    _protocols: dict[tuple[str, str], Protocol] = field(default_factory=dict)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _id_prefix: str = field(default_factory=lambda: f"{os.getpid():x}{secrets.token_hex(2)}")

    def __post_init__(self) -> None:
        self._weights = [p.weight for p in self.prompts]

    def pick(self, rng: random.Random | None = None) -> Prompt:
        return (rng or random).choices(self.prompts, weights=self._weights)[0]

    def protocol(self, api: str | None = None, host: str | None = None) -> Protocol:
        key = (api or self.api, host or self.host)
        proto = self._protocols.get(key)
        if proto is None:
            proto = get_protocol(key[0])(key[1], self.model, continuous_usage=self.continuous_usage)
            self._protocols[key] = proto
        return proto

    def prepare(self, proto: Protocol, prompt: Prompt) -> Prepared:
        key = (proto.name, proto.host, prompt.name)
        prep = self._prepared.get(key)
        if prep is None:
            limit = prompt.token_limit or self.token_limit
            headers = {
                "Content-Type": "application/json",
                "Accept": "application/x-ndjson" if proto.framing == "ndjson" else "text/event-stream",
                "Accept-Encoding": "identity",
                **proto.headers(self.api_key),
            }
            body = json.dumps(proto.body(prompt, limit), ensure_ascii=False).encode()
            local_in = self.tokens.count("\n".join(m["content"] for m in prompt.chat_messages()))
            prep = Prepared(proto.request_path(), body, headers, local_in)
            self._prepared[key] = prep
        return prep

    def warm_up(self) -> None:
        """Do every first-time cost (imports, tokenizer, price lookup, request bodies) before any stream is open,
        so that no user's first request stalls the event loop while other users are timing their streams."""
        proto = self.protocol()
        for prompt in self.prompts:
            self.prepare(proto, prompt)
        self.tokens.count("warm up")
        self.prices.cost(self.model, 1, 1, 0, time.time())
        import numpy  # noqa: F401  (the report's dependency, imported now rather than mid-run)

    def next_request_id(self) -> str:
        return f"{self._id_prefix}-{next(self._ids)}"

    def secrets(self) -> tuple[str, ...]:
        return (self.api_key,) if self.api_key else ()


def new_run_id() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S")


def current_run(environment: Any) -> LLMRun:
    run = getattr(environment, ATTR, None)
    if run is None:
        raise RuntimeError(
            "llm-locust is not set up in this Locust process: import llm_locust.plugin in your locustfile "
            "(the bundled locustfile.py does)"
        )
    return run
