"""How many streams one load-generator process measures exactly: the start-up message and its figure.

The figures come from ``bench/measurement_error.py`` (docs/performance.md, "seventh pass" and "eighth pass"), one per
clock that stamps a stream's lines (:mod:`llm_locust.recvclock`): the chunk rate
up to which one Locust process running llm-locust kept *its own* TTFT error (client TTFT - (the server's first
write - the kernel's stamp of the request arriving on the server's socket): the client's send side and its
receive side, without the server's own wait before it read the request) within 1 ms at p99, on one core. At an
inter-token latency of ITL seconds a stream brings 1/ITL chunks a second, so one process measures
``CHUNKS_PER_S_WITHIN_1MS * ITL`` streams within 1 ms; beyond that, add processes: ``locust --processes N`` on
one machine (one per free core), master/worker across machines (docs/distributed.md).

Use::

    logger.info(headroom.startup_message(users, clock))   # users: -u when known (headless), else None;
                                                          # clock: "kernel" (arrival stamps) or "reader"
"""

from __future__ import annotations

#: chunks per second one process reads with its own TTFT error within 1 ms p99, by the clock that stamps its lines
#: (10-s runs of bench/measurement_error.py on one core of a 2-vCPU AMD EPYC KVM guest, issue 14's eighth pass):
#: - "kernel", the kernel's arrival stamps (llm_locust.recvclock: plain HTTP on Linux). The limit is a burst: a
#:   server that writes every stream's chunk at the same decode step (bench/truth_server.c) sends N chunks at once,
#:   and the process drains them at 25-35 µs each (less, the larger the burst); when that takes longer than one
#:   ITL, the last reads of the burst take two chunks and a first token gets the second's stamp (one ITL late). So
#:   the figure is the peak rate,
#:   streams / ITL: 128 streams at ITL 5 ms (25.6 k) stayed within 0.055-0.43 ms in five runs; 160 (32 k), 192
#:   and 224 were one ITL late or more at p99 in one run of two. (Against the mock server, whose Python writes
#:   spread a burst over milliseconds, 256 streams stayed within 0.05 ms: the seventh pass's 30 k.) 25 k keeps a
#:   margin;
#: - "reader", perf_counter_ns when readline returns (TLS, other systems): 48 streams (7.3 k) 0.37 and 3.3 ms,
#:   64 streams (9.0-9.8 k) 0.38-2.1 ms in four runs: every stall of the loop shows in the streams it delays.
CHUNKS_PER_S_WITHIN_1MS = {"kernel": 25_000, "reader": 7_000}
#: the inter-token latencies the message quotes, in ms
QUOTED_ITL_MS = (5, 20, 50)


def streams_within_1ms(itl_ms: float, clock: str = "kernel") -> int:
    """Concurrent streams one process measures within 1 ms (p99, its own TTFT error) at ``itl_ms``, with ``clock``'s
    stamps (:func:`llm_locust.recvclock.clock_of`; "mixed" counts as "reader")."""
    return int(_figure(clock) * itl_ms / 1000)


def _figure(clock: str) -> int:
    return CHUNKS_PER_S_WITHIN_1MS["kernel" if clock == "kernel" else "reader"]


def startup_message(users: int | None = None, clock: str = "kernel") -> str:
    """One line for the start of a run: the per-process figure at a few ITLs, and the way past it."""
    at = ", ".join(f"{streams_within_1ms(itl, clock)} at ITL {itl} ms" for itl in QUOTED_ITL_MS)
    line = (
        f"llm-locust: one process measures TTFT within 1 ms (p99) for about {at} "
        "(docs/performance.md); beyond that use --processes N or master/worker"
    )
    if clock != "kernel":
        line += " (lines timed by the reader's clock: TLS or not Linux)"
    if users is not None and users > streams_within_1ms(QUOTED_ITL_MS[0], clock):
        line += f"; {users} users in one process are past it if the server streams faster than " + (
            f"{1000 * users / _figure(clock):.0f} ms a token"
        )
    return line
