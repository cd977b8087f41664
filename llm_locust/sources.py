"""Where a run's prompts come from: the prompt file, synthetic prompts or a dataset, resolved once per option set.

:func:`run_prompts` returns the run's list of :class:`~llm_locust.prompts.Prompt` and a short description of their
source for the reports (``summary.json``'s ``run.prompt_source``):

* ``--input-tokens MEAN[,STDDEV]`` (with ``--output-tokens``): synthetic prompts named ``synthetic``
  (:mod:`llm_locust.synthetic`), the prompt file unused;
* ``--dataset FILE``: the sampled records of a dataset (:mod:`llm_locust.dataset`), named by the file's stem;
  ``--output-tokens`` draws their token limit; ``--session-turns K`` makes them sessions of K turns;
* else the prompt file, whose ``synthetic:`` entries are expanded here.

Synthetic text is made with the first target's tokenizer (the model named by ``model``). Draws come from one
``random.Random(--seed)``: the same seed and options give the same prompts. In a distributed run worker k > 0 draws
from ``random.Random(f"{seed}:{k}")``: its own prompts (the workers do not send each other's prompts, which a
server's prefix cache would serve from cache), the same again with the same seed; worker 0 draws the local run's.
The result is cached by its inputs (the files' modification times and sizes included), so the check at start-up and
the run's set-up read a dataset once in a local run (a worker reads it at its test start). Problems raise the
``ValueError`` subclasses of the modules above, each one line naming the problem and the fix.
"""

from __future__ import annotations

import functools
import logging
import random
from argparse import Namespace
from pathlib import Path
from typing import Any

from .dataset import DEFAULT_SAMPLE, MAX_SAMPLE, DatasetError, load_dataset, parse_fields
from .prompts import MAX_TOKEN_LIMIT, Prompt, load_prompts
from .synthetic import LengthError, Spec, parse_length, synthetic_prompts, vocabulary
from .tokens import TokenCounter

logger = logging.getLogger(__name__)

#: the option (``dest``) values :func:`run_prompts` reads
OPTION_NAMES = (
    "prompt_file", "input_tokens", "output_tokens", "seed", "dataset", "dataset_fields", "dataset_sample",
    "dataset_min_input_tokens", "dataset_max_input_tokens", "session_turns",
)


def run_prompts(opts: Namespace, model: str, process: int = 0) -> tuple[list[Prompt], dict[str, Any]]:
    """The run's prompts and the description of their source (see the module docs); ``process``: the Locust
    worker's index (0 for a local runner or the first worker)."""
    values = tuple(_blank_none(getattr(opts, name, None)) for name in OPTION_NAMES)
    return _resolve(model, *values, stamps=(_stamp(values[0]), _stamp(values[4])), process=process)


def _stamp(path: Any) -> tuple[int, int] | None:
    """A file's modification time and size: an edited prompt file or dataset is read again for the next run."""
    try:
        st = Path(path).stat()
    except (OSError, TypeError, ValueError):
        return None
    return st.st_mtime_ns, st.st_size


def _blank_none(value: Any) -> Any:
    return None if value == "" else value  # the web UI's start form sends "" for an empty field


def _int(value: Any, flag: str, low: int = 1) -> int | None:
    if value is None:
        return None
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise LengthError(f"{flag} must be a whole number (got {value!r})") from None
    if n < low:
        raise LengthError(f"{flag} must be at least {low} (got {n})")
    return n


@functools.lru_cache(maxsize=4)
def _resolve(
    model: str, prompt_file: str, input_tokens: Any, output_tokens: Any, seed: Any, dataset: Any, fields: Any,
    sample: Any, min_in: Any, max_in: Any, session_turns: Any, stamps: Any = None, process: int = 0,
) -> tuple[list[Prompt], dict[str, Any]]:
    seed = _int(seed, "--seed", 0)
    rng = random.Random(seed if seed is None or not process else f"{seed}:{process}")
    output = parse_length(output_tokens, "--output-tokens", MAX_TOKEN_LIMIT) if output_tokens is not None else None
    session_turns = _int(session_turns, "--session-turns")
    dataset_flags = [f for f, v in (("--dataset-fields", fields), ("--dataset-sample", sample),
                                    ("--dataset-min-input-tokens", min_in), ("--dataset-max-input-tokens", max_in),
                                    ("--session-turns", session_turns)) if v is not None]
    if dataset is not None and input_tokens is not None:
        raise LengthError("--dataset and --input-tokens both given; use one: a dataset's prompts or synthetic ones")
    if dataset is None and dataset_flags:
        raise DatasetError(f"{dataset_flags[0]} needs --dataset FILE; add it or drop {dataset_flags[0]}")
    source: dict[str, Any] = {"seed": seed}
    if input_tokens is not None:
        spec = Spec(parse_length(input_tokens, "--input-tokens"), output)
        vocab = vocabulary(model)
        prompts = synthetic_prompts(Prompt(name="synthetic", text="-"), spec, vocab, rng)
        source.update(kind="synthetic", input_tokens=str(spec.input), output_tokens=_str(output),
                      tokenizer=vocab.source, exact=vocab.exact, prompts=len(prompts))
    elif dataset is not None:
        low, high = _int(min_in, "--dataset-min-input-tokens"), _int(max_in, "--dataset-max-input-tokens")
        if low is not None and high is not None and low > high:
            raise DatasetError(f"--dataset-min-input-tokens {low} is above --dataset-max-input-tokens {high}; "
                               "swap or widen them")
        counter = TokenCounter(model) if low is not None or high is not None else None
        prompts, stats = load_dataset(
            dataset, fields=parse_fields(fields), sample=_sample(sample), rng=rng,
            count=counter.count if counter else None, min_input=low, max_input=high, session_turns=session_turns,
            output=output,
        )
        logger.info("llm-locust: %s", stats.line())
        source.update(kind="dataset", **stats.as_dict(), output_tokens=_str(output), session_turns=session_turns,
                      tokenizer=counter.source if counter else None)
    else:
        if output is not None:
            raise LengthError("--output-tokens needs --input-tokens or --dataset; for a prompt file's prompts use "
                              "--token-limit or a prompt's token_limit")
        prompts = _expand(load_prompts(prompt_file), model, rng)
        source.update(kind="prompt-file", path=str(Path(prompt_file)))
        if any(p.input_tokens_asked is not None for p in prompts):
            vocab = vocabulary(model)
            source.update(tokenizer=vocab.source, exact=vocab.exact)
    if source.get("exact") is False:
        logger.warning("llm-locust: synthetic prompt lengths are estimates: %s (%s) is not %s's own tokenizer",
                       source["tokenizer"], "common English words" if "estimate" in source["tokenizer"] else "words",
                       model)
    return prompts, source


def _sample(value: Any) -> int:
    n = _int(value, "--dataset-sample")
    if n is not None and n > MAX_SAMPLE:
        raise DatasetError(f"--dataset-sample {n:,} is over {MAX_SAMPLE:,}; sample fewer records")
    return n or DEFAULT_SAMPLE


def _str(length: Any) -> str | None:
    return None if length is None else str(length)


def _expand(prompts: list[Prompt], model: str, rng: random.Random) -> list[Prompt]:
    """The prompt file's prompts with each ``synthetic:`` entry replaced by its generated prompts."""
    if not any(p.synthetic is not None for p in prompts):
        return prompts
    vocab = vocabulary(model)
    out: list[Prompt] = []
    for p in prompts:
        out.extend(synthetic_prompts(p, p.synthetic, vocab, rng) if p.synthetic is not None else [p])
    return out


#: the errors :func:`run_prompts` raises besides the prompt file's
SOURCE_ERRORS = (LengthError, DatasetError)
