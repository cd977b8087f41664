"""The hot path (issue 14): t0 at the write, the pre-connect, lines parsed after the stream, bounded bookkeeping,
``--stagger``.

Behaviour only, no wall-clock thresholds: runs are bounded by ``--max-requests``; times are compared with the mock
server's send log (the same monotonic clock) for order, and with the configured stagger interval loosely.
"""

from __future__ import annotations

import subprocess
import sys

import gevent
import pytest

from llm_locust import bookkeeper, stagger
from llm_locust.bookkeeper import Bookkeeper
from tests.conftest import ROOT
from tests.test_profile import _check_books


def test_first_delays_spread_each_spawn_batch_evenly_over_its_interval():
    # -r 4: batches of 4 users a second; user k waits (k mod 4) / 4 s
    assert [stagger.first_delay(k, 4) for k in range(8)] == [0, 0.25, 0.5, 0.75] * 2
    # -r 256: 256 users spread over one second, 1/256 s apart
    delays = [stagger.first_delay(k, 256) for k in range(256)]
    assert delays[0] == 0 and delays[-1] == pytest.approx(255 / 256)
    assert all(b - a == pytest.approx(1 / 256) for a, b in zip(delays, delays[1:], strict=False))
    # -r 2.5: batches of 2 every 0.8 s
    assert [stagger.first_delay(k, 2.5) for k in range(3)] == [0, 0.4, 0]
    # a rate below one user a second: Locust already starts them apart; no rate: no delay
    assert stagger.first_delay(3, 0.5) == 0 and stagger.first_delay(3, None) == 0


def test_bookkeeper_runs_jobs_in_bounded_steps_and_drain_finishes_them():
    done: list[str] = []

    def job(name: str, steps: int):
        for _ in range(steps):
            yield
        done.append(name)

    books = Bookkeeper()
    books.defer(job("a", 3))
    books.defer(job("b", 1))
    books.defer(iter(()))  # an empty job ends at once
    gevent.sleep(0.05)  # an idle loop: the bookkeeper runs everything
    assert done == ["a", "b"] and len(books) == 0
    books.defer(job("c", 10_000))
    books.drain()  # the end of a run: no waiting for idle turns
    assert done == ["a", "b", "c"] and len(books) == 0
    books.stop()


def test_a_broken_job_does_not_stop_the_others(caplog):
    def broken():
        yield
        raise ValueError("boom")

    done = []
    books = Bookkeeper()
    books.defer(broken())
    books.defer(iter([done.append(1)]))
    books.drain()
    assert done == [1] and "bookkeeping failed" in caplog.text
    books.stop()


def test_a_backlog_beyond_its_bound_is_booked_by_the_user_that_defers():
    """Back-pressure: a saturated loop never gets idle, so the jobs past MAX_BACKLOG run to their end inside
    ``defer`` (oldest first), and the backlog, whose live objects every garbage collection walks, stays bounded."""
    done: list[int] = []

    def job(k: int):
        yield
        done.append(k)

    books = Bookkeeper()
    n = bookkeeper.MAX_BACKLOG + 100
    for k in range(n):  # no switch in between: the bookkeeper's greenlet never runs
        books.defer(job(k))
        assert len(books) <= bookkeeper.MAX_BACKLOG
    assert done == list(range(100)) and len(books) == bookkeeper.MAX_BACKLOG
    books.drain()
    assert done == list(range(n))
    books.stop()


def test_lines_are_stamped_without_an_object_per_line():
    """The hot path keeps each line's stamp in an array: no tuple per line for the garbage collector to walk."""
    from array import array

    from llm_locust.measure.stream import StreamResult, read_lines
    from llm_locust.protocols import get_protocol

    lines = iter([b"data: x\n", b"\n", b"data: [DONE]\n", b"\n", b""])
    ticks = iter(range(10, 100, 10))
    out = StreamResult(get_protocol("openai-chat")("http://127.0.0.1:1", "m"))
    read_lines(out, type("B", (), {"readline": lambda self, sep: next(lines)})(), now=lambda: next(ticks))
    assert isinstance(out.stamps, array) and list(out.stamps) == [10, 20, 30, 40, 50]
    assert out.lines == [b"data: x\n", b"\n", b"data: [DONE]\n", b"\n", b""] and out.ended


def test_step_budget_is_a_bound_not_a_quota():
    assert 0 < bookkeeper.STEP_BUDGET_NS <= 1_000_000 and bookkeeper.MAX_BACKLOG > 0


def test_t0_is_taken_at_the_write_and_every_request_is_booked(mock_server, locust_run):
    """t0 precedes the server's read of the body, nothing is lost to the deferred bookkeeping, and a fixed
    number of requests ends the run."""
    mock = mock_server("--ttft-ms", "5", "--itl-ms", "1", "--output-tokens", "8")
    run = locust_run(
        "-u", "4", "-r", "4", "-H", mock.url, "--model", "m", "--max-requests", "24",
        "--prompt-file", "tests/data/prompts_small.yaml",
    )
    rows = _check_books(run, mock)
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == 24 and len(rows) == 24
    sent = {s["request_id"]: s for s in mock.sent()}
    for r in ok:
        s = sent[r["request_id"]]
        assert int(r["t0_ns"]) <= s["t_recv_ns"] <= s["t_first_token_ns"]
        assert int(r["t0_ns"]) + float(r["ttft_ms"]) * 1e6 >= s["t_first_token_ns"]


def test_preconnect_puts_an_open_connection_in_the_pool_so_the_first_request_does_not_connect(mock_server):
    """Without the pre-connect a user's first request opens its connection inside its timing (the clock is then
    "fresh": t0 before the connect); after ``preconnect`` it goes out on the pooled connection; a host that refuses
    connections makes ``preconnect`` a no-op, and the request then meets the error itself."""
    mock = mock_server("--ttft-ms", "1", "--itl-ms", "1", "--output-tokens", "2")
    script = f"""
from locust import FastHttpUser
from locust.env import Environment
from llm_locust import sendclock

class Plain(FastHttpUser):
    host = {mock.url!r}

env = Environment(user_classes=[Plain])
for warm in (False, True):
    user = Plain(env)
    clock = sendclock.install(user)
    if warm:
        sendclock.preconnect(user, {mock.url!r})
    clock.t_ns = 0
    resp = user.client.request("GET", "/health")
    assert resp.status_code == 200 and clock.t_ns > 0
    assert clock.fresh is not warm, warm
cold = Plain(env)
sendclock.install(cold)
sendclock.preconnect(cold, "http://127.0.0.1:1")  # refused: logged at debug level, nothing raised
print("ok")
"""
    # in its own process: importing Locust monkey-patches the process, which this one (pytest's) must not be
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


def test_stagger_spreads_the_first_requests_over_the_spawn_interval(mock_server, locust_run):
    """-u 4 -r 4 --stagger: the first requests are due 0, 0.25, 0.5 and 0.75 s after the users start; the
    server reads them spread over (loosely) that interval. Each answer streams for a second, so the server's first
    four reads are the four users' first requests."""
    mock = mock_server("--ttft-ms", "5", "--itl-ms", "25", "--output-tokens", "40")
    run = locust_run(
        "-u", "4", "-r", "4", "-H", mock.url, "--model", "m", "--max-requests", "8", "--stagger",
        "--prompt-file", "tests/data/prompts_small.yaml",
    )
    rows = _check_books(run, mock)
    assert sum(r["status"] == "ok" for r in rows) == 8
    sends = sorted(s["t_recv_ns"] for s in mock.sent())
    first_four = sends[:4]
    # each of the first four arrived at least a third of its 0.25 s step after the one before
    assert all(b - a >= 0.25e9 / 3 for a, b in zip(first_four, first_four[1:], strict=False))


def test_startup_message_names_the_per_process_figure_and_the_way_past_it():
    from llm_locust import headroom

    at5 = headroom.streams_within_1ms(5)
    assert at5 > 0 and abs(headroom.streams_within_1ms(20) - 4 * at5) < 4
    msg = headroom.startup_message()
    assert "--processes" in msg and "master/worker" in msg and f"{headroom.streams_within_1ms(5)} at ITL 5 ms" in msg
    many = headroom.streams_within_1ms(5) + 1
    assert f"{many} users in one process" in headroom.startup_message(many)
    assert "users in one process" not in headroom.startup_message(1)
    # lines timed by the reader's clock (TLS, not Linux): its own, lower figure, and the message says why
    reader = headroom.startup_message(None, "reader")
    assert f"{headroom.streams_within_1ms(5, 'reader')} at ITL 5 ms" in reader and "reader's clock" in reader
    assert headroom.streams_within_1ms(5, "reader") < at5 and "reader's clock" not in msg


def test_only_plain_http_on_linux_gets_the_kernels_arrival_stamps():
    from llm_locust import recvclock

    linux = sys.platform == "linux"
    assert recvclock.stamps("http://127.0.0.1:8000") is linux and recvclock.stamps("HTTP://h") is linux
    assert not recvclock.stamps("https://api.openai.com")
    if linux:
        assert recvclock.clock_of(["http://a", "http://b"]) == "kernel"
        assert recvclock.clock_of(["http://a", "https://b"]) == "mixed"
    assert recvclock.clock_of(["https://a"]) == "reader"
    # a mixed run quotes the reader's figure
    assert headroom_figure("mixed") == headroom_figure("reader") < headroom_figure("kernel")


def headroom_figure(clock: str) -> int:
    from llm_locust import headroom

    return headroom.streams_within_1ms(5, clock)


def test_a_prompt_is_drawn_by_bisection_as_random_choices_draws_it():
    """``LLMRun.pick`` bisects weights summed once (``random.choices`` sums them on every call): the same prompt
    for the same random number, so a ``--seed`` run draws what it drew before."""
    import random

    from llm_locust.prompts import Prompt
    from llm_locust.run import LLMRun

    prompts = [Prompt(name=f"p{i}", text="x", weight=w) for i, w in enumerate((1.0, 3.0, 0.0, 0.5, 2.0))]
    run = LLMRun(run_id="r", targets=[], prompts=prompts, token_limit=None, timeout=1.0, recorder=None)
    ours, theirs = random.Random(7), random.Random(7)
    drawn = [run.pick(ours).name for _ in range(5000)]
    assert drawn == [theirs.choices(prompts, weights=[p.weight for p in prompts])[0].name for _ in range(5000)]
    assert "p2" not in drawn and set(drawn) == {"p0", "p1", "p3", "p4"}


BROKEN_BOOKS_LOCUSTFILE = '''
import llm_locust.users as users
from llm_locust.locustfile import *  # noqa: F401,F403

_build, _calls = users.build_record, []


def build_record(**kw):  # the second request's bookkeeping breaks
    _calls.append(1)
    if len(_calls) == 2:
        raise RuntimeError("a bug in the bookkeeping")
    return _build(**kw)


users.build_record = build_record
'''


def test_a_broken_bookkeeping_job_keeps_its_request_in_the_books_and_ends_a_fixed_plan(
    tmp_path, mock_server, locust_run
):
    """A request whose bookkeeping raises is booked as failed (error class ``internal``) in Locust's stats, the
    CSV and the summary, and --max-requests still ends the run (it waited for that request forever)."""
    mock = mock_server("--ttft-ms", "1", "--itl-ms", "1", "--output-tokens", "4")
    locustfile = tmp_path / "broken_books.py"
    locustfile.write_text(BROKEN_BOOKS_LOCUSTFILE)
    run = locust_run("-f", str(locustfile), "-u", "1", "-r", "1", "-H", mock.url, "--model", "m", "--max-requests",
                     "4", "--prompt-file", "tests/data/prompts_small.yaml", timeout=60)
    assert "a request's bookkeeping failed" in run.stderr and "a bug in the bookkeeping" in run.stderr
    rows = _check_books(run, mock)  # requests.csv == Locust's stats == the summary == what the server served
    assert len(rows) == 4 and len(mock.sent()) == 4
    (broken,) = [r for r in rows if r["status"] == "failed"]
    assert broken["error_class"] == "internal" and "a bug in the bookkeeping" in broken["error"]
    assert float(broken["elapsed_ms"]) > 0 and broken["http_status"] == "200"
