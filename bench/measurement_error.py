"""Measurement error and per-process capacity of llm-locust's measuring user, against a bare line reader.

What it measures
----------------
The mock LLM server (``python -m llm_locust.mockserver --send-log FILE``) logs the real
``time.perf_counter_ns()`` send time of every token chunk; the client stamps every stream line with the same
clock (CLOCK_MONOTONIC, shared by all processes) and sends an ``X-Request-Id`` that the send log records. Joining
the client's per-request rows with the send log gives, per successful request:

* TTFT error = (t0 + ttft) - t_first_token_sent     how late the client noticed the first token (>= 0)
* E2E error  = (t0 + e2e) - t_last_token_sent        how late it noticed the last one
* TPOT error = client tpot - (t_last_sent - t_first_sent) / (tokens - 1)

Load generators (``--profiles``), each a closed loop of N users streaming back to back:

* ``full``: the bundled ``locustfile.py`` (llm-locust's ``LLMUser``: SSE decoder, JSON parse per chunk,
  ``StreamClock``, and per request the record with tiktoken count, price, live view and a flushed CSV row);
* ``bare``: ``bench/bare_locustfile.py``, a FastHttpUser that sends the same body and only stamps lines;
* ``full-reader``: ``full`` with the lines stamped by the reader's clock (``perf_counter_ns`` when ``readline``
  returns them), not the kernel's arrival stamps (:mod:`llm_locust.recvclock` off, by the benchmark's wrapper
  locustfile): the clock of every release before issue 14's seventh pass, and of TLS connections.

Scenarios (mock server ``--ttft-ms 50`` unless said otherwise):

* ``error``: N users in ``--users`` (1, 32, 128), ``--itl-ms 10 --output-tokens 64``: the measurement error;
* ``max``: ``--max-users`` (256) streams of ``--max-tokens`` (200) tokens at each ``--max-itl-ms`` (10, 5, 2,
  1 ms): the offered chunk rate grows until the load generator (or the server) saturates;
* ``short``: ``--short-users`` (64) users of 2-token replies 5 ms after the request: almost no chunks, so the
  load generator's CPU per request is its per-request cost;
* ``py-spy`` (``--py-spy SECONDS``, py-spy installed): a max-load run (``--py-spy-itl-ms``, 5) and a short run
  per load generator with ``py-spy record`` attached; the samples are split into per-chunk and per-request costs;
* ``micro`` (unless ``--no-micro``): the full profile's per-chunk and per-request Python work, in-process, no I/O.

For every run: requests/s; chunks/s (token chunks of the completed requests over their window); the CPU of Locust
and of the mock server (``/proc/<pid>/stat``) and the busy time of their cores (``/proc/stat``, which also counts
the kernel's softirq work for loopback TCP), sampled during the run; Locust's CPU microseconds per chunk and per
request; the CPU other processes used meanwhile; the garbage-collection pauses of the Locust process (a wrapper
locustfile imports the measured one and adds a ``gc.callbacks`` probe; ``--no-gc-probe`` runs it directly).

The mock server is pinned to core 0 and Locust to core 1 (``taskset -c``; without taskset, with
``os.sched_setaffinity``; else unpinned, and the JSON says so). Before each run the script waits for quiet cores
and it measures a run again (``--retries``) when other processes used the cores or the run failed. All children
are stopped on any exit (and get SIGKILL if this script is killed).

Run
---
::

    TIKTOKEN_CACHE_DIR=/path/to/cache python bench/measurement_error.py                # full run, several minutes
    python bench/measurement_error.py --quick                                          # smoke check, ~1 minute
    python bench/measurement_error.py --users 1,32,128 --duration 15 --out bench/results.json --py-spy 8
    python bench/measurement_error.py --skip-error --skip-short --max-itl-ms 5 --profiles bare   # one capacity point

Run it with the Python of the environment that has llm-locust's dependencies; ``locust`` is taken from the same
``bin`` folder. Everything binds to 127.0.0.1 and every run is bounded by ``--duration``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import ctypes
import json
import os
import platform
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import timeit
from collections import Counter
from collections.abc import Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
FULL_LOCUSTFILE = ROOT / "locustfile.py"
BARE_LOCUSTFILE = BENCH / "bare_locustfile.py"
PROMPT_NAME = "bench"
PROMPT_TEXT = "Say hello in five words."
MODEL = "m"
BANNERS = ("llm-locust mock server listening on ", "llm-locust truth server listening on ")
TRUTH_SOURCE = BENCH / "truth_server.c"
SERVER_CORE, CLIENT_CORE = 0, 1
CLK_TCK = os.sysconf("SC_CLK_TCK")
PCTS = (50, 90, 99)
#: issue 14's table: (streams, mock ITL ms), TTFT 200 ms, 128 tokens
TABLE_ROWS = ((32, 20.0), (64, 5.0), (128, 5.0), (256, 5.0))

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# -- child processes ----------------------------------------------------------------------------------------------

_children: list[subprocess.Popen[Any]] = []


def _die_with_parent() -> None:
    """preexec_fn: the child gets SIGKILL if this process dies, even by SIGKILL (Linux prctl PR_SET_PDEATHSIG)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


def stop_child(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; always reaps."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
    if proc in _children:
        _children.remove(proc)


def stop_all_children() -> None:
    for proc in list(_children):
        stop_child(proc, timeout=3.0)


def _on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def pin_prefix(core: int, mode: str) -> list[str]:
    return ["taskset", "-c", str(core)] if mode == "taskset" else []


def pinning_mode() -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if cores < 2:
        return "none (fewer than 2 usable cores)"
    if shutil.which("taskset"):
        return "taskset"
    return "sched_setaffinity" if hasattr(os, "sched_setaffinity") else "none (no taskset, no sched_setaffinity)"


def spawn(cmd: list[str], core: int, mode: str, **kwargs: Any) -> subprocess.Popen[Any]:
    proc = subprocess.Popen(pin_prefix(core, mode) + cmd, preexec_fn=_die_with_parent, **kwargs)
    _children.append(proc)
    if mode == "sched_setaffinity":
        with contextlib.suppress(OSError):
            os.sched_setaffinity(proc.pid, {core})
    return proc


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def build_truth_server(workroot: Path) -> Path:
    """Compile bench/truth_server.c (``cc -O2``) into ``workroot``; its path."""
    exe = workroot / "truth_server"
    if not exe.exists():
        cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
        if cc is None:
            raise SystemExit("--server truth needs a C compiler (cc, gcc or clang) to build bench/truth_server.c")
        subprocess.run([cc, "-O2", "-o", str(exe), str(TRUTH_SOURCE)], check=True)
    return exe


def start_mock(
    args: list[str], workdir: Path, mode: str, server: Path | None = None
) -> tuple[subprocess.Popen[Any], str]:
    """Start the ground-truth server (the mock, or ``server``: the built truth_server) on the server's core."""
    exe = [str(server)] if server is not None else [sys.executable, "-m", "llm_locust.mockserver"]
    cmd = [*exe, "--host", "127.0.0.1", "--port", "0", *args]
    err = (workdir / "mock.stderr").open("w")
    proc = spawn(cmd, SERVER_CORE, mode, stdout=subprocess.PIPE, stderr=err, text=True, env=child_env(), cwd=ROOT)
    assert proc.stdout is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            line = proc.stdout.readline()
            for banner in BANNERS:
                if line.startswith(banner):
                    return proc, line[len(banner) :].strip()
            break
        if proc.poll() is not None:
            break
    stop_child(proc)
    raise RuntimeError(f"server did not start: {' '.join(cmd)}; see {workdir / 'mock.stderr'}")


def locust_command() -> list[str]:
    exe = Path(sys.executable).parent / "locust"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "locust"]


# -- CPU sampling ---------------------------------------------------------------------------------------------------


def cpu_ticks(pid: int) -> int | None:
    """utime + stime of a process (all threads), in clock ticks; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(b")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def core_busy_ticks() -> dict[str, int]:
    """Busy clock ticks per core: ``coreN`` = all but idle and iowait (user, system, irq, softirq, steal);
    ``coreN-tasks`` = user + nice + system, the time processes ran (no interrupt or softirq work)."""
    out = {}
    try:
        with open("/proc/stat", encoding="ascii") as f:
            for line in f:
                if line.startswith("cpu") and line[3:4].isdigit():
                    name, *vals = line.split()
                    v = [int(x) for x in vals[:8]]
                    out[f"core{name[3:]}"] = sum(v) - v[3] - v[4]
                    out[f"core{name[3:]}-tasks"] = v[0] + v[1] + v[2]
    except OSError:
        pass
    return out


def background_load(seconds: float = 1.0) -> dict[str, float]:
    """Busy percent of every core over ``seconds`` while none of our children runs: load from other processes."""
    a, t_a = core_busy_ticks(), time.perf_counter()
    time.sleep(seconds)
    b, t_b = core_busy_ticks(), time.perf_counter()
    return {k: 100 * (b[k] - a[k]) / CLK_TCK / (t_b - t_a) for k in a if k in b and not k.endswith("-tasks")}


def wait_for_quiet(limit_pct: float, max_wait: float) -> dict[str, float]:
    """Wait (up to ``max_wait`` s) until no core is busier than ``limit_pct`` %; return the last reading."""
    deadline = time.monotonic() + max_wait
    load = background_load()
    warned = False
    while max(load.values(), default=0.0) > limit_pct and time.monotonic() < deadline:
        if not warned:
            busy = ", ".join(f"{k} {v:.0f}%" for k, v in sorted(load.items()))
            print(f"    waiting for other processes to leave the cores ({busy}) ...", file=sys.stderr, flush=True)
            warned = True
        time.sleep(4.0)
        load = background_load()
    if max(load.values(), default=0.0) > limit_pct:
        busy = ", ".join(f"{k} {v:.0f}%" for k, v in sorted(load.items()))
        print(f"    WARNING: measuring on busy cores ({busy}): figures are pessimistic", file=sys.stderr, flush=True)
    return load


class CpuSampler(threading.Thread):
    """Samples (perf_counter_ns, CPU seconds) of some pids, and of every core, every ``period`` seconds.

    A process's own CPU (utime + stime) leaves out the kernel's softirq work on its behalf (on loopback, the
    TCP receive path of what a process sends runs on the sender's core), so the per-core busy time is the one
    that says whether a core is saturated.
    """

    def __init__(self, pids: dict[str, int], period: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.period = period
        self.samples: dict[str, list[tuple[int, float]]] = {k: [] for k in pids}
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            now = time.perf_counter_ns()
            for name, pid in self.pids.items():
                ticks = cpu_ticks(pid)
                if ticks is not None:
                    self.samples[name].append((now, ticks / CLK_TCK))
            for name, ticks in core_busy_ticks().items():
                self.samples.setdefault(name, []).append((now, ticks / CLK_TCK))
            self._stop_event.wait(self.period)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def cpu_seconds(self, name: str, t_a: int, t_b: int) -> float | None:
        """CPU seconds used by ``name`` between two perf_counter_ns times (linear interpolation of the samples;
        times outside the sampled span count from the first / up to the last sample, at most ``period`` away)."""
        s = self.samples[name]
        if len(s) < 2:
            return None
        t_a, t_b = max(t_a, s[0][0]), min(t_b, s[-1][0])

        def at(t: int) -> float:
            for (ta, ca), (tb, cb) in zip(s, s[1:], strict=False):
                if ta <= t <= tb:
                    return ca + (cb - ca) * (t - ta) / (tb - ta) if tb > ta else ca
            return s[-1][1]

        return at(t_b) - at(t_a)


# -- one run --------------------------------------------------------------------------------------------------------


def write_inputs(workdir: Path) -> tuple[Path, Path]:
    """The one-prompt prompt file for the full profile and the identical request body for the bare reader."""
    from llm_locust.prompts import Prompt
    from llm_locust.protocols import get_protocol

    prompts = workdir / "prompts.yaml"
    prompts.write_text(f'prompts:\n  - name: "{PROMPT_NAME}"\n    text: "{PROMPT_TEXT}"\n', encoding="utf-8")
    proto = get_protocol("openai-chat")("http://127.0.0.1", MODEL)
    body = workdir / "body.json"
    # the same bytes llm_locust.run.LLMRun.prepare sends
    body.write_bytes(json.dumps(proto.body(Prompt(PROMPT_NAME, PROMPT_TEXT), None), ensure_ascii=False).encode())
    return prompts, body


def run_once(
    profile: str,
    users: int,
    mock_args: list[str],
    duration: float,
    workdir: Path,
    inputs: tuple[Path, Path],
    mode: str,
    py_spy: float = 0.0,
    gc_probe: bool = True,
    stagger: bool = False,
    write_probe: bool = False,
    server: Path | None = None,
) -> dict[str, Any]:
    """Start the mock (or ``server``, the truth server) and Locust, run ``duration`` seconds, stop both, join the
    logs; return the run's figures."""
    workdir.mkdir(parents=True, exist_ok=True)
    send_log = workdir / "send.jsonl"
    mock, url = start_mock([*mock_args, "--send-log", str(send_log)], workdir, mode, server)
    cmd = [*locust_command(), "--headless", "-u", str(users), "-r", str(users), "-t", f"{duration:g}s", "-H", url]
    cmd += ["--only-summary", "--loglevel", "WARNING", "--stop-timeout", "0"]
    target = BARE_LOCUSTFILE if profile == "bare" else FULL_LOCUSTFILE
    if gc_probe or write_probe or profile == "full-reader":
        target = write_gc_probe(workdir, target, reader_clock=profile == "full-reader", writes=write_probe)
    cmd += ["-f", str(target)]
    if profile == "bare":
        cmd += ["--bare-body", str(inputs[1]), "--bare-out", str(workdir / "bare.csv")]
        cmd += ["--bare-stagger"] if stagger else []
    else:
        cmd += ["--model", MODEL, "--prompt-file", str(inputs[0]), "--report-dir", str(workdir / "reports")]
        cmd += ["--stagger"] if stagger else []
    spy = None
    try:
        with (workdir / "locust.stdout").open("w") as out, (workdir / "locust.stderr").open("w") as err:
            loc = spawn(cmd, CLIENT_CORE, mode, stdout=out, stderr=err, env=child_env(), cwd=ROOT)
            sampler = CpuSampler({"locust": loc.pid, "mock": mock.pid, "driver": os.getpid()})
            sampler.start()
            if py_spy > 0:
                time.sleep(min(3.0, duration / 3))
                spy_cmd = [_py_spy_exe(), "record", "--pid", str(loc.pid), "--duration", f"{py_spy:g}", "--rate", "250"]
                spy_cmd += ["--format", "raw", "--output", str(workdir / "py-spy.txt")]
                spy = spawn(spy_cmd, SERVER_CORE, mode, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
            try:
                loc.wait(timeout=duration + 120)
            except subprocess.TimeoutExpired:
                stop_child(loc)
                raise RuntimeError(f"locust did not finish within {duration + 120:g} s: {workdir}") from None
            finally:
                sampler.stop()
            stop_child(loc)
            if spy is not None:
                spy.wait(timeout=30)
                stop_child(spy)
    finally:
        stop_child(mock)
        if spy is not None:
            stop_child(spy)
    if loc.returncode not in (0, 1):  # 1 = some requests failed; the join below shows which
        raise RuntimeError(f"locust exited with {loc.returncode}; see {workdir / 'locust.stderr'}")
    rows = read_client_rows(profile, workdir)
    sends = read_send_log(send_log)
    result = analyse(rows, sends, sampler)
    result.update(profile=profile, users=users, duration_s=duration, mock_args=" ".join(mock_args))

    result["locust_command"] = " ".join(pin_prefix(CLIENT_CORE, mode) + cmd)
    if (workdir / "gc.json").exists():
        result["gc"] = summarise_gc(workdir / "gc.json", min((r["t0"] for r in rows), default=0))
        if write_probe:
            result["write_probe"] = summarise_writes(workdir / "gc.json", rows, sends)
    if py_spy > 0 and (workdir / "py-spy.txt").exists():
        result["py_spy"] = summarise_py_spy(workdir / "py-spy.txt")
    return result


GC_PROBE = """\
# Generated by bench/measurement_error.py: runs {target} unchanged, plus a garbage-collector probe.
import gc, json, sys, time
sys.path.insert(0, {folder!r})
from locust import events
from {module} import *  # noqa: F401,F403  (the User classes of the measured locustfile)

_pauses, _start = [], [0]


def _gc_callback(phase, info):
    if phase == "start":
        _start[0] = time.perf_counter_ns()
    else:
        _pauses.append((info["generation"], _start[0], time.perf_counter_ns() - _start[0]))


gc.callbacks.append(_gc_callback)


if {reader_clock}:  # full-reader: no kernel arrival stamps, the lines are timed when the reader gets them
    import llm_locust.recvclock

    llm_locust.recvclock.instrument = lambda pool: None


@events.quitting.add_listener
def _dump(**_):
    with open({out!r}, "w") as f:
        json.dump({{"pauses": _pauses, "tracked": len(gc.get_objects()), "frozen": gc.get_freeze_count(),
                   "writes": _writes, "recvs": _recvs[0] if {writes} else None,
                   "bookkeeper_cpu_s": _book[0] if {writes} else None}}, f)


_writes = []  # --write-probe: (request id, perf_counter_ns before and after the sendall of the request, bytes)
if {writes}:
    import gevent.socket

    _sendall = gevent.socket.socket.sendall

    def _probed_sendall(self, data, flags=0):
        t_a = time.perf_counter_ns()
        r = _sendall(self, data, flags)
        t_b = time.perf_counter_ns()
        head = bytes(data[:4096])
        i = head.lower().find(b"\\r\\nx-request-id: ")
        if i >= 0:
            i += 16
            _writes.append((head[i:head.index(b"\\r\\n", i)].decode(), t_a, t_b, len(data)))
        return r

    gevent.socket.socket.sendall = _probed_sendall
    _recvs = [0]  # recv calls that returned data: wake-ups of the reader (fewer when chunks queue up)
    for _name in ("recv", "recv_into", "recvmsg"):
        def _counted(self, *a, _orig=getattr(gevent.socket.socket, _name), **k):
            r = _orig(self, *a, **k)
            if r:
                _recvs[0] += 1
            return r
        setattr(gevent.socket.socket, _name, _counted)
    _book = [0.0]  # CPU seconds in llm-locust's bookkeeper steps (parsing, record, request event: the deferred work)
    try:
        from llm_locust.bookkeeper import Bookkeeper
    except ImportError:
        Bookkeeper = None
    if Bookkeeper is not None:
        def _timed_step(self, _orig=Bookkeeper._step):
            t = time.process_time()
            _orig(self)
            _book[0] += time.process_time() - t
        Bookkeeper._step = _timed_step
"""


def write_gc_probe(workdir: Path, target: Path, reader_clock: bool, writes: bool = False) -> Path:
    """A locustfile that imports ``target``'s users and records every garbage collection (generation, start, ns);
    with ``reader_clock``, without the kernel's arrival stamps; with ``writes``, also when each request's
    ``sendall`` started and returned (the write probe)."""
    path = workdir / f"gc_probe_{target.stem}.py"
    path.write_text(
        GC_PROBE.format(
            target=target, folder=str(target.parent), module=target.stem, reader_clock=reader_clock, writes=writes,
            out=str(workdir / "gc.json"),
        ),
        encoding="utf-8",
    )
    return path


def summarise_gc(path: Path, t_start: int) -> dict[str, Any]:
    """Collections per generation during the run (from the first request on): count, total and longest pause."""
    data = json.loads(path.read_text(encoding="utf-8"))
    out: dict[str, Any] = {"tracked_objects_at_exit": data["tracked"], "frozen_objects": data["frozen"]}
    for gen in (0, 1, 2):
        ms = [ns / 1e6 for g, t, ns in data["pauses"] if g == gen and t >= t_start]
        out[f"gen{gen}"] = {"n": len(ms), "total_ms": sum(ms), "max_ms": max(ms, default=0.0)}
    return out


def summarise_writes(path: Path, rows: list[dict[str, Any]], sends: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The send side split in three (``--write-probe``), ms: t0 -> the request's ``sendall`` starts (client, before
    the write), the ``sendall`` itself, and its return -> the server's body-read stamp (loopback delivers the bytes
    within the ``send`` call, so this is the server's wake-up and read: the mock's delay, not the client's); and
    the client's own share of the TTFT error, client TTFT - (server first write - ``sendall`` returned)."""
    writes: dict[str, tuple[int, int, int]] = {}
    data = json.loads(path.read_text(encoding="utf-8"))
    for rid, t_a, t_b, n in data.get("writes", []):
        writes.setdefault(rid, (t_a, t_b, n))
    split: dict[str, list[float]] = {
        "pre_write_ms": [], "write_ms": [], "server_read_ms": [], "client_send_ms": [], "client_err_ms": []
    }
    for r in rows:
        w, s = writes.get(r["id"]), sends.get(r["id"])
        if w is None or s is None or r["status"] != "ok" or not s.get("tokens") or r["first"] is None:
            continue
        split["pre_write_ms"].append((w[0] - r["t0"]) / 1e6)
        split["write_ms"].append((w[1] - w[0]) / 1e6)
        split["server_read_ms"].append((s["t_recv_ns"] - w[1]) / 1e6)
        split["client_send_ms"].append((w[1] - r["t0"]) / 1e6)
        # the client's own share: client TTFT - (server first write - the request's bytes were in its socket)
        split["client_err_ms"].append(((r["first"] - r["t0"]) - (s["t_first_token_ns"] - w[1])) / 1e6)
    chunks = sum(r["chunks"] for r in rows)
    recvs = data.get("recvs")
    book = data.get("bookkeeper_cpu_s")
    return {"joined": len(split["write_ms"]), "recv_per_chunk": recvs / chunks if recvs and chunks else None,
            "bookkeeper_cpu_us_per_chunk": book * 1e6 / chunks if book and chunks else None,
            **{k: pct(v) for k, v in split.items()}}


def _py_spy_exe() -> str:
    exe = Path(sys.executable).parent / "py-spy"
    return str(exe) if exe.exists() else (shutil.which("py-spy") or "py-spy")


# -- joining --------------------------------------------------------------------------------------------------------


def _f(v: str) -> float | None:
    return float(v) if v not in ("", None) else None


def read_client_rows(profile: str, workdir: Path) -> list[dict[str, Any]]:
    """Client rows in one shape: id, status, t0, first/last token time, chunks, client TPOT, end time (ns)."""
    out = []
    if profile != "bare":
        paths = sorted((workdir / "reports").glob("*/requests.csv"))
        if not paths:
            raise RuntimeError(f"no requests.csv under {workdir / 'reports'}")
        with paths[-1].open(newline="", encoding="utf-8") as f:
            for r in csv.DictReader(f):
                t0 = int(r["t0_ns"])
                ttft, e2e, elapsed = _f(r["ttft_ms"]), _f(r["e2e_ms"]), _f(r["elapsed_ms"])
                out.append(
                    {
                        "id": r["request_id"],
                        "status": r["status"],
                        "t0": t0,
                        "first": t0 + round(ttft * 1e6) if ttft is not None else None,
                        "last": t0 + round(e2e * 1e6) if e2e is not None else None,
                        "chunks": int(r["token_events"] or 0),
                        "tpot_ms": _f(r["tpot_ms"]),
                        "end": t0 + round(elapsed * 1e6) if elapsed is not None else t0,
                    }
                )
    else:
        with (workdir / "bare.csv").open(newline="", encoding="utf-8") as f:
            for r in csv.DictReader(f):
                n, first, last = int(r["chunks"]), int(r["t_first_ns"]), int(r["t_last_ns"])
                out.append(
                    {
                        "id": r["request_id"],
                        "status": r["status"],
                        "t0": int(r["t0_ns"]),
                        "first": first if n else None,
                        "last": last if n else None,
                        "chunks": n,
                        "tpot_ms": (last - first) / (n - 1) / 1e6 if n >= 2 else None,
                        "end": int(r["t_end_ns"]),
                    }
                )
    return out


def read_send_log(path: Path) -> dict[str, dict[str, Any]]:
    sends = {}
    if path.exists():
        with path.open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    rec = json.loads(line)
                    sends[rec["request_id"]] = rec
    return sends


def pct(values: Sequence[float]) -> dict[str, float | None]:
    import numpy as np

    if not values:
        return {"n": 0, "p50": None, "p90": None, "p99": None, "max": None, "mean": None}
    a = np.asarray(values, dtype="float64")
    out: dict[str, float | None] = {"n": int(a.size)}
    for p, v in zip(PCTS, np.percentile(a, PCTS), strict=True):
        out[f"p{p}"] = float(v)
    out["max"] = float(a.max())
    out["mean"] = float(a.mean())
    return out


def analyse(rows: list[dict[str, Any]], sends: dict[str, dict[str, Any]], sampler: CpuSampler) -> dict[str, Any]:
    status = Counter(r["status"] for r in rows)
    ok = [r for r in rows if r["status"] == "ok"]
    ttft, e2e, tpot, send_delay, itl_server, whole = [], [], [], [], [], []
    arrive, server_wait, client_whole = [], [], []  # with the kernel's arrival stamp (t_arrive_ns)
    unmatched = 0
    for r in ok:
        s = sends.get(r["id"])
        if s is None or s.get("status") != 200 or s.get("aborted") or not s.get("tokens"):
            unmatched += 1
            continue
        ttft.append((r["first"] - s["t_first_token_ns"]) / 1e6)
        e2e.append((r["last"] - s["t_last_token_ns"]) / 1e6)
        send_delay.append((s["t_recv_ns"] - r["t0"]) / 1e6)
        # the whole TTFT error: client TTFT - server TTFT (first write - body read) = send side + receive side
        whole.append(((r["first"] - r["t0"]) - (s["t_first_token_ns"] - s["t_recv_ns"])) / 1e6)
        if s.get("t_arrive_ns"):  # the request's bytes on the server's socket (the kernel's receive stamp)
            arrive.append((s["t_arrive_ns"] - r["t0"]) / 1e6)
            server_wait.append((s["t_recv_ns"] - s["t_arrive_ns"]) / 1e6)
            client_whole.append(((r["first"] - r["t0"]) - (s["t_first_token_ns"] - s["t_arrive_ns"])) / 1e6)
        if s["tokens"] >= 2 and r["tpot_ms"] is not None:
            server_tpot = (s["t_last_token_ns"] - s["t_first_token_ns"]) / (s["tokens"] - 1) / 1e6
            tpot.append(r["tpot_ms"] - server_tpot)
            ts = s["token_send_ns"]
            itl_server.extend((b - a) / 1e6 for a, b in zip(ts, ts[1:], strict=False))
    res: dict[str, Any] = {
        "requests": dict(status),
        "joined": len(ttft),
        "unmatched_ok": unmatched,
        "ttft_err_ms": pct(ttft),
        "e2e_err_ms": pct(e2e),
        "tpot_err_ms": pct(tpot),
        "send_ms": pct(send_delay),  # send side of the TTFT error: t0 -> the server has read the request body
        "ttft_whole_err_ms": pct(whole),  # client TTFT - (server first write - server body read)
        # the same against the kernel's stamp of the request's arrival on the server's socket: the client's own
        # send side (t0 -> bytes on the server's socket) and the server's wait before it read them, split
        "send_arrive_ms": pct(arrive),
        "server_read_wait_ms": pct(server_wait),
        "ttft_client_err_ms": pct(client_whole),  # client TTFT - (server first write - request arrived)
        "server_itl_ms": pct(itl_server),
    }
    if not rows:
        return res
    w0 = min(r["t0"] for r in rows)
    w_end = max(r["end"] for r in rows)
    ok_end = max((r["end"] for r in ok), default=w0)
    ok_chunks = sum(r["chunks"] for r in ok)
    all_chunks = sum(r["chunks"] for r in rows)
    ok_window = (ok_end - w0) / 1e9
    window = (w_end - w0) / 1e9
    res["window_s"] = window
    res["requests_per_s"] = len(ok) / ok_window if ok_window > 0 else None
    res["chunks_per_s"] = ok_chunks / ok_window if ok_window > 0 else None
    res["chunks_per_s_all"] = all_chunks / window if window > 0 else None
    res["chunks_all"] = all_chunks
    cpu: dict[str, float | None] = {}
    for name in sampler.samples:
        cpu[name] = sampler.cpu_seconds(name, w0, w_end)
        if not name.endswith("-tasks") and name != "driver":
            res[f"{name}_cpu_pct"] = 100 * cpu[name] / window if cpu[name] is not None and window > 0 else None
    loc = cpu.get("locust")
    res["cpu_us_per_chunk"] = loc * 1e6 / all_chunks if loc is not None and all_chunks else None
    res["cpu_us_per_request"] = loc * 1e6 / len(rows) if loc is not None else None
    # other processes: the time tasks ran on the cores, less ours (the server, Locust, this script)
    tasks = [v for k, v in cpu.items() if k.endswith("-tasks")]
    ours = [cpu.get("locust"), cpu.get("mock"), cpu.get("driver")]
    if tasks and None not in tasks and None not in ours and window > 0:
        res["foreign_cpu_pct"] = max(0.0, 100 * (sum(tasks) - sum(ours)) / window)
    else:
        res["foreign_cpu_pct"] = None
    return res


# -- py-spy summary -------------------------------------------------------------------------------------------------

#: (label, substrings of py-spy frames "Class.function (file:line)"). A sample goes to the first category, in
#: this order, any of whose substrings appears anywhere in its stack: the per-request tail first, then the per-chunk
#: steps, then what is left of the loops, the HTTP client and the gevent hub.
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("tail: tiktoken count", ("(llm_locust/tokens.py", "(tiktoken/")),
    ("tail: price lookup", ("(llm_locust/pricing.py", "(genai_prices/")),
    ("tail: live view", ("(llm_locust/live.py",)),  # before the recorder: the live view listens to Recorder.add
    ("tail: requests.csv row", ("(llm_locust/recorder.py", "(llm_locust/measure/record.py", "(csv.py")),
    ("tail: record dict, timing()", ("build_record (llm_locust/measure/build.py", "timing (llm_locust")),
    ("tail: Locust request event + stats", ("EventHook.fire (locust/", "_report_request (locust/")),
    ("request: send + response head (locust, geventhttpclient)",
     ("FastHttpSession.request (locust/", "Sender.send (llm_locust/sender.py")),
    ("chunk: JSON parse (json.loads)", ("(json/",)),
    ("chunk: protocol parse (dict walk, Delta)", ("(llm_locust/protocols/",)),
    ("chunk: SSE decoder", ("(llm_locust/measure/framing.py",)),
    ("chunk: StreamClock.add", ("StreamClock.add (llm_locust/measure/metrics.py",)),
    ("chunk: readline (incl. recv + gevent wait)", ("readline (geventhttpclient",)),
    ("chunk: bare reader loop", ("bare_locustfile.py",)),
    ("chunk: read_stream loop itself", ("read_stream (llm_locust/measure/stream.py",)),
    ("request: call() setup/teardown", ("(llm_locust/users.py",)),
    ("gevent hub loop (libev, epoll, greenlet switches)", ("Hub.run (gevent/",)),
    ("Locust runner, stats, other greenlets", ("(locust/",)),
)


def summarise_py_spy(path: Path) -> dict[str, Any]:
    """Split py-spy's raw (collapsed) samples into the categories above, and list the top self-time frames."""
    cats: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            stack, _, n = line.rstrip("\n").rpartition(" ")
            if not stack or not n.isdigit():
                continue
            if "threadpool.py" in stack:  # gevent's resolver thread, waiting: not the load generator's work
                continue
            count = int(n)
            total += count
            leaves[stack.rsplit(";", 1)[-1]] += count
            label = next((lbl for lbl, subs in CATEGORIES if any(sub in stack for sub in subs)), "other")
            cats[label] += count
    return {
        "samples": total,
        "categories": {k: v / total for k, v in cats.most_common()} if total else {},
        "top_self": [[k, v / total] for k, v in leaves.most_common(15)] if total else [],
    }


# -- in-process micro benchmark -------------------------------------------------------------------------------------


def micro(tokens: int = 200) -> dict[str, float | str]:
    """Microseconds for the full profile's per-chunk work and per-request tail, without I/O (best of 5).

    Each item is measured on its own, so one that no longer fits the current code reads "error: ..." and the
    others still run.
    """
    from array import array

    from llm_locust.measure.framing import SSEDecoder
    from llm_locust.measure.metrics import StreamClock, timing
    from llm_locust.measure.stream import StreamResult, read_stream
    from llm_locust.mockserver.openai import OpenAIEncoder
    from llm_locust.mockserver.script import token_text
    from llm_locust.mockserver.wire import GenRequest, Reply
    from llm_locust.protocols import get_protocol

    enc = OpenAIEncoder(GenRequest(MODEL, True, None, 5, True, False), Reply(1, "x", 1700000000, 5, 0), True, False)
    event = enc.tokens(token_text(3, 1), False, 4, 0)
    data_line, blank = event.split(b"\n")[0] + b"\n", b"\n"
    data = data_line[6:-1]
    proto = get_protocol("openai-chat")("http://127.0.0.1", MODEL)
    mark = b'{"content":"'
    clock_ns = time.perf_counter_ns
    text = token_text(0, tokens)
    record = {
        "prompt": PROMPT_NAME, "status": "ok", "request_id": "x", "input_tokens": 5, "output_tokens": tokens,
        "cost_usd": None, "output_tokens_per_s": 50.0, "ttft_ms": 51.5, "tpot_ms": 10.0, "e2e_ms": 2041.5,
        "t0_ns": 123, "itl_us": array("q", [10000] * (tokens - 1)).tobytes(),
    }

    body_lines = [data_line, blank] * 1000 + [b"data: [DONE]\n", blank, b""]

    class Body:
        """An in-memory body: ``readline`` hands out the lines, then ``b""`` (the cost of a list iterator)."""

        def __init__(self) -> None:
            lines = iter(body_lines)
            self.readline = lambda _sep: next(lines)

    def full_chunk() -> None:  # the real loop, llm_locust.measure.stream.read_stream
        out = read_stream(StreamResult(proto), Body())
        assert out.error is None, out.error

    def bare_chunk() -> None:
        n = 0
        for line in (data_line, blank) * 1000:
            t = clock_ns()
            if mark in line:
                n += 1
                last = t  # noqa: F841

    def decoder_only() -> None:
        dec = SSEDecoder()
        for _ in range(1000):
            dec.feed(0, data_line)
            dec.feed(0, blank)

    def parse_only() -> None:
        for _ in range(1000):
            proto.parse("", data)

    def loads_only() -> None:
        for _ in range(1000):
            json.loads(data)

    def clock_add_only() -> None:
        clock = StreamClock()
        for _ in range(1000):
            clock.add(0, " the", "", None)

    def tiktoken_count() -> Any:
        from llm_locust.tokens import TokenCounter

        counter = TokenCounter(MODEL)
        counter.count("warm up")
        return lambda: counter.count(text)

    def price() -> Any:
        from llm_locust.pricing import PriceBook

        prices = PriceBook("http://127.0.0.1", None)
        prices.cost(MODEL, 5, tokens, None, time.time())
        return lambda: prices.cost(MODEL, 5, tokens, None, time.time())

    def timing_fn() -> Any:
        clock = StreamClock()
        for k in range(tokens):
            clock.add(1000 * k, token_text(k, 1), "", None)
        return lambda: timing(0, clock, tokens)

    tmpdir = Path(tempfile.mkdtemp(prefix="llm-locust-micro-"))

    def csv_write() -> Any:
        from llm_locust.recorder import Recorder

        rec = Recorder(tmpdir / "requests.csv")
        return lambda: rec.add(dict(record))

    def live_add() -> Any:
        from llm_locust.live import LiveView

        live = LiveView()
        return lambda: live.add(record)

    def best(fn: Any, number: int, per: int) -> float | str:
        try:
            return min(timeit.repeat(fn, number=number, repeat=5)) / number / per * 1e6
        except Exception as e:  # the code moved on: say so, measure the rest
            return f"error: {type(e).__name__}: {e}"

    def best_of(factory: Any, number: int) -> float | str:
        try:
            fn = factory()
        except Exception as e:
            return f"error: {type(e).__name__}: {e}"
        return best(fn, number, 1)

    out: dict[str, float | str] = {
        "per chunk: full profile (2 lines: read_stream loop, decoder, JSON parse, Delta, StreamClock.add)": best(
            full_chunk, 20, 1000
        ),
        "per chunk:   SSE decoder, 2 lines": best(decoder_only, 20, 1000),
        "per chunk:   protocol parse incl. json.loads": best(parse_only, 20, 1000),
        "per chunk:     json.loads alone": best(loads_only, 20, 1000),
        "per chunk:   StreamClock.add": best(clock_add_only, 20, 1000),
        "per chunk: bare reader (2 lines: clock + substring test)": best(bare_chunk, 20, 1000),
        f"per request: tiktoken count of {tokens} tokens": best_of(tiktoken_count, 50),
        "per request: price lookup (unpriced model)": best_of(price, 200),
        f"per request: timing() of {tokens} token events": best_of(timing_fn, 200),
        "per request: Recorder.add (CSV row + flush, listeners none)": best_of(csv_write, 200),
        f"per request: LiveView.add ({tokens - 1} ITL samples)": best_of(live_add, 200),
    }
    shutil.rmtree(tmpdir, ignore_errors=True)
    return out


# -- report ---------------------------------------------------------------------------------------------------------


def machine_info(mode: str) -> dict[str, Any]:
    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    lscpu = ""
    if shutil.which("lscpu"):
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    keep = ("Architecture", "CPU(s):", "Model name", "Thread(s) per core", "Core(s) per socket", "Hypervisor", "MHz")

    def git(*cmd: str) -> str:
        try:
            return subprocess.run(["git", *cmd], capture_output=True, text=True, cwd=ROOT, check=False).stdout.strip()
        except OSError:
            return ""

    return {
        "git_commit": git("rev-parse", "HEAD"),
        "git_uncommitted": git("status", "--porcelain", "--", "llm_locust", "locustfile.py").splitlines(),
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_count": os.cpu_count(),
        "lscpu": [ln.strip() for ln in lscpu.splitlines() if ln.strip().startswith(keep)],
        "kernel": platform.release(),
        "python": platform.python_version(),
        "locust": version("locust"),
        "gevent": version("gevent"),
        "geventhttpclient": version("geventhttpclient"),
        "tiktoken": version("tiktoken"),
        "pinning": mode,
        "server_core": SERVER_CORE,
        "client_core": CLIENT_CORE,
    }


def _num(v: Any, fmt: str = "{:.3f}") -> str:
    return "-" if v is None else fmt.format(v)


def print_table(runs: list[dict[str, Any]]) -> None:
    head = (
        f"{'scenario':<9}{'gen':<12}{'users':>6}{'ok':>6}{'req/s':>7}{'chunks/s':>9}{'cpu% gen/core':>14}"
        f"{'srv/core':>9}{'us/chk':>7}{'us/req':>7}{'oth%':>5}{'gc2 ms':>7} | {'TTFT err ms p50/p90/p99/max':<28}"
        f"| {'E2E err p50/p99/max':<22}| {'TPOT err p50/p99':<16}"
    )
    print(head)
    print("-" * len(head))
    for r in runs:
        t, e, p = r["ttft_err_ms"], r["e2e_err_ms"], r["tpot_err_ms"]
        ttft = "/".join(_num(t[k], "{:.2f}") for k in ("p50", "p90", "p99", "max"))
        e2e = "/".join(_num(e[k], "{:.2f}") for k in ("p50", "p99", "max"))
        tpot = "/".join(_num(p[k], "{:.4f}") for k in ("p50", "p99"))
        gen = _num(r.get("locust_cpu_pct"), "{:.0f}") + "/" + _num(r.get(f"core{CLIENT_CORE}_cpu_pct"), "{:.0f}")
        srv = _num(r.get("mock_cpu_pct"), "{:.0f}") + "/" + _num(r.get(f"core{SERVER_CORE}_cpu_pct"), "{:.0f}")
        gc2 = r["gc"]["gen2"]["max_ms"] if "gc" in r else None
        scenario = r["scenario"] + ("" if r.get("valid", True) else "!")
        print(
            f"{scenario:<9}{r['profile']:<12}{r['users']:>6}{r['requests'].get('ok', 0):>6}"
            f"{_num(r.get('requests_per_s'), '{:.1f}'):>7}{_num(r.get('chunks_per_s'), '{:.0f}'):>9}{gen:>14}{srv:>9}"
            f"{_num(r.get('cpu_us_per_chunk'), '{:.1f}'):>7}{_num(r.get('cpu_us_per_request'), '{:.0f}'):>7}"
            f"{_num(r.get('foreign_cpu_pct'), '{:.0f}'):>5}"
            f"{_num(gc2, '{:.1f}'):>7} | {ttft:<28}| {e2e:<22}| {tpot:<16}"
        )


def print_whole_table(runs: list[dict[str, Any]]) -> None:
    """Issue 14's table: the whole TTFT error split into send and receive side, p50/p99 ms, and CPU ratios."""
    bare = {_scenario_key(r): r for r in runs if r["profile"] == "bare" and "py_spy" not in r}
    print("\nTTFT error = client TTFT - (server first write - server body read) = send side + receive side, ms")
    head = (f"{'profile':<8}{'streams':>8}{'chunks/s':>9} | {'whole p50/p99':<14}| {'send p50/p99':<14}"
            f"| {'recv p50/p99':<14}| {'us/chunk':>8}{'x bare':>7}{'us/req':>7}{'x bare':>7}"
            f"{'whole p99 x bare':>17}")
    print(head)
    print("-" * len(head))
    for r, b in _with_bare(runs, bare):
        two = _p50_p99
        print(
            f"{r['profile']:<8}{r['users']:>8}{_num(r.get('chunks_per_s'), '{:.0f}'):>9} | "
            f"{two(r.get('ttft_whole_err_ms', {})):<14}| {two(r['send_ms']):<14}| {two(r['ttft_err_ms']):<14}| "
            f"{_num(r.get('cpu_us_per_chunk'), '{:.1f}'):>8}{_ratio(r, b, 'cpu_us_per_chunk'):>7}"
            f"{_num(r.get('cpu_us_per_request'), '{:.0f}'):>7}{_ratio(r, b, 'cpu_us_per_request'):>7}"
            f"{_ratio(r, b, 'ttft_whole_err_ms', 'p99'):>17}"
            + ("  (short: per-request cost)" if r["scenario"] == "short" else "")
        )
    if not any(r.get("send_arrive_ms", {}).get("p50") is not None for r in runs):
        return
    print("\nThe same split at the kernel's stamp of the request's arrival on the server's socket (t_arrive_ns), ms:")
    print("client = client TTFT - (server first write - request arrived) = client send (t0 -> arrived) + receive side;")
    print("server wait = arrived -> the server read it (the server's own latency, which its TTFT leaves out)")
    head = (f"{'profile':<8}{'streams':>8} | {'client p50/p99':<15}| {'client send p50/p99':<20}"
            f"| {'recv p50/p99':<14}| {'server wait p50/p99':<20}| {'client p99 x bare':>17}")
    print(head)
    print("-" * len(head))
    for r, b in _with_bare(runs, bare):
        print(
            f"{r['profile']:<8}{r['users']:>8} | {_p50_p99(r.get('ttft_client_err_ms', {})):<15}| "
            f"{_p50_p99(r.get('send_arrive_ms', {})):<20}| {_p50_p99(r['ttft_err_ms']):<14}| "
            f"{_p50_p99(r.get('server_read_wait_ms', {})):<20}| {_ratio(r, b, 'ttft_client_err_ms', 'p99'):>17}"
            + ("  (short)" if r["scenario"] == "short" else "")
        )


def _scenario_key(r: dict[str, Any]) -> tuple[Any, ...]:
    """What makes two runs comparable: the same scenario, users, mock and repeat (so a ratio is of one repeat)."""
    return r["scenario"], r["users"], r["mock_args"], r.get("repeat", 1)


def _with_bare(
    runs: list[dict[str, Any]], bare: dict[tuple[Any, ...], dict[str, Any]]
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Each run of issue 14's table with the bare reader's run of the same scenario and repeat ({} if none)."""
    for r in runs:
        if r["scenario"] in ("table", "short"):
            yield r, bare.get(_scenario_key(r), {})


def _ratio(r: dict[str, Any], b: dict[str, Any], key: str, sub: str | None = None) -> str:
    """``r``'s figure over the bare run's (``key``, or its ``sub`` field), two decimals; "-" if either is missing."""
    a = r.get(key) if sub is None else r.get(key, {}).get(sub)
    c = b.get(key) if sub is None else b.get(key, {}).get(sub)
    return _num(a / c, "{:.2f}") if a is not None and c else "-"


def _p50_p99(d: dict[str, Any]) -> str:
    return f"{_num(d.get('p50'))}/{_num(d.get('p99'))}"


def compare(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """full / bare ratios for every scenario measured with both."""
    out = []
    bare = {_scenario_key(r): r for r in runs if r["profile"] == "bare" and "py_spy" not in r}
    for r in runs:
        b = bare.get(_scenario_key(r))
        if r["profile"] == "bare" or b is None or "py_spy" in r:
            continue

        def ratio(a: float | None, c: float | None) -> float | None:
            return a / c if a is not None and c else None

        out.append(
            {
                "profile": r["profile"],
                "scenario": r["scenario"],
                "users": r["users"],
                "mock_args": r["mock_args"],
                "chunks_per_s_full_over_bare": ratio(r.get("chunks_per_s"), b.get("chunks_per_s")),
                "requests_per_s_full_over_bare": ratio(r.get("requests_per_s"), b.get("requests_per_s")),
                "ttft_err_p99_full_over_bare": ratio(r["ttft_err_ms"]["p99"], b["ttft_err_ms"]["p99"]),
                "cpu_us_per_chunk_full_over_bare": ratio(r.get("cpu_us_per_chunk"), b.get("cpu_us_per_chunk")),
            }
        )
    return out


# -- main -----------------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke check: 3 s runs, users 1,8, a 32-user max run, "
                   "no retries")
    p.add_argument("--table", action="store_true", help="issue 14's table: 32 streams at ITL 20 ms, "
                   "64/128/256 at ITL 5 ms, TTFT 200 ms, 128 tokens, and the short scenario")
    p.add_argument("--stagger", action="store_true", help="start the users' first requests spread over the spawn "
                   "interval (the full profile's --stagger, the bare reader's --bare-stagger)")
    p.add_argument("--write-probe", action="store_true", help="split the send side: log when each request's "
                   "sendall starts and returns (a monkey-patch in the wrapper locustfile, both profiles)")
    p.add_argument("--only-rows", default="", help="with --table: only these streams, e.g. 32 or 32,256")
    p.add_argument("--users", default="1,32,128", help="users of the error scenario (default %(default)s)")
    p.add_argument("--duration", type=float, default=15.0, help="seconds per run (default %(default)s)")
    p.add_argument("--out", default=None, help="JSON results (default bench/results.json; with --quick a file in the "
                   "temp dir, so a smoke check never overwrites the real results)")
    p.add_argument("--profiles", default="full,bare", help="load generators to measure: full, bare, full-reader "
                   "(the full profile timing lines by the reader's clock) (default %(default)s)")
    p.add_argument("--ttft-ms", type=float, default=50.0, help="mock TTFT (default %(default)s)")
    p.add_argument("--itl-ms", type=float, default=10.0, help="mock ITL of the error scenario (default %(default)s)")
    p.add_argument("--tokens", type=int, default=64, help="output tokens, error scenario (default %(default)s)")
    p.add_argument("--max-users", type=int, default=256, help="users of the max-rate scenario (default %(default)s)")
    p.add_argument("--max-itl-ms", default="10,5,2,1", help="mock ITLs of the max-rate scenario, one run each "
                   "(default %(default)s)")
    p.add_argument("--max-tokens", type=int, default=200, help="output tokens, max scenario (default %(default)s)")
    p.add_argument("--short-users", type=int, default=64, help="users of the short scenario (default %(default)s)")
    p.add_argument("--short-tokens", type=int, default=2, help="output tokens, short scenario (default %(default)s)")
    p.add_argument("--short-ttft-ms", type=float, default=5.0, help="mock TTFT, short scenario (default %(default)s)")
    p.add_argument("--py-spy-itl-ms", type=float, default=5.0, help="mock ITL of the py-spy run of the max scenario "
                   "(default %(default)s)")
    p.add_argument("--skip-error", action="store_true", help="skip the error scenario")
    p.add_argument("--skip-short", action="store_true", help="skip the short scenario")
    p.add_argument("--skip-max", action="store_true", help="skip the max-rate scenario")
    p.add_argument("--py-spy", type=float, default=0.0, metavar="SECONDS",
                   help="add py-spy runs of this many seconds (max load, short)")
    p.add_argument("--quiet-pct", type=float, default=10.0, help="before each run, wait until no core is busier "
                   "than this (other processes) (default %(default)s)")
    p.add_argument("--quiet-wait", type=float, default=180.0, help="... for at most this many seconds, then measure "
                   "anyway and say so (default %(default)s)")
    p.add_argument("--retries", type=int, default=2, help="measure a run again (up to this many times) when other "
                   "processes used more than --foreign-pct of a core during it (default %(default)s)")
    p.add_argument("--foreign-pct", type=float, default=15.0, help="see --retries (default %(default)s)")
    p.add_argument("--repeat", type=int, default=1, help="run the whole plan this many times, one after the other, "
                   "to see the run-to-run spread (default %(default)s)")
    p.add_argument("--no-gc-probe", action="store_true", help="run the locustfiles directly, without the wrapper "
                   "that records garbage-collection pauses")
    p.add_argument("--server", choices=("mock", "truth"), default="mock", help="the ground-truth server: the mock "
                   "(llm_locust.mockserver) or bench/truth_server.c, a light C server (built with cc) that answers "
                   "as the mock's OpenAI chat stream does, for loads at which the mock's own read wait counts "
                   "(default %(default)s)")
    p.add_argument("--no-micro", action="store_true", help="skip the in-process micro benchmark")
    p.add_argument("--workdir", default=None, help="keep the logs of every run here (default: a temp dir, removed)")
    args = p.parse_args(argv)
    if args.quick:
        args.users, args.duration, args.max_users, args.max_itl_ms, args.max_tokens = "1,8", 3.0, 32, "1", 50
        args.retries, args.quiet_wait, args.short_users = 0, min(args.quiet_wait, 30.0), 8
    if args.table:
        args.ttft_ms, args.skip_error, args.max_tokens, args.no_micro = 200.0, True, 128, True
    if args.out is None:
        quick = Path(tempfile.gettempdir()) / "llm-locust-bench-quick.json"
        args.out = str(quick if args.quick else BENCH / "results.json")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    mode = pinning_mode()
    if mode.startswith("none"):
        print(f"note: not pinning processes to cores: {mode}", file=sys.stderr)
    profiles = [p.strip() for p in args.profiles.split(",") if p.strip()]
    users = [int(u) for u in args.users.split(",") if u.strip()]
    max_itls = [float(x) for x in args.max_itl_ms.split(",") if x.strip()]
    base = ["--ttft-ms", f"{args.ttft_ms:g}"]
    plan: list[tuple[str, str, int, list[str], float]] = []
    if not args.skip_error:
        for u in users:
            for prof in profiles:
                plan.append(("error", prof, u, [*base, "--itl-ms", f"{args.itl_ms:g}", "--output-tokens",
                                                  str(args.tokens)], 0.0))
    if args.table:
        only = {int(x) for x in args.only_rows.split(",") if x.strip()}
        for u, itl in TABLE_ROWS:
            if only and u not in only:
                continue
            for prof in profiles:
                mock_args = [*base, "--itl-ms", f"{itl:g}", "--output-tokens", str(args.max_tokens)]
                plan.append(("table", prof, u, mock_args, 0.0))
    elif not args.skip_max:
        for itl in max_itls:
            for prof in profiles:
                mock_args = [*base, "--itl-ms", f"{itl:g}", "--output-tokens", str(args.max_tokens)]
                plan.append(("max", prof, args.max_users, mock_args, 0.0))
    short = ["--ttft-ms", f"{args.short_ttft_ms:g}", "--itl-ms", "1", "--output-tokens", str(args.short_tokens)]
    if not args.skip_short:
        for prof in profiles:
            plan.append(("short", prof, args.short_users, short, 0.0))
    if args.py_spy > 0:
        mock_args = [*base, "--itl-ms", f"{args.py_spy_itl_ms:g}", "--output-tokens", str(args.max_tokens)]
        for prof in (p for p in profiles if p != "full-reader"):
            plan.append(("py-spy", prof, args.max_users, mock_args, args.py_spy))
            if not args.skip_short:
                plan.append(("py-spy-short", prof, args.short_users, short, args.py_spy))

    keep = args.workdir is not None
    workroot = Path(args.workdir) if keep else Path(tempfile.mkdtemp(prefix="llm-locust-bench-"))
    workroot.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"machine": machine_info(mode), "args": vars(args), "runs": []}
    try:
        inputs = write_inputs(workroot)
        server = build_truth_server(workroot) if args.server == "truth" else None
        steps = [(*step, rep) for rep in range(1, args.repeat + 1) for step in plan]
        for i, (scenario, prof, u, mock_args, spy, rep) in enumerate(steps, 1):
            label = f"{scenario} {prof} users={u} mock: {' '.join(mock_args)}"
            label += f" (repeat {rep})" if args.repeat > 1 else ""
            print(f"[{i}/{len(steps)}] {label} ...", file=sys.stderr, flush=True)
            duration = max(args.duration, spy + 5) if spy else args.duration
            best: dict[str, Any] | None = None
            for attempt in range(1, args.retries + 2):
                background = wait_for_quiet(args.quiet_pct, args.quiet_wait)
                wd = workroot / f"{i:02d}-{scenario}-{prof}-{u}-rep{rep}-try{attempt}"
                r = run_once(prof, u, mock_args, duration, wd, inputs, mode, spy, gc_probe=not args.no_gc_probe,
                             stagger=args.stagger, write_probe=args.write_probe, server=server)
                r.update(scenario=scenario, background_busy_pct=background, attempt=attempt, repeat=rep,
                         server=args.server)
                t = r["ttft_err_ms"]
                print(
                    f"    ok={r['requests'].get('ok', 0)} chunks/s={_num(r.get('chunks_per_s'), '{:.0f}')} "
                    f"TTFT err p50/p99={_num(t['p50'])}/{_num(t['p99'])} ms"
                    f" cpu={_num(r.get('locust_cpu_pct'), '{:.0f}')}%"
                    f" mock cpu={_num(r.get('mock_cpu_pct'), '{:.0f}')}%"
                    f" core{CLIENT_CORE}={_num(r.get(f'core{CLIENT_CORE}_cpu_pct'), '{:.0f}')}%"
                    f" core{SERVER_CORE}={_num(r.get(f'core{SERVER_CORE}_cpu_pct'), '{:.0f}')}%"
                    f" server ITL p99={_num(r['server_itl_ms']['p99'])} ms"
                    f" other processes={_num(r['foreign_cpu_pct'], '{:.0f}')}%",
                    file=sys.stderr,
                    flush=True,
                )
                foreign = r["foreign_cpu_pct"] if r["foreign_cpu_pct"] is not None else 0.0
                n_ok, n_failed = r["requests"].get("ok", 0), r["requests"].get("failed", 0)
                r["valid"] = n_ok > 0 and n_failed <= 0.01 * (n_ok + n_failed) and r["unmatched_ok"] == 0
                if not r["valid"]:
                    print(f"    INVALID run: {r['requests']}, {r['unmatched_ok']} unmatched; see {wd}", file=sys.stderr)
                if best is None or (r["valid"], -foreign) > (best["valid"], -(best["foreign_cpu_pct"] or 0.0)):
                    best = r
                if r["valid"] and (foreign <= args.foreign_pct or spy):  # (py-spy itself counts as another process)
                    break
                if not r["valid"]:
                    time.sleep(10)  # e.g. a server broken for a moment: give it time
                if r["valid"]:
                    print("    other processes used the cores during the run: measuring again", file=sys.stderr)
            assert best is not None
            results["runs"].append(best)
        if not args.no_micro:
            wait_for_quiet(args.quiet_pct, args.quiet_wait)
            mask = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
            if mask is not None and not mode.startswith("none"):
                os.sched_setaffinity(0, {CLIENT_CORE})  # the load generator's core
            try:
                results["micro_us"] = micro(args.max_tokens)
            finally:
                if mask is not None:
                    os.sched_setaffinity(0, mask)
    finally:
        stop_all_children()
        if not keep:
            shutil.rmtree(workroot, ignore_errors=True)
    results["comparison"] = compare(results["runs"])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")

    print()
    print_table([r for r in results["runs"] if not r["scenario"].startswith("py-spy")])
    if args.table:
        print_whole_table(results["runs"])
    if not all(r.get("valid", True) for r in results["runs"]):
        print("! = no valid attempt (no successful request, >1 % failed, or rows missing from the send log)")
    if results["comparison"]:
        print("\nfull profile / bare reader:")
        for c in results["comparison"]:
            print(
                f"  {c['profile']:<12}{c['scenario']:<6} users={c['users']:<4} {c['mock_args']:<46}"
                f"  chunks/s x{_num(c['chunks_per_s_full_over_bare'])}"
                f"  TTFT err p99 x{_num(c['ttft_err_p99_full_over_bare'], '{:.2f}')}"
                f"  CPU us/chunk x{_num(c['cpu_us_per_chunk_full_over_bare'], '{:.2f}')}"
            )
    for r in results["runs"]:
        if "py_spy" in r:
            print(f"\npy-spy, {r['profile']} at {r['users']} users ({r['py_spy']['samples']} samples), CPU share:")
            short_run = r["scenario"] == "py-spy-short"
            per, unit = ("cpu_us_per_request", "request") if short_run else ("cpu_us_per_chunk", "chunk")
            print(f"  ({r['mock_args']}; {_num(r.get(per), '{:.1f}')} CPU us per {unit} in all)")
            for k, v in r["py_spy"]["categories"].items():
                us = v * r[per] if r.get(per) else None
                print(f"  {k:<58} {100 * v:5.1f}%  {_num(us, '{:.2f}')} us/{unit}")
    probed = [r for r in results["runs"] if "write_probe" in r]
    if probed:
        print("\nwrite probe, ms p50/p90/p99: t0 -> sendall starts | sendall | sendall returned -> server body read "
              "(the mock's wake-up) | client send side (t0 -> sendall returned) | client's TTFT error "
              "(client TTFT - (server first write - sendall returned))")
    for r in probed:
        wp = r["write_probe"]
        print(f"  {r['profile']:<5} {r['users']:>4} streams ({wp['joined']:>5} requests, "
              f"{_num(wp.get('recv_per_chunk'), '{:.2f}')} recv/chunk, bookkeeper "
              f"{_num(wp.get('bookkeeper_cpu_us_per_chunk'), '{:.2f}')} CPU us/chunk): "
              + " | ".join(f"{_num(wp[k]['p50'])}/{_num(wp[k]['p90'])}/{_num(wp[k]['p99'])}"
                           for k in ("pre_write_ms", "write_ms", "server_read_ms", "client_send_ms", "client_err_ms")))
    if "micro_us" in results:
        print("\nmicro (in-process, no I/O), microseconds:")
        for k, v in results["micro_us"].items():
            print(f"  {k:<72} {v:8.2f}" if isinstance(v, float) else f"  {k:<72} {v}")
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        stop_all_children()
