"""Everything one test run needs, resolved once from the options at ``test_start``.

A :class:`LLMRun` holds the prompts, the targets, the limits and the recorder; a :class:`Target` holds what one
endpoint needs: its wire protocol, model, API key, token counter, price book and the request bodies, serialised
once. The run is built when a run starts (on a worker, after the master's options have arrived) and hung on the
Locust environment, where the users find it with :func:`current_run`.
"""

from __future__ import annotations

import base64
import bisect
import itertools
import json
import os
import random
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit, urlunsplit

from . import requestid, sessions
from .backoff import Policy
from .bookkeeper import Bookkeeper
from .pricing import PriceBook, Rate
from .prompts import Prompt
from .protocols import Protocol, get_protocol
from .reasoning import Reasoning, pick
from .targets import TargetSpec
from .tokens import TokenCounter
from .warmup import Warmup

if TYPE_CHECKING:
    from .recorder import Recorder

ATTR = "llm_run"


@dataclass
class Prepared:
    """A prompt turned into bytes once, so nothing is serialised on the request path."""

    url: str  # absolute: a user may talk to several targets
    body: bytes
    headers: dict[str, str]
    input_tokens_local: int
    #: with ``--fixed-output``: the output length asked for (the token limit), else None
    output_tokens_asked: int | None = None


class Target:
    """One endpoint of the run: protocol, model, key, tokenizer, prices and prepared requests."""

    def __init__(
        self,
        spec: TargetSpec,
        *,
        api_key: str | None,
        price_file: str | None,
        continuous_usage: bool,
        template: str | None = None,
        reasoning: Reasoning | None = None,
        fixed_output: bool = False,
    ) -> None:
        self.spec = spec
        self.fixed_output = fixed_output  # --fixed-output: ask for exactly the token limit
        self.reasoning = reasoning  # the --reasoning option; the target's and a prompt's own setting win
        self.name = spec.name
        #: the host without a ``user:password@`` part, which goes out as basic auth instead (and is never shown)
        self.host, self.basic_auth, host_secrets = split_credentials(spec.host)
        self.model = spec.model
        self.api_key = api_key
        self.protocol: Protocol = get_protocol(spec.api)(
            self.host, spec.model, continuous_usage=continuous_usage, template=template
        )
        self.tokens = TokenCounter(spec.model)
        self.prices = PriceBook(self.host, price_file)
        if spec.prices:
            self.prices.rates.insert(0, Rate(spec.model, **spec.prices))
            self.prices.price_file = f"targets:{spec.name}"
        self._prepared: dict[tuple[str, str, int | None], Prepared] = {}
        #: per session template (id): local token counts of its system prompt and messages, and of each turn
        self.turn_counts: dict[int, tuple[int, tuple[int, ...]]] = {}
        #: session turns' requests made ahead (id of the turn's prompt -> (prompt, request)); the prompt is kept, so
        #: its id stays its own while the entry lives
        self._turn_bodies: dict[int, tuple[Prompt, Prepared]] = {}
        #: every credential this target sends: removed from error messages and anything else the run shows
        self.secrets: tuple[str, ...] = tuple(dict.fromkeys([*([api_key] if api_key else []),
                                                             *self.protocol.secrets(api_key),
                                                             *host_secrets]))

    def prepare(self, prompt: Prompt, default_limit: int | None) -> Prepared:
        """The request for ``prompt``, made once per (name, text, limit); a session's turn (``prompt.session``) is
        made each time, its local count given (``prompt.tokens_local``: nothing is tokenized per request)."""
        if prompt.session is not None:
            made = self._turn_bodies.pop(id(prompt), None)
            if made is not None and made[0] is prompt:
                return made[1]
            return self._build(prompt, default_limit, prompt.tokens_local or 0)
        key = (prompt.name, prompt.text, prompt.token_limit)
        prep = self._prepared.get(key)
        if prep is None:
            local_in = self.tokens.count("\n".join(m["content"] for m in prompt.chat_messages()))
            prep = self._prepared[key] = self._build(prompt, default_limit, local_in)
        return prep

    def prebuild(self, prompt: Prompt, default_limit: int | None) -> None:
        """Make a session turn's request ahead of its sending (llm_locust.sessions); :meth:`prepare` hands it out."""
        self._turn_bodies[id(prompt)] = (prompt, self._build(prompt, default_limit, prompt.tokens_local or 0))

    def forget(self, prompt: Prompt) -> None:
        """Drop the request made ahead for ``prompt`` (its session ended without sending it)."""
        self._turn_bodies.pop(id(prompt), None)

    def _build(self, prompt: Prompt, default_limit: int | None, local_in: int) -> Prepared:
        proto = self.protocol
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/x-ndjson" if proto.framing == "ndjson" else "text/event-stream",
            "Accept-Encoding": "identity",
            **proto.headers(self.api_key),
        }
        if self.basic_auth and not any(k.lower() == "authorization" for k in headers):  # an API key wins
            headers["Authorization"] = self.basic_auth
        reasoning = pick(prompt.reasoning, self.spec.reasoning, self.reasoning)
        extra = [e for e in (self.spec.extra_body, prompt.extra_body) if e]
        limit = prompt.token_limit or default_limit
        asked = limit if self.fixed_output and limit else None
        fixed = proto.fixed_output(asked) if asked else None
        if fixed:
            extra.insert(0, fixed)  # a target's or a prompt's extra_body can still override them
        fields = proto.request_body(prompt, limit, reasoning, extra)
        body = json.dumps(fields, ensure_ascii=False).encode()
        return Prepared(self.host.rstrip("/") + proto.request_path(), body, headers, local_in, asked)


class Plan:
    """A fixed number of requests per target (``--max-requests``): each target's prompts in file order, again and
    again, N requests in all. Users bound to a target take its next prompt; unbound users (fewer users than
    targets) drain the targets one after the other."""

    def __init__(self, targets: list[Target], prompts: list[Prompt], n: int) -> None:
        self.targets = targets
        self.queues = {t.name: deque(prompts[i % len(prompts)] for i in range(n)) for t in targets}
        self.in_flight = 0

    def take(self, target: Target | None) -> tuple[Target, Prompt] | None:
        for t in [target] if target is not None else self.targets:
            queue = self.queues.get(t.name)
            if queue:
                return t, queue.popleft()
        return None

    @property
    def done(self) -> bool:
        return self.in_flight == 0 and not any(self.queues.values())


@dataclass
class LLMRun:
    run_id: str
    targets: list[Target]
    prompts: list[Prompt]
    token_limit: int | None
    timeout: float
    recorder: Recorder
    max_requests: int | None = None
    max_response_bytes: int | None = None  # a response body beyond this is cut and fails (None: no limit)
    users: int | None = None  # the run's user count where known (headless); decides whether users bind to targets
    backoff: Policy = field(default_factory=Policy)  # each user's wait after a failure (llm_locust.backoff)
    warmup: Warmup = field(default_factory=Warmup)  # which requests are --warmup (llm_locust.warmup)
    live: Any = None  # the LiveView, on a local runner or a master
    arrivals: Any = None  # open loop: the Dispatcher (local runner, worker) or RateSplit (master); llm_locust.arrivals
    server: Any = None  # the server's scraped metrics (llm_locust.servermetrics.ServerMetrics), local runner or master
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    #: start order of this process's users (``--stagger``)
    started_users: Any = field(default_factory=itertools.count)
    #: runs the per-request tails off the streams' critical path (llm_locust.bookkeeper)
    books: Bookkeeper = field(default_factory=Bookkeeper)
    #: where the prompts came from (llm_locust.sources): summary.json's run.prompt_source
    prompt_source: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        #: cumulative weights, summed once: ``pick`` is a bisection, and draws as ``random.choices`` with these
        #: weights does (the same prompt for the same random number)
        self._cum_weights = list(itertools.accumulate(p.weight for p in self.prompts))
        #: a prompt is a multi-turn session template: users keep session state (llm_locust.sessions)
        self.has_sessions = any(p.turns for p in self.prompts)
        # users are dealt to targets in turn, each target as often as its weight (rounded, at least once)
        order = [t for t in self.targets for _ in range(max(1, round(t.spec.weight)))]
        self._deal = itertools.cycle(order)
        self.plan = Plan(self.targets, self.prompts, self.max_requests) if self.max_requests else None
        #: users stick to one target unless a fixed plan has fewer users than targets
        self.bind_users = self.plan is None or (self.users or 0) >= len(self.targets)
        self._secrets: tuple[str, ...] | None = None
        #: set at test stop: a user Locust creates after it (a worker's spawn message still on its way when the
        #: worker quit at the end of its share of --max-requests) sends nothing and stops
        self.stopped = False

    @property
    def model(self) -> str:
        return self.targets[0].model if len(self.targets) == 1 else ",".join(t.model for t in self.targets)

    @property
    def host(self) -> str:
        return self.targets[0].host if len(self.targets) == 1 else ",".join(t.host for t in self.targets)

    @property
    def api(self) -> str:
        apis = dict.fromkeys(t.protocol.name for t in self.targets)
        return ",".join(apis)

    def pick(self, rng: random.Random | None = None) -> Prompt:
        cum = self._cum_weights
        return self.prompts[bisect.bisect(cum, (rng or random).random() * cum[-1], 0, len(cum) - 1)]

    def deal_target(self) -> Target:
        return next(self._deal)

    def target_for_api(self, api: str) -> Target:
        """A target speaking ``api`` (for user classes that fix their protocol), made from the first target."""
        for t in self.targets:
            if t.protocol.name == api:
                return t
        base = self.targets[0]
        spec = TargetSpec(name=api, api=api, host=base.host, model=base.model, key_env=base.spec.key_env)
        key_env = get_protocol(api).key_env
        api_key = base.api_key or (os.environ.get(key_env) if key_env else None)
        target = Target(spec, api_key=api_key, price_file=base.prices.price_file, continuous_usage=False,
                        reasoning=base.reasoning, fixed_output=base.fixed_output)
        self.targets.append(target)
        return target

    def warm_up(self) -> None:
        """Do every first-time cost (imports, tokenizer, price lookup, request bodies) before any stream is open,
        so that no user's first request stalls the event loop while other users are timing their streams."""
        for target in self.targets:
            for prompt in self.prompts:
                target.prepare(prompt, self.token_limit)
            sessions.count_turns(target, self.prompts)
            target.tokens.count("warm up")
            provider_id, model = target.protocol.price_ref()
            target.prices.cost(model, 1, 1, 0, time.time(), provider_id)
        import numpy  # noqa: F401  (the report's dependency, imported now rather than mid-run)

    def next_request_id(self) -> str:
        """A fresh uuid4 string (:mod:`llm_locust.requestid`): unique across processes and runs, and accepted by
        servers that insist on UUIDs."""
        return requestid.new()

    def secrets(self) -> tuple[str, ...]:
        """Every credential the run's targets send (keys, tokens, ``Authorization`` values); read per request, so
        collected once."""
        if self._secrets is None:
            self._secrets = tuple(dict.fromkeys(s for t in self.targets for s in t.secrets))
        return self._secrets


def split_credentials(host: str) -> tuple[str, str | None, tuple[str, ...]]:
    """``host`` without its ``user:password@`` part; that part as a basic-auth ``Authorization`` value
    (percent-decoded, as ``FastHttpSession`` reads it), or None when it has none; and the secrets it carries (the
    password as written and decoded, and the header value)."""
    parts = urlsplit(host)
    if parts.username is None:
        return host, None, ()
    userinfo, _, netloc = parts.netloc.rpartition("@")
    password = userinfo.partition(":")[2]
    auth = "Basic " + base64.b64encode(f"{unquote(parts.username)}:{unquote(password)}".encode()).decode()
    secrets = tuple(dict.fromkeys(s for s in (password, unquote(password), auth) if s))
    return urlunsplit(parts._replace(netloc=netloc)), auth, secrets


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
