"""Dataset prompts (``--dataset FILE``): ShareGPT-style JSON or JSONL, streamed, sampled and filtered.

See docs/datasets.md for the user's view.

Formats, told apart by the file's first non-blank character:

* ``[`` — a JSON array of records (ShareGPT: ``[{"conversations": [{"from": "human", "value": ...},
  {"from": "gpt", "value": ...}, ...]}, ...]``), read one record at a time by :func:`_array_items` (an incremental
  decoder over 64 KiB chunks: memory holds one record and one chunk, never the file);
* anything else — JSONL: one record per line, either a conversation (as above, or OpenAI-style
  ``{"messages": [{"role": "user", "content": ...}, ...]}``) or one prompt (``{"prompt": "..."}`` or
  ``{"text": "..."}``; a line that is a bare JSON string is a prompt too).

:class:`Fields` names the keys, each with the usual spellings tried in turn; ``--dataset-fields
prompt=question,conversations=dialog,role=speaker,content=text`` replaces them (:func:`parse_fields`). In a
conversation the turns whose role is ``human``/``user`` are the prompts, ``system`` gives the system prompt, the
answers (``gpt``/``assistant``/...) are dropped: under load the answers come from the server. A record with no user
turn, a turn that is not a ``{role, content}`` mapping of strings, a line that is not JSON, a line over
``MAX_RECORD_BYTES``: counted as malformed and skipped (:class:`Stats`, one summary line in the log). A JSON array
with a syntax error is read up to it: the records after it cannot be found, and the summary says so.

How records are drawn: a uniform random sample of at most ``--dataset-sample`` records (default
``DEFAULT_SAMPLE``) of those that pass the length filters, seeded by ``--seed``, kept in file order. Each record
gets a random key as it is read; the sample is the records with the smallest keys (a heap of the sample size), so
memory is bounded by the sample, whatever the file's size, and only records whose key would enter the sample are
tokenized for the length filters (about ``k·ln(n/k)`` of ``n``; a record whose UTF-8 size is within
``--dataset-max-input-tokens`` needs no tokenizing for that bound, a token being at least a byte). Under load the
sampled records are sent like a prompt file's prompts: in order with ``--max-requests``, else at random, one name
(the file's stem) in the reports. ``--session-turns K`` makes each record a session of its first ``K`` user turns
(:mod:`llm_locust.sessions`); else a record is its first user turn.
"""

from __future__ import annotations

import codecs
import heapq
import json
import logging
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import gevent

from .prompts import Prompt

logger = logging.getLogger(__name__)

DEFAULT_SAMPLE = 1000
#: the most a sample may hold
MAX_SAMPLE = 1_000_000
#: a record (a JSONL line, an array element) longer than this is malformed: memory stays bounded
MAX_RECORD_BYTES = 16 * 1024 * 1024
CHUNK = 64 * 1024
USER_ROLES = frozenset({"human", "user"})
ANSWER_ROLES = frozenset({"gpt", "assistant", "bot", "model", "chatgpt", "bard"})
SYSTEM_ROLES = frozenset({"system"})
FIELD_KEYS = ("prompt", "conversations", "role", "content")


class DatasetError(ValueError):
    """A dataset that cannot be used; ``str()`` is one line naming the file, the problem and the fix."""


@dataclass(frozen=True)
class Fields:
    """The record keys, each a tuple of names tried in turn (see the module docs)."""

    prompt: tuple[str, ...] = ("prompt", "text")
    conversations: tuple[str, ...] = ("conversations", "messages")
    role: tuple[str, ...] = ("from", "role")
    content: tuple[str, ...] = ("value", "content")


def parse_fields(spec: str | None) -> Fields:
    """``prompt=question,role=speaker`` as :class:`Fields`; :class:`DatasetError` for a bad mapping."""
    if not spec:
        return Fields()
    example = "use e.g. --dataset-fields prompt=question or conversations=dialog,role=speaker,content=text"
    names: dict[str, tuple[str, ...]] = {}
    for part in spec.split(","):
        key, sep, name = (p.strip() for p in part.partition("="))
        if not sep or not name:
            raise DatasetError(f"--dataset-fields: {part.strip()!r} is not KEY=NAME; {example}")
        if key not in FIELD_KEYS:
            raise DatasetError(f"--dataset-fields: unknown key {key!r} (keys: {', '.join(FIELD_KEYS)}); {example}")
        if key in names:
            raise DatasetError(f"--dataset-fields: {key!r} given twice; {example}")
        names[key] = (name,)
    return replace(Fields(), **names)


@dataclass
class Stats:
    """What a pass over the dataset found."""

    path: str
    records: int = 0  # records read (well-formed or not)
    malformed: int = 0
    filtered: int = 0  # well-formed, tested against the length filters (the sample's candidates) and left out
    used: int = 0  # in the sample
    reasons: dict[str, int] = field(default_factory=dict)  # malformed records by reason
    stopped: str | None = None  # why the pass ended before the end of the file

    def bad(self, reason: str) -> None:
        self.malformed += 1
        self.reasons[reason] = self.reasons.get(reason, 0) + 1

    def line(self) -> str:
        """The one-line summary the run logs."""
        parts = [f"dataset {self.path}: {self.records:,} records read, {self.used:,} used"]
        if self.filtered:
            parts.append(f"{self.filtered:,} of the sample's candidates outside the length filters")
        if self.malformed:
            top = ", ".join(f"{r} {n:,}" for r, n in sorted(self.reasons.items(), key=lambda x: -x[1])[:3])
            parts.append(f"{self.malformed:,} malformed and skipped ({top})")
        if self.stopped:
            parts.append(f"stopped early: {self.stopped}")
        return "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "records": self.records, "malformed": self.malformed, "filtered": self.filtered,
                "used": self.used, "malformed_reasons": dict(self.reasons),
                "stopped": self.stopped}


class _Bad:
    """A record that could not be read, with the reason."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class _Stop(Exception):
    """The pass cannot go on (a syntax error in a JSON array)."""


def _open(path: Path) -> IO[bytes]:
    try:
        f = path.open("rb")
    except FileNotFoundError:
        raise DatasetError(f"--dataset {path}: file not found; check the path") from None
    except IsADirectoryError:
        raise DatasetError(f"--dataset {path}: is a folder; name a .json or .jsonl file") from None
    except OSError as e:
        raise DatasetError(f"--dataset {path}: cannot be read ({e.strerror or e}); check its permissions") from None
    return f


def iter_records(f: IO[bytes]) -> Iterator[Any]:
    """The file's records as decoded JSON values, or ``_Bad`` entries; raises ``_Stop`` on a broken JSON array."""
    head = f.read(CHUNK)
    first = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if first == b"[":
        yield from _array_items(f, head)
    else:
        yield from _lines(f, head)


def _lines(f: IO[bytes], head: bytes) -> Iterator[Any]:
    buf, pos, eof = bytearray(head), 0, False
    while True:
        nl = buf.find(b"\n", pos)
        while nl < 0 and not eof and len(buf) - pos <= MAX_RECORD_BYTES:
            del buf[:pos]
            pos = 0
            more = f.read(CHUNK)
            if not more:
                eof = True
                break
            start = len(buf)
            buf += more
            nl = buf.find(b"\n", start)
        if nl < 0 and len(buf) - pos > MAX_RECORD_BYTES:  # skip the rest of this line
            buf, pos = bytearray(), 0
            while not eof:
                more = f.read(CHUNK)
                eof = not more
                if (cut := more.find(b"\n")) >= 0:
                    buf = bytearray(more[cut + 1:])
                    break
            yield _Bad("line too long")
            continue
        end = len(buf) if nl < 0 else nl
        line = bytes(buf[pos:end])
        pos = end + 1
        if len(line) > MAX_RECORD_BYTES:
            yield _Bad("line too long")
        elif line.strip():
            try:
                yield json.loads(line)
            except (ValueError, UnicodeDecodeError):
                yield _Bad("not JSON")
        if nl < 0:
            return


def _array_items(f: IO[bytes], head: bytes) -> Iterator[Any]:
    """The elements of a top-level JSON array, one at a time (see the module docs)."""
    text = codecs.getincrementaldecoder("utf-8")(errors="replace")
    decoder = json.JSONDecoder()
    buf = text.decode(head).lstrip("\ufeff \t\r\n")[1:]  # past the "["
    pos = 0
    eof = False
    count = 0

    def more() -> bool:
        nonlocal buf, pos, eof
        if eof:
            return False
        chunk = f.read(CHUNK)
        eof = not chunk
        buf = buf[pos:] + text.decode(chunk, final=eof)
        pos = 0
        return not eof or bool(buf)

    def skip_blank() -> str:
        nonlocal pos
        while True:
            while pos < len(buf) and buf[pos] in " \t\r\n":
                pos += 1
            if pos < len(buf):
                return buf[pos]
            if not more() or pos >= len(buf) and eof:
                return ""

    expect_item = True
    while True:
        c = skip_blank()
        if c == "":
            raise _Stop(f"the JSON array ends without ']' after record {count:,}")
        if c == "]" and (count == 0 or not expect_item):
            return
        if not expect_item:
            if c != ",":
                raise _Stop(f"JSON syntax error after record {count:,} (expected ',' or ']')")
            pos += 1
            expect_item = True
            continue
        while True:
            try:
                value, end = decoder.raw_decode(buf, pos)
                if end < len(buf) or eof or isinstance(value, dict | list | str):
                    break
            except json.JSONDecodeError:
                if eof or len(buf) - pos > MAX_RECORD_BYTES:
                    raise _Stop(f"JSON syntax error in record {count + 1:,}") from None
            more()
        pos = end
        count += 1
        expect_item = False
        yield value
        if pos > CHUNK:
            buf, pos = buf[pos:], 0


def _first(record: dict[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        if name in record:
            return record[name]
    return None


def conversation(record: Any, fields: Fields) -> tuple[str | None, tuple[str, ...]] | str:
    """``(system, user turns)`` of one record, or the reason it is malformed (a string)."""
    if isinstance(record, _Bad):
        return record.reason
    if isinstance(record, str):
        return (None, (record,)) if record.strip() else "empty prompt"
    if not isinstance(record, dict):
        return "not an object"
    turns = _first(record, fields.conversations)
    if turns is None:
        prompt = _first(record, fields.prompt)
        if isinstance(prompt, str) and prompt.strip():
            return None, (prompt,)
        return "no prompt or conversation field"
    if not isinstance(turns, list):
        return "conversation is not a list"
    system: str | None = None
    users: list[str] = []
    for turn in turns:
        if not isinstance(turn, dict):
            return "turn is not an object"
        role, content = _first(turn, fields.role), _first(turn, fields.content)
        if not isinstance(role, str) or not isinstance(content, str):
            return "turn without role and text"
        role = role.lower()
        if role in USER_ROLES:
            if content.strip():
                users.append(content)
        elif role in SYSTEM_ROLES and system is None and not users:
            system = content
    if not users:
        return "no user turn"
    return system, tuple(users)


def load_dataset(
    path: str | Path,
    *,
    name: str | None = None,
    fields: Fields | None = None,
    sample: int = DEFAULT_SAMPLE,
    rng: random.Random | None = None,
    count: Callable[[str], int] | None = None,
    min_input: int | None = None,
    max_input: int | None = None,
    session_turns: int | None = None,
    output: Any = None,
) -> tuple[list[Prompt], Stats]:
    """The sampled prompts of a dataset and the pass's :class:`Stats` (see the module docs).

    ``count`` tokenizes a prompt for the length filters; ``output``, a :class:`llm_locust.synthetic.Length`, draws
    each prompt's ``token_limit``. Raises :class:`DatasetError` when the file cannot be read or yields no usable
    record."""
    path = Path(path)
    fields = fields or Fields()
    rng = rng or random.Random()
    stats = Stats(str(path))
    heap: list[tuple[float, int, str | None, tuple[str, ...]]] = []  # (-key, index, system, turns): a max-heap
    filtered = bool(min_input or max_input)
    with _open(path) as f:
        records = iter_records(f)
        while True:
            try:
                record = next(records)
            except StopIteration:
                break
            except _Stop as e:
                stats.stopped = str(e)
                break
            except OSError as e:
                raise DatasetError(f"--dataset {path}: read failed ({e.strerror or e}); check the file") from None
            stats.records += 1
            if not stats.records % 4096:
                gevent.sleep(0)  # on a worker, at test start: let the master's heartbeats through
            key = rng.random()
            conv = conversation(record, fields)
            if isinstance(conv, str):
                stats.bad(conv)
                continue
            if len(heap) >= sample and key >= -heap[0][0]:
                continue  # would not enter the sample: not worth a length test
            if filtered and not _within(conv[1][0], count, min_input, max_input):
                stats.filtered += 1
                continue
            if len(heap) < sample:
                heapq.heappush(heap, (-key, stats.records, *conv))
            else:
                heapq.heapreplace(heap, (-key, stats.records, *conv))
    if not heap:
        why = f"{stats.malformed:,} malformed"
        if filtered:
            why += f", {stats.filtered:,} outside the length filters"
        raise DatasetError(
            f"--dataset {path}: no usable record ({stats.records:,} read: {why}); check the format (ShareGPT JSON or "
            "JSONL, docs/datasets.md), --dataset-fields and the length filters"
        )
    stats.used = len(heap)
    name = name or path.stem
    prompts = []
    for _, _, system, turns in sorted(heap, key=lambda h: h[1]):
        turns = turns[:session_turns] if session_turns else turns[:1]
        limit = output.draw(rng) if output is not None else None
        prompts.append(Prompt(name=name, text=turns[0], system=system, token_limit=limit,
                              turns=turns if session_turns else ()))
    return prompts, stats


def _within(text: str, count: Callable[[str], int] | None, low: int | None, high: int | None) -> bool:
    """Whether ``text`` has ``low`` to ``high`` tokens (a text of at most ``high`` UTF-8 bytes needs no count)."""
    size = len(text.encode("utf-8", "replace"))
    if low is None and high is not None and size <= high:
        return True
    n = count(text) if count is not None else (len(text) + 3) // 4
    return (low is None or n >= low) and (high is None or n <= high)
