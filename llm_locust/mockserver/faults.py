"""Fault injection: the fault kinds and which requests get one.

Faults are applied to generation requests only (the chat / completion / generate routes);
``/health``, ``/v1/models`` and ``/mock/stats`` are never faulted and are not counted. Generation
requests are numbered by one global counter from 1; with ``fault_every = N`` requests number
N, 2N, 3N, ... are faulted, so the number of faulted requests is exactly ``requests // N``.
"""

from __future__ import annotations

#: Answer at once with this HTTP status and the wire protocol's own error body (a protocol may answer a status
#: the way its provider does: the Gemini API says 400 ``API_KEY_INVALID`` where others say 401).
STATUS_FAULTS: dict[str, int] = {
    "status-401": 401,
    "status-403": 403,
    "status-404": 404,
    "status-429": 429,
    "status-500": 500,
    "status-503": 503,
    "status-529": 529,  # Anthropic's overloaded_error
}

#: HTTP 200, ``fault_after_tokens`` tokens, then something goes wrong in the stream.
MIDSTREAM_FAULTS: tuple[str, ...] = ("midstream-error", "malformed", "disconnect")

#: Read the request and never answer (until the client goes away, or HANG_SECONDS).
HANG = "hang"
HANG_SECONDS = 3600.0

FAULT_KINDS: tuple[str, ...] = (*STATUS_FAULTS, *MIDSTREAM_FAULTS, HANG)


def fault_for(kind: str | None, every: int, seq: int) -> str | None:
    """The fault that generation request number ``seq`` (counted from 1) gets, or None."""
    if kind is None or seq % every:
        return None
    return kind
