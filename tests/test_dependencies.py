"""Every package the code imports is declared (pyproject.toml), and requirements.txt lists the same runtime set."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions

from tests.conftest import ROOT

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _name(requirement: str) -> str:
    """The normalised distribution name of a requirement such as ``Flask-Login>=0.6``."""
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9._-]+", requirement).group()).lower()


def _imports() -> dict[str, str]:
    """Top-level third-party modules imported by the package and the locustfile, each with one file importing it."""
    found: dict[str, str] = {}
    for path in [*sorted((ROOT / "llm_locust").rglob("*.py")), ROOT / "locustfile.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("llm_locust", "__future__"):
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_every_imported_package_is_declared():
    declared = {_name(r) for r in PROJECT["dependencies"]}
    declared |= {_name(r) for extra in PROJECT["optional-dependencies"].values() for r in extra}
    dists = packages_distributions()
    missing = {
        module: where
        for module, where in _imports().items()
        if not any(_name(d) in declared for d in dists.get(module, [module]))
    }
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_requirements_txt_lists_the_runtime_dependencies():
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    listed = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    assert sorted(listed) == sorted(PROJECT["dependencies"])
