"""Rate stages: a Locust ``LoadTestShape`` whose stages are request rates (open-loop arrivals), not user counts.

Subclass :class:`RateShape` in a locustfile and list the stages, each ``(duration_s, requests_per_s)``::

    from llm_locust.locustfile import LLMUser  # noqa: F401
    from llm_locust.rateshape import RateShape

    class Ramp(RateShape):
        stages = [(30, 5), (30, 10), (30, 20)]   # 5 req/s for 30 s, then 10, then 20; then the run stops

The shape runs where Locust runs shapes (the local runner or the master). At each tick it sets the whole run's
rate (:func:`llm_locust.plugin.dispatch.set_total_rate`): a local runner's dispatcher draws its arrivals at it,
a master sends each worker its share. ``--request-rate`` is not needed (the stages give it); ``--arrival``,
``--burstiness``, ``--max-concurrency`` and ``--seed`` apply as usual. The user count the shape asks Locust for is
``users`` (the sender pool the run starts with; spare senders are added when it runs dry, see
:mod:`llm_locust.plugin.dispatch`). After the last stage a master stops its workers (their last records come in,
the reports are written), then the run ends, as with :class:`llm_locust.capacity.CapacityShape`.
"""

from __future__ import annotations

from typing import ClassVar

from locust import LoadTestShape


class RateShape(LoadTestShape):
    """Open-loop rate stages (see the module docs); ``abstract``: Locust runs only subclasses."""

    abstract = True
    #: ``(duration_s, requests_per_s)`` per stage, in order; the run stops after the last
    stages: ClassVar[list[tuple[float, float]]] = []
    #: the sender pool Locust starts (users), spawned at once
    users: ClassVar[int] = 1

    def rate_at(self, t: float) -> float | None:
        """The stage's rate at ``t`` seconds into the run, or None once every stage is over."""
        end = 0.0
        for duration, rate in self.stages:
            end += duration
            if t < end:
                return float(rate)
        return None

    def tick(self) -> tuple[int, float] | None:
        from .plugin.dispatch import set_total_rate

        rate = self.rate_at(self.get_run_time())
        if rate is None:
            from locust.runners import MasterRunner

            if isinstance(self.runner, MasterRunner):
                self.runner.stop()  # the workers first: their last records come in and the reports are written
            return None
        if self.runner is not None:
            set_total_rate(self.runner.environment, rate)
        return self.users, float(self.users)
