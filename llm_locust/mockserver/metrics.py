"""The mock server's ``GET /metrics``: Prometheus text with vLLM's metric names, from what it actually served.

Per model (label ``model_name``, as vLLM labels them), rendered by hand (no dependency):

* gauges ``vllm:num_requests_running`` (generation requests whose first token has been sent and that are still
  going) and ``vllm:num_requests_waiting`` (received, first token not sent yet: the mock's "queue" is its TTFT);
  ``vllm:kv_cache_usage_perc`` is 0 (the mock has no KV cache);
* counters ``vllm:prompt_tokens_total``, ``vllm:generation_tokens_total``, ``vllm:request_success_total`` (replies
  that ended normally), ``vllm:num_preemptions_total`` (always 0);
* histograms, observed when a reply ends normally, from the real send times of its send record:
  ``vllm:time_to_first_token_seconds`` (first token sent - request fully read), ``vllm:e2e_request_latency_seconds``
  (last token sent - request read), ``vllm:request_time_per_output_token_seconds`` ((last - first token sent) /
  (tokens - 1), for 2+ tokens: the per-request TPOT, so a client's TPOT can be checked against it) and
  ``vllm:request_queue_time_seconds`` (0: nothing waits for a batch slot).

A reply is observed right after its last event is written, in the same greenlet without a yield in between, so a
scrape that follows a client's last ``[DONE]`` always counts that reply.
"""

from __future__ import annotations

import math
from typing import Any

from llm_locust.mockserver.sendlog import SendRecord

#: bucket upper bounds (seconds), finer than vLLM's at the low end, where the mock's latencies are
TIME_BUCKETS = (0.0005, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15,
                0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
HISTOGRAMS = (
    ("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds."),
    ("vllm:e2e_request_latency_seconds", "Histogram of end to end request latency in seconds."),
    ("vllm:request_time_per_output_token_seconds", "Histogram of time per output token in seconds."),
    ("vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request."),
)
COUNTERS = (
    ("vllm:prompt_tokens", "Number of prefill tokens processed."),
    ("vllm:generation_tokens", "Number of generation tokens processed."),
    ("vllm:request_success", "Count of successfully processed requests."),
    ("vllm:num_preemptions", "Cumulative number of preemption from the engine."),
)


class _Hist:
    __slots__ = ("counts", "sum", "n")

    def __init__(self) -> None:
        self.counts = [0] * len(TIME_BUCKETS)
        self.sum = 0.0
        self.n = 0

    def observe(self, v: float) -> None:
        for i, le in enumerate(TIME_BUCKETS):
            if v <= le:
                self.counts[i] += 1
                break
        self.sum += v
        self.n += 1


class MockMetrics:
    """The counters behind ``/metrics``; :meth:`observe` each finished send record, :meth:`render` the page."""

    def __init__(self) -> None:
        self.inflight: dict[int, SendRecord] = {}  # seq -> record, while a generation request runs
        self._hists: dict[str, dict[str, _Hist]] = {}  # model -> name -> histogram
        self._counters: dict[str, dict[str, float]] = {}  # model -> name -> value

    def _model(self, model: str) -> tuple[dict[str, _Hist], dict[str, float]]:
        if model not in self._hists:
            self._hists[model] = {name: _Hist() for name, _ in HISTOGRAMS}
            self._counters[model] = {name: 0.0 for name, _ in COUNTERS}
        return self._hists[model], self._counters[model]

    def observe(self, rec: SendRecord) -> None:
        """Book one finished generation request (a reply that ended normally, status 200, with its token times)."""
        if rec.aborted or rec.status != 200 or rec.finish_reason is None or rec.t_first_token_ns is None:
            return
        hists, counters = self._model(rec.model or "mock-model")
        first, last = rec.t_first_token_ns, rec.t_last_token_ns or rec.t_first_token_ns
        hists["vllm:time_to_first_token_seconds"].observe((first - rec.t_recv_ns) / 1e9)
        hists["vllm:e2e_request_latency_seconds"].observe((last - rec.t_recv_ns) / 1e9)
        hists["vllm:request_queue_time_seconds"].observe(0.0)
        if rec.tokens >= 2:
            hists["vllm:request_time_per_output_token_seconds"].observe((last - first) / 1e9 / (rec.tokens - 1))
        counters["vllm:prompt_tokens"] += rec.prompt_tokens
        counters["vllm:generation_tokens"] += rec.tokens
        counters["vllm:request_success"] += 1

    def render(self) -> bytes:
        """The page, in Prometheus text format 0.0.4."""
        models = sorted(self._hists) or ["mock-model"]
        running: dict[str, int] = dict.fromkeys(models, 0)
        waiting: dict[str, int] = dict.fromkeys(models, 0)
        for rec in self.inflight.values():
            model = rec.model or "mock-model"
            book = running if rec.t_first_token_ns is not None else waiting
            book[model] = book.get(model, 0) + 1
        lines: list[str] = []
        for name, help_, values in (
            ("vllm:num_requests_running", "Number of requests in model execution batches.", running),
            ("vllm:num_requests_waiting", "Number of requests waiting to be processed.", waiting),
            ("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", dict.fromkeys(running, 0)),
        ):
            lines += [f"# HELP {name} {help_}", f"# TYPE {name} gauge"]
            lines += [f'{name}{{model_name="{_esc(m)}"}} {float(v)}' for m, v in sorted(values.items())]
        for name, help_ in COUNTERS:
            lines += [f"# HELP {name}_total {help_}", f"# TYPE {name}_total counter"]
            for m in models:
                value = self._counters.get(m, {}).get(name, 0.0)
                lines.append(f'{name}_total{{model_name="{_esc(m)}"}} {float(value)}')
        for name, help_ in HISTOGRAMS:
            lines += [f"# HELP {name} {help_}", f"# TYPE {name} histogram"]
            for m in models:
                h = self._hists.get(m, {}).get(name) or _Hist()
                label = f'model_name="{_esc(m)}"'
                cum = 0
                for le, c in zip(TIME_BUCKETS, h.counts, strict=True):
                    cum += c
                    lines.append(f'{name}_bucket{{le="{le}",{label}}} {float(cum)}')
                lines.append(f'{name}_bucket{{le="+Inf",{label}}} {float(h.n)}')
                lines.append(f"{name}_count{{{label}}} {float(h.n)}")
                lines.append(f"{name}_sum{{{label}}} {_num(h.sum)}")
        return ("\n".join(lines) + "\n").encode()


def _esc(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _num(v: float) -> str:
    return repr(v) if math.isfinite(v) else "NaN"
