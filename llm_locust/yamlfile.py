"""Reading the YAML files users hand us (prompts, prices, targets, templates) with one-line errors.

Every loader reports a problem as ``<file>: <where>: <problem>; <fix>`` in the error class of its kind of file, so
the profile and the CLI can print it and exit with code 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def load_yaml(path: Path, error: type[ValueError], what: str, flag: str) -> Any:
    """The parsed content of ``path``, or ``error`` saying the file is missing, not UTF-8 or not valid YAML."""
    if not path.is_file():
        raise error(f"{path}: {what} not found; pass {flag} PATH naming an existing YAML file")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise error(f"{path}: {where}: YAML syntax error ({problem}); fix the YAML at that place") from None
    except UnicodeDecodeError:
        raise error(f"{path}: file: not UTF-8 text; save the file as UTF-8") from None
