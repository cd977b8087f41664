"""Local token counting with tiktoken, once per request, after the stream has ended.

Server-reported usage is the source of record; the local count stands beside it so a report can show both, and
replaces it when the server reports nothing. The encoding is tiktoken's for the model name (``o200k_base`` for
names tiktoken does not know: an approximation for non-OpenAI models, and labelled as such by its source).

tiktoken downloads its encoding files on first use, with no timeout. Before asking it, we look for the file in
tiktoken's cache (``TIKTOKEN_CACHE_DIR``, ``DATA_GYM_CACHE_DIR`` or ``$TMPDIR/data-gym-cache``) and, if it is not
there, check that the download host answers within three seconds, name lookup included (in a thread we stop
waiting for, so a resolver that never answers cannot hold the run). Offline, counts fall back to an estimate
(about four characters a token) and their source says ``estimate``.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import tempfile
import threading

logger = logging.getLogger(__name__)

_BLOB = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"
_FILES = {
    "o200k_base": "o200k_base",
    "o200k_harmony": "o200k_base",
    "cl100k_base": "cl100k_base",
    "p50k_base": "p50k_base",
    "p50k_edit": "p50k_base",
    "r50k_base": "r50k_base",
}
DEFAULT_ENCODING = "o200k_base"
ESTIMATE_SOURCE = "estimate:chars/4"
#: characters of one response counted with tiktoken; a longer text is estimated (source ``ESTIMATE_SOURCE``)
COUNT_LIMIT = 64 * 1024


def encoding_name_for(model: str) -> str:
    """tiktoken's encoding for ``model`` (provider prefixes such as ``openai/`` dropped), else ``o200k_base``."""
    import tiktoken.model

    bare = model.rsplit("/", 1)[-1]
    try:
        return tiktoken.model.encoding_name_for_model(bare)
    except KeyError:
        return DEFAULT_ENCODING


def cache_path(encoding: str) -> str:
    """Where tiktoken keeps (or would keep) the BPE file of ``encoding``."""
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        cache_dir = os.environ["TIKTOKEN_CACHE_DIR"]
    elif "DATA_GYM_CACHE_DIR" in os.environ:
        cache_dir = os.environ["DATA_GYM_CACHE_DIR"]
    else:
        cache_dir = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    url = _BLOB.format(_FILES.get(encoding, encoding))
    return os.path.join(cache_dir, hashlib.sha1(url.encode()).hexdigest())


def _download_host_answers(encoding: str, timeout: float = 3.0) -> bool:
    """Whether tiktoken's download host answers within ``timeout`` seconds in all (requests' own timeout covers
    neither the name lookup nor the whole exchange, hence the thread)."""
    import requests

    answered: list[bool] = []

    def probe() -> None:
        try:
            requests.head(_BLOB.format(_FILES.get(encoding, encoding)), timeout=timeout)
            answered.append(True)
        except requests.RequestException:
            pass

    thread = threading.Thread(target=probe, name="tiktoken-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(answered)


@functools.lru_cache(maxsize=8)
def _load(encoding: str):
    import tiktoken

    if not os.path.isfile(cache_path(encoding)) and not _download_host_answers(encoding):
        logger.warning(
            "tiktoken's %s file is not cached and cannot be downloaded: local token counts are estimates "
            "(set TIKTOKEN_CACHE_DIR to a folder holding it)",
            encoding,
        )
        return None
    try:
        return tiktoken.get_encoding(encoding)
    except Exception as e:  # network, hash mismatch, unknown encoding
        logger.warning("tiktoken could not load %s (%s): local token counts are estimates", encoding, e)
        return None


def estimate(text: str) -> int:
    """About four characters a token; at least one token for non-empty text."""
    return (len(text) + 3) // 4


class TokenCounter:
    """Counts tokens of whole texts for one model; ``source`` says how (``tiktoken:<encoding>`` or an estimate)."""

    def __init__(self, model: str) -> None:
        self.encoding_name = encoding_name_for(model)
        self._enc = _load(self.encoding_name)
        self.source = f"tiktoken:{self.encoding_name}" if self._enc is not None else ESTIMATE_SOURCE

    def count_bounded(self, parts: list[str]) -> tuple[int, str]:
        """``(count, source)`` of the text ``parts`` joined: :meth:`count` up to ``COUNT_LIMIT`` characters, beyond
        it the estimate, without joining them (so one huge response never holds the event loop: tiktoken takes
        ~0.7 s per MB)."""
        size = sum(map(len, parts))
        if size > COUNT_LIMIT:
            return (size + 3) // 4, ESTIMATE_SOURCE
        return self.count("".join(parts)), self.source

    def count(self, text: str) -> int:
        if not text:
            return 0
        if self._enc is None:
            return estimate(text)
        return len(self._enc.encode(text, disallowed_special=()))
