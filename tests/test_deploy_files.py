"""The container and Kubernetes files: well-formed, and every llm-locust/Locust command line in them parses.

No Docker engine or cluster is needed: the same commands run as plain processes in test_distributed.py; here we
check that the files say what those tests run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from tests.conftest import ROOT

_PARSE = """
import json, sys
from locust.argument_parser import get_parser
from llm_locust.options import add_arguments
parser = get_parser()
add_arguments(parser)
print(json.dumps(vars(parser.parse_args(sys.argv[1:])), default=str))
"""


def _parse_locust_args(args: list[str]) -> SimpleNamespace:
    """Parse a command line with Locust's parser plus llm-locust's options, as the image's entrypoint would.

    In a subprocess: importing locust monkey-patches the process, which the test process must not be."""
    proc = subprocess.run(
        [sys.executable, "-c", _PARSE, "-f", str(ROOT / "locustfile.py"), *args],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    return SimpleNamespace(**json.loads(proc.stdout))


def test_compose_file_services_and_commands():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"mock", "master", "worker"}
    master = _parse_locust_args(
        [
            a.replace("${LLM_HOST:-http://mock:8000}", "http://mock:8000")
            .replace("${LLM_MODEL:-mock-model}", "mock-model")
            .replace("${LLM_API:-openai-chat}", "openai-chat")
            for a in services["master"]["command"]
        ]
    )
    assert master.master and master.host == "http://mock:8000" and master.report_dir == "/opt/llm-locust/reports"
    worker = _parse_locust_args(services["worker"]["command"])
    assert worker.worker and worker.master_host == "master"
    assert "8089:8089" in services["master"]["ports"]
    assert any("reports" in v for v in services["master"]["volumes"])
    assert "environment" not in services["worker"] or "OPENAI_API_KEY" not in str(services["worker"]["environment"])
    mock_cmd = services["mock"]["command"]
    from llm_locust.mockserver.config import build_parser  # the mock server's own flags

    build_parser().parse_args(mock_cmd)


def test_dockerfile_builds_on_the_official_image_with_the_package():
    text = (ROOT / "Dockerfile").read_text()
    assert text.splitlines()[2].startswith("FROM locustio/locust:")
    assert "COPY llm_locust" in text and "pip install" in text and "locustfile.py" in text


def test_kubernetes_manifests():
    docs = list(yaml.safe_load_all((ROOT / "docs/kubernetes/llm-locust.yaml").read_text()))
    kinds = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert kinds == [("Deployment", "llm-locust-master"), ("Service", "llm-locust-master"),
                     ("Deployment", "llm-locust-worker")]
    for d in docs:
        if d["kind"] == "Deployment":
            assert d["spec"]["selector"]["matchLabels"] == d["spec"]["template"]["metadata"]["labels"]
            (container,) = d["spec"]["template"]["spec"]["containers"]
            _parse_locust_args(container["args"])
    worker = docs[2]["spec"]["template"]["spec"]["containers"][0]
    assert worker["envFrom"][0]["secretRef"]["name"] == "llm-keys"
    assert worker["args"][-1] == docs[1]["metadata"]["name"], "workers find the master through its Service"


@pytest.mark.parametrize("name", ["values-deliveryhero.yaml"])
def test_helm_values(name):
    values = yaml.safe_load((ROOT / "docs/kubernetes" / name).read_text())
    assert values["loadtest"]["locust_locustfile"] == "locustfile.py"
    assert values["loadtest"]["environment_external_secret"] == {"llm-keys": ["OPENAI_API_KEY"]}
    assert Path(values["loadtest"]["environment"]["LLM_PROMPT_FILE"]).name == "prompts.yaml"
