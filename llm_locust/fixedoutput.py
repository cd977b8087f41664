"""Fixed output length (``--fixed-output``): asking for exactly the token limit, and the output shortfall.

With ``--fixed-output`` every request asks for exactly its token limit (the prompt's ``token_limit``, else
``--token-limit``): besides the limit itself, the fields of the protocol's
:meth:`~llm_locust.protocols.base.Protocol.fixed_output` (OpenAI-compatible APIs: ``ignore_eos: true`` and
``min_tokens`` = the limit, which vLLM and SGLang honour and llama.cpp's server honours ``ignore_eos`` of; hosted
OpenAI answers HTTP 400 to them). Ollama's native API, Anthropic, Gemini, Workers AI and custom templates have no
such field: :func:`startup_note` says so once at start-up, the limit alone is sent, and the shortfall still counts.

The record keeps the length asked in ``output_tokens_asked``. :func:`shortfall` is a summary group's
``output_shortfall``: over its successful requests that asked a length, how many got another (``missed``), their
share, the mean shortfall (asked − got, over the missed ones; negative when answers ran longer) and ``flagged``
(more than :data:`WARN_SHARE` missed, AIPerf's rule), when :func:`warning` is one line in every report.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

#: above this share of requests whose output length missed what was asked, the reports warn
WARN_SHARE = 0.05
_NONE_ASKED = {"asked": 0, "missed": 0, "missed_share": None, "mean_shortfall": None, "flagged": False,
               "unverified": 0}


def startup_note(apis: list[str]) -> str | None:
    """One line naming the APIs of the run that cannot be asked for an exact output length, or None."""
    from .protocols import get_protocol

    unable = [a for a in dict.fromkeys(apis) if get_protocol(a).fixed_output(1) is None]
    if not unable:
        return None
    return (f"llm-locust: note: --fixed-output: {', '.join(unable)} cannot be asked for an exact output length; "
            "only the token limit is sent there, and the reports count the answers that fall short")


def shortfall(ok: pd.DataFrame) -> dict[str, Any]:
    """``output_shortfall`` of a group's successful requests (see the module docs)."""
    import numpy as np

    if "output_tokens_asked" not in ok.columns or not len(ok):
        return dict(_NONE_ASKED)
    asked = ok["output_tokens_asked"].to_numpy(dtype=np.float64, na_value=np.nan)
    got = ok["output_tokens"].to_numpy(dtype=np.float64, na_value=np.nan)
    # only the server's count can tell: a local count is another tokenizer's estimate (llama.cpp's server sends no
    # usage in streams), which differs from the length asked even when the server generated exactly it
    server = (ok["output_tokens_source"].astype(object) == "server").to_numpy()
    wanted = ~np.isnan(asked)
    has = wanted & server
    n = int(has.sum())
    unverified = int((wanted & ~server).sum())
    if not n:
        return {**_NONE_ASKED, "unverified": unverified}
    short = asked[has] - np.nan_to_num(got[has], nan=0.0)
    miss = short != 0
    missed = int(miss.sum())
    return {
        "asked": n,
        "missed": missed,
        "missed_share": missed / n,
        "mean_shortfall": float(short[miss].mean()) if missed else None,
        "flagged": missed / n > WARN_SHARE,
        "unverified": unverified,
    }


def line(group: dict[str, Any]) -> str | None:
    """``- Output length: 12 of 100 differ from the length asked (mean shortfall 31.0 tokens)``, or None."""
    s = group.get("output_shortfall") or {}
    if not s.get("asked"):
        return None
    mean = s["mean_shortfall"]
    part = f" (mean shortfall {mean:.1f} tokens)" if mean is not None else ""
    return f"- Output length: {s['missed']} of {s['asked']} differ from the length asked{part}"


def warning(summary: dict[str, Any]) -> str | None:
    """One line when more than :data:`WARN_SHARE` of the run's requests missed the output length asked."""
    s = summary["overall"].get("output_shortfall") or {}
    if not s.get("flagged"):
        return None
    return (
        f"WARNING: {s['missed']} of {s['asked']} requests ({s['missed_share']:.0%}) got an output length other than "
        f"the one asked (mean shortfall {s['mean_shortfall']:.1f} tokens): the server did not honour ignore_eos/"
        "min_tokens, or its API has none (per request: output_tokens vs output_tokens_asked in requests.csv)"
    )
