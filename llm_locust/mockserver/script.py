"""What the mock server says and when: the output words and the send schedule of one request.

Output text: token ``i`` is ``WORDS[i % len(WORDS)]``, a very common English word with a leading
space that is exactly one token in tiktoken's ``o200k_base``, ``cl100k_base`` and ``p50k_base``, so
the text of N tokens re-tokenizes to exactly N tokens.

Schedule: every send time is an absolute ``time.perf_counter_ns()`` target (CLOCK_MONOTONIC on
Linux, shared by all processes), so errors never accumulate: the first token is due at
``t_recv + ttft`` and the chunk whose first token has index ``i`` at ``t_first + i * itl``
(so chunks of k tokens are ``k * itl`` apart). Reasoning tokens come first and are chunked
separately from content tokens, so a chunk is either all reasoning or all content. Jitter, if
any, is a uniform offset in ``[-jitter, +jitter]`` added to each ideal send time (so TTFT varies by
up to +-jitter and each gap by up to +-2 jitter, with no drift), drawn from
``random.Random(f"{seed}:{seq}")`` (deterministic per request number) and clamped so that send
times never go backwards nor before ``t_recv``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import gevent

from llm_locust.mockserver.config import MockConfig

#: One-token words (with their leading space) in o200k_base, cl100k_base and p50k_base.
WORDS: tuple[str, ...] = (
    " the", " of", " and", " to", " in", " is", " that", " it", " for", " on",
    " with", " as", " was", " at", " by", " this", " be", " from", " or", " are",
)

assert all(w[1:].isalpha() and w[1:].isascii() for w in WORDS)  # they need no JSON escaping


def token_text(start: int, count: int) -> str:
    """The text of tokens ``start .. start + count - 1``."""
    n = len(WORDS)
    if count == 1:
        return WORDS[start % n]
    return "".join([WORDS[i % n] for i in range(start, start + count)])


def count_words(text: str) -> int:
    """Prompt tokens as the mock server counts them: whitespace-separated words."""
    return len(text.split())


class Chunk(NamedTuple):
    """One token-bearing chunk: send at ``target_ns`` tokens ``start .. start + count - 1``."""

    target_ns: int
    start: int
    count: int
    reasoning: bool


@dataclass(frozen=True, slots=True)
class Script:
    """The output of one request and when to send each chunk of it. Chunks are made lazily."""

    tokens: int  # output tokens, reasoning included
    reasoning_tokens: int
    finish_reason: str  # "length" if the request's limit cut the output, else "stop"
    first_target_ns: int  # when the first token is due (when the reply ends, if there are no tokens)
    tokens_per_chunk: int
    itl_ns: int
    jitter_ns: int
    rng_seed: str
    t_recv_ns: int
    ttft_ns: int

    def chunks(self) -> Iterator[Chunk]:
        """The chunks in send order: reasoning chunks, then content chunks."""
        n, r, k = self.tokens, self.reasoning_tokens, self.tokens_per_chunk
        itl, first = self.itl_ns, self.first_target_ns
        if not self.jitter_ns:
            for start in range(0, r, k):
                yield Chunk(first + start * itl, start, min(k, r - start), True)
            for start in range(r, n, k):
                yield Chunk(first + start * itl, start, min(k, n - start), False)
            return
        jitter = self.jitter_ns
        rng = random.Random(self.rng_seed)
        rng.randint(-jitter, jitter)  # the draw that moved the first token (see make_script)
        base = self.t_recv_ns + self.ttft_ns  # the ideal first-token time, before its jitter
        prev = first
        for lo, hi, is_reasoning in ((0, r, True), (r, n, False)):
            for start in range(lo, hi, k):
                target = max(prev, base + start * itl + rng.randint(-jitter, jitter)) if start else first
                yield Chunk(target, start, min(k, hi - start), is_reasoning)
                prev = target

    def last_target_ns(self) -> int:
        """When the last token is due (``first_target_ns`` if there are no tokens). Walks all chunks."""
        last = self.first_target_ns
        for chunk in self.chunks():
            last = chunk.target_ns
        return last


def reply_length(
    cfg: MockConfig, seq: int, limit: int | None, ignore_eos: bool = False, min_tokens: int | None = None
) -> tuple[int, str]:
    """(output tokens, finish reason) of request number ``seq``.

    The model "stops" (end of sequence, ``stop``) after ``--output-tokens`` tokens, or, for a share ``--early-eos``
    of the requests, earlier, at a length drawn from 1 .. output_tokens - 1 (``random.Random(f"{seed}:{seq}:eos")``).
    ``ignore_eos`` (vLLM, SGLang, llama.cpp) removes that stop: the reply runs to its limit (``--output-tokens``
    without one); ``min_tokens`` holds it off until that many tokens. The request's ``limit`` cuts the reply
    (``length``) where it is not above that length."""
    n = cfg.output_tokens
    if ignore_eos:
        n = limit if limit is not None else n
    elif cfg.early_eos and n > 1:
        rng = random.Random(f"{cfg.seed}:{seq}:eos")
        if rng.random() < cfg.early_eos:
            n = rng.randint(1, n - 1)
    if min_tokens:
        n = max(n, min_tokens)
    if limit is not None and limit <= n:
        return max(limit, 0), "length"
    return n, "stop"


def make_script(
    cfg: MockConfig, t_recv_ns: int, seq: int, limit: int | None = None, reasoning: int | None = None, others: int = 0,
    ignore_eos: bool = False, min_tokens: int | None = None,
) -> Script:
    """Plan the reply to request number ``seq`` that was fully read at ``t_recv_ns``.

    ``limit`` is the request's own cap on output tokens (``max_tokens``, ``num_predict``), if any;
    ``reasoning`` the reasoning tokens the reply starts with (default ``cfg.reasoning_tokens``; at most all of them);
    ``others``: the other generation requests in flight when this one arrived (TTFT grows by ``ttft_per_active_ms``
    for each: a queue model); ``ignore_eos``, ``min_tokens``: the request's (see :func:`reply_length`).
    """
    n, finish = reply_length(cfg, seq, limit, ignore_eos, min_tokens)
    r = min(cfg.reasoning_tokens if reasoning is None else reasoning, n)
    jitter_ns = int(cfg.jitter_ms * 1e6)
    seed = f"{cfg.seed}:{seq}"
    ttft_ns = int((cfg.ttft_ms + cfg.ttft_per_active_ms * max(others, 0)) * 1e6)
    first = t_recv_ns + ttft_ns
    if jitter_ns:
        first = max(t_recv_ns, first + random.Random(seed).randint(-jitter_ns, jitter_ns))
    itl_ns = int(cfg.itl_ms * 1e6)
    return Script(n, r, finish, first, cfg.tokens_per_chunk, itl_ns, jitter_ns, seed, t_recv_ns, ttft_ns)


def sleep_until(target_ns: int) -> None:
    """Cooperatively sleep until ``time.perf_counter_ns() >= target_ns``; never returns early.

    gevent timers run on the event loop's cached clock and (with the epoll backend) whole
    milliseconds, so a wake-up can be early or up to ~1 ms late; early wake-ups sleep again.
    If the target has already passed (the server is overloaded) it still yields once, so that
    late streams cannot starve the rest of the server (accepting connections, other requests).
    """
    remaining = target_ns - time.perf_counter_ns()
    if remaining <= 0:
        gevent.sleep(0)
        return
    while remaining > 0:
        gevent.sleep(remaining * 1e-9)
        remaining = target_ns - time.perf_counter_ns()
