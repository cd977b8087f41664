"""Prefix-cache accounting of the mock server (``--prefix-cache-blocks``), and its batch queue (``--max-batch``).

:class:`MockPrefixCache` remembers the prompt prefixes it has seen the way vLLM's automatic prefix caching does,
by whole blocks: a prompt's words (its messages' contents in order, or a completion prompt) are cut into blocks of
``--prefix-block-tokens`` words; block ``i`` is known by a hash of blocks ``0 .. i``, so a block only matches after
the same prefix. :meth:`~MockPrefixCache.cached` returns the words of the prompt's longest prefix of whole blocks
seen before (the reply's ``usage.prompt_tokens_details.cached_tokens``) and remembers the prompt's blocks; at most
``--prefix-cache-blocks`` blocks are kept, the least recently used dropped first. A multi-turn conversation, whose
every request repeats the previous one and its answer, shows its history as cached. Nothing is computed faster:
the timing model is the same with or without a hit.

:class:`MockBatchQueue` is the ``--max-batch`` queue model: at most B generation requests are served at once; a
request that finds B running waits, in arrival order, and its schedule (TTFT) starts when it is admitted, so the
wait is part of the TTFT the client sees. A closed loop of at most B users never waits; an open loop faster than
the server's rate builds a queue whose wait grows while the arrivals keep coming (see docs/metrics.md).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

from gevent.lock import Semaphore


def prompt_words(body: Any) -> list[str]:
    """The words of an OpenAI chat (``messages``) or completions (``prompt``) request, in order."""
    if not isinstance(body, dict):
        return []
    messages = body.get("messages")
    if isinstance(messages, list):
        words: list[str] = []
        for m in messages:
            if not isinstance(m, dict):
                continue
            content = m.get("content")
            if isinstance(content, list):
                content = " ".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
            words.append(f"<{m.get('role')}>")  # the role marker: the same words as another role are another prefix
            words += str(content or "").split()
        return words
    prompt = body.get("prompt")
    return prompt.split() if isinstance(prompt, str) else []


class MockPrefixCache:
    """Whole-block prompt prefixes seen so far, at most ``blocks`` of them (LRU)."""

    def __init__(self, blocks: int, block_tokens: int = 16) -> None:
        self.capacity = blocks
        self.block = block_tokens
        self._seen: OrderedDict[int, None] = OrderedDict()
        self.hits = 0  # requests that found a prefix

    def cached(self, words: list[str]) -> int:
        """Words of the longest prefix of whole blocks seen before; the prompt's blocks are remembered."""
        b = self.block
        seen = self._seen
        h = 0
        cached = 0
        matching = True
        for i in range(len(words) // b):
            h = hash((h, *words[i * b : (i + 1) * b]))
            if h in seen:
                seen.move_to_end(h)
                if matching:
                    cached += b
            else:
                matching = False
                seen[h] = None
                if len(seen) > self.capacity:
                    seen.popitem(last=False)
        if cached:
            self.hits += 1
        return cached


class MockBatchQueue:
    """At most ``size`` generation requests served at once (``--max-batch``); the rest wait in arrival order."""

    def __init__(self, size: int) -> None:
        self._slots = Semaphore(size)
        self.waiting = 0

    def admit(self) -> int:
        """Wait for a slot; return when it was taken (``perf_counter_ns``): the request's schedule starts then."""
        if self._slots.locked():
            self.waiting += 1
            try:
                self._slots.acquire()
            finally:
                self.waiting -= 1
        else:
            self._slots.acquire()
        return time.perf_counter_ns()

    def release(self) -> None:
        self._slots.release()
