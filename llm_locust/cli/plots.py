"""``llm-benchmark --plot``: bar charts of TTFT, output tokens/s and cost, as PNG files in the report folder.

One chart per figure (``ttft_ms.png``, ``output_tokens_per_s.png``, ``cost_usd.png``), a bar per target when the
run has several, else per prompt, from ``summary.json``. Needs matplotlib (``pip install 'llm-locust[plot]'``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .args import UsageError

#: (summary key, statistic, title)
CHARTS = (
    ("ttft_ms", "mean", "TTFT (ms, mean)"),
    ("output_tokens_per_s", "mean", "Output tokens/s (mean)"),
    ("cost_usd", "total", "Cost (USD, total)"),
)


def plot(folder: Path, summary: dict[str, Any]) -> list[Path]:
    """Write the charts into ``folder``; return their paths."""
    try:
        import matplotlib
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'llm-locust[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    multi = len(summary.get("targets") or ()) > 1
    groups = summary["targets"] if multi else summary["prompts"]
    labels = [g["name"] for g in groups]
    written = []
    for key, stat, title in CHARTS:
        values = [g[key][stat] or 0.0 for g in groups]
        fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(labels) + 2), 4))
        ax.bar(range(len(labels)), values, color="#4c72b0")
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
        ax.set_title(f"{title} per {'target' if multi else 'prompt'}")
        fig.tight_layout()
        path = folder / f"{key}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written
