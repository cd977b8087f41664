"""How many streams one load-generator process measures exactly: the start-up message and its figure.

The figure comes from ``bench/measurement_error.py --table`` (docs/performance.md, "third pass"): the chunk rate
up to which one Locust process running llm-locust kept *its own* TTFT error (client TTFT - (the server's first
write - the kernel's stamp of the request arriving on the server's socket): the client's send side and its
receive side, without the server's own wait before it read the request) within 1 ms at p99, on one core. At an
inter-token latency of ITL seconds a stream brings 1/ITL chunks a second, so one process measures
``CHUNKS_PER_S_WITHIN_1MS * ITL`` streams within 1 ms; beyond that, add processes: ``locust --processes N`` on
one machine (one per free core), master/worker across machines (docs/distributed.md).

Use::

    logger.info(headroom.startup_message(users))   # users: -u when known (headless), else None
"""

from __future__ import annotations

#: chunks per second one process reads with its own TTFT error within 1 ms p99 (bench --table, one core of a
#: 2-vCPU AMD EPYC KVM guest, quiet: the 128-stream ITL 5 ms row, p99 0.54-0.55 ms; 37 k chunks/s gave 1.2-2.1 ms)
CHUNKS_PER_S_WITHIN_1MS = 19_500
#: the inter-token latencies the message quotes, in ms
QUOTED_ITL_MS = (5, 20, 50)


def streams_within_1ms(itl_ms: float) -> int:
    """Concurrent streams one process measures within 1 ms (p99, whole TTFT error) at ``itl_ms``."""
    return int(CHUNKS_PER_S_WITHIN_1MS * itl_ms / 1000)


def startup_message(users: int | None = None) -> str:
    """One line for the start of a run: the per-process figure at a few ITLs, and the way past it."""
    at = ", ".join(f"{streams_within_1ms(itl)} at ITL {itl} ms" for itl in QUOTED_ITL_MS)
    line = (
        f"llm-locust: one process measures TTFT within 1 ms (p99) for about {at} "
        "(docs/performance.md); beyond that use --processes N or master/worker"
    )
    if users is not None and users > streams_within_1ms(QUOTED_ITL_MS[0]):
        line += f"; {users} users in one process are past it if the server streams faster than " + (
            f"{1000 * users / CHUNKS_PER_S_WITHIN_1MS:.0f} ms a token"
        )
    return line
