"""Multi-turn sessions (llm_locust/sessions.py): each turn carries the conversation so far with the answers received,
the records name their session and turn, and the reports give per-turn figures and the cache-hit share."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from llm_locust import report
from llm_locust.prompts import Prompt, PromptFileError, load_prompts
from llm_locust.sessions import UserSessions, count_turns
from tests.test_record import streamed

SYSTEM = "You are terse."  # 3 words: the mock counts a prompt's words
TURNS = ["Hi there", "Tell me more about it", "Sum it up now"]
ANSWER = 5  # --token-limit: the mock answers that many one-word tokens


def expected_prompt_words(turn: int) -> int:
    """What the mock must count for turn ``turn``: system, the user turns so far and the answers before it."""
    return len(SYSTEM.split()) + sum(len(t.split()) for t in TURNS[:turn]) + ANSWER * (turn - 1)


class FakeTarget:
    def __init__(self) -> None:
        self.turn_counts: dict = {}
        self.tokens = SimpleNamespace(count=lambda text: len(text.split()))
        self.made: dict = {}

    def prebuild(self, prompt, default_limit) -> None:
        self.made[id(prompt)] = prompt

    def forget(self, prompt) -> None:
        self.made.pop(id(prompt), None)


def test_the_next_turn_carries_the_answers_received():
    template = Prompt(name="chat", text=TURNS[0], system=SYSTEM, turns=tuple(TURNS))
    target = FakeTarget()
    count_turns(target, [template])
    user = UserSessions(SimpleNamespace(timeout=1.0, token_limit=None))
    first = user.next(template, target)
    assert (first.turn, first.text, first.messages, first.tokens_local) == (1, TURNS[0], (), 5)
    user.answered(first, {"status": "ok", "output_tokens_local": 2}, ["Hello", " you"])
    second = user.next(template, target)
    assert second.session == first.session and second.turn == 2
    assert second.chat_messages() == [
        {"role": "system", "content": SYSTEM}, {"role": "user", "content": TURNS[0]},
        {"role": "assistant", "content": "Hello you"}, {"role": "user", "content": TURNS[1]},
    ]
    assert second.tokens_local == 3 + 2 + 2 + 5, "summed per message, nothing tokenized per request"
    user.answered(second, {"status": "ok", "output_tokens_local": 1}, ["Sure"])
    assert [p.turn for p in target.made.values()] == [2, 3], "each next turn is made when its answer comes"
    third = user.next(template, target)
    assert third.turn == 3 and third.messages[-1] == {"role": "assistant", "content": "Sure"}
    user.answered(third, {"status": "ok", "output_tokens_local": 1}, ["Done"])
    fourth = user.next(template, target)
    assert fourth.turn == 1 and fourth.session != first.session, "a finished session makes way for a new one"


def test_the_next_turns_request_is_made_ahead_and_handed_out_once():
    from llm_locust.run import Target
    from llm_locust.targets import TargetSpec

    target = Target(TargetSpec(name="t", api="openai-chat", host="http://127.0.0.1:1", model="gpt-4o"),
                    api_key=None, price_file=None, continuous_usage=False)
    template = Prompt(name="chat", text="a", turns=("a", "b", "c"))
    user = UserSessions(SimpleNamespace(timeout=1.0, token_limit=7))
    first = user.next(template, target)
    user.answered(first, {"status": "ok", "output_tokens_local": 1}, ["ANSWER-ONE"])
    (made,) = target._turn_bodies.values()
    second = user.next(template, target)
    assert made[0] is second and target.prepare(second, 7) is made[1] and not target._turn_bodies
    body = json.loads(made[1].body)
    assert body["messages"][-2:] == [{"role": "assistant", "content": "ANSWER-ONE"}, {"role": "user", "content": "b"}]
    assert target.prepare(second, 7).body == made[1].body, "made again when asked again"
    user.answered(second, {"status": "ok", "output_tokens_local": 1}, ["two"])
    assert len(target._turn_bodies) == 1
    user.current.answer = None
    user.current.turn = 3  # as if the last turn were sent: the session is done, the one made ahead is dropped
    user.next(Prompt(name="p", text="x"), target)
    assert not target._turn_bodies


def test_a_failed_turn_ends_its_session():
    template = Prompt(name="chat", text="a", turns=("a", "b"))
    target = FakeTarget()
    user = UserSessions(SimpleNamespace(timeout=1.0, token_limit=None))
    first = user.next(template, target)
    user.answered(first, {"status": "failed", "output_tokens_local": 0}, [])
    again = user.next(template, target)
    assert again.turn == 1 and again.session != first.session


def test_an_answer_that_never_comes_ends_the_session_after_the_timeout():
    template = Prompt(name="chat", text="a", turns=("a", "b"))
    user = UserSessions(SimpleNamespace(timeout=0.01, token_limit=None))
    first = user.next(template, FakeTarget())
    assert user.next(template, user.current.target).session != first.session


def test_single_turn_prompts_pass_through():
    plain = Prompt(name="p", text="x")
    assert UserSessions(SimpleNamespace(timeout=1.0, token_limit=None)).next(plain, FakeTarget()) is plain


def test_turns_in_the_prompt_file(tmp_path: Path):
    path = tmp_path / "p.yaml"
    path.write_text('prompts:\n  - {name: chat, system: sys, turns: ["a", "b"]}\n')
    (p,) = load_prompts(path)
    assert p.turns == ("a", "b") and p.text == "a"
    for bad, problem in [("turns: []", "non-empty list"), ("turns: [1]", "non-empty list"),
                         ("text: x, turns: [a]", "'text' beside")]:
        path.write_text(f"prompts:\n  - {{name: chat, {bad}}}\n")
        with pytest.raises(PromptFileError, match=problem):
            load_prompts(path)


def test_per_turn_summary_and_cache_share():
    records = []
    for turn, (inp, cached) in enumerate([(100, 0), (200, 100), (300, 240)], 1):
        for _ in range(2):
            r = streamed()
            r.update(turn=turn, session="s", input_tokens=inp, cached_tokens=cached)
            records.append(r)
    plain = streamed()  # a single-turn request beside them
    records.append(plain)
    summary = report.summarize(records, {"run_id": "r", "model": "m", "host": "h", "api": "a"})
    turns = summary["overall"]["turns"]
    assert [t["turn"] for t in turns] == [1, 2, 3] and [t["requests"] for t in turns] == [2, 2, 2]
    assert [t["cached_tokens"]["share"] for t in turns] == [0.0, 0.5, 0.8]
    assert summary["overall"]["cached_tokens"]["reported_requests"] == 6
    text = report.render_text(summary)
    assert "Per turn (multi-turn sessions)" in text and "cached 80.0%" in text
    assert "turns" not in report.summarize([plain], {"run_id": "r", "model": "m", "host": "h", "api": "a"})["overall"]


def _check_sessions(run, mock, turns: list[str], system: str | None) -> list[dict]:
    assert run.returncode == 0, run.stderr[-3000:]
    rows = run.requests()
    sent = {s["request_id"]: s for s in mock.sent()}
    by_session: dict[str, list[dict]] = {}
    for r in rows:
        by_session.setdefault(r["session"], []).append(r)
    head = len(system.split()) if system else 0
    for session, turns_sent in by_session.items():
        assert session, "every request of a session run names its session"
        numbers = [int(r["turn"]) for r in turns_sent]
        assert numbers == list(range(1, len(numbers) + 1)), "a session's turns in order"
        for r in turns_sent:
            k = int(r["turn"])
            words = head + sum(len(t.split()) for t in turns[:k]) + ANSWER * (k - 1)
            assert sent[r["request_id"]]["prompt_tokens"] == words, (k, r)
    return rows


def test_a_three_turn_session_sends_growing_histories(tmp_path: Path, mock_server, locust_run):
    path = tmp_path / "chat.yaml"
    path.write_text(f"prompts:\n  - name: chat\n    system: {json.dumps(SYSTEM)}\n    turns: {json.dumps(TURNS)}\n")
    mock = mock_server("--ttft-ms", "5", "--itl-ms", "1")
    run = locust_run("-H", mock.url, "--model", "gpt-4o", "-u", "1", "--max-requests", "6", "--prompt-file",
                     str(path), "--token-limit", str(ANSWER))
    rows = _check_sessions(run, mock, TURNS, SYSTEM)
    assert [int(r["turn"]) for r in rows] == [1, 2, 3, 1, 2, 3]
    assert [expected_prompt_words(k) for k in (1, 2, 3)] == [5, 15, 24]
    turns = run.summary()["overall"]["turns"]
    assert [(t["turn"], t["requests"]) for t in turns] == [(1, 2), (2, 2), (3, 2)]
    assert [round(t["input_tokens"]["mean"]) for t in turns] == [5, 15, 24]
    assert "Per turn (multi-turn sessions)" in (run.folder / "summary.txt").read_text()
    assert "- Turn 3: 2 requests (0 failed)" in run.stdout + run.stderr, "the console summary too"


def test_sessions_from_a_dataset_with_several_users(tmp_path: Path, mock_server, locust_run):
    records = [{"conversations": [{"from": "human", "value": f"first question {i}"}, {"from": "gpt", "value": "x"},
                                  {"from": "human", "value": "and then"}, {"from": "gpt", "value": "y"},
                                  {"from": "human", "value": "never sent"}]} for i in range(4)]
    path = tmp_path / "convs.json"
    path.write_text(json.dumps(records))
    mock = mock_server("--ttft-ms", "5", "--itl-ms", "1")
    run = locust_run("-H", mock.url, "--model", "gpt-4o", "-u", "2", "--max-requests", "8", "--dataset", str(path),
                     "--session-turns", "2", "--token-limit", str(ANSWER))
    rows = _check_sessions(run, mock, ["first question N", "and then"], None)
    assert len(rows) == 8 and {r["turn"] for r in rows} == {"1", "2"}
