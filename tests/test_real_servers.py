"""llm-locust against real third-party servers: llama-cpp-python's and vLLM's OpenAI-compatible servers.

Each server runs from its own venv (installed by ``bash .ci/real-servers.sh``; without it its tests skip, saying
so) on a tiny random-weight model that the project writes itself (tests/realservers/tinymodel.py). The model never
emits EOS, so every stream is exactly ``token_limit`` tokens long, one token per stream event. Servers are started
once per session on a free 127.0.0.1 port and stopped by PID at the end; runs use the project's real ``locust``
CLI with the bundled locustfile, bounded by ``--max-requests``.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from llm_locust.prompts import Prompt
from llm_locust.protocols import Protocol, get_protocol
from tests.conftest import ROOT, LocustRun, run_locust
from tests.realservers import servers
from tests.realservers.servers import Server

PROMPTS = ROOT / "tests" / "realservers" / "prompts.yaml"
PROMPTS_LONG = ROOT / "tests" / "realservers" / "prompts_long.yaml"
APIS = ("openai-chat", "openai-completions")


def _limits(path: Path) -> dict[str, int]:
    return {p["name"]: p["token_limit"] for p in yaml.safe_load(path.read_text())["prompts"]}


class _Pool:
    """The session's servers, each started on first use and stopped when the session ends."""

    def __init__(self, folder: Path, say) -> None:
        self.folder = folder
        self.say = say
        self.started: dict[str, Server] = {}
        self.failed: dict[str, str] = {}

    def get(self, name: str) -> Server:
        kind = servers.KINDS[name]
        reason = kind.missing()
        if reason:
            pytest.skip(reason)
        if name in self.failed:
            pytest.fail(self.failed[name])
        if name not in self.started:
            try:
                s = servers.start(kind, self.folder / name)
            except Exception as e:  # noqa: BLE001 (reported once per test that needs it)
                self.failed[name] = str(e)
                raise
            self.say(f"real server {kind.name} ({kind.versions()}): model written in {s.model_build_s:.1f} s, "
                     f"serving after {s.ready_s:.1f} s at {s.url}")
            self.started[name] = s
        return self.started[name]

    def stop_all(self) -> None:
        for s in self.started.values():
            s.stop()


@pytest.fixture(scope="session")
def pool(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config):
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")

    def say(line: str) -> None:
        if reporter is not None:
            reporter.write_line(line)

    p = _Pool(tmp_path_factory.mktemp("real-servers"), say)
    yield p
    p.stop_all()


@pytest.fixture(scope="session", params=sorted(servers.KINDS))
def server(pool: _Pool, request: pytest.FixtureRequest) -> Server:
    return pool.get(request.param)


@pytest.fixture(scope="session")
def vllm(pool: _Pool) -> Server:
    return pool.get("vllm")


def _locust(tmp_path: Path, server: Server, *args: str, prompts: Path = PROMPTS, timeout: float = 240) -> LocustRun:
    run = run_locust(
        tmp_path, "-H", server.url, "--model", server.model, "--prompt-file", str(prompts), *args, timeout=timeout
    )
    assert run.returncode == 0, f"locust exited {run.returncode}\n{run.stderr[-3000:]}\nserver:\n{server.log_tail()}"
    return run


def _ok(run: LocustRun, server: Server) -> list[dict]:
    rows = run.requests()
    failed = [r for r in rows if r["status"] == "failed"]
    assert not failed, f"{len(failed)} failed, first: {failed[0]['error']}\nserver:\n{server.log_tail()}"
    assert run.locust_stats()["Aggregated"]["num_failures"] == 0
    return [r for r in rows if r["status"] == "ok"]


@pytest.mark.parametrize("api", APIS)
def test_streams_complete_with_exact_token_counts(server: Server, api: str, tmp_path: Path) -> None:
    run = _locust(tmp_path, server, "--llm-api", api, "-u", "1", "-r", "1", "--max-requests", "4")
    rows = _ok(run, server)
    assert len(rows) == 4
    limits = _limits(PROMPTS)
    for r in rows:
        generated = limits[r["prompt"]]  # the model never stops early: the server generated exactly the cap
        assert r["finish_reason"] == "length"
        assert float(r["tpot_ms"]) >= 0 and float(r["ttft_ms"]) > 0
        if server.kind.stream_usage:
            assert r["output_tokens_source"] == "server"
            assert int(r["output_tokens"]) == int(r["output_tokens_server"]) == generated
            # vLLM's API server sends the tokens that queued up while it was busy as one chunk
            assert 1 <= int(r["token_events"]) <= generated
        else:
            assert r["output_tokens_server"] == ""  # no usage in its streams: N_out is the local (tiktoken) count
            assert int(r["token_events"]) == generated, r  # one stream event per token it generated


def _raw_stream(server: Server, api: str, tokens: int) -> tuple[Protocol, bytes]:
    """One streamed answer's body, as the server sent it (de-chunked), to the request our protocol builds."""
    proto = get_protocol(api)(server.url, server.model)
    body = proto.request_body(Prompt(name="raw", text="Count slowly.", token_limit=tokens), tokens)
    request = urllib.request.Request(  # noqa: S310 (loopback only)
        server.url + proto.request_path(), data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", **proto.headers(None)},
    )
    with urllib.request.urlopen(request, timeout=60) as r:  # noqa: S310
        return proto, r.read()


@pytest.mark.parametrize("api", APIS)
def test_the_envelope_equals_the_full_parse_on_the_servers_own_bytes(server: Server, api: str, monkeypatch) -> None:
    """Issue 14's fast path (a chunk that is the first chunks' envelope around a plain string is read without a
    JSON parse) on the bytes a real server sends, not only on recorded and built streams: the same tokens, text,
    usage, finish and ITL as the full parse, in one pass and in the bookkeeper's bounded steps, and it is taken."""
    from tests.test_parsers import in_steps, outcome

    proto, data = _raw_stream(server, api, 48)
    monkeypatch.setattr(type(proto), "literal_text", False)
    want, _ = in_steps(get_protocol(api)(server.url, server.model), data, None)
    monkeypatch.undo()
    assert want.error is None and len(want.clock.token_ns) >= 40, outcome(want)
    for limit in (None, 1, 5):
        got, _ = in_steps(get_protocol(api)(server.url, server.model), data, limit)
        assert outcome(got) == outcome(want), (api, limit)
        assert got.envelope is not None, (api, limit, data[:600])


def test_vllm_reports_usage_in_streams(vllm: Server, tmp_path: Path) -> None:
    run = _locust(tmp_path, vllm, "-u", "1", "-r", "1", "--max-requests", "2")
    rows = _ok(run, vllm)
    assert [int(r["output_tokens_server"]) for r in rows] == list(_limits(PROMPTS).values())
    assert all(int(r["input_tokens_server"]) > 0 for r in rows)


def test_continuous_usage_splits_itl_by_server_counts(vllm: Server, tmp_path: Path) -> None:
    run = _locust(tmp_path, vllm, "--continuous-usage", "-u", "1", "-r", "1", "--max-requests", "4")
    rows = _ok(run, vllm)
    assert len(rows) == 4
    assert {r["itl_rule"] for r in rows} == {"usage-split"}
    limits = _limits(PROMPTS)
    assert all(int(r["output_tokens_server"]) == limits[r["prompt"]] for r in rows)


TPOT = "vllm:request_time_per_output_token_seconds"
TTFT = "vllm:time_to_first_token_seconds"


class _PerRequest:
    """vLLM's own TPOT and TTFT for each request of a one-user run, from its /metrics page polled during the run.

    vLLM books a request's TTFT when its first token is made and its TPOT when it finishes; with one user, requests
    run one after the other for seconds each, so between two polls a histogram's count grows by one and its sum by
    that request's value. A step of more than one request (a missed poll) is left out. Polling is bounded by the
    run (a thread, stopped after it)."""

    def __init__(self, server: Server, every_s: float = 0.25) -> None:
        self.server, self.every_s = server, every_s
        self.steps: dict[str, list[tuple[int, float]]] = {TPOT: [], TTFT: []}  # (requests in the step, sum s)
        self._stop = threading.Event()
        self._last = self._read()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _read(self) -> dict[str, tuple[float, float]]:
        page = self.server.get("/metrics")
        return {name: servers.histogram(page, name) for name in self.steps}

    def _poll(self) -> None:
        while not self._stop.wait(self.every_s):
            self._step()

    def _step(self) -> None:
        now = self._read()
        for name, (total, count) in now.items():
            if count > self._last[name][1]:
                self.steps[name].append((int(count - self._last[name][1]), total - self._last[name][0]))
        self._last = now

    def __enter__(self) -> _PerRequest:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def finish(self, name: str, requests: int) -> list[float | None]:
        """The histogram's value (ms) per request, in the order the server booked them, None where a poll missed
        one; waits (bounded) until the server has booked all ``requests``."""
        deadline = time.monotonic() + 15
        while sum(k for k, _ in self.steps[name]) < requests and time.monotonic() < deadline:
            time.sleep(self.every_s)
            self._step()
        assert sum(k for k, _ in self.steps[name]) == requests, f"{name}: {self.steps[name]}, expected {requests}"
        out: list[float | None] = []
        for k, total in self.steps[name]:
            out.extend([total * 1000] if k == 1 else [None] * k)
        return out


@pytest.mark.parametrize("api", APIS)
def test_vllm_tpot_and_ttft_agree_with_server_metrics(vllm: Server, api: str, tmp_path: Path) -> None:
    """One user, so the server's per-request times and ours cover the same intervals: TPOT to within 0.1 ms;
    our TTFT includes the HTTP hop and the server's request handling, so it is never below the server's.

    Compared request by request (seen: within 0.007 ms), and judged on the median. This holds only while the
    server shares the tests' session (:func:`servers.start`): in a session of its own, Linux's autogroup scheduling
    starved Locust for up to 1.8 s at a time, whole streams reached it at once, and its TPOT fell to 0.003 ms."""
    n = 6
    with _PerRequest(vllm) as server:
        run = _locust(tmp_path, vllm, "--llm-api", api, "-u", "1", "-r", "1", "--max-requests", str(n),
                      prompts=PROMPTS_LONG)
    rows = _ok(run, vllm)
    assert len(rows) == n
    rows.sort(key=lambda r: int(r["t0_ns"]))  # one user: start order = first-token order = finishing order
    pairs = {name: [(float(r[col]), v) for r, v in zip(rows, server.finish(name, n), strict=True) if v is not None]
             for name, col in ((TPOT, "tpot_ms"), (TTFT, "ttft_ms"))}
    assert all(len(p) >= n - 2 for p in pairs.values()), f"polls missed too many requests: {pairs}"
    tpot_diff = [c - v for c, v in pairs[TPOT]]
    ttft_diff = [c - v for c, v in pairs[TTFT]]
    print(f"\nvLLM {api}: per request, client - server: TPOT "
          + " ".join(f"{d:+.3f}" for d in tpot_diff) + " ms; TTFT " + " ".join(f"{d:+.2f}" for d in ttft_diff) + " ms")
    assert abs(statistics.median(tpot_diff)) < 0.1
    assert min(ttft_diff) >= -0.5


def test_eight_users_for_twenty_seconds_have_no_failures(server: Server, tmp_path: Path) -> None:
    run = _locust(tmp_path, server, "-u", "8", "-r", "8", "-t", "20s", timeout=180)
    rows = _ok(run, server)
    assert rows, "no request completed"
    assert {r["user"] for r in rows} and len(rows) >= 8


def test_vllm_server_metrics_section_and_tpot_against_ours(tmp_path, vllm):
    """The report's server section (issue 15) from vLLM's own /metrics: running and waiting requests, its TTFT, and
    its per-request TPOT equal to ours within 0.1 ms."""
    # long answers, as in the test above: a few ms lost in handing one token over move the mean by ~0.01 ms
    run = _locust(tmp_path, vllm, "-u", "1", "-r", "1", "--max-requests", "8",
                  "--server-metrics", vllm.url.rstrip("/") + "/metrics", prompts=PROMPTS_LONG)
    summary = run.summary()
    (src,) = summary["server"]["sources"]
    assert src["server"] == "vllm" and src["failed_scrapes"] == 0
    m = src["metrics"]
    assert m["requests_running"]["max"] is not None and m["requests_waiting"]["mean"] is not None
    ok = summary["overall"]["successes"]
    assert ok == 8
    assert m["ttft_seconds"]["count"] == ok and m["ttft_seconds"]["mean"] > 0
    assert m["generation_tokens"]["delta"] == summary["overall"]["output_tokens"]["total"]
    tpot = src["vs_client"]["tpot_ms"]
    if m["tpot_seconds"]["metric"] == "vllm:request_time_per_output_token_seconds":  # per request, as ours
        assert abs(tpot["difference_mean"]) < 0.1, tpot
    ttft = src["vs_client"]["ttft_ms"]
    assert ttft["difference_mean"] > 0  # vLLM's clock starts at engine arrival, ours before the request is sent
    print("\nclient vs server (ms):", {k: (round(v["client_mean"], 2), round(v["server_mean"], 2))
                                       for k, v in src["vs_client"].items()})


def test_fixed_output_open_loop_and_warmup_against_the_real_server(server: Server, tmp_path: Path) -> None:
    """Issue 12's benchmark flags on a real server, not only our mock: ``ignore_eos``/``min_tokens`` accepted (no
    HTTP 400), every measured answer exactly the asked length, arrivals on a timeline, the warm-up left out."""
    run = _locust(tmp_path, server, "-u", "2", "-r", "2", "--fixed-output", "--token-limit", "12",
                  "--request-rate", "4", "--arrival", "constant", "--seed", "1", "--warmup", "1",
                  "--max-requests", "5")
    rows = _ok(run, server)
    assert len(rows) == 5 and sum(r["warmup"] == "True" for r in rows) == 1
    limits = _limits(PROMPTS)  # each prompt's token_limit, which --token-limit only stands in for
    assert all(int(r["output_tokens_asked"]) == limits[r["prompt"]] and r["finish_reason"] == "length" for r in rows), \
        [(r["prompt"], r["output_tokens_asked"], r["finish_reason"]) for r in rows]
    assert all(r["intended_send_ms"] != "" and r["send_lag_ms"] != "" for r in rows), \
        [(r["intended_send_ms"], r["send_lag_ms"]) for r in rows]
    overall = run.summary()["overall"]
    assert overall["successes"] == 4  # the warm-up request is in no figure
    shortfall = overall["output_shortfall"]
    assert shortfall["missed"] == 0 and overall["arrivals"]["sent"] == 4  # the measured ones
    if server.kind.stream_usage:  # judged on the server's counts; llama.cpp's streams carry none
        assert shortfall["asked"] == 4 and shortfall["unverified"] == 0
    else:
        assert shortfall["asked"] == 0 and shortfall["unverified"] == 4
