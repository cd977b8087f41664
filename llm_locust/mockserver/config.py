"""Settings of the mock LLM server: the :class:`MockConfig` dataclass and its command line.

Every field of :class:`MockConfig` is also a CLI flag of ``python -m llm_locust.mockserver``
with the same name (underscores become dashes: ``ttft_ms`` -> ``--ttft-ms``).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields

from llm_locust.mockserver.faults import FAULT_KINDS


@dataclass
class MockConfig:
    """How the mock server behaves. All times are in milliseconds unless the name says otherwise."""

    host: str = "127.0.0.1"
    port: int = 0  # 0 = let the OS pick a free port
    ttft_ms: float = 50.0  # time from the request being read to the first token
    ttft_per_active_ms: float = 0.0  # added to TTFT per other generation request in flight (a queue model)
    itl_ms: float = 10.0  # inter-token latency, per token (a chunk of k tokens follows k * itl_ms later)
    output_tokens: int = 64  # tokens per response (where the model "stops"), unless the request asks for fewer
    early_eos: float = 0.0  # share of replies that stop early, at a length drawn per request (0-1)
    tokens_per_chunk: int = 1  # tokens carried by each streamed chunk
    jitter_ms: float = 0.0  # uniform +-jitter added to every scheduled send time (deterministic per request)
    seed: int = 0  # seed of the jitter; request number n uses random.Random(f"{seed}:{n}")
    continuous_usage: bool = False  # every streamed chunk carries the cumulative usage (vLLM style)
    reasoning_tokens: int = 0  # the first R output tokens are reasoning tokens, unless the request turns it off
    thinking_tokens: int = 8  # reasoning tokens of a reply whose request asks for reasoning (at most its budget)
    keepalive_ms: float = 0.0  # SSE keep-alive (comment; Anthropic: ping) every K ms before the first token; 0 = off
    send_log: str | None = None  # append one JSON line per generation request to this file
    fault: str | None = None  # one of FAULT_KINDS, or None
    fault_every: int = 1  # fault generation requests number N, 2N, 3N, ... (global counter from 1)
    fault_after_tokens: int = 2  # tokens sent before a mid-stream fault
    fault_model: str | None = None  # only requests whose model name contains this text are faulted
    retry_after: int = 2  # seconds, for the Retry-After header (Gemini: RetryInfo) of status-429
    no_usage: bool = False  # never send usage / token counts, in any protocol
    fail_steps: int = 0  # the gateway's universal endpoint treats its first N steps as failed
    gateway_token: str | None = None  # gateway requests need "cf-aig-authorization: Bearer TOKEN"
    api_key: str | None = None  # generation requests need this key (Authorization: Bearer, x-api-key, x-goog-api-key)
    prefix_cache_blocks: int = 0  # prompt-prefix blocks remembered (LRU) for usage cached_tokens; 0 = off
    prefix_block_tokens: int = 16  # prompt words per prefix-cache block
    max_batch: int = 0  # at most B generation requests run at once; the others queue (FIFO); 0 = no limit
    verbose: bool = False  # log every request to stderr

    def __post_init__(self) -> None:
        if self.fault is not None and self.fault not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.fault!r}; choose from {', '.join(FAULT_KINDS)}")
        for name in ("ttft_ms", "ttft_per_active_ms", "itl_ms", "jitter_ms", "keepalive_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        for name in ("output_tokens", "reasoning_tokens", "thinking_tokens", "fault_after_tokens", "retry_after",
                     "port", "fail_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if not 0.0 <= self.early_eos <= 1.0:
            raise ValueError("early_eos must be a share from 0 to 1")
        for name in ("prefix_cache_blocks", "max_batch"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.prefix_block_tokens < 1:
            raise ValueError("prefix_block_tokens must be >= 1")
        if self.tokens_per_chunk < 1:
            raise ValueError("tokens_per_chunk must be >= 1")
        if self.fault_every < 1:
            raise ValueError("fault_every must be >= 1")


_HELP = {
    "host": "address to listen on (default %(default)s)",
    "port": "port to listen on; 0 picks a free port (default %(default)s)",
    "ttft_ms": "time to first token in ms, from the request being fully read (default %(default)s)",
    "ttft_per_active_ms": "queue model: TTFT grows by this many ms for every other generation request in flight "
    "when a request arrives, so latency grows with load (default %(default)s = off)",
    "itl_ms": "inter-token latency in ms, per token (default %(default)s)",
    "output_tokens": "output tokens per response; the request's max_tokens / num_predict can lower it "
    "(default %(default)s)",
    "early_eos": "share of replies (0-1) that stop early (finish_reason stop) at a length drawn per request from "
    "1 .. the reply's length - 1 (seeded by --seed), as a model's end-of-sequence would; a request's ignore_eos "
    "or min_tokens (vLLM, SGLang) holds it off, and with ignore_eos a reply runs to its max_tokens even beyond "
    "--output-tokens (default %(default)s = never)",
    "prefix_cache_blocks": "remember the prompt prefixes seen, as this many blocks of --prefix-block-tokens words "
    "(least recently used dropped), and report the words of a prompt's longest prefix seen before as "
    "usage.prompt_tokens_details.cached_tokens (OpenAI chat and completions) (default %(default)s = off)",
    "prefix_block_tokens": "prompt words per prefix-cache block; only whole blocks count as cached "
    "(default %(default)s)",
    "max_batch": "queue model: at most B generation requests are served at once, the others wait in arrival "
    "order and their TTFT includes the wait (default %(default)s = no limit)",
    "tokens_per_chunk": "tokens per streamed chunk; chunks are tokens_per_chunk * itl_ms apart (default %(default)s)",
    "jitter_ms": "uniform +-jitter in ms added to every scheduled send time, seeded per request (default %(default)s)",
    "seed": "seed of the jitter (default %(default)s)",
    "continuous_usage": "every streamed chunk carries the cumulative usage so far (vLLM continuous_usage_stats)",
    "reasoning_tokens": "the first R output tokens of every reply are reasoning tokens (reasoning_content / "
    "thinking), a model that always reasons; a request that turns reasoning off gets none (default %(default)s)",
    "thinking_tokens": "reasoning tokens of a reply whose request asks for reasoning with its provider's switch "
    "(reasoning_effort, prompt_mode, Anthropic thinking, Gemini thinkingConfig, Ollama think), at most the "
    "request's budget (default %(default)s)",
    "keepalive_ms": "send an SSE ': keep-alive' comment (Anthropic: a ping event) every K ms before the first "
    "token; 0 = off (default %(default)s)",
    "send_log": "append one JSON line per generation request (real monotonic send times) to FILE",
    "fault": "inject a fault: " + ", ".join(FAULT_KINDS),
    "fault_every": "fault generation requests number N, 2N, 3N, ... (default %(default)s = every request)",
    "fault_after_tokens": "tokens sent before a mid-stream fault (default %(default)s)",
    "fault_model": "fault only requests whose model name contains this text (default: any model), e.g. to fail "
    "one provider of several",
    "retry_after": "Retry-After seconds sent with status-429 (Gemini/Vertex: the RetryInfo retryDelay) "
    "(default %(default)s)",
    "no_usage": "never send usage / token counts (OpenAI usage, Ollama eval counts, Anthropic usage, Gemini "
    "usageMetadata, Workers AI usage), to test a client's own token counting",
    "fail_steps": "the Cloudflare AI Gateway universal endpoint treats its first N steps as failed (5xx) and "
    "answers with step N (default %(default)s)",
    "gateway_token": "gateway routes (/v1/{account}/{gateway}/...) require 'cf-aig-authorization: Bearer TOKEN' "
    "(else 401)",
    "api_key": "generation requests must carry this key ('Authorization: Bearer KEY', 'x-api-key: KEY' or "
    "'x-goog-api-key: KEY'), else the protocol's own 401",
    "verbose": "log every request to stderr",
}


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``python -m llm_locust.mockserver``; one flag per :class:`MockConfig` field."""
    parser = argparse.ArgumentParser(
        prog="python -m llm_locust.mockserver",
        description="Deterministic fake LLM inference server for load tests: OpenAI, Ollama, Anthropic, Gemini, "
        "Vertex and Workers AI wire formats, and a Cloudflare AI Gateway in front of them.",
    )
    defaults = MockConfig()
    for f in fields(MockConfig):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        kwargs: dict = {"dest": f.name, "default": default, "help": _HELP[f.name]}
        if isinstance(default, bool):
            kwargs["action"] = "store_true"
        elif f.name == "fault":
            kwargs["choices"] = FAULT_KINDS
            kwargs["metavar"] = "KIND"
        elif f.name == "send_log":
            kwargs["metavar"] = "FILE"
        elif f.name == "gateway_token":
            kwargs["metavar"] = "TOKEN"
        elif f.name == "api_key":
            kwargs["metavar"] = "KEY"
        elif default is None:
            kwargs["type"] = str
        else:
            kwargs["type"] = type(default)
        parser.add_argument(flag, **kwargs)
    return parser


def config_from_args(argv: list[str] | None = None) -> MockConfig:
    """Parse CLI arguments (default: ``sys.argv[1:]``) into a :class:`MockConfig`."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    try:
        return MockConfig(**vars(ns))
    except ValueError as exc:
        parser.error(str(exc))
        raise  # unreachable: parser.error exits
