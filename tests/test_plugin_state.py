"""The plugin's state lives on each Locust Environment: two environments in one process keep separate runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

# In a subprocess: importing locust monkey-patches the process, which the test process must not be.
_TWO_ENVIRONMENTS = """
import json, sys
from pathlib import Path
from locust.argument_parser import get_parser
from locust.env import Environment
from locust.event import Events
from llm_locust import plugin
from llm_locust.users import LLMUser  # not the bundled locustfile: it registers on the global events
from llm_locust.options import add_arguments
from llm_locust.run import ATTR

out, prompts = Path(sys.argv[1]), sys.argv[2]
envs = {}
for name in ("a", "b"):
    parser = get_parser()
    add_arguments(parser)
    opts = parser.parse_args(["-f", "locustfile.py", "--headless", "-H", "http://127.0.0.1:9",
                              "--model", f"model-{name}", "--prompt-file", prompts, "--report-dir", str(out / name),
                              "--run-info", str(out / f"{name}.json")])
    events = Events()
    plugin.register(events)
    plugin.register(events)  # twice: no second set of listeners
    env = Environment(user_classes=[LLMUser], events=events, parsed_options=opts, host=opts.host)
    runner = env.create_local_runner()
    events.init.fire(environment=env, runner=runner, web_ui=None)
    envs[name] = env
a, b = envs["a"], envs["b"]
facts = {"sessions_differ": plugin.session_of(a) is not plugin.session_of(b),
         "init_listeners": len(a.events.init._handlers)}
a.events.test_start.fire(environment=a)
facts["b_run_before_start"] = getattr(b, ATTR) is None if hasattr(b, ATTR) else True
a.events.spawning_complete.fire(user_count=3)
b.events.test_start.fire(environment=b)
facts["peaks"] = [plugin.session_of(a).peak_users, plugin.session_of(b).peak_users]
facts["models"] = [getattr(a, ATTR).model, getattr(b, ATTR).model]
a.events.test_stop.fire(environment=a)
facts["b_summaries_after_a_stop"] = len(list((out / "b").glob("*/summary.json")))
b.events.test_stop.fire(environment=b)
for env in (a, b):
    env.events.quit.fire(exit_code=0)
    env.runner.quit()
print(json.dumps(facts))
"""


def test_two_environments_in_one_process_keep_separate_state(tmp_path: Path) -> None:
    prompts = ROOT / "tests/data/prompts_small.yaml"
    proc = subprocess.run(
        [sys.executable, "-c", _TWO_ENVIRONMENTS, str(tmp_path), str(prompts)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    facts = json.loads(proc.stdout.strip().splitlines()[-1])
    assert facts["sessions_differ"] and facts["init_listeners"] == 1
    assert facts["b_run_before_start"]
    assert facts["peaks"] == [3, 0]
    assert facts["models"] == ["model-a", "model-b"]
    assert facts["b_summaries_after_a_stop"] == 0
    for name, users in (("a", 3), ("b", 0)):
        info = json.loads((tmp_path / f"{name}.json").read_text())
        folder = Path(info["folder"])
        assert info["done"] and folder.parent == tmp_path / name
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["run"]["model"] == f"model-{name}" and summary["run"]["users"] == users
        assert summary["run"]["run_id"] == info["run_id"] == folder.name
    # the headless console summary of each environment was printed once, at its own quit
    assert proc.stdout.count("LLM summary: model-a @") == 1 and proc.stdout.count("LLM summary: model-b @") == 1
