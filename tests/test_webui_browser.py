"""The LLM tab in Locust's web UI, proven in a real browser: headless Chromium (Playwright) drives real `locust`
processes against the real mock server. Also, over plain HTTP: --web-login protects our routes like Locust's own,
and a distributed master serves the workers' records.

The browser tests skip, saying why, where Playwright or a Chromium executable cannot be found (CI installs Debian's
chromium in .ci/run; set LLM_LOCUST_CHROMIUM to use another build).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT, free_port, wait_for

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run", "--disable-sync",
]
PROMPTS_B = """\
prompts:
  - name: "Bravo one"
    text: "Count to three."
  - name: "Bravo two"
    text: "Name a fruit."
"""
#: LLM tab column title -> (stats.json row key, decimals shown)
COLUMNS = {
    "# Requests": ("requests", None),
    "# Fails": ("failures", None),
    "TTFT p50 (ms)": ("ttft_p50_ms", 1),
    "TTFT p95 (ms)": ("ttft_p95_ms", 1),
    "TTFT p99 (ms)": ("ttft_p99_ms", 1),
    "TPOT p50 (ms)": ("tpot_p50_ms", 2),
    "TPOT p95 (ms)": ("tpot_p95_ms", 2),
    "ITL p95 (ms)": ("itl_p95_ms", 2),
    "Output tok/s per request": ("tokens_per_s_request", 1),
    "Output tok/s (run)": ("tokens_per_s_run", 1),
    "Input tokens (mean)": ("input_tokens_mean", 1),
    "Output tokens (mean)": ("output_tokens_mean", 1),
    "Cost so far (USD)": ("cost_usd", 6),
}
SECRET = "sk-test-do-not-show-3f9a"


def _chromium() -> str | None:
    for name in (os.environ.get("LLM_LOCUST_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name) if name else None
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright for Python is not installed (pip install -e '.[test]')"
    )
    executable = _chromium()
    if executable is None:
        pytest.skip("no Chromium executable found (apt-get install chromium, or set LLM_LOCUST_CHROMIUM)")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield b
        b.close()


class LocustUI:
    """A real `locust` process with its web UI on a free 127.0.0.1 port; ``url`` ends with "/"."""

    def __init__(self, tmp_path: Path, *args: str, base_path: str = "", locustfile: Path | None = None, env=None):
        self.port = free_port()
        self.reports = tmp_path / "reports"
        self.log = tmp_path / f"locust-{self.port}.log"
        self.url = f"http://127.0.0.1:{self.port}{base_path}/"
        extra = ["--web-base-path", base_path] if base_path else []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "locust", "-f", str(locustfile or ROOT / "locustfile.py"), "--web-host",
             "127.0.0.1", "--web-port", str(self.port), "--report-dir", str(self.reports), "--loglevel", "INFO",
             *extra, *args],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self.log.open("w"), env={**os.environ, **(env or {})},
        )
        wait_for(lambda: self._up(), 30, "the web UI")

    def _up(self) -> bool:
        assert self.proc.poll() is None, self.log.read_text()[-3000:]
        try:
            return requests.get(self.url, timeout=2, allow_redirects=False).status_code in (200, 302)
        except requests.RequestException:
            return False

    def get(self, route: str, **kw) -> requests.Response:
        return requests.get(self.url + route, timeout=10, **kw)

    def stats(self) -> dict:
        return self.get("llm/stats.json").json()

    def close(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.log.read_text()


@pytest.fixture
def start_ui(tmp_path: Path) -> Iterator:
    started: list[LocustUI] = []

    def start(*args: str, **kw) -> LocustUI:
        ui = LocustUI(tmp_path, *args, **kw)
        started.append(ui)
        return ui

    yield start
    for ui in started:
        ui.close()


def _overall(data: dict) -> dict:
    rows = data["rows"]
    return rows[-1] if rows else {"requests": 0}


# ---------------------------------------------------------------- browser helpers


def _fill_start_form(page, mock_url: str, users: int, model: str, token_limit: str, prompt_file: str | None = None):
    page.fill("input[name=userCount]", str(users))
    page.fill("input[name=spawnRate]", str(users))
    page.fill("input[name=host]", mock_url)
    page.get_by_text("Custom parameters").click()
    page.fill("input[name=model]", model)
    page.fill("input[name=tokenLimit]", token_limit)
    if prompt_file:
        page.select_option("select[name=promptFileName]", prompt_file)


def _llm_table(page) -> dict[str, dict[str, str]]:
    """The LLM tab's table: {prompt: {column title: cell text}}."""
    table = page.evaluate(
        """() => {
        const t = [...document.querySelectorAll("table")].find(
            t => t.querySelector("th") && t.querySelector("th").textContent.trim() === "Prompt");
        if (!t) return null;
        const heads = [...t.querySelectorAll("thead th")].map(th => th.textContent.trim());
        const rows = [...t.querySelectorAll("tbody tr")].map(
            tr => [...tr.querySelectorAll("td")].map(td => td.textContent.trim()));
        return {heads, rows};
    }"""
    )
    if not table:
        return {}
    return {row[0]: dict(zip(table["heads"], row, strict=True)) for row in table["rows"]}


def _wait_table(page, names: set[str], min_requests: int, timeout: float = 20) -> dict[str, dict[str, str]]:
    def ready():
        table = _llm_table(page)
        if set(table) == names | {"Overall"} and int(table["Overall"]["# Requests"]) >= min_requests:
            return table
        return None

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        table = ready()
        if table:
            return table
        page.wait_for_timeout(200)
    raise AssertionError(f"the LLM tab never showed {sorted(names)} with {min_requests}+ requests: {_llm_table(page)}")


def _cell(value, digits):
    """A stats.json value as the LLM tab shows it."""
    if value is None:
        return "n/a"
    if digits is None:
        return str(value)
    return f"{round(value, digits):g}" if isinstance(value, float) else str(value)


def _download(page, link_name: str, folder: Path) -> Path:
    with page.expect_download() as info:
        page.get_by_role("link", name=link_name).click()
    download = info.value
    target = folder / download.suggested_filename
    download.save_as(target)
    return target


def _wait_charts(page, min_points: int = 2) -> dict[str, int]:
    # ours, then the server's (its /metrics, scraped by default: the mock serves vLLM's names)
    series = ["ttft_p50_ms", "ttft_p95_ms", "tpot_p50_ms", "output_tokens_per_s", "users", "requests_running",
              "generation_tokens_per_s"]
    script = """(series) => Object.fromEntries(series.map(s => [s, Math.max(0, ...[...document.querySelectorAll(
        `svg g[data-series="${s}"]`)].map(g => g.querySelectorAll("polyline").length ? +g.dataset.points : 0))]))"""
    deadline = time.monotonic() + 20
    while True:
        points = page.evaluate(script, series)
        if all(n >= min_points for n in points.values()) or time.monotonic() > deadline:
            return points
        page.wait_for_timeout(250)


# ---------------------------------------------------------------- tests


def test_llm_tab_charts_downloads_and_a_new_run(tmp_path: Path, mock_server, start_ui, browser):
    mock = mock_server("--ttft-ms", "20", "--itl-ms", "2", "--output-tokens", "40")
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    shutil.copy(ROOT / "tests" / "data" / "prompts_small.yaml", prompts / "prompts_a.yaml")
    (prompts / "prompts_b.yaml").write_text(PROMPTS_B)
    (prompts / "compose.yml").write_text("services: {}\n")  # YAML, but not a prompt file: not offered
    ui = start_ui("--prompt-file", str(prompts / "prompts_a.yaml"), env={"OPENAI_API_KEY": SECRET})
    shots = tmp_path / "screenshots"
    shots.mkdir()
    page = browser.new_page(viewport={"width": 1600, "height": 900}, accept_downloads=True)

    # the start form: our options, the prompt file offered by name only, paths and secrets nowhere
    page.goto(ui.url)
    _fill_start_form(page, mock.url, users=4, model="browser-model", token_limit="30")
    offered = page.locator("select[name=promptFileName] option").all_inner_texts()
    assert offered == ["prompts_a.yaml", "prompts_b.yaml"]
    assert page.locator("input[name=apiKey]").get_attribute("type") == "password"
    for hidden in ("promptFile", "reportDir", "prices", "targets", "template", "mockServerArgs"):
        assert page.locator(f"[name={hidden}]").count() == 0, hidden
    assert str(tmp_path) not in page.content() and SECRET not in page.content()
    page.screenshot(path=shots / "start-form.png")
    page.get_by_role("button", name="Start").click()

    # the LLM tab fills in live, and agrees with the JSON route
    page.get_by_role("tab", name="LLM").click()
    table = _wait_table(page, {"Short", "Chat"}, min_requests=8)
    live = ui.stats()
    assert live["run"]["model"] == "browser-model" and live["run"]["prompt_file"] == "prompts_a.yaml"
    for name, row in zip([r["name"] for r in live["rows"]], live["rows"], strict=True):
        cells = table[name]
        assert 0 < int(cells["# Requests"]) <= row["requests"]
        # live, the page and the JSON route are read moments apart while requests finish, so only "there"; once
        # the run is stopped (below), every cell equals the route's value to the shown digits
        for title in ("TTFT p50 (ms)", "TPOT p50 (ms)", "ITL p95 (ms)", "Output tok/s per request"):
            assert float(cells[title]) > 0 and row[COLUMNS[title][0]] > 0, (name, title)
        assert float(cells["Output tokens (mean)"]) == row["output_tokens_mean"] == 30
        assert float(cells["Input tokens (mean)"]) > 0 and float(cells["Output tok/s (run)"]) > 0
        assert cells["Cost so far (USD)"] == "n/a"  # a self-hosted endpoint has no price
    assert list(table) == ["Short", "Chat", "Overall"]  # the prompt file's order, Overall last
    charts_link = page.locator("#llm-locust-charts-link")
    assert charts_link.is_visible()
    page.screenshot(path=shots / "llm-tab.png")

    # downloads, from Locust's "Download Data" tab
    page.get_by_role("tab", name="Download Data").click()
    page.screenshot(path=shots / "download-data.png")
    downloads = tmp_path / "downloads"
    per_prompt = list(csv.DictReader(_download(page, "Download LLM per-prompt CSV", downloads).open()))
    assert sorted(r["prompt"] for r in per_prompt[:-1]) == ["Chat", "Short"] and per_prompt[-1]["prompt"] == "Overall"
    overall = {r["prompt"]: r for r in per_prompt}["Overall"]
    assert int(overall["requests"]) >= int(table["Overall"]["# Requests"]) and overall["output_tokens_mean"] == "30.0"
    summary = json.loads(_download(page, "Download LLM summary JSON", downloads).read_text())
    assert summary["run"]["model"] == "browser-model" and summary["overall"]["requests"] >= int(overall["requests"])
    assert summary["run"]["prompt_file"] == "prompts_a.yaml"
    per_request = list(csv.DictReader(_download(page, "Download LLM per-request CSV", downloads).open()))
    assert len(per_request) >= int(overall["requests"]) and {r["prompt"] for r in per_request} == {"Short", "Chat"}
    for f in downloads.iterdir():
        text = f.read_text()
        assert SECRET not in text and str(tmp_path) not in text, f.name

    # the charts page, from the LLM tab's link: every series drawn with points
    page.get_by_role("tab", name="LLM").click()
    charts_link.click()
    page.wait_for_url("**/llm/charts")
    points = _wait_charts(page)
    assert all(n >= 2 for n in points.values()), points
    assert "browser-model" in page.inner_text("#run")
    page.screenshot(path=shots / "charts.png", full_page=True)

    # stop: the tab keeps the stopped run, frozen, equal to the JSON route to the shown digits
    page.goto(ui.url + "?tab=llm")
    page.get_by_role("button", name="Stop").click()
    first = wait_for(lambda: (d := ui.stats())["run"]["state"] == "stopped" and d, 20, "the stop")
    assert ui.stats()["rows"] == first["rows"]
    page.reload()
    table = _wait_table(page, {"Short", "Chat"}, min_requests=_overall(first)["requests"])
    for row in first["rows"]:
        for title, (key, digits) in COLUMNS.items():
            assert table[row["name"]][title] == _cell(row[key], digits), (row["name"], title)
    page.screenshot(path=shots / "stopped.png")

    # a new run from the UI, with the other prompt file: the tab shows the new run only
    page.get_by_role("button", name="New").click()
    _fill_start_form(page, mock.url, users=2, model="second-model", token_limit="12", prompt_file="prompts_b.yaml")
    page.get_by_role("button", name="Start").click()
    page.get_by_role("tab", name="LLM").click()
    table = _wait_table(page, {"Bravo one", "Bravo two"}, min_requests=4)
    second = ui.stats()
    assert second["run"]["run_id"] != first["run"]["run_id"]
    assert second["run"]["model"] == "second-model" and second["run"]["prompt_file"] == "prompts_b.yaml"
    assert float(table["Overall"]["Output tokens (mean)"]) == 12
    page.screenshot(path=shots / "second-run.png")
    page.close()

    # nothing we serve shows a secret or a path
    for route in ("llm/stats.json", "llm/charts", "llm/summary.json", "llm/summary.csv", "llm/requests.csv"):
        body = ui.get(route).text
        assert SECRET not in body and str(tmp_path) not in body and str(ROOT) not in body, route
    log = ui.close()
    assert "Traceback" not in log, log[-3000:]
    reports = sorted(p for p in ui.reports.iterdir() if (p / "summary.json").exists())
    assert len(reports) == 2
    assert json.loads((reports[1] / "summary.json").read_text())["run"]["prompt_file"].endswith("prompts_b.yaml")


def test_llm_tab_under_a_web_base_path(tmp_path: Path, mock_server, start_ui, browser):
    mock = mock_server("--ttft-ms", "10", "--itl-ms", "1", "--output-tokens", "20")
    ui = start_ui("--prompt-file", "tests/data/prompts_small.yaml", "-H", mock.url, "--model", "base-path-model",
                  base_path="/locust")
    assert ui.url.endswith("/locust/")
    page = browser.new_page(viewport={"width": 1600, "height": 900}, accept_downloads=True)
    page.goto(ui.url)
    page.fill("input[name=userCount]", "2")
    page.fill("input[name=spawnRate]", "2")
    page.get_by_role("button", name="Start").click()
    page.get_by_role("tab", name="LLM").click()
    _wait_table(page, {"Short", "Chat"}, min_requests=4)
    assert page.locator("#llm-locust-charts-link").is_visible()
    assert page.evaluate("document.getElementById('llm-locust-charts-link').href").endswith("/locust/llm/charts")
    page.get_by_role("tab", name="Download Data").click()
    rows = list(csv.DictReader(_download(page, "Download LLM per-request CSV", tmp_path / "dl").open()))
    assert rows and rows[0]["model"] == "base-path-model"
    page.get_by_role("link", name="LLM charts over time").click()
    page.wait_for_url("**/locust/llm/charts")
    assert all(n >= 1 for n in _wait_charts(page, min_points=1).values())
    page.screenshot(path=tmp_path / "charts-base-path.png", full_page=True)
    page.close()
    # everything lives under the base path, nothing at the root
    assert requests.get(f"http://127.0.0.1:{ui.port}/llm/stats.json", timeout=10).status_code == 404
    assert ui.stats()["run"]["model"] == "base-path-model"
    assert "Traceback" not in ui.close()


AUTH_LOCUSTFILE = """\
from locust import events

from locustfile import *  # noqa: F403  (the bundled locustfile: llm-locust's plugin and user)


@events.init.add_listener
def _nobody_is_logged_in(environment, **_):
    if environment.web_ui:
        environment.web_ui.app.secret_key = "test only"
        environment.web_ui.login_manager.user_loader(lambda user_id: None)
"""


def test_web_login_protects_the_llm_routes_like_locusts_own(tmp_path: Path, mock_server, start_ui):
    mock = mock_server()
    locustfile = tmp_path / "auth_locustfile.py"
    locustfile.write_text(AUTH_LOCUSTFILE)
    ui = start_ui("--prompt-file", "tests/data/prompts_small.yaml", "-H", mock.url, "--model", "m", "--web-login",
                  locustfile=locustfile)
    own = ui.get("stats/requests", allow_redirects=False)
    assert own.status_code == 302 and "login" in own.headers["Location"]
    for route in ("llm/stats.json", "llm/charts", "llm/charts.js", "llm/tab.js", "llm/summary.csv",
                  "llm/summary.json", "llm/requests.csv"):
        r = ui.get(route, allow_redirects=False)
        assert r.status_code == own.status_code, route
        assert r.headers["Location"].split("?")[0] == own.headers["Location"].split("?")[0], route
    # a start with a prompt file choice is refused like any other, and changes nothing
    r = requests.post(ui.url + "swarm", data={"user_count": "1", "spawn_rate": "1", "prompt_file_name": "x.yaml"},
                      timeout=10, allow_redirects=False)
    assert r.status_code == 302
    assert "Traceback" not in ui.close()


def test_distributed_master_serves_the_workers_records(tmp_path: Path, mock_server, start_ui):
    mock = mock_server("--ttft-ms", "10", "--itl-ms", "1", "--output-tokens", "20")
    bind_port = free_port()
    ui = start_ui(
        "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(bind_port),
        "--prompt-file", "tests/data/prompts_small.yaml", "-H", mock.url, "--model", "dist-model",
    )
    worker_log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", str(ROOT / "locustfile.py"), "--worker", "--master-host", "127.0.0.1",
         "--master-port", str(bind_port), "--report-dir", str(tmp_path / "reports")],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=worker_log.open("w"), env=os.environ.copy(),
    )
    try:
        wait_for(lambda: ui.get("worker-count").json()["worker_count"] == 1, 30, "the worker")
        r = requests.post(ui.url + "swarm", data={"user_count": "2", "spawn_rate": "2", "host": mock.url}, timeout=10)
        assert r.json()["success"], r.text
        live = wait_for(lambda: (d := ui.stats()) and _overall(d)["requests"] >= 5 and d, 30, "worker records")
        assert live["run"]["model"] == "dist-model"
        assert [r["name"] for r in live["rows"]] == ["Short", "Chat", "Overall"]
        extended = ui.get("stats/requests").json()["extended_stats"]
        assert extended[0]["key"] == "llm" and extended[0]["data"][-1]["prompt"] == "Overall"
        requests.post(ui.url + "stop", timeout=10)
        stopped = wait_for(lambda: (d := ui.stats())["run"]["state"] == "stopped" and d, 30, "the stop")
        # after the stop: the frozen rows, the on-demand summary and the per-request log all hold every record
        per_prompt = {r["prompt"]: r for r in csv.DictReader(io.StringIO(ui.get("llm/summary.csv").text))}
        assert int(per_prompt["Overall"]["requests"]) == _overall(stopped)["requests"] >= 5
        lines = ui.get("llm/requests.csv").text.splitlines()
        assert len(lines) - 1 == stopped["run"]["records"]
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
    assert "Traceback" not in ui.close()
