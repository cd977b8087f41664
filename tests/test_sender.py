"""The LLM call's own sender (``llm_locust.sender``): below ``FastHttpSession``, with the request event's fields.

Real Locust processes against small HTTP servers of this test in threads on 127.0.0.1 (they log every request's
path and headers; over TLS with a certificate of a throwaway CA made by ``trustme``), bounded by
``--max-requests``.
"""

from __future__ import annotations

import base64
import csv
import json
import ssl
import threading
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

STREAM = (
    b'data: {"id":"c","object":"chat.completion.chunk","model":"m","choices":[{"index":0,'
    b'"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}\n\n'
    b'data: {"id":"c","object":"chat.completion.chunk","model":"m","choices":[{"index":0,'
    b'"delta":{},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, answer: str, location: str = "", tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answer, self.location, self.tls = answer, location, tls
        self.seen: list[tuple[str, dict[str, str]]] = []
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *_: object) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.seen.append((self.path, dict(self.headers.items())))
        if self.server.answer == "redirect":
            self.send_response(307)
            self.send_header("Location", self.server.location + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(STREAM)))
        self.end_headers()
        self.wfile.write(STREAM)


@pytest.fixture
def server() -> Iterator:
    made: list[_Server] = []

    def start(answer: str = "stream", location: str = "", tls: ssl.SSLContext | None = None) -> _Server:
        srv = _Server(answer, location, tls)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        made.append(srv)
        return srv

    yield start
    for srv in made:
        srv.shutdown()
        srv.server_close()


def _rows(run) -> list[dict]:
    (path,) = run.report_dir.glob("*/requests.csv")
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_a_redirect_is_booked_as_a_failure_and_not_followed(server, locust_run):
    """A 307 from the endpoint is a failed request with its status: the body and the API key do not follow the
    ``Location`` to another host (FastHttpUser would re-send the POST there)."""
    elsewhere = server()
    endpoint = server("redirect", location=elsewhere.url)
    run = locust_run("-u", "1", "-r", "1", "-H", endpoint.url + "/v1", "--model", "m", "--api-key", "sk-test-123",
                     "--max-requests", "3", "--prompt-file", "tests/data/prompts_small.yaml", timeout=60)
    rows = _rows(run)
    assert [r["http_status"] for r in rows] == ["307"] * 3 and {r["status"] for r in rows} == {"failed"}
    assert {r["error"] for r in rows} == {f"bad_request: HTTP 307: redirected to {elsewhere.url}/v1/chat/completions;"
                                          " redirects are not followed: use that URL as the host"}
    assert len(endpoint.seen) == 3 and elsewhere.seen == []
    stats = json.loads(run.stats_file.read_text())
    assert sum(s["num_failures"] for s in stats) == 3


SEEN_LOCUSTFILE = '''
import json
import os

from locust import events
from locust.contrib.fasthttp import FastHttpSession

from llm_locust.locustfile import *  # noqa: F401,F403
from llm_locust.locustfile import LLMUser

LLMUser.default_headers = {"X-Team": "infra", "User-Agent": "capacity-test/1"}
LLMUser.context = lambda self: {"tenant": "a"}
_seen, _session_calls = [], []
_request = FastHttpSession.request


def _counted(self, *args, **kwargs):
    _session_calls.append(args[:2])
    return _request(self, *args, **kwargs)


FastHttpSession.request = _counted


@events.request.add_listener
def _on_request(request_type, name, response_time, response_length, exception, context, response, url,
                start_time, **_):
    _seen.append({"request_type": request_type, "name": name, "response_time": response_time,
                  "response_length": response_length, "exception": exception, "tenant": context.get("tenant"),
                  "request_id": context["llm"]["request_id"], "url": url, "status": response.status_code,
                  "start_time": start_time})


@events.quitting.add_listener
def _dump(**_):
    with open(os.environ["SEEN_FILE"], "w") as f:
        json.dump({"seen": _seen, "session_calls": len(_session_calls)}, f)
'''


def test_each_llm_call_fires_one_request_event_with_fastHttpSessions_fields_and_the_users_headers(
    server, locust_run, tmp_path
):
    """Sent without ``FastHttpSession.request``, each call still fires one request event with its fields (the
    target, the prompt, E2E ms, output tokens, no exception, the user's ``context()`` plus the record, the URL, the
    response, the start time), and sends the user class's ``default_headers`` and a host URL's basic auth (whose
    password is in no report, log or message)."""
    endpoint = server()
    locustfile = tmp_path / "seen_locustfile.py"
    locustfile.write_text(SEEN_LOCUSTFILE)
    seen_file = tmp_path / "seen.json"
    host = endpoint.url.replace("http://", "http://ops:s3cret@") + "/v1"
    run = locust_run("-f", str(locustfile), "-u", "1", "-r", "1", "-H", host, "--model", "m", "--max-requests", "3",
                     "--prompt-file", "tests/data/prompts_small.yaml", env={"SEEN_FILE": str(seen_file)}, timeout=60)
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(seen_file.read_text())
    assert got["session_calls"] == 0
    seen, rows = got["seen"], _rows(run)
    assert len(seen) == 3 and [s["request_id"] for s in seen] == [r["request_id"] for r in rows]
    for s, r in zip(seen, rows, strict=True):
        assert s["request_type"] == r["target"] and s["name"] == r["prompt"] and s["exception"] is None
        assert s["response_time"] == pytest.approx(float(r["e2e_ms"]), abs=1e-3) and s["response_length"] == 1
        assert s["tenant"] == "a" and s["status"] == 200 and s["url"].endswith("/v1/chat/completions")
        # the wall-clock start, as the record's timestamp gives it (to the millisecond)
        assert s["start_time"] == pytest.approx(datetime.fromisoformat(r["timestamp"]).timestamp(), abs=1e-3)
    auth = "Basic " + base64.b64encode(b"ops:s3cret").decode()
    assert [(path, h.get("X-Team"), h.get("User-Agent"), h.get("Authorization")) for path, h in endpoint.seen] == [
        ("/v1/chat/completions", "infra", "capacity-test/1", auth)
    ] * 3
    assert [h["X-Request-Id"] for _, h in endpoint.seen] == [r["request_id"] for r in rows]
    # the host's password goes out as basic auth, never into what the run shows
    assert {r["host"] for r in rows} == {endpoint.url + "/v1"}
    shown = [p for p in run.report_dir.rglob("*") if p.is_file()]
    assert len(shown) >= 3 and not [p.name for p in shown if b"s3cret" in p.read_bytes()]
    assert "s3cret" not in run.stdout + run.stderr


def test_an_https_endpoint_is_verified_against_the_trusted_certificates(server, locust_run, tmp_path):
    """TLS goes through the same client as FastHttpSession's: a certificate the machine trusts (``SSL_CERT_FILE``,
    here a throwaway CA's) streams as over plain HTTP; an untrusted one is a ``connection`` failure that says so."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(tls)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    endpoint = server(tls=tls)
    args = ("-u", "1", "-r", "1", "-H", endpoint.url + "/v1", "--model", "m", "--max-requests", "3",
            "--prompt-file", "tests/data/prompts_small.yaml")
    trusted = locust_run(*args, env={"SSL_CERT_FILE": str(ca_file)}, timeout=60)
    assert trusted.returncode == 0, trusted.stderr[-3000:]
    rows = _rows(trusted)
    assert [r["status"] for r in rows] == ["ok"] * 3 and [r["output_tokens"] for r in rows] == ["1"] * 3
    assert len(endpoint.seen) == 3
    # over TLS the lines are stamped by the reader (llm_locust.recvclock), and the summary and the log say so
    assert trusted.summary()["run"]["line_clock"] == "reader" and "reader's clock" in trusted.stderr
    trusted.report_dir.rename(tmp_path / "reports-trusted")  # the next run's reports go to a fresh folder
    untrusted = locust_run(*args, timeout=60)
    rows = _rows(untrusted)
    assert len(rows) == 3 and {r["error_class"] for r in rows} == {"connection"}, rows
    assert {r["error"] for r in rows} == {"connection: TLS certificate not trusted (unable to get local issuer "
                                          "certificate); for your own CA set SSL_CERT_FILE=ca.pem"}
    assert "Traceback" not in untrusted.stderr and len(endpoint.seen) == 3


def _capture_server() -> tuple[str, list[bytes], threading.Event]:
    """A one-connection keep-alive server that keeps every request's raw bytes and answers each with the stream."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    got: list[bytes] = []
    done = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        buf = b""
        with conn:
            while not done.is_set():
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, rest = buf.partition(b"\r\n\r\n")
                length = int(next(v for k, _, v in (h.partition(b": ") for h in head.split(b"\r\n"))
                                  if k.lower() == b"content-length"))
                while len(rest) < length:
                    rest += conn.recv(65536)
                got.append(head + b"\r\n\r\n" + rest[:length])
                buf = rest[length:]
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: "
                             + str(len(STREAM)).encode() + b"\r\n\r\n" + STREAM)

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}", got, done


def test_the_head_made_once_sends_the_bytes_httpclient_request_sends():
    """The sender makes a prepared request's head once and puts each request's id in it: byte for byte what
    ``HTTPClient.request`` writes for the same headers and id, request after request on one connection, and for a
    body of another length (its own Content-Length). Headers that need HTTPClient's other ways of sending
    (``Expect``) take it."""
    from types import SimpleNamespace

    from geventhttpclient.client import HTTPClient, HTTPClientPool

    from llm_locust.sender import Sender

    url, got, done = _capture_server()
    # what Sender reads of a FastHttpSession (importing locust here would monkey-patch ssl under the TLS tests)
    session = SimpleNamespace(client=SimpleNamespace(default_headers={}, clientpool=HTTPClientPool()))
    sender = Sender(session)
    body = b'{"model":"m","messages":[{"role":"user","content":"hi"}]}'
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream", "Authorization": "Bearer k"}
    for rid in ("3f8e3c52-0000-4000-8000-000000000001", "3f8e3c52-0000-4000-8000-000000000002"):
        raw = sender.send(url + "/v1/chat/completions", body, headers, rid)
        assert raw.status_code == 200 and raw.read() == STREAM
        raw.release()
    longer = body.replace(b"hi", b"hello there")  # a session's next turn: the same headers, another length
    raw = sender.send(url + "/v1/chat/completions", longer, headers, "3f8e3c52-0000-4000-8000-000000000003")
    raw.read()
    raw.release()
    client = HTTPClient.from_url(url)

    def expected(b: bytes, rid: str) -> bytes:
        head = client._build_request("POST", "/v1/chat/completions", body=b, headers={**headers, "X-Request-Id": rid})
        return head.encode("latin-1") + b

    done.set()
    assert got == [expected(body, "3f8e3c52-0000-4000-8000-000000000001"),
                   expected(body, "3f8e3c52-0000-4000-8000-000000000002"),
                   expected(longer, "3f8e3c52-0000-4000-8000-000000000003")]
    assert len(sender._heads) == 2  # one head per body length
    with_expect = {**headers, "Expect": "100-continue"}
    sender._head(sender._routes[url + "/v1/chat/completions"], ("k", 0, 0), body, with_expect)
    assert sender._heads[("k", 0, 0)] is None  # HTTPClient.request sends it
