"""The server's metrics against a real vLLM server: the report's server section holds running and waiting requests
and vLLM's own TTFT, and vLLM's TPOT equals ours within 0.1 ms.

Needs the ``vllm_server`` fixture of the real-server tests (tests/realservers/: an object with ``.url`` and
``.model`` for a running vLLM OpenAI-compatible server on loopback); skips, saying why, where it is not available.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def vllm(request):
    try:
        return request.getfixturevalue("vllm_server")
    except pytest.FixtureLookupError:
        pytest.skip("no vllm_server fixture here (the real-server fixtures of tests/realservers/ are not installed)")


def test_vllm_server_section_and_tpot_against_ours(vllm, locust_run):
    run = locust_run("-u", "1", "-r", "1", "--max-requests", "8", "-H", vllm.url, "--model", vllm.model,
                     "--token-limit", "64", "--server-metrics", vllm.url.rstrip("/") + "/metrics",
                     timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    summary = run.summary()
    (src,) = summary["server"]["sources"]
    assert src["server"] == "vllm" and src["failed_scrapes"] == 0
    m = src["metrics"]
    assert m["requests_running"]["max"] is not None and m["requests_waiting"]["mean"] is not None
    ok = summary["overall"]["successes"]
    assert ok == 8
    assert m["ttft_seconds"]["count"] == ok and m["ttft_seconds"]["mean"] > 0
    assert m["generation_tokens"]["delta"] == summary["overall"]["output_tokens"]["total"]
    tpot = src["vs_client"]["tpot_ms"]
    if m["tpot_seconds"]["metric"] == "vllm:request_time_per_output_token_seconds":  # per request, as ours
        assert abs(tpot["difference_mean"]) < 0.1, tpot
    ttft = src["vs_client"]["ttft_ms"]
    assert ttft["difference_mean"] > 0  # vLLM's clock starts at engine arrival, ours before the request is sent
    print("\nclient vs server (ms):", {k: (round(v["client_mean"], 2), round(v["server_mean"], 2))
                                       for k, v in src["vs_client"].items()})  # fmt: skip
