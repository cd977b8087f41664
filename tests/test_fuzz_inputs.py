"""Every bad input gets one clear line: exit code 2, ``llm-locust: error: ...``, no traceback, no hang.

Malformed files are generated from valid seeds (a prompt file, a targets file, a custom template, a price file):
type swaps of every field, deletions, huge values, deep nesting, alias bombs, bad encodings, lone surrogates,
non-finite numbers, oversized files. Each goes through :func:`llm_locust.plugin.validate.check_options` in
one process (not this one: importing the plugin imports Locust, which monkey-patches the process), the function
the plugin calls at ``init``. A representative subset of the files, and every bad flag
value, go through real ``locust`` processes (``-u 1 --max-requests 1``), a few at a time.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import time
from argparse import Namespace
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
HOST = "http://127.0.0.1:9"  # never contacted: every case fails at init
BOUND_S = 60.0  # a hang guard, far above what any case takes

SEEDS = {
    "prompts": {"prompts": [
        {"name": "a", "text": "hello", "token_limit": 10, "system": "be brief", "weight": 2,
         "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
        {"name": "b", "text": "bye"},
    ]},
    "targets": {"targets": [
        {"name": "one", "api": "openai-chat", "host": "http://127.0.0.1:8000", "model": "m", "weight": 1,
         "prices": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}},
    ]},
    "template": {"path": "/v1/generate", "body": {"model": "{model}"}, "framing": "json", "text": "output.text",
                 "usage": {"input": "usage.input_tokens", "output": "usage.output_tokens"}, "error": "error.message"},
    "prices": {"prices": [{"model": "m*", "input_per_mtok": 0.1, "output_per_mtok": 0.2, "cache_read_per_mtok": 0.05}]},
}
#: (path of a field in its seed, values that field must refuse)
BAD_ANY = [[1, 2], {"k": 1}, 12345, True, -1]
FIELDS: dict[str, list[tuple[tuple, list]]] = {
    "prompts": [
        (("prompts",), ["x", 3, {"a": 1}, [], None]),
        (("prompts", 0), ["x", 3, [1], None]),
        (("prompts", 0, "name"), [[1, 2], {"k": 1}, 12345, True, "", "  ", None]),
        (("prompts", 0, "text"), [[1, 2], {"k": 1}, 12345, True, "", -1.5]),
        (("prompts", 0, "token_limit"), [[1, 2], {"k": 1}, True, -1, 0, 1.5, "ten", 10**30]),
        (("prompts", 0, "system"), [[1, 2], {"k": 1}, 12345, True, -1]),
        (("prompts", 0, "weight"), [[1, 2], {"k": 1}, True, -1, 0, "x", 1e300, float("inf"), float("-inf"),
                                    float("nan")]),
        (("prompts", 0, "messages"), ["x", 3, {"role": "user"}, [1], [[]], True]),
        (("prompts", 0, "messages", 0), ["x", 3, [1], {"role": "user"}, {"content": "x"}, None]),
        (("prompts", 0, "messages", 0, "role"), [[1, 2], {"k": 1}, 12345, True, "bogus", None]),
        (("prompts", 0, "messages", 0, "content"), [[1, 2], {"k": 1}, 12345, True, None]),
    ],
    "targets": [
        (("targets",), ["x", 3, {"a": 1}, [], None]),
        (("targets", 0), ["x", 3, [1], None]),
        (("targets", 0, "name"), BAD_ANY[:2] + [12345, "", None]),
        (("targets", 0, "model"), BAD_ANY[:2] + [12345, "", None]),
        (("targets", 0, "api"), BAD_ANY + ["bogus", None]),
        (("targets", 0, "host"), BAD_ANY + ["ftp://x", "http://[::1", "http://a b", "http://x:99999", "", "x"]),
        (("targets", 0, "provider"), BAD_ANY[:2] + ["nope"]),
        (("targets", 0, "via"), BAD_ANY[:2] + ["tunnel"]),
        (("targets", 0, "key_env"), BAD_ANY[:3]),
        (("targets", 0, "weight"), [[1, 2], {"k": 1}, True, -1, 0, "x", float("inf"), float("nan")]),
        (("targets", 0, "prices"), ["x", 3, [1], {"input_per_mtok": 1}, {"input_per_mtok": "x", "output_per_mtok": 1},
                                    {"input_per_mtok": -1, "output_per_mtok": 1},
                                    {"input_per_mtok": float("inf"), "output_per_mtok": 1}]),
    ],
    "template": [
        (("path",), BAD_ANY + ["no-slash", None]),
        (("framing",), BAD_ANY + ["xml", None]),
        (("text",), BAD_ANY + ["not a path!", None]),
        (("body",), [None]),
        (("usage",), ["x", [1], 3, {"bogus": "a.b"}, {"input": [1]}]),
        (("error",), BAD_ANY + ["[[[", ]),
    ],
    "prices": [
        (("prices",), ["x", 3, {"a": 1}, None]),
        (("prices", 0), ["x", 3, [1], None]),
        (("prices", 0, "model"), BAD_ANY[:3] + [None]),
        (("prices", 0, "input_per_mtok"), [[1], {"k": 1}, True, -1, "x", None, float("inf"), float("nan")]),
        (("prices", 0, "output_per_mtok"), [[1], {"k": 1}, True, -1, "x", None, float("-inf")]),
        (("prices", 0, "cache_read_per_mtok"), [[1], {"k": 1}, True, -1, "x", float("nan")]),
    ],
}
#: raw texts that no kind of file accepts
DEEP = 1000


def raw_mutations() -> list[tuple[str, bytes]]:
    alias_bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    return [
        ("empty", b""),
        ("a comment only", b"# nothing\n"),
        ("a scalar", b"hello\n"),
        ("a list", b"- 1\n- 2\n"),
        ("null", b"~\n"),
        ("flow nesting", ("[" * DEEP + "]" * DEEP).encode()),
        ("flow nesting 5000", ("[" * 5000).encode()),
        ("mapping nesting", ("{a: " * DEEP + "1" + "}" * DEEP).encode()),
        ("block nesting", "".join(f"{'  ' * i}k{i}:\n" for i in range(200)).encode()),
        ("alias bomb", alias_bomb.encode()),
        ("latin-1", "name: caf\xe9\n".encode("latin-1")),
        ("utf-16", "prompts: []\n".encode("utf-16")),
        ("NUL bytes", b"prompts:\0\0\n"),
        ("tab indent", b"prompts:\n\t- name: x\n"),
        ("unclosed quote", b'prompts:\n  - name: "x\n'),
        ("bad flow", b"prompts: [1, 2\n"),
        ("lone surrogate", b'prompts:\n  - name: "\\ud800"\n    text: "x"\n'),
        ("surrogate key", b'"\\udfff": 1\n'),
        ("bad date", b"when: 2025-13-45\n"),
        ("unhashable key", b"? [1, 2]\n: x\n"),
        ("int key", b"1: x\n"),
        ("huge int", b"x: " + b"9" * 5000 + b"\n"),
        ("python tag", b"x: !!python/object/apply:os.system ['true']\n"),
        ("oversized", b"# " + b"x" * (9 * 1024 * 1024) + b"\n"),
        ("binary", bytes(range(256)) * 4),
    ]


def set_path(doc: object, path: tuple, value: object) -> object:
    doc = copy.deepcopy(doc)
    if not path[:-1] and path:
        doc[path[0]] = value
        return doc
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


def delete_path(doc: object, path: tuple) -> object:
    doc = copy.deepcopy(doc)
    node = doc
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return doc


REQUIRED = {
    "prompts": [("prompts",), ("prompts", 0, "name"), ("prompts", 1, "text")],
    "targets": [("targets",), ("targets", 0, "name"), ("targets", 0, "model"), ("targets", 0, "api"),
                ("targets", 0, "host")],
    "template": [("path",), ("body",), ("framing",), ("text",)],
    "prices": [("prices",), ("prices", 0, "model"), ("prices", 0, "input_per_mtok"), ("prices", 0, "output_per_mtok")],
}


def cases() -> list[tuple[str, str, bytes]]:
    """(kind, label, file bytes): every malformed file."""
    out: list[tuple[str, str, bytes]] = []
    for kind, seed in SEEDS.items():
        for path, values in FIELDS[kind]:
            for value in values:
                text = yaml.safe_dump(set_path(seed, path, value), allow_unicode=True)
                out.append((kind, f"{'.'.join(map(str, path))} = {value!r}"[:80], text.encode()))
        for path in REQUIRED[kind]:
            out.append((kind, f"without {'.'.join(map(str, path))}", yaml.safe_dump(delete_path(seed, path)).encode()))
        unknown = set_path(seed, ("bogus_key",), 1)
        out.append((kind, "unknown top-level key", yaml.safe_dump(unknown).encode()))
        for label, raw in raw_mutations():
            out.append((kind, label, raw))
    many = "prompts:\n" + "".join(f"  - {{name: p{i}, text: x}}\n" for i in range(100_000))
    out.append(("prompts", "100k prompts", many.encode()))
    dup = {"prompts": [{"name": "a", "text": "x"}, {"name": "a", "text": "y"}]}
    out.append(("prompts", "duplicate names", yaml.safe_dump(dup).encode()))
    dup_t = {"targets": [SEEDS["targets"]["targets"][0]] * 2}
    out.append(("targets", "duplicate names", yaml.safe_dump(dup_t).encode()))
    return out


CASES = cases()
GOOD_PROMPTS = yaml.safe_dump(SEEDS["prompts"])


def options(kind: str, path: Path, tmp: Path) -> tuple[Namespace, str | None]:
    good = tmp / "good-prompts.yaml"
    if not good.exists():
        good.write_text(GOOD_PROMPTS, encoding="utf-8")
    opts = Namespace(
        prompt_file=str(good), prices=None, targets=None, llm_api="openai-chat", template=None, model="m",
        token_limit=None, max_requests=None, timeout=120.0, headless=True, report_dir=str(tmp / "reports"),
        max_response_bytes=16 * 2**20,
    )
    host: str | None = HOST
    if kind == "prompts":
        opts.prompt_file = str(path)
    elif kind == "targets":
        opts.targets, host = str(path), None
    elif kind == "template":
        opts.llm_api, opts.template = "custom", str(path)
    else:
        opts.prices = str(path)
    return opts, host


def assert_one_line(code: object, err: str, label: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, f"{label}: exit code {code!r}, stderr {err[-500:]!r}"
    assert "Traceback" not in err, f"{label}: {err[-2000:]}"
    # ours: "llm-locust: error: ..."; argparse's (Locust's flags, types): "<prog>: error: ..." after its usage
    errors = [line for line in lines if re.match(r"(llm-locust|locust|__main__\.py): error: ", line)]
    assert len(errors) == 1, f"{label}: expected one error line, got {lines[-5:]!r}"


def test_the_generated_files_are_at_least_300():
    assert len(CASES) >= 300


CHECKER = """
import contextlib, io, json, sys, time
from argparse import Namespace
from llm_locust.plugin import validate
out = []
for case in json.load(sys.stdin):
    buf = io.StringIO()
    start = time.monotonic()
    try:
        with contextlib.redirect_stderr(buf):
            validate.check_options(Namespace(**case["opts"]), case["host"])
        code = 0
    except SystemExit as e:
        code = e.code
    except Exception as e:  # the point is that none escapes
        code = f"{type(e).__name__}: {e}"[:200]
    out.append({"code": code, "err": buf.getvalue(), "took": time.monotonic() - start})
json.dump(out, sys.stdout)
"""


def test_every_malformed_file_fails_with_one_line(tmp_path):
    jobs = []
    for i, (kind, _label, raw) in enumerate(CASES):
        path = tmp_path / f"{kind}-{i}.yaml"
        path.write_bytes(raw)
        opts, host = options(kind, path, tmp_path)
        jobs.append({"opts": vars(opts), "host": host})
    proc = subprocess.run([sys.executable, "-c", CHECKER], input=json.dumps(jobs), capture_output=True, text=True,
                          cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout)
    failures = []
    for i, ((kind, label, _raw), res) in enumerate(zip(CASES, results, strict=True)):
        path, code, err, took = tmp_path / f"{kind}-{i}.yaml", res["code"], res["err"], res["took"]
        try:
            assert_one_line(code, err, f"{kind} [{label}]")
            assert took < BOUND_S, f"{kind} [{label}]: {took:.1f} s"
            assert str(path) in err, f"{kind} [{label}]: the line does not name the file: {err!r}"
        except AssertionError as e:
            failures.append(str(e).splitlines()[0][:300])
    assert not failures, f"{len(failures)} of {len(CASES)} cases:\n" + "\n".join(failures)


# ---------------------------------------------------------------- real processes

BAD_FLAGS: list[list[str]] = [
    *(["-H", h] for h in ["ftp://x", "http://[::1", "http://a b", "http://x:99999", "http://x:0", "http://:80", "x",
                          "http://", "https://x:-1", "http://x\x01y", "mailto:a@b", "//x:80", "http://x:port"]),
    *(["--timeout", v] for v in ["0", "-1", "nan", "inf", "x", "1e309", "-inf", ""]),
    *(["--token-limit", v] for v in ["0", "-5", "x", "1.5", ""]),
    *(["--max-requests", v] for v in ["0", "-1", "x", "1e3"]),
    *(["--max-response-bytes", v] for v in ["0", "-1", "x"]),
    *(["--prompt-file", v] for v in ["missing.yaml", "tests", "/dev/null"]),
    *(["--prices", v] for v in ["missing.yaml", "tests"]),
    *(["--targets", v] for v in ["missing.yaml", "tests"]),
    ["--template", "missing.yaml", "--llm-api", "custom"],
    ["--llm-api", "custom"],
    ["--llm-api", "bogus"],
    *(["--report-dir", v] for v in ["pyproject.toml", "pyproject.toml/sub", "/proc/llm-locust-x"]),
    ["-u", "-1"],
    ["-r", "0"],
    ["-r", "-1"],
    ["-r", "nan"],
    ["-u", "x"],
    ["-t", "xyz"],
    ["--config", "missing.conf"],
]
FILE_SUBSET = [c for i, c in enumerate(CASES) if i % 12 == 0]


def run_process(args: list[str], tmp: Path) -> tuple[int, str, float]:
    cmd = [sys.executable, "-m", "locust", "-f", str(ROOT / "locustfile.py"), "--headless", "-u", "1",
           "--max-requests", "1", "--report-dir", str(tmp / "reports"), *args]
    if "-H" not in args and "--targets" not in args:
        cmd += ["-H", HOST]
    if "--model" not in args:
        cmd += ["--model", "m"]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=BOUND_S, env={**os.environ})
    return proc.returncode, proc.stderr, time.monotonic() - start


@pytest.mark.parametrize("batch", ["flags", "files"])
def test_real_locust_processes_fail_with_one_line(batch, tmp_path):
    jobs: list[tuple[str, list[str]]] = []
    if batch == "flags":
        jobs = [(" ".join(a), a) for a in BAD_FLAGS]
        assert len(jobs) >= 50
        # in place of the flag default: "-u" / "-H" given twice is fine for argparse (the last wins)
    else:
        for i, (kind, label, raw) in enumerate(FILE_SUBSET):
            path = tmp_path / f"{kind}-{i}.yaml"
            path.write_bytes(raw)
            flag = {"prompts": ["--prompt-file"], "targets": ["--targets"], "prices": ["--prices"],
                    "template": ["--llm-api", "custom", "--template"]}[kind]
            jobs.append((f"{kind} [{label}]", [*flag, str(path)]))
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda job: (job[0], run_process(job[1], tmp_path)), jobs))
    failures = []
    for label, (code, err, _took) in results:
        try:
            assert_one_line(code, err, label)
        except AssertionError as e:
            failures.append(str(e)[:400])
    assert not failures, f"{len(failures)} of {len(jobs)}:\n" + "\n".join(failures)
