"""Synthetic prompts: texts of a drawn token length, made with the target's tokenizer at start-up.

A length is ``MEAN[,STDDEV]`` (``--input-tokens 512,64``, ``--output-tokens 128``, or the ``synthetic:`` entry of
a prompt file, see :mod:`llm_locust.prompts`): each prompt's length is drawn from a normal distribution of that
mean and standard deviation, rounded and kept within ``[1, MAX_TOKENS]`` (a standard deviation of 0, the default,
gives the mean every time). :func:`parse_length` reads one and raises :class:`LengthError` (one line naming the
problem and the fix) for a spec that cannot be met.

The text: words drawn at random from the tokenizer's own vocabulary, each a token that is a space and 3 to 12
lowercase ASCII letters (``" cosmos"``). tiktoken's pre-tokenizer splits text into such words before it merges
bytes, so a text of N of them is exactly N tokens in that encoding: no trimming, no re-encoding loop. Where the
model's tokenizer is known to tiktoken (:func:`llm_locust.tokens.encoding_name_for` knows the model name) the
length is **exact**; for other models the words come from ``o200k_base`` (common English words, about one token
each in most tokenizers) and the length is **estimated**; without tiktoken's files at all, from a small built-in
list of common words, also estimated. :class:`Vocabulary` says which (``exact``, ``source``).

The drawn output length is the prompt's ``token_limit`` (the ``max_tokens`` the request asks for); the drawn input
length is kept as the prompt's ``input_tokens_asked`` and lands in the record's column of that name.

Cost (measured on the 2-core dev VM under load): the vocabulary is built once per encoding (0.13-0.75 s for
o200k_base); a 512-token prompt costs one ``random.choices`` and a join (~80 µs), 1,000 of them 0.2 s, and the run's
warm-up counts each once with tiktoken (0.5 s for 1,000 × 512 tokens). ``POOL_TOKEN_BUDGET`` bounds both (and the
memory: ~6 bytes a token, twice with the prepared bodies). It all happens at start-up (:func:`synthetic_prompts`,
called when the run is built, before any user starts): nothing is tokenized or generated per request. Draws come
from the ``random.Random`` the caller passes (seeded by ``--seed``), so the same seed gives the same prompts.
"""

from __future__ import annotations

import functools
import math
import random
import re
from dataclasses import dataclass, replace

import gevent

from .prompts import Prompt
from .tokens import DEFAULT_ENCODING, _load, encoding_name_for

#: the longest synthetic prompt or answer, in tokens
MAX_TOKENS = 1_000_000
#: distinct synthetic prompts prepared per spec by default (fewer for long prompts: see :func:`pool_size`)
DEFAULT_POOL = 1000
#: tokens of synthetic prompt text kept in memory per spec, at most (bounds ``pool_size`` for long prompts)
POOL_TOKEN_BUDGET = 1_000_000
_WORD = re.compile(rb" [a-z]{3,12}")
#: common English words, about one token each in most tokenizers: the fallback without tiktoken's files
FALLBACK_WORDS: tuple[str, ...] = tuple(
    " " + w
    for w in (
        "the of and to in is that it for on with as was at by this be from or are you have not but they his her "
        "she he we can all there been if more when will would who so no out up into do time only new some could "
        "these two may first then any like now my such make over our even most me state after also made many did "
        "must before back see through way where get much go well your know should down work year because come "
        "people just say each those take day good how long little use very great world own last old life here"
    ).split()
)


class LengthError(ValueError):
    """A length spec that cannot be met; ``str()`` is one line with the problem and the fix."""


@dataclass(frozen=True)
class Length:
    """A token length: ``mean`` and ``stddev`` of a normal distribution, drawn lengths kept in ``[1, cap]``."""

    mean: int
    stddev: float = 0.0
    cap: int = MAX_TOKENS

    def draw(self, rng: random.Random) -> int:
        if not self.stddev:
            return self.mean
        return max(1, min(self.cap, round(rng.gauss(self.mean, self.stddev))))

    def __str__(self) -> str:
        return f"{self.mean}" if not self.stddev else f"{self.mean},{self.stddev:g}"


def parse_length(spec: object, flag: str, cap: int = MAX_TOKENS) -> Length:
    """``MEAN[,STDDEV]`` (a string, an int, or a ``[mean, stddev]`` list) as a :class:`Length`; see the module docs."""
    example = f"use e.g. {flag} 512 or {flag} 512,64 (mean, standard deviation; in tokens)"
    if isinstance(spec, bool):
        raise LengthError(f"{flag} must be MEAN[,STDDEV] in tokens (got {spec!r}); {example}")
    if isinstance(spec, int):
        parts: list[object] = [spec]
    elif isinstance(spec, list | tuple):
        parts = list(spec)
    elif isinstance(spec, str):
        parts = [p.strip() for p in spec.split(",")]
    else:
        raise LengthError(f"{flag} must be MEAN[,STDDEV] in tokens (got {spec!r}); {example}")
    try:
        if not 1 <= len(parts) <= 2 or any(isinstance(p, bool) for p in parts):
            raise ValueError
        mean_f = float(parts[0])  # type: ignore[arg-type]
        stddev = float(parts[1]) if len(parts) == 2 else 0.0  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise LengthError(f"{flag} must be MEAN[,STDDEV] in tokens (got {spec!r}); {example}") from None
    if not math.isfinite(mean_f) or mean_f != int(mean_f):
        raise LengthError(f"{flag}: the mean must be a whole number of tokens (got {parts[0]!r}); {example}")
    mean = int(mean_f)
    if mean <= 0:
        raise LengthError(f"{flag}: the mean must be at least 1 token (got {mean}); {example}")
    if mean > cap:
        raise LengthError(f"{flag}: the mean {mean:,} is over the cap of {cap:,} tokens; ask for a shorter length")
    if not (math.isfinite(stddev) and stddev >= 0):
        raise LengthError(f"{flag}: the standard deviation must be 0 or more (got {parts[1]!r}); {example}")
    return Length(mean, stddev, cap)


@dataclass(frozen=True)
class Spec:
    """A synthetic prompt spec: the input length, the output length (None: the prompt's own limit), the count."""

    input: Length
    output: Length | None = None
    count: int | None = None


@dataclass(frozen=True)
class Vocabulary:
    """The words synthetic prompts are made of, for one model (see the module docs)."""

    words: tuple[str, ...]
    source: str  # e.g. "tiktoken:o200k_base" or "estimate:common-words"
    exact: bool  # a text of N words is exactly N tokens of the model's tokenizer


def vocabulary(model: str) -> Vocabulary:
    """The vocabulary for ``model``: exact with a tokenizer tiktoken knows for it, else estimated."""
    import tiktoken.model

    bare = model.rsplit("/", 1)[-1]
    try:
        tiktoken.model.encoding_name_for_model(bare)
        known = True
    except KeyError:
        known = False
    name = encoding_name_for(model) if known else DEFAULT_ENCODING
    words = _encoding_words(name)
    if words:
        return Vocabulary(words, f"tiktoken:{name}", known)
    return Vocabulary(FALLBACK_WORDS, "estimate:common-words", False)


@functools.lru_cache(maxsize=4)
def _encoding_words(encoding: str) -> tuple[str, ...]:
    """Every token of ``encoding`` that is a space and 3-12 lowercase letters, in token order (empty: no tiktoken)."""
    enc = _load(encoding)
    if enc is None:
        return ()
    out = []
    for i in range(enc.n_vocab):
        try:
            b = enc.decode_single_token_bytes(i)
        except KeyError:  # holes in the id space
            continue
        if _WORD.fullmatch(b):
            out.append(b.decode("ascii"))
    return tuple(out)


def text_of(n: int, vocab: Vocabulary, rng: random.Random) -> str:
    """``n`` words of ``vocab`` drawn with ``rng``: ``n`` tokens (exactly, when ``vocab.exact``)."""
    return "".join(rng.choices(vocab.words, k=n))


def pool_size(mean_input: int, count: int | None = None) -> int:
    """How many distinct prompts a spec gets: ``count`` when given, else ``DEFAULT_POOL``, at most the number
    that keeps ``POOL_TOKEN_BUDGET`` tokens (at least 16)."""
    if count is not None:
        return count
    return max(16, min(DEFAULT_POOL, POOL_TOKEN_BUDGET // max(1, mean_input)))


def synthetic_prompts(base: Prompt, spec: Spec, vocab: Vocabulary, rng: random.Random) -> list[Prompt]:
    """``spec.count`` (or :func:`pool_size`) prompts like ``base`` (name, system, ...; its weight shared out among
    them), each with a text of a drawn input length and, when ``spec.output`` is given, a drawn ``token_limit``."""
    n = pool_size(spec.input.mean, spec.count)
    out = []
    for i in range(n):
        if i % 64 == 63:
            gevent.sleep(0)  # on a worker, at test start: let the master's heartbeats through
        asked = spec.input.draw(rng)
        limit = spec.output.draw(rng) if spec.output is not None else base.token_limit
        out.append(replace(base, text=text_of(asked, vocab, rng), token_limit=limit, weight=base.weight / n,
                           synthetic=None, input_tokens_asked=asked))
    return out
