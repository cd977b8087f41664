"""The known servers' metric tables: which of a server's Prometheus metrics we read, under which of our names.

:data:`SERVERS` maps a server kind (vLLM ``vllm:``, SGLang ``sglang:``, TGI ``tgi_``, llama.cpp's server
``llamacpp:``) to its metric prefix and its curated :class:`Curated` metrics; :func:`detect` tells the kind of a page
by its prefix. Of several metric names for one key the first found wins: newer names first. Adding a server or a
metric is a row here; the parser (:mod:`.parse`) and the reports derive from these tables.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Curated:
    """One metric of a known server: our ``key``, its metric names (first found wins), type, unit, aggregation."""

    key: str
    names: tuple[str, ...]
    type: str  # "gauge", "counter" or "histogram"
    unit: str = ""  # "s": a histogram of seconds, reported in ms
    agg: str = "sum"  # over label sets: "sum", or "max" (ratios)


def _g(key: str, *names: str, agg: str = "sum") -> Curated:
    return Curated(key, names, "gauge", agg=agg)


def _c(key: str, *names: str) -> Curated:
    return Curated(key, names, "counter")


def _h(key: str, *names: str, unit: str = "s") -> Curated:
    return Curated(key, names, "histogram", unit)


#: server kind -> (metric prefix, curated metrics)
SERVERS: dict[str, tuple[str, tuple[Curated, ...]]] = {
    "vllm": ("vllm:", (
        _g("requests_running", "vllm:num_requests_running"),
        _g("requests_waiting", "vllm:num_requests_waiting"),
        _g("kv_cache_usage", "vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", agg="max"),
        _c("preemptions", "vllm:num_preemptions_total", "vllm:num_preemptions"),
        _c("prompt_tokens", "vllm:prompt_tokens_total"),
        _c("generation_tokens", "vllm:generation_tokens_total"),
        _c("requests_finished", "vllm:request_success_total"),
        _h("ttft_seconds", "vllm:time_to_first_token_seconds"),
        _h("tpot_seconds", "vllm:request_time_per_output_token_seconds", "vllm:time_per_output_token_seconds"),
        _h("itl_seconds", "vllm:inter_token_latency_seconds"),
        _h("queue_time_seconds", "vllm:request_queue_time_seconds"),
        _h("e2e_seconds", "vllm:e2e_request_latency_seconds"),
        _h("prefill_time_seconds", "vllm:request_prefill_time_seconds"),
    )),
    "sglang": ("sglang:", (
        _g("requests_running", "sglang:num_running_reqs"),
        _g("requests_waiting", "sglang:num_queue_reqs"),
        _g("kv_cache_usage", "sglang:token_usage", agg="max"),
        _c("preemptions", "sglang:num_retracted_reqs_total", "sglang:num_retracted_reqs"),
        _c("prompt_tokens", "sglang:prompt_tokens_total"),
        _c("generation_tokens", "sglang:generation_tokens_total"),
        _h("ttft_seconds", "sglang:time_to_first_token_seconds"),
        _h("tpot_seconds", "sglang:time_per_output_token_seconds"),
        _h("itl_seconds", "sglang:inter_token_latency_seconds"),
        _h("queue_time_seconds", "sglang:queue_time_seconds"),
        _h("e2e_seconds", "sglang:e2e_request_latency_seconds"),
    )),
    "tgi": ("tgi_", (
        _g("requests_running", "tgi_batch_current_size"),
        _g("requests_waiting", "tgi_queue_size"),
        _c("requests_finished", "tgi_request_success_total", "tgi_request_success"),
        _h("tpot_seconds", "tgi_request_mean_time_per_token_duration"),
        _h("queue_time_seconds", "tgi_request_queue_duration"),
        _h("e2e_seconds", "tgi_request_duration"),
        _h("generated_tokens", "tgi_request_generated_tokens", unit=""),
        _h("input_tokens", "tgi_request_input_length", unit=""),
    )),
    "llamacpp": ("llamacpp:", (
        _g("requests_running", "llamacpp:requests_processing"),
        _g("requests_waiting", "llamacpp:requests_deferred"),
        _g("kv_cache_usage", "llamacpp:kv_cache_usage_ratio", agg="max"),
        _c("prompt_tokens", "llamacpp:prompt_tokens_total"),
        _c("generation_tokens", "llamacpp:tokens_predicted_total"),
        _g("prompt_tokens_per_s", "llamacpp:prompt_tokens_seconds"),
        _g("generation_tokens_per_s", "llamacpp:predicted_tokens_seconds"),
    )),
}



def detect(text: str) -> str:
    """The kind of server whose page this is (a key of :data:`SERVERS`, or "unknown")."""
    for kind, (prefix, _) in SERVERS.items():
        if f"\n{prefix}" in text or text.startswith(prefix) or f" {prefix}" in text:
            return kind
    return "unknown"
