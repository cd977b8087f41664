"""The server's metrics in the run (llm_locust/servermetrics/), the mock's /metrics, and our exporter
(llm_locust/exporter.py): parsed pages of each known server, real `locust` runs against the real mock server, and
the exporter's page read back with prometheus_client's own parser.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import requests

from llm_locust import servermetrics
from llm_locust.servermetrics import Hist, NotPrometheus, hist_quantile, parse_page, redact_url
from tests.conftest import ROOT, free_port

pytest.importorskip("prometheus_client")

VLLM_OLD = """\
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 3.0
vllm:num_requests_running{engine="1",model_name="m"} 2.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="m"} 7.0
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{engine="0",model_name="m"} 0.25
vllm:gpu_cache_usage_perc{engine="1",model_name="m"} 0.5
# TYPE vllm:num_preemptions_total counter
vllm:num_preemptions_total{model_name="m"} 4.0
# TYPE vllm:time_per_output_token_seconds histogram
vllm:time_per_output_token_seconds_bucket{le="0.01",model_name="m"} 1.0
vllm:time_per_output_token_seconds_bucket{le="0.02",model_name="m"} 3.0
vllm:time_per_output_token_seconds_bucket{le="+Inf",model_name="m"} 4.0
vllm:time_per_output_token_seconds_count{model_name="m"} 4.0
vllm:time_per_output_token_seconds_sum{model_name="m"} 0.06
# TYPE python_gc_objects_collected_total counter
python_gc_objects_collected_total{generation="0"} 123.0
"""
SGLANG = """\
# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs{model_name="m"} 5.0
# TYPE sglang:num_queue_reqs gauge
sglang:num_queue_reqs{model_name="m"} 1.0
# TYPE sglang:token_usage gauge
sglang:token_usage{model_name="m"} 0.4
# TYPE sglang:time_to_first_token_seconds histogram
sglang:time_to_first_token_seconds_bucket{le="0.1",model_name="m"} 2.0
sglang:time_to_first_token_seconds_bucket{le="+Inf",model_name="m"} 2.0
sglang:time_to_first_token_seconds_sum{model_name="m"} 0.1
sglang:time_to_first_token_seconds_count{model_name="m"} 2.0
"""
TGI = """\
# TYPE tgi_queue_size gauge
tgi_queue_size 2
# TYPE tgi_batch_current_size gauge
tgi_batch_current_size 6
# TYPE tgi_request_mean_time_per_token_duration histogram
tgi_request_mean_time_per_token_duration_bucket{le="0.01"} 1
tgi_request_mean_time_per_token_duration_bucket{le="+Inf"} 1
tgi_request_mean_time_per_token_duration_sum 0.008
tgi_request_mean_time_per_token_duration_count 1
"""
LLAMACPP = """\
# HELP llamacpp:requests_processing Number of requests processing.
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 1
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 0
# TYPE llamacpp:tokens_predicted_total counter
llamacpp:tokens_predicted_total 420
"""
UNKNOWN = """\
# TYPE my_queue gauge
my_queue{shard="a"} 1
my_queue{shard="b"} 2
# TYPE my_served_total counter
my_served_total 10
# TYPE my_latency histogram
my_latency_bucket{le="+Inf"} 1
my_latency_sum 1
my_latency_count 1
"""


# ---------------------------------------------------------------- pages


def test_vllm_older_names_sum_label_sets_and_take_the_max_of_ratios():
    page = parse_page(VLLM_OLD)
    assert page.kind == "vllm"
    assert page.scalars == {"requests_running": 5.0, "requests_waiting": 7.0, "kv_cache_usage": 0.5,
                            "preemptions": 4.0}
    assert page.names["kv_cache_usage"] == "vllm:gpu_cache_usage_perc"
    assert page.names["tpot_seconds"] == "vllm:time_per_output_token_seconds"
    h = page.hists["tpot_seconds"]
    assert (h.count, h.sum, h.buckets[-1]) == (4.0, 0.06, (float("inf"), 4.0))


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        (SGLANG, "sglang", {"requests_running": 5.0, "requests_waiting": 1.0, "kv_cache_usage": 0.4}),
        (TGI, "tgi", {"requests_running": 6.0, "requests_waiting": 2.0}),
        (LLAMACPP, "llamacpp", {"requests_running": 1.0, "requests_waiting": 0.0, "generation_tokens": 420.0}),
        (UNKNOWN, "unknown", {"my_queue": 3.0, "my_served_total": 10.0}),
    ],
)
def test_each_known_server_gets_its_curated_set_and_others_their_counters_and_gauges(text, kind, expected):
    page = parse_page(text)
    assert page.kind == kind
    assert page.scalars == expected
    if kind == "unknown":
        assert page.hists == {}  # an unknown server's histograms are not guessed at
        assert page.types == {"my_queue": "gauge", "my_served_total": "counter"}


@pytest.mark.parametrize("text", ["<!doctype html><html><body>hi</body></html>", '{"status": "ok"}', "", "a b c"])
def test_a_page_that_is_no_prometheus_text_is_refused(text):
    with pytest.raises(NotPrometheus):
        parse_page(text)


def test_histogram_quantiles_interpolate_within_buckets_like_prometheus():
    h = Hist([(0.1, 10.0), (0.2, 30.0), (float("inf"), 40.0)], 6.0, 40.0)
    assert hist_quantile(h, 0.25) == pytest.approx(0.1)
    assert hist_quantile(h, 0.5) == pytest.approx(0.15)
    assert hist_quantile(h, 0.99) == pytest.approx(0.2)  # in +Inf: the highest finite bound
    first = Hist([(0.1, 5.0), (0.2, 5.0), (float("inf"), 5.0)], 1.0, 5.0)
    d = servermetrics.hist_delta(first, h)
    assert (d.count, d.buckets[0]) == (35.0, (0.1, 5.0))
    figures = servermetrics.hist_figures(d, "s")
    assert figures["count"] == 35 and figures["mean"] == pytest.approx(5.0 / 35 * 1000)


def test_urls_are_shown_without_userinfo_or_query():
    assert redact_url("http://user:s3cret@10.0.0.1:8000/metrics?token=abc#x") == "http://10.0.0.1:8000/metrics"
    assert servermetrics.default_url("https://u:p@host.example/v1") == "https://u:p@host.example/metrics"
    assert servermetrics.check_url("ftp://x/metrics") is not None
    assert servermetrics.check_url("http://127.0.0.1:1/metrics") is None


# ---------------------------------------------------------------- the mock's /metrics


def test_hosted_apis_are_not_scraped_by_default_and_self_hosted_servers_are():
    """A good citizen: no /metrics GETs every second against a provider's API; the user's own servers are scraped."""
    from types import SimpleNamespace as NS

    pytest.importorskip("prometheus_client")
    hosted = [NS(name=n, host=h) for n, h in [
        ("openai", "https://api.openai.com/v1"), ("vertex", "https://us-central1-aiplatform.googleapis.com/v1"),
        ("gateway", "https://gateway.ai.cloudflare.com/v1/acct/gw/openai"),
        ("workers", "https://api.cloudflare.com/client/v4/accounts/acct/ai"),
    ]]
    opts = NS(no_server_metrics=False, server_metrics=None)
    assert servermetrics.ServerMetrics.for_run(opts, hosted) is None
    own = hosted + [NS(name="vllm", host="http://10.0.0.5:8000/v1")]
    (scraper,) = servermetrics.ServerMetrics.for_run(opts, own).scrapers
    assert scraper.url == "http://10.0.0.5:8000/metrics" and scraper.targets == ["vllm"]
    # named explicitly, any URL is scraped
    named = NS(no_server_metrics=False, server_metrics="https://api.openai.com/metrics")
    explicit = servermetrics.ServerMetrics.for_run(named, hosted)
    assert explicit is not None and explicit.scrapers[0].explicit


def test_the_mock_serves_vllm_metrics_of_what_it_sent(mock_server):
    mock = mock_server("--ttft-ms", "5", "--itl-ms", "1", "--output-tokens", "8")
    scraper = servermetrics.Scraper(mock.url + "/metrics", ["t"], explicit=True)
    assert scraper.scrape()
    body = {"model": "m1", "messages": [{"role": "user", "content": "one two three"}], "stream": True}
    for _ in range(3):
        r = requests.post(mock.url + "/v1/chat/completions", json=body, timeout=10)
        assert r.status_code == 200
    assert scraper.scrape()
    m = scraper.section()["metrics"]
    assert scraper.kind == "vllm"
    assert m["ttft_seconds"]["count"] == 3 and m["tpot_seconds"]["count"] == 3
    assert m["generation_tokens"]["delta"] == 24 and m["requests_finished"]["delta"] == 3
    assert m["prompt_tokens"]["delta"] == 9
    assert m["requests_running"]["last"] == 0 and m["requests_waiting"]["last"] == 0
    # TPOT from the real send times: (last - first token sent) / 7, each at least the 1 ms schedule
    sent = mock.sent()
    tpots = [(s["t_last_token_ns"] - s["t_first_token_ns"]) / 7 / 1e6 for s in sent]
    assert m["tpot_seconds"]["mean"] == pytest.approx(sum(tpots) / 3, abs=1e-6)


def test_the_scrapes_during_a_run_are_fetched_and_parsed_in_a_child_process(mock_server, monkeypatch):
    """Between the first and the last scrape, pages are fetched and parsed by a child process (never by a thread
    of the load generator, which would take the interpreter lock from the event loop); the child gets the URL on
    stdin (credentials never in its argv), and the pages it sends are booked like the others."""
    import threading

    import gevent

    from llm_locust.servermetrics import child, scrape

    mock = mock_server("--ttft-ms", "5", "--itl-ms", "1", "--output-tokens", "8")
    url = mock.url.replace("http://", "http://user:s3cret@") + "/metrics"
    srv = servermetrics.ServerMetrics([servermetrics.Scraper(url, ["t"], explicit=True)])
    monkeypatch.setattr(scrape, "SCRAPE_S", 0.2)
    threads = threading.active_count()
    srv.start()  # the baseline, here
    parsed_here = []
    monkeypatch.setattr(scrape, "parse_page", lambda *a: parsed_here.append(1))  # the parent parses no more
    proc = srv._child.proc
    assert "s3cret" not in " ".join(map(str, proc.args)) and "child" in " ".join(map(str, proc.args))
    (scraper,) = srv.scrapers
    for _ in range(300):  # bounded by the count of scrapes (the child starts at nice 10: slow on a busy machine)
        if scraper.scrapes >= 4:
            break
        gevent.sleep(0.1)
    assert scraper.scrapes >= 4 and scraper.failed == 0 and not parsed_here
    assert threading.active_count() == threads
    monkeypatch.undo()
    srv.stop()  # the last one, here again, after the child has ended
    proc.wait(timeout=5)
    assert scraper.kind == "vllm"
    assert child.page_from_json(__import__("dataclasses").asdict(scraper.last)) == scraper.last


# ---------------------------------------------------------------- real runs


def test_a_run_against_the_mock_has_the_server_section_and_server_tpot_equals_ours(locust_run, tmp_path):
    run = locust_run("-u", "1", "-r", "1", "--max-requests", "6",
                     "--mock-server-args", "--ttft-ms 20 --itl-ms 2 --output-tokens 30")
    assert run.returncode == 0, run.stderr[-3000:]
    summary = run.summary()
    (src,) = summary["server"]["sources"]
    assert src["server"] == "vllm" and src["scrapes"] >= 2 and src["failed_scrapes"] == 0
    m = src["metrics"]
    for key in ("requests_running", "requests_waiting"):
        assert m[key]["type"] == "gauge" and m[key]["mean"] is not None and m[key]["max"] is not None
    assert m["requests_running"]["max"] <= 1  # a single user
    ok = summary["overall"]["successes"]
    assert ok == 6
    assert m["ttft_seconds"]["count"] == ok and m["ttft_seconds"]["mean"] > 0
    assert m["generation_tokens"]["delta"] == summary["overall"]["output_tokens"]["total"]
    tpot = src["vs_client"]["tpot_ms"]
    assert tpot["server_mean"] == pytest.approx(m["tpot_seconds"]["mean"])
    assert tpot["client_mean"] == pytest.approx(summary["overall"]["tpot_ms"]["mean"])
    assert abs(tpot["difference_mean"]) < 0.1  # ms
    ttft = src["vs_client"]["ttft_ms"]
    assert ttft["difference_mean"] == pytest.approx(ttft["client_mean"] - ttft["server_mean"])
    # the time series, and the server's block in summary.txt and on the console
    rows = (run.folder / servermetrics.CSV_NAME).read_text().splitlines()
    assert rows[0].startswith("time,targets,server,requests_running,requests_waiting")
    assert len(rows) == 1 + src["scrapes"]
    assert "Server metrics (vllm" in (run.folder / "summary.txt").read_text()
    assert "TPOT mean: server" in run.stdout + run.stderr
    # and its charts in the HTML report, as on the web UI's charts page (the same definitions)
    page = (run.folder / "report.html").read_text()
    assert "<h2>The server's metrics</h2>" in page
    assert "Server: running and waiting requests · vllm" in page and "Server: tokens/s (its counters) · vllm" in page


def test_an_unreachable_metrics_url_is_one_warning_and_the_run_goes_on(locust_run):
    url = f"http://user:pw@127.0.0.1:{free_port()}/metrics"
    run = locust_run("-u", "1", "-r", "1", "--max-requests", "2", "--server-metrics", url)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = [line for line in run.stderr.splitlines() if "server metrics" in line]
    assert len(lines) == 1 and "WARNING" in lines[0] and "cannot connect" in lines[0], lines
    assert "user:pw" not in run.stderr
    summary = run.summary()
    assert "server" not in summary and summary["overall"]["successes"] == 2
    assert not (run.folder / servermetrics.CSV_NAME).exists()


def test_a_metrics_url_that_is_no_prometheus_text_is_one_warning(locust_run, mock_server):
    mock = mock_server()
    run = locust_run("-u", "1", "-r", "1", "--max-requests", "2", "--host", mock.url, "--model", "mock-model",
                     "--server-metrics", mock.url + "/health")
    assert run.returncode == 0, run.stderr[-3000:]
    lines = [line for line in run.stderr.splitlines() if "server metrics" in line]
    assert len(lines) == 1 and "not Prometheus text" in lines[0], lines
    assert "server" not in run.summary()


def test_no_server_metrics_turns_scraping_off(locust_run):
    run = locust_run("-u", "1", "-r", "1", "--max-requests", "2", "--no-server-metrics")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "server" not in run.summary()


def test_a_bad_metrics_url_scheme_exits_2_with_one_line(locust_run):
    run = locust_run("-u", "1", "--max-requests", "1", "--server-metrics", "ftp://127.0.0.1/metrics")
    assert run.returncode == 2
    errors = [line for line in run.stderr.splitlines() if line.startswith("llm-locust: error:")]
    assert len(errors) == 1 and "--server-metrics" in errors[0] and "Traceback" not in run.stderr


# ---------------------------------------------------------------- the exporter

DUMP_LOCUSTFILE = """\
import os
from locust import events
from llm_locust import plugin, users

plugin.register()


class LLMUser(users.LLMUser):
    pass


@events.test_stop.add_listener
def dump(environment, **_):
    exporter = getattr(environment, "llm_exporter", None)
    if exporter is not None and not os.path.exists(os.environ["EXPORT_DUMP"]):
        with open(os.environ["EXPORT_DUMP"], "wb") as f:
            f.write(exporter.text())
"""


def test_the_exporter_page_parses_and_its_counts_equal_the_report(locust_run, tmp_path: Path):
    from prometheus_client.parser import text_string_to_metric_families

    locustfile = tmp_path / "dump_locustfile.py"
    locustfile.write_text(DUMP_LOCUSTFILE)
    dump = tmp_path / "exported.txt"
    run = locust_run("-f", str(locustfile), "-u", "2", "-r", "2", "--max-requests", "7",
                     "--metrics-port", str(free_port()), "--mock-server-args", "--fault status-500 --fault-every 4",
                     env={"EXPORT_DUMP": str(dump)})
    assert run.returncode in (0, 1), run.stderr[-3000:]  # 1: Locust counts the injected failures
    summary = run.summary()
    families = {f.name: f for f in text_string_to_metric_families(dump.read_text())}

    def total(family: str, suffix: str, **labels: str) -> float:
        return sum(s.value for s in families[family].samples
                   if s.name == family + suffix and all(s.labels.get(k) == v for k, v in labels.items()))

    assert total("llm_ttft_seconds", "_count") == summary["overall"]["successes"]
    assert total("llm_e2e_seconds", "_count") == summary["overall"]["successes"]
    assert total("llm_itl_seconds", "_count") == summary["overall"]["itl_ms"]["samples"]
    for p in summary["prompts"]:
        assert total("llm_ttft_seconds", "_count", prompt=p["name"]) == p["successes"]
        ok = total("llm_requests", "_total", prompt=p["name"], status="ok")
        failed = total("llm_requests", "_total", prompt=p["name"], status="failed")
        assert ok + failed == p["requests"]
    assert total("llm_errors", "_total") == summary["overall"]["failures"] > 0
    assert total("llm_errors", "_total", error_class="server_error") == summary["overall"]["failures"]
    assert total("llm_output_tokens", "_total") == summary["overall"]["output_tokens"]["total"]
    labels = {k for f in families.values() for s in f.samples for k in s.labels}
    assert labels <= {"target", "prompt", "api", "model", "status", "error_class", "le"}
    assert "127.0.0.1" not in dump.read_text()  # no host in any label


def test_the_exporter_serves_metrics_over_http(tmp_path: Path):
    import os
    import signal
    import subprocess
    import sys

    from prometheus_client.parser import text_string_to_metric_families

    from tests.conftest import wait_for

    port, web = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", str(ROOT / "locustfile.py"), "--web-host", "127.0.0.1",
         "--web-port", str(web), "--report-dir", str(tmp_path / "reports"), "--metrics-port", str(port)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
    )
    try:

        def page() -> str | None:
            assert proc.poll() is None, proc.stderr.read()[-3000:] if proc.stderr else ""
            try:
                r = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
                return r.text if r.status_code == 200 else None
            except requests.RequestException:
                return None

        text = wait_for(page, 30, "the exporter's /metrics")
        families = {f.name: f for f in text_string_to_metric_families(text)}
        assert families["llm_users"].samples[0].value == 0
        assert {"llm_ttft_seconds", "llm_requests", "llm_errors", "llm_cost_usd"} <= set(families)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.parametrize("taken", [True, False])
def test_a_bad_exporter_port_exits_2_with_one_line(locust_run, taken):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1] if taken else 70000
        run = locust_run("-u", "1", "--max-requests", "1", "--metrics-port", str(port))
    assert run.returncode == 2, run.stderr[-3000:]
    errors = [line for line in run.stderr.splitlines() if line.startswith("llm-locust: error:")]
    assert len(errors) == 1 and "--metrics-port" in errors[0], run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    assert not run.report_dir.exists() or not any(run.report_dir.iterdir())


def test_stats_json_carries_the_server_series():
    srv = servermetrics.ServerMetrics([servermetrics.Scraper("http://127.0.0.1:1/metrics", ["t"], False)])
    scraper = srv.scrapers[0]
    scraper.book(parse_page(VLLM_OLD), 1000.0)
    scraper.book(parse_page(VLLM_OLD), 1001.0)
    (src,) = servermetrics.series(srv, started=999.0)
    assert src["server"] == "vllm" and [p["time"] for p in src["points"]] == [1.0, 2.0]
    assert src["points"][1]["requests_running"] == 5.0 and src["points"][1]["preemptions_per_s"] == 0.0
    assert json.dumps(src)  # plain JSON for the charts page
    assert json.dumps(servermetrics.CHARTS) and {c["id"] for c in servermetrics.CHARTS} >= {"server-queue", "server-kv"}
