"""The LLM tab in Locust's web UI, a charts page and the run's downloads.

:func:`register` is called from the plugin's ``init`` listener (:func:`llm_locust.plugin.on_init`) on a process
with a web UI (a local runner or a master) and uses Locust's own extension points (see ``docs/webui.md``):

* ``template_args``: an ``LLM`` tab (``extended_tabs``) whose table (``extended_tables``) is fed by an
  ``after_request`` hook that adds ``extended_stats`` to the ``/stats/requests`` JSON the UI polls every 2 s; and
  links under "Download Data" (``extended_csv_files``) to the charts page and the downloads;
* routes, under ``--web-base-path`` and behind ``--web-login`` like Locust's own:

  ==========================  ==============================================================================
  ``llm/stats.json``          run info, the per-prompt live rows (plus ``Overall``) and the time series
  ``llm/charts``              TTFT p50/p95, TPOT p50 and output tokens/s over time, with the user count, and the
                              server's own metrics when they are scraped (``server`` in stats.json)
  ``llm/summary.csv``         per-prompt CSV (``summary.csv``'s columns) computed now from the run's records
  ``llm/summary.json``        the JSON summary (``summary.json``'s schema) computed now
  ``llm/requests.csv``        the run's per-request log as written so far
  ``llm/report.html``         the run's self-contained HTML report (:mod:`llm_locust.htmlreport`), once the run
                              has stopped and written it
  ==========================  ==============================================================================

* a small script added to Locust's page that shows an "LLM charts" link while the LLM tab is open;
* secret options (``is_secret``: ``--api-key``) masked for real: Locust renders them as password fields but puts
  their value in the page; here the page gets an empty field (:meth:`LLMWebUI.mask_secrets`), and a start with the
  field left empty keeps the value the process was started with (:meth:`LLMWebUI.keep_secrets`);
* when the configured prompt file has sibling YAML prompt files, a "Prompt File Name" dropdown in the start form
  (file names only); the chosen name is resolved back to the file when the run is started.

The run shown is the current one (``environment.llm_run``): after a stop it stays the last run until the next
start (the live view keeps its whole-run rates as they were at the stop). Nothing served here carries the API key,
the host's credentials or any file system path.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from pathlib import Path
from typing import Any

import locust
from flask import Blueprint, Response, jsonify, request
from locust.runners import STATE_RUNNING, STATE_SPAWNING

from . import __version__, servermetrics
from .options import SECRET_OPTIONS
from .plugin.reports import run_summary
from .prompts import PromptFileError, load_prompts
from .report import _csv_rows
from .run import ATTR

logger = logging.getLogger("llm_locust")

TAB_KEY = "llm"
STATIC = Path(__file__).with_name("webui_static")
#: the start-form field (a Locust custom argument added only to the web UI's form) choosing the prompt file
PROMPT_CHOICE = "prompt_file_name"
MAX_PROMPT_FILES = 50
MAX_PROMPT_FILE_BYTES = 1_000_000
_MARK = "_llm_locust_webui"

#: the LLM tab's columns: (row key, title, decimals)
COLUMNS: tuple[tuple[str, str, int | None], ...] = (
    ("prompt", "Prompt", None),
    ("requests", "# Requests", None),
    ("failures", "# Fails", None),
    ("ttft_p50_ms", "TTFT p50 (ms)", 1),
    ("ttft_p95_ms", "TTFT p95 (ms)", 1),
    ("ttft_p99_ms", "TTFT p99 (ms)", 1),
    ("tpot_p50_ms", "TPOT p50 (ms)", 2),
    ("tpot_p95_ms", "TPOT p95 (ms)", 2),
    ("itl_p95_ms", "ITL p95 (ms)", 2),
    ("tokens_per_s_request", "Output tok/s per request", 1),
    ("tokens_per_s_run", "Output tok/s (run)", 1),
    ("input_tokens_mean", "Input tokens (mean)", 1),
    ("output_tokens_mean", "Output tokens (mean)", 1),
    ("cost_usd", "Cost so far (USD)", 6),
)
DOWNLOADS = (
    ("llm/charts", "LLM charts over time (TTFT, TPOT, tokens/s, users)"),
    ("llm/summary.csv", "Download LLM per-prompt CSV (summary.csv)"),
    ("llm/summary.json", "Download LLM summary JSON (summary.json)"),
    ("llm/requests.csv", "Download LLM per-request CSV (requests.csv)"),
    ("llm/report.html", "LLM HTML report (report.html, once the run has stopped)"),
)


def register(environment: Any) -> None:
    """Add the LLM tab, routes and downloads to ``environment.web_ui``; does nothing without a web UI."""
    web_ui = getattr(environment, "web_ui", None)
    if web_ui is None or getattr(web_ui, _MARK, None) is not None:
        return
    ui = LLMWebUI(environment)
    setattr(web_ui, _MARK, ui)
    # added to what a locustfile may have put there, so that its own tabs and links stay
    args = web_ui.template_args
    args["extended_tabs"] = [*args.get("extended_tabs", []), {"title": "LLM", "key": TAB_KEY}]
    args["extended_tables"] = [
        *args.get("extended_tables", []),
        {"key": TAB_KEY, "structure": [{"key": key, "title": title} for key, title, _ in COLUMNS]},
    ]
    args["extended_csv_files"] = [
        *args.get("extended_csv_files", []),
        *({"href": f"./{href}", "title": title} for href, title in DOWNLOADS),
    ]

    opts = environment.parsed_options
    base = (getattr(opts, "web_base_path", "") or "").rstrip("/") or None
    bp = Blueprint("llm_locust", __name__, url_prefix=base)
    auth = web_ui.auth_required_if_enabled
    for rule, view in (
        ("/llm/stats.json", ui.stats_json),
        ("/llm/charts", ui.charts),
        ("/llm/charts.js", ui.charts_js),
        ("/llm/tab.js", ui.tab_js),
        ("/llm/summary.csv", ui.summary_csv),
        ("/llm/summary.json", ui.summary_json),
        ("/llm/requests.csv", ui.requests_csv),
        ("/llm/report.html", ui.report_html),
    ):
        bp.add_url_rule(rule, endpoint=view.__name__, view_func=auth(view))
    web_ui.app.register_blueprint(bp)
    update_template_args = web_ui.update_template_args

    def update_template_args_masked() -> None:  # Locust calls it before each render of its page
        update_template_args()
        ui.mask_secrets()

    web_ui.update_template_args = update_template_args_masked
    ui.mask_secrets()
    web_ui.app.after_request(ui.after_request)
    web_ui.app.before_request(ui.before_request)
    environment.events.test_start.add_listener(ui.on_test_start)
    if ui.prompt_dir is not None:
        # Locust builds the start form's "Custom parameters" from a fresh parser each time it renders the page
        locust.events.init_command_line_parser.add_listener(ui.add_prompt_choice)


def _round(value: Any, digits: int | None) -> Any:
    if value is None:
        return "n/a"
    if digits is None or not isinstance(value, float):
        return value
    return round(value, digits)


def table_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Live rows as the LLM tab shows them: rounded, "n/a" for no value, and a ``name`` that keeps the prompts in
    order with Overall last (Locust's table sorts by ``name`` unless a column header is clicked)."""
    out = []
    for i, row in enumerate(rows):
        cells = {key: _round(row.get("name" if key == "prompt" else key), d) for key, _, d in COLUMNS}
        cells["name"] = "~" if i == len(rows) - 1 else f"{i:06d}"  # LiveView.rows() puts Overall last
        out.append(cells)
    return out


class LLMWebUI:
    """The web UI side of one Locust environment."""

    def __init__(self, environment: Any) -> None:
        self.environment = environment
        self.web_ui = environment.web_ui
        #: the name (never the path) of the current run's prompt file
        self.prompt_file_name: str | None = None
        #: the folder of the configured prompt file, when it holds more than one usable prompt file
        self.prompt_dir: Path | None = None
        opts = environment.parsed_options
        #: the secret options' values as the process started (on a master: after --api-key was dropped)
        self.secrets: dict[str, Any] = {
            dest: getattr(opts, dest, None) for dest in SECRET_OPTIONS if opts is not None and hasattr(opts, dest)
        }
        if opts is not None and getattr(opts, "prompt_file", None):
            folder = Path(opts.prompt_file).parent
            if len(_prompt_files(folder)) >= 2:
                self.prompt_dir = folder

    # ------------------------------------------------------------ the run

    def run(self) -> Any:
        return getattr(self.environment, ATTR, None)

    def rows(self, run: Any) -> list[dict[str, Any]]:
        return run.live.rows() if run is not None and run.live is not None else []

    def on_test_start(self, **_: Any) -> None:
        opts = self.environment.parsed_options
        self.prompt_file_name = Path(opts.prompt_file).name if opts is not None else None

    def run_info(self, run: Any) -> dict[str, Any] | None:
        if run is None:
            return None
        runner = self.environment.runner
        history = list(run.live.history) if run.live is not None else []
        return {
            "run_id": run.run_id,
            "model": run.model,
            "api": run.api,
            "token_limit": run.token_limit,
            "prompt_file": self.prompt_file_name,
            "started_at": run.started_at,
            "state": getattr(runner, "state", None),
            "users": getattr(runner, "user_count", 0) or 0,
            "peak_users": max([p["users"] for p in history] + [getattr(runner, "user_count", 0) or 0]),
            "records": run.recorder.count,
        }

    # ------------------------------------------------------------ routes

    def stats_json(self) -> Response:
        run = self.run()
        body = {
            "run": self.run_info(run),
            "rows": self.rows(run),
            "history": list(run.live.history) if run is not None and run.live is not None else [],
            "server": servermetrics.series(run.server, run.live.started if run.live is not None else None)
            if run is not None
            else [],
            "server_charts": servermetrics.CHARTS,
            "llm_locust_version": __version__,
        }
        return _no_store(jsonify(body))

    def charts(self) -> Response:
        return _static("charts.html", "text/html; charset=utf-8")

    def charts_js(self) -> Response:
        return _static("charts.js", "application/javascript; charset=utf-8")

    def tab_js(self) -> Response:
        return _static("tab.js", "application/javascript; charset=utf-8")

    def _summary(self, run: Any) -> dict[str, Any]:
        info = self.run_info(run) or {}
        meta = {
            "run_id": run.run_id,
            "model": run.model,
            "api": run.api,
            "users": info.get("peak_users"),
            "started_at": run.started_at,
            "prompt_file": info.get("prompt_file"),
            "token_limit": run.token_limit,
            "locust_version": locust.__version__,
            "llm_locust_version": __version__,
            "state": info.get("state"),
            "computed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        return run_summary(run.recorder.table, meta)

    def summary_csv(self) -> Response:
        run = self.run()
        if run is None:
            return _no_run()
        header, rows = _csv_rows(self._summary(run))
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(header)
        writer.writerows(rows)
        return _attachment(buf.getvalue(), "text/csv", f"llm_{run.run_id}_summary.csv")

    def summary_json(self) -> Response:
        run = self.run()
        if run is None:
            return _no_run()
        return _attachment(json.dumps(self._summary(run), indent=2) + "\n", "application/json",
                           f"llm_{run.run_id}_summary.json")

    def requests_csv(self) -> Response:
        run = self.run()
        path = getattr(run.recorder, "csv_path", None) if run is not None else None
        if path is None or not Path(path).is_file():
            return _no_run()
        run.recorder.flush()  # rows are flushed every 0.5 s: hand over every row booked so far
        data = Path(path).read_bytes()
        data = data[: data.rfind(b"\n") + 1]  # the file may be mid-row while the run goes
        return _attachment(data, "text/csv", f"llm_{run.run_id}_requests.csv")

    def report_html(self) -> Response:
        from .htmlreport import FILENAME

        run = self.run()
        path = getattr(run.recorder, "csv_path", None) if run is not None else None
        report = Path(path).parent / FILENAME if path is not None else None
        if report is None or not report.is_file():
            return _no_store(Response("The HTML report is written when the run stops.\n", status=404,
                                      mimetype="text/plain"))
        return _no_store(Response(report.read_bytes(), mimetype="text/html; charset=utf-8"))
    # ------------------------------------------------------------ secrets

    def mask_secrets(self) -> None:
        """Empty the value of every secret field of the start form (Locust's page would carry it)."""
        for entry in (self.web_ui.template_args.get("extra_options") or {}).values():
            if isinstance(entry, dict) and entry.get("is_secret"):
                entry["default_value"] = ""

    def keep_secrets(self) -> None:
        """After a start from the form: a secret field left empty (as the masked page shows it) keeps its value."""
        opts = self.environment.parsed_options
        for dest, value in self.secrets.items():
            if opts is not None and getattr(opts, dest, None) in ("", None):
                setattr(opts, dest, value)

    # ------------------------------------------------------------ Locust's own pages

    def after_request(self, response: Response) -> Response:
        endpoint = request.endpoint
        if endpoint == "locust.swarm":
            self.keep_secrets()
        if endpoint == "locust.request_stats" and response.status_code == 200 and response.is_json:
            try:
                payload = json.loads(response.get_data())
                others = [e for e in payload.get("extended_stats") or [] if e.get("key") != TAB_KEY]
                payload["extended_stats"] = [*others, {"key": TAB_KEY, "data": table_rows(self.rows(self.run()))}]
                response.set_data(json.dumps(payload))
            except Exception:  # never break Locust's own page
                logger.exception("llm-locust: could not add the LLM rows to /stats/requests")
        elif endpoint == "locust.index" and response.status_code == 200 and response.mimetype == "text/html":
            html = response.get_data(as_text=True)
            if "./llm/tab.js" not in html and "</body>" in html:
                response.set_data(html.replace("</body>", '<script src="./llm/tab.js" defer></script></body>', 1))
        return response

    # ------------------------------------------------------------ prompt file choice

    def add_prompt_choice(self, parser: Any, **_: Any) -> None:
        opts = self.environment.parsed_options
        names = _prompt_files(self.prompt_dir) if self.prompt_dir is not None else []
        if len(names) < 2 or any(a.dest == PROMPT_CHOICE for a in parser._actions):
            return
        current = Path(opts.prompt_file).name
        parser.add_argument(
            "--" + PROMPT_CHOICE.replace("_", "-"),
            choices=names,
            default=current if current in names else names[0],
            include_in_web_ui=True,
            help="prompt file to run, from the folder of --prompt-file (web UI only)",
        )

    def before_request(self) -> Response | None:
        """On Start, resolve the chosen prompt file name back to the file (and refuse one that is not usable)."""
        if request.endpoint != "locust.swarm" or request.method != "POST" or self.prompt_dir is None:
            return None
        name = request.form.get(PROMPT_CHOICE)
        runner = self.environment.runner
        if not name or not self._authorized() or getattr(runner, "state", None) in (STATE_RUNNING, STATE_SPAWNING):
            return None  # a change of user count while a run goes keeps the run's prompt file
        if name not in _prompt_files(self.prompt_dir):
            return jsonify({"success": False, "message": f"no usable prompt file named {name!r}",
                            "host": self.environment.host})
        path = self.prompt_dir / name
        try:
            load_prompts(path)
        except PromptFileError as e:
            message = str(e).replace(str(path), name)
            return jsonify({"success": False, "message": message, "host": self.environment.host})
        self.environment.parsed_options.prompt_file = str(path)
        return None

    def _authorized(self) -> bool:
        if not self.web_ui.web_login:
            return True
        try:
            from flask_login import current_user

            return bool(current_user.is_authenticated)
        except Exception:
            return False


def _prompt_files(folder: Path) -> list[str]:
    """Names of the usable YAML prompt files in ``folder``."""
    try:
        candidates = sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    except OSError:
        return []
    names = []
    for p in candidates[:MAX_PROMPT_FILES]:
        try:
            if p.stat().st_size <= MAX_PROMPT_FILE_BYTES:
                load_prompts(p)
                names.append(p.name)
        except (PromptFileError, OSError):
            continue
    return names


def _static(name: str, mimetype: str) -> Response:
    return _no_store(Response((STATIC / name).read_bytes(), mimetype=mimetype))


def _attachment(data: str | bytes, mimetype: str, filename: str) -> Response:
    response = Response(data, mimetype=mimetype)
    response.headers["Content-Disposition"] = f"attachment; filename={filename}"
    return _no_store(response)


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def _no_run() -> Response:
    return Response("No LLM run yet: start one from the web UI.\n", status=404, mimetype="text/plain")
