"""Cloudflare AI Gateway in front of the mock's providers: everything under ``/v1/{account}/{gateway}``.

* **Provider routes** (``server.GATEWAY_ROUTES``): ``/v1/{account}/{gateway}/{slug}/...`` with the
  provider's own body, stream and errors: ``openai/chat/completions``, ``openai/completions``,
  ``anthropic/v1/messages``, ``google-ai-studio/v1beta/models/{model}:streamGenerateContent`` (and ``v1``),
  ``google-vertex-ai/v1/projects/.../models/{model}:streamGenerateContent``, ``workers-ai/{model...}``
  (Workers AI native), ``workers-ai/v1/chat/completions``, ``mistral/v1/chat/completions``,
  ``deepseek/chat/completions``, ``groq/chat/completions`` and ``compat/chat/completions`` (OpenAI format,
  ``model`` written ``provider/model``: 400 otherwise).
* **Universal endpoint**: ``POST /v1/{account}/{gateway}`` with a JSON array of steps ``{provider, endpoint,
  headers, query}``. A step is routed as the provider route ``/{provider}/{endpoint}`` with ``query`` as its
  body. The gateway tries the steps in order; the mock treats the first ``--fail-steps N`` steps as failed
  (as if their provider had answered 5xx) and answers with step N, in that step's format, with the response
  header ``cf-aig-step: N``. If every step fails, the last one's 500 error (in its provider's shape) is the
  answer. A body that is not such an array, or a step no provider route matches, gets 400.
* **Response headers** on every gateway response: ``cf-aig-cache-status`` (``MISS`` when the request has
  ``cf-aig-skip-cache: true``, else ``HIT``; the mock has no cache, so this is only a label) and
  ``cf-aig-log-id`` (a ULID-shaped id); ``cf-aig-step`` from the universal endpoint.
* **Authenticated gateway**: with ``--gateway-token TOKEN`` a request without ``cf-aig-authorization: Bearer
  TOKEN`` gets 401 ``{"success": false, "result": [], "messages": [], "error": [{"code": 2009, "message":
  "Unauthorized"}]}`` (before any fault or step). Provider keys are never checked.

The gateway's own errors use that envelope; codes other than 2009 are the mock's choice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llm_locust.mockserver.http import Request
from llm_locust.mockserver.openai import MockOpenAIChat
from llm_locust.mockserver.routing import Router, query_params
from llm_locust.mockserver.wire import GenRequest, RequestError, WireProtocol, dumps

UNAUTHORIZED_CODE = 2009
_ULID_CHARS = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def gateway_error(code: int, message: str) -> bytes:
    """The gateway's own error envelope."""
    return dumps(
        {"success": False, "result": [], "messages": [], "error": [{"code": code, "message": message}]}
    ).encode()


UNAUTHORIZED = gateway_error(UNAUTHORIZED_CODE, "Unauthorized")


def log_id(seq: int) -> str:
    """A ULID-shaped log id (26 Crockford base-32 characters), unique per request of this server."""
    n, out = seq, []
    for _ in range(16):
        n, r = divmod(n, 32)
        out.append(_ULID_CHARS[r])
    return "01MCK00000" + "".join(reversed(out))


def response_headers(req: Request, seq: int) -> list[tuple[str, str]]:
    """The ``cf-aig-*`` headers of every gateway response (``cf-aig-step`` is added by the universal endpoint)."""
    skip = req.headers.get("cf-aig-skip-cache", "").strip().lower() == "true"
    return [("cf-aig-cache-status", "MISS" if skip else "HIT"), ("cf-aig-log-id", log_id(seq))]


def authorized(req: Request, token: str) -> bool:
    return req.headers.get("cf-aig-authorization", "") == f"Bearer {token}"


class MockGatewayUniversal(WireProtocol):
    """``POST /v1/{account}/{gateway}``: routes to a step's protocol (see :func:`pick_step`), never generates itself."""

    name = "cf-universal"

    def parse(self, body: dict[str, Any], params: Mapping[str, str]) -> GenRequest:
        raise RequestError("the universal endpoint takes a JSON array of steps")

    def error_body(
        self, status: int, model: str, message: str | None = None, code: str | None = None, seq: int = 0,
        retry_after: int | None = None,
    ) -> bytes:
        return gateway_error(2000 + status, message or "Error")


class MockCompatChat(MockOpenAIChat):
    """``POST /v1/{account}/{gateway}/compat/chat/completions``: OpenAI chat with ``model`` = ``provider/model``."""

    def parse(self, body: dict[str, Any], params: Mapping[str, str]) -> GenRequest:
        model = body.get("model")
        if not isinstance(model, str) or "/" not in model.strip("/"):
            raise RequestError(f"model must be written provider/model (e.g. openai/gpt-4o-mini), not {model!r}")
        return super().parse(body, params)


@dataclass(slots=True)
class Step:
    """The step of a universal request that answers."""

    index: int
    proto: WireProtocol
    params: dict[str, str]
    body: Any  # the step's ``query``: its provider's request body
    failed: bool  # every step failed: answer with this (the last) step's error


def pick_step(body: Any, fail_steps: int, routes: Router[WireProtocol]) -> Step:
    """Validate a universal request's steps and pick the one that answers; RequestError if they are malformed."""
    if not isinstance(body, list) or not body:
        raise RequestError("the universal endpoint takes a non-empty JSON array of steps {provider, endpoint, query}")
    steps: list[Step] = []
    for i, step in enumerate(body):
        if not isinstance(step, dict):
            raise RequestError(f"step {i} is not an object")
        provider, endpoint, query = step.get("provider"), step.get("endpoint"), step.get("query")
        if not isinstance(provider, str) or not isinstance(endpoint, str) or not isinstance(query, dict):
            raise RequestError(f"step {i} needs provider and endpoint (strings) and query (an object)")
        target = f"/{provider.strip('/')}/{endpoint.lstrip('/')}"
        path = target.split("?", 1)[0]
        hit = routes.match(path)
        if hit is None:
            raise RequestError(f"step {i}: no provider endpoint {provider}/{endpoint}")
        proto, params = hit
        steps.append(Step(i, proto, {**query_params(target), **params}, query, False))
    if fail_steps >= len(steps):
        last = steps[-1]
        last.failed = True
        return last
    return steps[fail_steps]
