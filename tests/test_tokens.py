"""Local token counts: exact with tiktoken's files at hand, else the marked estimate; never a wait on the network."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import requests

from llm_locust import tokens
from tests.conftest import needs_tiktoken


@pytest.fixture
def no_cached_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An empty tiktoken cache; ``_load`` forgets what it loaded before, and after."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    tokens._load.cache_clear()
    yield
    tokens._load.cache_clear()


def test_a_download_host_that_never_answers_is_given_up(no_cached_files, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    calls = []

    def never_answers(*args, **kwargs):  # a resolver or a host that hangs (bounded, and released at the end)
        calls.append(args)
        release.wait(30)
        raise requests.ConnectionError("released")

    monkeypatch.setattr(requests, "head", never_answers)
    try:
        assert tokens._download_host_answers("o200k_base", timeout=0.2) is False
        counter = tokens.TokenCounter("some-model")
    finally:
        release.set()
    assert len(calls) == 2, "probed once by hand, once by the counter"
    assert counter.source == tokens.ESTIMATE_SOURCE
    assert (counter.count(""), counter.count("abcd"), counter.count("abcde")) == (0, 1, 2)


def test_unreachable_host_falls_back_to_the_estimate(no_cached_files, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "_download_host_answers", lambda encoding, timeout=3.0: False)
    counter = tokens.TokenCounter("gpt-4o")
    assert counter.encoding_name == "o200k_base" and counter.source == tokens.ESTIMATE_SOURCE
    assert counter.count("x" * 40) == 10


@needs_tiktoken
def test_cached_files_give_exact_counts() -> None:
    tokens._load.cache_clear()
    counter = tokens.TokenCounter("gpt-4o")
    assert counter.source == "tiktoken:o200k_base"
    assert counter.count("hello world") == 2
