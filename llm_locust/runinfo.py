"""The run-info file: how a Locust run tells whoever started it where its reports go.

With ``--run-info FILE`` (or ``LLM_RUN_INFO``), the process that writes the reports (a local runner or a master)
writes ``FILE`` as JSON when a run starts, and again when its reports are written::

    {"run_id": "20250101-120000", "folder": "reports/20250101-120000", "done": false}

``folder`` is the run's report folder as the Locust process names it (``<report-dir>/<run id>``, relative to its
working directory when ``--report-dir`` is); ``done`` turns true once ``summary.json`` is written. Each new run of the
same process (web UI) overwrites the file. ``llm-benchmark`` passes a fresh file to the run it starts and reads its
folder from there, never by looking for the newest folder. The file is replaced atomically, so a reader never sees
half of it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

FLAG = "--run-info"
ENV_VAR = "LLM_RUN_INFO"


def write(path: str | Path, run_id: str, folder: Path, *, done: bool) -> None:
    """Write the run-info file (atomically: a reader sees the old or the new file, never half of one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"run_id": run_id, "folder": str(folder), "done": done}) + "\n", encoding="utf-8")
    tmp.replace(path)


def read(path: str | Path) -> dict[str, Any] | None:
    """The run-info file's content, or None while no run has written it."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("folder"), str) else None
