"""Baseline for bench/measurement_error.py: the cheapest FastHttpUser that can still time a token stream.

It POSTs one fixed OpenAI chat request (``stream: true``) to ``/v1/chat/completions`` and reads the SSE body
with geventhttpclient's ``readline(b"\\n")``, stamping every line with ``time.perf_counter_ns()`` -- exactly as
llm-locust's ``LLMUser`` does -- but with no JSON parsing, no SSE decoder, no per-chunk record, no token count,
no price and no CSV row per request during the run. A line is a token chunk when it contains ``{"content":"``
(the mock server's content chunks; its role-only first chunk is ``{"role":"assistant","content":""}`` and its
finish, usage and ``[DONE]`` events carry no ``content``), one substring test per line.

Each user opens its keep-alive connection when it starts, untimed (as llm-locust's users do), and takes ``t0``
right before ``FastHttpSession.request``. Per request it keeps one tuple in memory: request id, status, t0, time
of the first and of the last token line, number of token lines, end time; all rows are written to
``--bare-out`` (CSV) when the test stops.
The request id goes out as ``X-Request-Id``, so the rows join with the mock server's ``--send-log``.

    locust -f bench/bare_locustfile.py --headless -u 128 -r 128 -t 15s -H http://127.0.0.1:PORT \\
        --bare-body body.json --bare-out bare.csv

``--bare-body`` is a file holding the exact request body (bench/measurement_error.py writes the body that
llm-locust sends for the same prompt); without it a built-in one-prompt body is used.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import time
from typing import Any

import gevent
from gevent import GreenletExit
from geventhttpclient.url import URL
from locust import FastHttpUser, events, task

PATH = "/v1/chat/completions"
DEFAULT_BODY = json.dumps(
    {
        "model": "m",
        "messages": [{"role": "user", "content": "Say hello in five words."}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
).encode()
HEADERS = {"Content-Type": "application/json", "Accept": "text/event-stream", "Accept-Encoding": "identity"}
TOKEN_MARK = b'{"content":"'
CSV_COLUMNS = ("request_id", "status", "t0_ns", "t_first_ns", "t_last_ns", "chunks", "t_end_ns", "error")

_rows: list[tuple[Any, ...]] = []
_ids = itertools.count(1)
_started = itertools.count()
_prefix = f"bare{os.getpid():x}"
_config: dict[str, Any] = {"body": DEFAULT_BODY, "out": "bare_requests.csv"}


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    g = parser.add_argument_group("bare reader")
    g.add_argument("--bare-body", default="", help="file with the request body (JSON); default: a built-in one")
    g.add_argument("--bare-out", default="bare_requests.csv", help="CSV written at test stop, one row per request")
    g.add_argument("--bare-stagger", action="store_true", help="spread the first requests over the spawn interval "
                   "(as llm-locust's --stagger: user k waits (k mod floor(r))/r s)")


@events.test_start.add_listener
def _on_test_start(environment: Any, **_: Any) -> None:
    opts = environment.parsed_options
    if opts is not None:
        if opts.bare_body:
            with open(opts.bare_body, "rb") as f:
                _config["body"] = f.read()
        _config["out"] = opts.bare_out
    _rows.clear()


@events.test_stop.add_listener
def _on_test_stop(**_: Any) -> None:
    with open(_config["out"], "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        w.writerows(_rows)
    _rows.clear()


class BareReader(FastHttpUser):
    """Streams the fixed request back to back; one substring test and two clock reads per line."""

    def on_start(self) -> None:
        opts = self.environment.parsed_options
        if opts is not None and opts.bare_stagger and opts.spawn_rate:
            batch = max(1, int(opts.spawn_rate))
            gevent.sleep((next(_started) % batch) / opts.spawn_rate)
        # open the keep-alive connection untimed, as llm-locust's users do (llm_locust.sendclock.preconnect)
        pool = self.client.client.clientpool.get_client(URL(self.host))._connection_pool
        pool.return_socket(pool.get_socket())

    @task
    def stream(self) -> None:
        rid = f"{_prefix}-{next(_ids)}"
        headers = {**HEADERS, "X-Request-Id": rid}
        clock = time.perf_counter_ns
        first = last = 0
        n = 0
        status, error = "failed", ""
        t0 = clock()
        try:
            with self.client.request(
                "POST", PATH, data=_config["body"], headers=headers, stream=True, catch_response=True, name="bare"
            ) as resp:
                raw = resp._response
                if resp.status_code != 200 or raw is None:
                    error = f"HTTP {resp.status_code}"
                    resp.failure(error)
                    return
                readline = raw.readline
                mark = TOKEN_MARK
                while True:
                    line = readline(b"\n")
                    t = clock()
                    if not line:
                        break
                    if mark in line:
                        if not n:
                            first = t
                        last = t
                        n += 1
                status = "ok" if n else "failed"
                resp.request_meta["response_time"] = (last - t0) / 1e6
                resp.success()
        except GreenletExit:
            status = "cancelled"
            raise
        except Exception as e:  # transport errors
            error = type(e).__name__
        finally:
            _rows.append((rid, status, t0, first, last, n, clock(), error))
