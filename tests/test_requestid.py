"""Request ids (llm_locust/requestid.py): uuid4 strings exactly as ``str(uuid.uuid4())`` writes them, unique, and
never the same in a forked child as in its parent."""

from __future__ import annotations

import os
import uuid

from llm_locust import requestid


def test_every_id_is_a_uuid4_string() -> None:
    ids = [requestid.new() for _ in range(3 * requestid.BLOCK + 7)]  # across refills of the random bytes
    for s in ids:
        u = uuid.UUID(s)
        assert str(u) == s
        assert u.version == 4 and u.variant == uuid.RFC_4122
    assert len(set(ids)) == len(ids)
    # the 122 random bits vary: every other hex digit takes many values over the ids
    free = [k for k in range(36) if s[k] != "-" and k not in (14, 19)]  # 14: the version, 19: the variant
    assert all(len({s[k] for s in ids}) >= 8 for k in free)


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    requestid.new()  # the parent holds a block of random bytes
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        try:
            os.write(w, " ".join(requestid.new() for _ in range(50)).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        child = set(f.read().split())
    os.waitpid(pid, 0)
    parent = {requestid.new() for _ in range(50)}
    assert len(child) == 50 and not child & parent
