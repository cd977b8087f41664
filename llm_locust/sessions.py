"""Multi-turn sessions: a user sends a conversation's turns one after the other, each with the answers it received.

A *session template* is a prompt with ``turns`` (a prompt file's ``turns:`` entry, or a dataset conversation with
``--session-turns K``). A user that draws one (at random, or the next in order with ``--max-requests``) starts a
session: turn 1 is the template's system prompt, messages and ``turns[0]``; turn k carries the conversation so far,
the user turns sent and the answers received (the streamed text, reasoning left out, as chat clients do), then
``turns[k-1]``. Every turn is one request, with its session id and turn number in the record (``session``,
``turn``); the reports give the statistics per turn and the share of input tokens the server reported as cached
(``cached_tokens``: prefix caching shows as a share that grows with the turn).

The next turn needs the previous answer: the request's bookkeeping (:mod:`llm_locust.bookkeeper`, which parses the
stream after it ended) hands the text to :meth:`UserSessions.answered`, and the user's next task waits for it
(:meth:`UserSessions.next`, at most ``--timeout``), as a person waits to read an answer before replying. A turn that
failed, or whose answer never came, ends its session: the user starts a new one. With ``--max-requests`` every turn
takes one request of the plan: the session goes on as long as requests are left (a template drawn while a session
runs only starts the next one).

Nothing is serialised as a turn is sent: the next turn's request body is made when the previous answer is handed
over, in the bookkeeper's idle turn (``json.dumps`` of the history: about 60 µs per 10 KB, 350 µs per 100 KB,
measured), and :meth:`llm_locust.run.Target.prepare` hands it out. Nor tokenized: the local token counts of each
template's system prompt, messages and turns are taken at the run's warm-up (:func:`count_turns`), an answer's count
is the one its record has already, and a turn's ``input_tokens_local`` is their sum (within a few tokens of counting
the joined text). Single-turn prompts do not come here: a user has no :class:`UserSessions` unless the run has a
session template (:func:`for_run`).
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from gevent.event import AsyncResult

from .prompts import Prompt

if TYPE_CHECKING:
    from .measure.record import Record
    from .run import LLMRun, Target


def for_run(run: LLMRun) -> UserSessions | None:
    """A user's session state, or None when the run has no session template (single-turn prompts only)."""
    return UserSessions(run) if run.has_sessions else None


def count_turns(target: Target, prompts: list[Prompt]) -> None:
    """Count each session template's system prompt + messages and each turn with ``target``'s tokenizer, once."""
    for p in prompts:
        if p.turns and id(p) not in target.turn_counts:
            head = [p.system] if p.system else []
            head += [m["content"] for m in p.messages]
            count = target.tokens.count
            target.turn_counts[id(p)] = (count("\n".join(head)) if head else 0, tuple(count(t) for t in p.turns))


class Conversation:
    """One session in progress: its template, target, history and the answer it waits for."""

    __slots__ = ("answer", "history", "id", "ready", "target", "template", "tokens", "turn", "turn_tokens")

    def __init__(self, template: Prompt, target: Target) -> None:
        self.id = uuid.uuid4().hex[:16]
        self.template = template
        self.target = target
        self.history: tuple[dict[str, str], ...] = template.messages
        self.turn = 0  # turns sent
        if id(template) not in target.turn_counts:
            count_turns(target, [template])  # a target made after the warm-up
        self.tokens, self.turn_tokens = target.turn_counts[id(template)]
        self.answer: AsyncResult | None = None
        self.ready: Prompt | None = None  # the next turn, made once its previous answer came

    @property
    def done(self) -> bool:
        return self.turn >= len(self.template.turns)

    def _make_next(self) -> Prompt:
        k = self.turn
        return replace(self.template, text=self.template.turns[k], messages=self.history, turns=(),
                       session=self.id, turn=k + 1, tokens_local=self.tokens + self.turn_tokens[k])

    def next_prompt(self) -> Prompt:
        """The request of the next turn (the previous answer is in the history already)."""
        p = self.ready or self._make_next()
        self.ready = None
        self.tokens = p.tokens_local or 0
        self.turn += 1
        self.answer = AsyncResult()
        return p

    def add_answer(self, text: str, tokens: int, default_limit: int | None) -> None:
        """Append the answer to the history and make the next turn's request now (in the bookkeeper's idle turn,
        not when it is sent)."""
        k = self.turn - 1
        self.history = (*self.history, {"role": "user", "content": self.template.turns[k]},
                        {"role": "assistant", "content": text})
        self.tokens += tokens
        if not self.done:
            self.ready = self._make_next()
            self.target.prebuild(self.ready, default_limit)

    def drop(self) -> None:
        """Forget the request made ahead for the next turn (the session ends without it)."""
        if self.ready is not None:
            self.target.forget(self.ready)
            self.ready = None


class UserSessions:
    """One user's session: :meth:`next` gives the prompt to send, :meth:`answered` takes the answer back."""

    def __init__(self, run: LLMRun) -> None:
        self.run = run
        self.current: Conversation | None = None

    def next(self, drawn: Prompt, target: Target) -> Prompt:
        """The prompt this user sends now: the next turn of its session, else ``drawn`` (a new session's first
        turn when ``drawn`` is a template)."""
        c = self.current
        if c is not None and not c.done and c.target is target and self._wait(c):
            return c.next_prompt()
        if c is not None:
            c.drop()
        if not drawn.turns:
            self.current = None
            return drawn
        self.current = Conversation(drawn, target)
        return self.current.next_prompt()

    def _wait(self, c: Conversation) -> bool:
        """Wait for the previous turn's answer; whether it came (and the session can go on)."""
        if c.answer is None:
            return True
        ok = c.answer.wait(self.run.timeout)
        c.answer = None
        return bool(ok)

    def answered(self, prompt: Prompt, record: Record, text: list[str]) -> None:
        """The bookkeeper's hand-over of a turn's answer (``text``: the streamed text parts)."""
        c = self.current
        if c is None or prompt.session != c.id or c.answer is None:
            return
        ok = record["status"] == "ok" and bool(text)
        if ok:
            c.add_answer("".join(text), record["output_tokens_local"], self.run.token_limit)
        c.answer.set(ok)

    def abandon(self, _: Any = None) -> None:
        """Forget the session in progress (e.g. a request cut short)."""
        self.current = None
