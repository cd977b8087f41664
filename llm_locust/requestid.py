"""Request ids: :func:`new` gives a fresh uuid4 string (``xxxxxxxx-xxxx-4xxx-[89ab]xxx-xxxxxxxxxxxx``).

It is sent as ``X-Request-Id`` and kept in the record, so a request joins with the server's own logs. The format is
exactly ``str(uuid.uuid4())``'s, because some servers insist on it (llama-cpp-python's server answers an empty 400
to any other ``X-Request-Id``), and the bits are as random: 122 of them from ``os.urandom``. What differs is the
cost. ``uuid.uuid4()`` reads 16 random bytes with a system call and builds a ``UUID`` object for every request
(6-20 µs, the largest single item of a short request's bookkeeping); here the bytes are read ``BLOCK`` ids at a
time and each id is formatted straight from them (about 1 µs).

A forked child (``--processes``) starts with no bytes of its own, so two processes never hand out the same ids
(``os.register_at_fork``).
"""

from __future__ import annotations

import os

#: ids read from os.urandom at a time (16 bytes each)
BLOCK = 1024
# uuid4: version 4 (bits 76-79) and the RFC 4122 variant (bits 62-63), as uuid.UUID(version=4) sets them
_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_SET = (0x4000 << 64) | (0x8000 << 48)

_buf = b""
_at = 0


def new() -> str:
    """A fresh uuid4 string (see the module docs)."""
    global _buf, _at
    i = _at
    if i >= len(_buf):
        _buf, i = os.urandom(16 * BLOCK), 0
    _at = i + 16
    h = f"{int.from_bytes(_buf[i:i + 16]) & _CLEAR | _SET:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _forget() -> None:
    global _buf, _at
    _buf, _at = b"", 0


os.register_at_fork(after_in_child=_forget)
