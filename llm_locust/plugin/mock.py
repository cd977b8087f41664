"""The embedded mock LLM server of a run without ``--host``: started at ``init``, stopped at ``quitting``.

:func:`start` launches ``python -m llm_locust.mockserver`` (with ``--mock-server-args``) on a free loopback port,
points the environment's host at it and, without ``--model``, requests ``mock-model``. The :class:`EmbeddedMock`
it returns belongs to one environment's plugin state; :meth:`EmbeddedMock.stop` ends the subprocess (terminate,
then kill after 5 s).
"""

from __future__ import annotations

import logging
import shlex
import subprocess
from argparse import Namespace
from dataclasses import dataclass
from typing import Any

from ..options import DEFAULT_MOCK_MODEL
from .validate import fail

logger = logging.getLogger("llm_locust")


@dataclass
class EmbeddedMock:
    """A running mock server subprocess and its base URL."""

    proc: subprocess.Popen[str]
    url: str

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except Exception:
                self.proc.kill()


def start(environment: Any, opts: Namespace) -> EmbeddedMock:
    """Start the mock server and make it the run's host; :func:`fail` (exit 2) if it does not come up."""
    from ..mockserver import start_subprocess

    try:
        args = shlex.split(opts.mock_server_args or "")
    except ValueError as e:
        fail(f'--mock-server-args cannot be parsed ({e}); quote it as one string, e.g. "--ttft-ms 100"')
    try:
        proc, url = start_subprocess(args, timeout=15)
    except (RuntimeError, OSError) as e:
        fail(f"the embedded mock server did not start ({' '.join(str(e).split())[:300]}); check --mock-server-args")
    environment.host = url
    opts.host = url
    if not opts.model:
        opts.model = DEFAULT_MOCK_MODEL
    logger.info("No --host given: started the embedded mock LLM server at %s (no API key, no internet)", url)
    return EmbeddedMock(proc, url)
