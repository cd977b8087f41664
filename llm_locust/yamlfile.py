"""Reading the YAML files users hand us (prompts, prices, targets, templates) with one-line errors.

Every loader reports a problem as ``<file>: <where>: <problem>; <fix>`` in the error class of its kind of file, so
the profile and the CLI can print it and exit with code 2. Before anything is parsed deeply the file is bounded:

* at most ``MAX_BYTES`` bytes (a 50 MB file is refused at once, not parsed for minutes);
* strict UTF-8;
* a pass over libyaml's parse events (linear, not recursive) limits the nesting to ``MAX_DEPTH`` levels, the
  aliases to ``MAX_ALIASES`` (no billion-laughs expansion, no recursion error in the composer) and the mappings
  and lists to ``MAX_NODES`` (PyYAML's constructor takes ~0.25 s per 1,000 prompts);

then, after parsing, one walk of the values refuses what no file of ours can mean: a string with a lone
surrogate (``"\\ud800"``: it cannot be sent as UTF-8), a non-finite number (``.inf``, ``.nan``), a key that is
not text. Any other failure of the YAML library is reported as one line too.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 8 * 1024 * 1024
MAX_DEPTH = 32
MAX_ALIASES = 16
#: mappings, lists and aliases in one file (10,000 prompts of a few chat turns each fit)
MAX_NODES = 100_000

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_OPEN = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSE = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


def _syntax(path: Path, error: type[ValueError], e: yaml.YAMLError) -> ValueError:
    mark = getattr(e, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
    problem = getattr(e, "problem", None) or (str(e).splitlines() or ["invalid YAML"])[0]
    return error(f"{path}: {where}: YAML syntax error ({problem}); fix the YAML at that place")


def _bounded(path: Path, error: type[ValueError], text: str) -> None:
    """Refuse deep nesting, many aliases and too many values, from libyaml's event stream (linear, not recursive:
    before the composer, which recurses, and the constructor, which is slow, see them)."""
    depth = aliases = nodes = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, _OPEN):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1
                raise error(f"{path}: line {line}: nested more than {MAX_DEPTH} levels deep; flatten the YAML")
        elif isinstance(event, _CLOSE):
            depth -= 1
        elif isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                line = event.start_mark.line + 1
                raise error(f"{path}: line {line}: more than {MAX_ALIASES} aliases (*name); write the values out")
        else:
            continue
        nodes += 1
        if nodes > MAX_NODES:
            raise error(f"{path}: more than {MAX_NODES:,} values; split the file or shorten it")


def _where(keys: tuple[Any, ...]) -> str:
    return "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in keys).lstrip(".") or "top level"


def _check_values(path: Path, error: type[ValueError], data: Any) -> None:
    """One iterative walk: text without lone surrogates, finite numbers, text keys."""
    stack: list[tuple[tuple[Any, ...], Any]] = [((), data)]
    seen: set[int] = set()  # an alias shares its value: walk it once
    while stack:
        keys, value = stack.pop()
        if isinstance(value, dict | list):
            if id(value) in seen:
                continue
            seen.add(id(value))
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise error(
                    f'{path}: {_where(keys)}: text with a lone surrogate (e.g. "\\ud800"); remove that escape'
                ) from None
        elif isinstance(value, float) and not math.isfinite(value):
            raise error(f"{path}: {_where(keys)}: {value} is not a finite number; write a plain number")
        elif isinstance(value, dict):
            for k, v in value.items():
                if not isinstance(k, str):
                    raise error(f"{path}: {_where(keys)}: key {str(k)[:40]!r} is not text; quote it or rename it")
                stack.append(((*keys, _safe(k)), v))
        elif isinstance(value, list):
            stack.extend(((*keys, i), v) for i, v in enumerate(value))


def _safe(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")[:60]


def load_yaml(path: Path, error: type[ValueError], what: str, flag: str) -> Any:
    """The parsed content of ``path``, or ``error`` saying why it cannot be used (see the module docs)."""
    try:
        if not path.is_file():
            raise error(f"{path}: {what} not found; pass {flag} PATH naming an existing YAML file")
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise error(f"{path}: file: {size:,} bytes, over the {MAX_BYTES // 2**20} MiB limit; use a smaller {what}")
        raw = path.read_bytes()
    except OSError as e:
        raise error(f"{path}: cannot read the {what} ({e.strerror or e}); check the path and its permissions") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{path}: byte {e.start}: not UTF-8 text; save the file as UTF-8") from None
    try:
        _bounded(path, error, text)
    except yaml.YAMLError as e:
        raise _syntax(path, error, e) from None
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as e:
        raise _syntax(path, error, e) from None
    except (RecursionError, MemoryError):
        raise error(f"{path}: YAML: too deeply nested or too large to read; simplify the file") from None
    except (ValueError, TypeError, OverflowError) as e:  # a constructor's failure: a bad date, an unhashable key
        problem = " ".join(str(e).split())[:120]
        raise error(f"{path}: YAML: a value cannot be read ({problem}); quote it as text or fix it") from None
    _check_values(path, error, data)
    return data
