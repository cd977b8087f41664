"""Our own figures at ``/metrics`` in Prometheus format, for Grafana to follow a long run (``--metrics-port``).

A local runner or a master (never a worker: the master sees every worker's records) serves, on
``--metrics-host:--metrics-port`` (default 127.0.0.1, off without a port), from its own
:class:`~prometheus_client.CollectorRegistry` (one per environment):

==================================  =========  ===============================================================
``llm_ttft_seconds``                histogram  time to first token of successful requests
``llm_tpot_seconds``                histogram  time per output token (requests with 2+ output tokens)
``llm_itl_seconds``                 histogram  inter-token gaps, every gap one observation
``llm_e2e_seconds``                 histogram  request latency to the last token
``llm_requests_total``              counter    requests by ``status`` (ok, failed, cancelled)
``llm_errors_total``                counter    failed requests by ``error_class``
``llm_input_tokens_total``          counter    input tokens of successful requests
``llm_output_tokens_total``         counter    output tokens of successful requests
``llm_cost_usd_total``              counter    estimated cost of successful priced requests, USD
``llm_users``                       gauge      the runner's current user count
==================================  =========  ===============================================================

Labels: ``target``, ``prompt``, ``api``, ``model`` (plus ``status`` / ``error_class``), nothing else: never a host,
a key or a URL. A histogram's ``_count`` for a (target, prompt) is the report's ``successes`` for it (``llm_tpot``:
those with 2+ tokens); ``llm_requests_total`` with status ok or failed sums to the report's ``requests``. The figures
grow across the runs of one process (a web UI session), as Prometheus counters do.

Fed by :meth:`Exporter.add`, a listener of the run's recorder (it runs when a request is booked, never inside a
stream): a few dict and array operations per record, the ITL gaps bucketed in one numpy call. The page is built
when scraped. :func:`start` binds the port at ``init`` (a port that cannot be bound ends the run with one line and
exit code 2); the server stops at ``quitting``. ``docs/grafana-dashboard.json`` is an example dashboard.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

import numpy as np

from .measure.record import STATUS_FAILED, STATUS_OK, Record

logger = logging.getLogger("llm_locust")

ATTR = "llm_exporter"
LABELS = ("target", "prompt", "api", "model")
#: histogram name -> (record field in ms or None for ITL, bucket upper bounds in seconds, help)
HISTOGRAMS: dict[str, tuple[str | None, tuple[float, ...], str]] = {
    "llm_ttft_seconds": ("ttft_ms", (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0,
                                     1.5, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0), "Time to first token, seconds"),
    "llm_tpot_seconds": ("tpot_ms", (0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1,
                                     0.15, 0.25, 0.5, 1.0), "Time per output token, seconds"),
    "llm_itl_seconds": (None, (0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15,
                               0.25, 0.5, 1.0, 2.5), "Inter-token latency (one observation per gap), seconds"),
    "llm_e2e_seconds": ("e2e_ms", (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0,
                                   300.0), "Request latency to the last token, seconds"),
}
#: counter name (without _total) -> (record field, help), over successful requests
SUMS = {
    "llm_input_tokens": ("input_tokens", "Input tokens of successful requests"),
    "llm_output_tokens": ("output_tokens", "Output tokens of successful requests"),
    "llm_cost_usd": ("cost_usd", "Estimated cost of successful priced requests, USD"),
}


class _Hist:
    __slots__ = ("edges", "counts", "sum")

    def __init__(self, edges: tuple[float, ...]) -> None:
        self.edges = edges
        self.counts = np.zeros(len(edges) + 1, dtype=np.int64)  # the last: above every bound (+Inf)
        self.sum = 0.0

    def observe(self, v: float) -> None:
        self.counts[bisect_left(self.edges, v)] += 1
        self.sum += v

    def observe_many(self, values: np.ndarray) -> None:
        self.counts += np.bincount(np.searchsorted(self.edges, values, side="left"), minlength=len(self.counts))
        self.sum += float(values.sum())


class Exporter:
    """One environment's figures and the ``/metrics`` server that shows them."""

    def __init__(self, environment: Any) -> None:
        from prometheus_client import CollectorRegistry

        self.environment = environment
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        self._hists: dict[tuple[str, ...], dict[str, _Hist]] = {}
        self._requests: dict[tuple[str, ...], int] = {}
        self._errors: dict[tuple[str, ...], int] = {}
        self._sums: dict[tuple[str, ...], dict[str, float]] = {}
        self.server: Any = None

    # ------------------------------------------------------------ the figures

    def add(self, r: Record) -> None:
        """Book one record (the recorder's listener); warm-up records (--warmup) are in no figure."""
        if r.get("warmup"):
            return
        key = (r["target"] or r["api"], r["prompt"], r["api"], r["model"] or "")
        status = r["status"]
        self._requests[(*key, status)] = self._requests.get((*key, status), 0) + 1
        if status == STATUS_FAILED:
            ekey = (*key, r["error_class"] or "unknown")
            self._errors[ekey] = self._errors.get(ekey, 0) + 1
        if status != STATUS_OK:
            return
        hists = self._hists.get(key)
        if hists is None:
            hists = self._hists[key] = {name: _Hist(edges) for name, (_, edges, _) in HISTOGRAMS.items()}
            self._sums[key] = dict.fromkeys(SUMS, 0.0)
        for name, (fld, _, _) in HISTOGRAMS.items():
            if fld is None:
                if r["itl_us"]:
                    hists[name].observe_many(np.frombuffer(r["itl_us"], dtype=np.int64) / 1e6)
            elif (v := r[fld]) is not None:
                hists[name].observe(v / 1000.0)
        sums = self._sums[key]
        for name, (fld, _) in SUMS.items():
            if (v := r[fld]) is not None:
                sums[name] += v

    def collect(self) -> Iterator[Any]:
        """prometheus_client's collector protocol: the metric families, built now."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        for name, (_, edges, help_) in HISTOGRAMS.items():
            fam = HistogramMetricFamily(name, help_, labels=LABELS)
            for key, hists in self._hists.items():
                h = hists[name]
                cum = np.cumsum(h.counts).tolist()
                buckets = [(_le(le), c) for le, c in zip(edges, cum, strict=False)] + [("+Inf", cum[-1])]
                fam.add_metric(list(key), buckets, h.sum)
            yield fam
        fam = CounterMetricFamily("llm_requests", "LLM requests by status", labels=(*LABELS, "status"))
        for key, n in self._requests.items():
            fam.add_metric(list(key), n)
        yield fam
        fam = CounterMetricFamily("llm_errors", "Failed LLM requests by error class", labels=(*LABELS, "error_class"))
        for key, n in self._errors.items():
            fam.add_metric(list(key), n)
        yield fam
        for name, (_, help_) in SUMS.items():
            fam = CounterMetricFamily(name, help_, labels=LABELS)
            for key, sums in self._sums.items():
                fam.add_metric(list(key), sums[name])
            yield fam
        users = getattr(self.environment.runner, "user_count", 0) or 0
        yield GaugeMetricFamily("llm_users", "Current number of simulated users", value=users)

    def text(self) -> bytes:
        """The page as served."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)

    # ------------------------------------------------------------ the run and the server

    def on_test_start(self, environment: Any = None, **_: Any) -> None:
        if environment is not None and environment is not self.environment:
            return
        run = getattr(self.environment, "llm_run", None)
        if run is not None and self.add not in run.recorder.listeners:
            run.recorder.listeners.append(self.add)

    def serve(self, host: str, port: int) -> None:
        """Bind and serve ``/metrics`` in this gevent hub (OSError if the port cannot be bound)."""
        from gevent.pywsgi import WSGIServer
        from prometheus_client import make_wsgi_app

        server = WSGIServer((host, port), make_wsgi_app(self.registry), log=None, error_log=None)
        server.start()
        self.server = server

    def stop(self, **_: Any) -> None:
        if self.server is not None:
            self.server.stop(timeout=1)
            self.server = None


def _le(v: float) -> str:
    return repr(float(v))


def start(environment: Any, host: str, port: int) -> Exporter:
    """Serve the environment's figures on ``host:port``, fed by each run's recorder; OSError if the port is taken."""
    exporter = Exporter(environment)
    exporter.serve(host, port)
    setattr(environment, ATTR, exporter)
    environment.events.test_start.add_listener(exporter.on_test_start)
    environment.events.quitting.add_listener(exporter.stop)
    shown = f"[{host}]" if ":" in host else host
    logger.info("llm-locust: Prometheus metrics at http://%s:%d/metrics", shown, port)
    return exporter
