"""Backoff: how long a user waits after a request before it sends its next one, the way a careful client does.

Pure policy, no Locust and no gevent: :func:`wait_after` maps one finished request (its record, or the same fields
in any mapping) and the user's count of consecutive quick failures to the wait in seconds; :class:`Backoff` holds
that count for one user. The Locust side (:mod:`llm_locust.users`) adds the wait to the user's ``wait_time``, so
the user waits in Locust's own waiting state (a stop ends the wait at once) and records it in the request's
``backoff_s``. Open-loop load applies the same function to its schedule: a request's next send is pushed back by
the wait.

The rules, in order (``--no-backoff``: never wait):

==========================================================  ====================================================
outcome of the request                                      wait before the same user's next request
==========================================================  ====================================================
success                                                     none; the quick-failure streak starts again
a failure carrying the server's retry hint (``Retry-After``  the hint (at least 0.1 s), capped at
seconds or HTTP date, ``retry-after-ms``, Google            ``--max-retry-after`` (default 60 s)
``RetryInfo``: 429, 503, 529, any status that sends one)
no HTTP response: refused, DNS, TLS, reset before a status  exponential: 0.1 s, 0.2 s, 0.4 s ... 5 s at most
HTTP error status or failed stream within ``QUICK_S`` (1 s)  exponential, the same streak
(401, 404, 429/503/529 without a hint, 500, a broken stream)
a slower failure, or a timeout (the request already waited)  none; the streak is kept
cancelled at the stop                                       none
==========================================================  ====================================================

The exponential wait is ``BASE_S * 2 ** streak`` capped at ``MAX_S``, where ``streak`` counts the user's
consecutive quick failures before this one; a success resets it. A hinted wait does not advance it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: the first exponential wait, doubled on each further quick failure, up to MAX_S
BASE_S = 0.1
MAX_S = 5.0
#: a failure that took less than this did not pace itself: it backs off exponentially
QUICK_S = 1.0
#: the default cap on a server's retry hint (``--max-retry-after``)
DEFAULT_MAX_RETRY_AFTER_S = 60.0
#: failures that waited their whole time already: no backoff after them
NO_WAIT_CLASSES = frozenset({"timeout", "cancelled"})


@dataclass(frozen=True)
class Policy:
    """The backoff settings of a run (``--no-backoff``, ``--max-retry-after``)."""

    enabled: bool = True
    max_retry_after_s: float = DEFAULT_MAX_RETRY_AFTER_S
    base_s: float = BASE_S
    max_s: float = MAX_S
    quick_s: float = QUICK_S


OFF = Policy(enabled=False)


def exponential(policy: Policy, streak: int) -> float:
    """The wait after the quick failure that follows ``streak`` consecutive ones."""
    return min(policy.max_s, policy.base_s * 2 ** min(streak, 64))


def wait_after(policy: Policy, outcome: Mapping[str, Any], streak: int = 0) -> tuple[float, int]:
    """``(wait_s, new_streak)`` after one request.

    ``outcome``: the request's record (:class:`~llm_locust.measure.record.Record`) or any mapping with its
    ``status``, ``error_class``, ``http_status``, ``retry_after_s`` and ``elapsed_ms``."""
    status = outcome.get("status")
    if status == "ok":
        return 0.0, 0
    if not policy.enabled or status != "failed" or outcome.get("error_class") in NO_WAIT_CLASSES:
        return 0.0, streak
    hint = outcome.get("retry_after_s")
    if hint is not None and hint == hint:  # not NaN
        return min(max(float(hint), policy.base_s), policy.max_retry_after_s), streak
    no_response = not outcome.get("http_status")
    elapsed_s = (outcome.get("elapsed_ms") or 0.0) / 1000.0
    if no_response or elapsed_s < policy.quick_s:
        return exponential(policy, streak), streak + 1
    return 0.0, streak


class Backoff:
    """One user's backoff: the policy, its quick-failure streak and the wait still to take."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.streak = 0
        self.pending = 0.0

    def after(self, outcome: Mapping[str, Any]) -> float:
        """Book one finished request; return the wait that must follow it (also kept as ``pending``)."""
        wait, self.streak = wait_after(self.policy, outcome, self.streak)
        self.pending = wait
        return wait

    def take(self) -> float:
        """The wait to take now (once): what the last request asked for."""
        wait, self.pending = self.pending, 0.0
        return wait
