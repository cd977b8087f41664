"""``--stagger``: spread the users' first requests evenly over the spawn interval instead of all at once.

Locust starts users in batches: ``b = max(1, floor(r))`` users every ``b / r`` seconds at spawn rate ``r`` (``-r``),
so with ``-u 256 -r 256`` all 256 users send their first request in the same millisecond, and with streams of one
length they stay in lockstep (a batching server such as vLLM also emits every stream's token at the same decode
step, so that is a realistic load, and the default). With ``--stagger`` the k-th user started in a process first
waits ``(k mod b) / r`` seconds: the users of each batch start evenly spread over the batch's interval, so the
load runs staggered from the first request on. Later requests follow back to back as usual.

With master/worker, each worker staggers its own users with the spawn rate it was given (its share of ``-r``).
"""

from __future__ import annotations

import math


def first_delay(k: int, spawn_rate: float | None) -> float:
    """Seconds the k-th user (0-based, in start order) waits before its first request; 0 without a rate."""
    if not spawn_rate or spawn_rate <= 0:
        return 0.0
    batch = max(1, math.floor(spawn_rate))
    return (k % batch) / spawn_rate
