"""Run the mock server as a child process: :func:`start_subprocess`.

A separate process keeps the server off the load generator's CPU and event loop. The child is
``sys.executable -m llm_locust.mockserver --port 0 ...``; its first stdout line carries the URL.
Its stderr goes to an anonymous temporary file (a pipe nobody reads could fill up and stall the
server) and is quoted in the error if the server does not come up.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

BANNER = "llm-locust mock server listening on "

#: The directory that holds the ``llm_locust`` package, so the child can import it from any cwd.
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


def start_subprocess(
    args: Sequence[str] = (), timeout: float = 10.0, env: Mapping[str, str] | None = None
) -> tuple[subprocess.Popen[str], str]:
    """Start ``python -m llm_locust.mockserver --port 0 *args``; return ``(process, url)``.

    Raises ``RuntimeError`` (with the server's stderr) if it does not print its URL within
    ``timeout`` seconds. Stop it with ``process.terminate(); process.wait()``.
    """
    child_env = dict(os.environ if env is None else env)
    child_env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, child_env.get("PYTHONPATH")) if p)
    child_env.setdefault("PYTHONUNBUFFERED", "1")
    stderr = tempfile.TemporaryFile(mode="w+")
    cmd = [sys.executable, "-m", "llm_locust.mockserver", "--port", "0", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True, env=child_env)
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    line = ""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        ready, _, _ = select.select([proc.stdout], [], [], min(remaining, 0.1))
        if ready:
            line = proc.stdout.readline()
            break
        if proc.poll() is not None:
            break
    if line.startswith(BANNER):
        return proc, line[len(BANNER) :].strip()
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    stderr.seek(0)
    err = stderr.read().strip()
    stderr.close()
    why = f"exited with code {proc.returncode}" if line or proc.returncode else f"did not start within {timeout} s"
    raise RuntimeError(f"mock server {why}: {' '.join(cmd)}\nstdout: {line.strip()!r}\nstderr:\n{err}")
