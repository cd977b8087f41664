"""The receive clock (``llm_locust.recvclock``): a line is stamped with the kernel's time of its bytes' arrival.

On loopback the kernel stamps a segment inside the sender's ``send``, so "arrived between the two stamps around the
sender's ``sendall``" is exact, whatever the reader does meanwhile: these tests make the reader late on purpose (a
blocking sleep) and check that the stamp did not move. No timing luck: the sleep only makes a wrong stamp late by
its whole length.
"""

from __future__ import annotations

import socket
import sys
import time

import gevent.socket
import pytest

from llm_locust import recvclock
from llm_locust.recvclock import StampedSocket, line_clock
from tests.test_profile import _check_books

linux = pytest.mark.skipif(sys.platform != "linux", reason="SO_TIMESTAMPNS is Linux's")
now = time.perf_counter_ns


def _pair() -> tuple[StampedSocket, socket.socket]:
    server = socket.create_server(("127.0.0.1", 0))
    client = StampedSocket(socket.AF_INET, socket.SOCK_STREAM)
    client.connect(server.getsockname())
    peer, _ = server.accept()
    server.close()
    peer.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return client, peer


def _stamping_on() -> bool:
    """Whether the kernel stamps received segments now (a plain pair, read with recvmsg)."""
    server = socket.create_server(("127.0.0.1", 0))
    with server, socket.create_connection(server.getsockname()) as a:
        b, _ = server.accept()
        with b:
            recvclock.enable(a)
            b.sendall(b"x")
            _, anc, _, _ = a.recvmsg(16, recvclock.ANC_SIZE)
            return recvclock.kernel_ns(anc) is not None


@linux
def test_the_kernel_keeps_stamping_once_a_stamped_socket_was_made():
    """Linux turns stamping on some time after a socket asks (deferred), and off when the last one closes: a fresh
    connection could miss its first stamps. The module keeps one socket asking, so once it was asked, it stays on."""
    StampedSocket(socket.AF_INET, socket.SOCK_STREAM).close()
    for _ in range(200):  # the deferred switch-on: at most a few ms, in practice
        if _stamping_on():
            break
        time.sleep(0.01)
    # every fresh pair from now on is stamped, though no StampedSocket is open: the keeper asks
    assert recvclock._keeper and all(_stamping_on() for _ in range(50))


@linux
def test_a_stamped_socket_keeps_when_the_bytes_arrived_not_when_they_were_read():
    client, peer = _pair()
    while not _stamping_on():  # the kernel's deferred switch-on (the test above)
        time.sleep(0.01)
    try:
        t_a = now()
        peer.sendall(b"data: x\n\n")
        t_b = now()
        time.sleep(0.05)  # the reader is late: a greenlet that held the loop
        assert client.recv(4096) == b"data: x\n\n"
        t_read = now()
        # stamped in the sender's send (on loopback), or by the softirq right after it: not at the read, 50 ms later
        assert t_a <= client.arrive_ns <= t_b + 5_000_000
        assert t_read - client.arrive_ns >= 45_000_000
        stamp = line_clock(client)
        assert stamp() == client.arrive_ns

        # two writes read at once carry the later one's stamp: late by the gap, never later than the reader
        peer.sendall(b"data: y\n\n")
        time.sleep(0.02)
        t_c = now()
        peer.sendall(b"data: z\n\n")
        t_d = now()
        time.sleep(0.02)
        assert client.recv(4096) == b"data: y\n\ndata: z\n\n"
        assert t_c <= client.arrive_ns <= t_d + 5_000_000

        # the peer's close: nothing stamped, the reader's clock
        peer.close()
        t_e = now()
        assert client.recv(4096) == b""
        assert t_e <= client.arrive_ns <= now()
    finally:
        client.close()
        peer.close()


def test_connections_that_keep_no_stamps_are_timed_by_the_reader():
    plain = gevent.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        assert line_clock(plain) is time.perf_counter_ns
        assert line_clock(None) is time.perf_counter_ns  # no connection was handed over (the connect failed)
    finally:
        plain.close()


@linux
def test_a_pool_opens_stamped_connections():
    from geventhttpclient.connectionpool import ConnectionPool

    server = socket.create_server(("127.0.0.1", 0))
    pool = ConnectionPool("127.0.0.1", server.getsockname()[1], "127.0.0.1", server.getsockname()[1], size=1)
    try:
        recvclock.instrument(pool)
        sock = pool.get_socket()
        assert type(sock) is StampedSocket
        assert sock.getsockopt(socket.SOL_SOCKET, recvclock.SO_TIMESTAMPNS) == 1
        sock.close()
    finally:
        pool.close()
        server.close()


LATE_READER_LOCUSTFILE = '''
import time

import llm_locust.users as users
from llm_locust.locustfile import *  # noqa: F401,F403

_read = users.read_response


def read_response(*args, **kw):  # the reader is 0.3 s late for every body: the whole answer is waiting by then
    time.sleep(0.3)
    return _read(*args, **kw)


users.read_response = read_response
'''


@linux
def test_a_late_reader_still_times_tokens_by_their_arrival(tmp_path, mock_server, locust_run):
    """A real Locust run whose reader sleeps 0.3 s (blocking the loop) after every response head: TTFT and E2E end
    where the server wrote the first and the last token, not 0.3 s later, and every request is booked."""
    mock = mock_server("--ttft-ms", "1", "--itl-ms", "1", "--output-tokens", "4")
    locustfile = tmp_path / "late_reader.py"
    locustfile.write_text(LATE_READER_LOCUSTFILE)
    run = locust_run("-f", str(locustfile), "-u", "2", "-r", "2", "-H", mock.url, "--model", "m",
                     "--max-requests", "6", "--prompt-file", "tests/data/prompts_small.yaml", timeout=60)
    rows = _check_books(run, mock)
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == 6
    assert run.summary()["run"]["line_clock"] == "kernel" and "reader's clock" not in run.stderr
    sent = {s["request_id"]: s for s in mock.sent()}
    for r in ok:
        s, t0 = sent[r["request_id"]], int(r["t0_ns"])
        first, last = t0 + float(r["ttft_ms"]) * 1e6, t0 + float(r["e2e_ms"]) * 1e6
        # after the server's write (to the CSV's rounding), and far less than the reader's 300 ms late
        assert -10_000 <= first - s["t_first_token_ns"] < 100_000_000, (r, s)
        assert -10_000 <= last - s["t_last_token_ns"] < 100_000_000, (r, s)
        assert float(r["e2e_ms"]) < 250  # 4 tokens 1 ms apart; read 300 ms after the head
