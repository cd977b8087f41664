"""Open vs closed loop against the mock server's two queue models: does the load shape show in the latency?

Starts an in-process mock (``MockServer``, its own thread) with ``--ttft-ms 20 --itl-ms 2 --output-tokens 20`` and
one queue model at a time — ``--ttft-per-active-ms 5`` (TTFT grows 5 ms per other request in flight) and
``--max-batch 4`` (4 served at once, the others queue) — then loads it twice with the same number of requests:

* closed loop: 4 client threads, each sending its next request when its last one ended;
* open loop: Poisson arrivals at ``--rate`` per second (a thread per request), whatever the server does.

A closed loop of 4 can never queue behind ``--max-batch 4``; an open loop above the server's rate (here about
4 / 58 ms ≈ 69 requests/s) builds a queue, and TTFT grows with it. Prints TTFT p50/p90/max per case. Plain
``requests`` clients: the figures are for comparing the two loops, not a measure of llm-locust's accuracy.

    python bench/mock_queue_models.py [--rate 120] [--requests 240]
"""

from __future__ import annotations

import argparse
import random
import statistics
import threading
import time

import requests

from llm_locust.mockserver import MockConfig, MockServer

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}


def ttft_ms(url: str, out: list[float]) -> None:
    t0 = time.perf_counter()
    first = None
    with requests.post(url + "/v1/chat/completions", json=BODY, stream=True, timeout=60) as r:
        for line in r.iter_lines():
            if first is None and b'"content":" ' in line:
                first = (time.perf_counter() - t0) * 1000
    if first is not None:
        out.append(first)


def closed(url: str, users: int, n: int) -> list[float]:
    out: list[float] = []

    def user() -> None:
        for _ in range(n // users):
            ttft_ms(url, out)

    threads = [threading.Thread(target=user) for _ in range(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def open_loop(url: str, rate: float, n: int, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    out: list[float] = []
    threads = []
    due = time.perf_counter()
    for _ in range(n):
        due += rng.expovariate(rate)
        time.sleep(max(0.0, due - time.perf_counter()))
        t = threading.Thread(target=ttft_ms, args=(url, out))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    return out


def figures(values: list[float]) -> str:
    p90 = statistics.quantiles(values, n=10)[-1]
    return f"p50 {statistics.median(values):.0f} ms, p90 {p90:.0f} ms, max {max(values):.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=120.0, help="open-loop arrivals per second (default 120)")
    parser.add_argument("--requests", type=int, default=240, help="requests per loop (default 240)")
    args = parser.parse_args()
    for name, model in (("--ttft-per-active-ms 5", {"ttft_per_active_ms": 5.0}), ("--max-batch 4", {"max_batch": 4})):
        cfg = MockConfig(ttft_ms=20, itl_ms=2, output_tokens=20, **model)
        with MockServer(cfg).start(in_thread=True) as srv:
            c = closed(srv.url, 4, args.requests)
            o = open_loop(srv.url, args.rate, args.requests)
        print(f"{name}: closed loop, 4 users: TTFT {figures(c)} | "
              f"open loop, Poisson {args.rate:g}/s: TTFT {figures(o)}")


if __name__ == "__main__":
    main()
