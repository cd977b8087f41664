"""One scrape's page parsed: Prometheus text into a :class:`Page` of our keys (:func:`parse_page`).

A known server's page (:mod:`.curated`) is first cut to the lines of its metric prefix, then read through its curated
table; any other server gets its counters and gauges as they are (at most :data:`MAX_SERIES`). Label sets are summed
(ratios: their maximum); a histogram becomes a :class:`Hist` of cumulative bucket counts. Not Prometheus text:
:class:`NotPrometheus`. CPU work (milliseconds for a big page): during a run it runs in the scraping child process
(:mod:`.child`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .curated import SERVERS, Curated, detect

#: an unknown server's counters and gauges kept, at most
MAX_SERIES = 100


class NotPrometheus(ValueError):
    """The page is no Prometheus text."""


# ---------------------------------------------------------------- one page


@dataclass
class Hist:
    """A histogram summed over its label sets: cumulative bucket counts by upper bound (+Inf last)."""

    buckets: list[tuple[float, float]]
    sum: float
    count: float


@dataclass
class Page:
    """One parsed scrape: what each metric read (by our key), with the metric name each key came from."""

    kind: str  # a key of SERVERS, or "unknown"
    scalars: dict[str, float] = field(default_factory=dict)
    hists: dict[str, Hist] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)  # key -> "gauge" / "counter" / "histogram"
    names: dict[str, str] = field(default_factory=dict)  # key -> the server's metric name
    units: dict[str, str] = field(default_factory=dict)  # histogram key -> "s" or ""



def parse_page(text: str, kind: str | None = None) -> Page:
    """Parse Prometheus text into a :class:`Page`; :class:`NotPrometheus` if it is not Prometheus text.

    CPU work (milliseconds for a big page): during a run, in the scraping child process."""
    from prometheus_client.parser import text_string_to_metric_families

    kind = kind or detect(text)
    if kind in SERVERS:
        prefix = SERVERS[kind][0]
        text = "\n".join(line for line in text.splitlines() if prefix in line) + "\n"
    try:
        families = {f.name: f for f in text_string_to_metric_families(text) if f.samples}
    except (ValueError, IndexError, KeyError, TypeError) as e:
        raise NotPrometheus(f"not Prometheus text ({' '.join(str(e).split())[:80]})") from None
    if not families:
        raise NotPrometheus("no metrics on the page")
    page = Page(kind)
    if kind in SERVERS:
        for c in SERVERS[kind][1]:
            _read_curated(page, c, families)
    else:
        for fam in families.values():
            if len(page.scalars) >= MAX_SERIES:
                break
            if fam.type in ("counter", "gauge", "unknown") and not fam.name.endswith("_created"):
                key = fam.name + "_total" if fam.type == "counter" else fam.name
                page.scalars[key] = _scalar(fam, "sum")
                page.types[key] = "counter" if fam.type == "counter" else "gauge"
                page.names[key] = key
    return page


def _family(names: Iterable[str], families: dict[str, Any]) -> tuple[str, Any] | None:
    for name in names:
        for candidate in (name, name.removesuffix("_total")):
            fam = families.get(candidate)
            if fam is not None:
                return name, fam
    return None


def _read_curated(page: Page, c: Curated, families: dict[str, Any]) -> None:
    hit = _family(c.names, families)
    if hit is None:
        return
    name, fam = hit
    if c.type == "histogram":
        if fam.type != "histogram":
            return
        page.hists[c.key] = _hist(fam)
        page.units[c.key] = c.unit
    else:
        page.scalars[c.key] = _scalar(fam, c.agg)
    page.types[c.key] = c.type
    page.names[c.key] = name


def _scalar(fam: Any, agg: str) -> float:
    values = [s.value for s in fam.samples if not s.name.endswith("_created")]
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return math.nan
    return max(values) if agg == "max" else float(sum(values))


def _hist(fam: Any) -> Hist:
    buckets: dict[float, float] = {}
    total = count = 0.0
    for s in fam.samples:
        if s.name.endswith("_bucket"):
            le = float(s.labels.get("le", "+Inf"))
            buckets[le] = buckets.get(le, 0.0) + s.value
        elif s.name.endswith("_sum"):
            total += s.value
        elif s.name.endswith("_count"):
            count += s.value
    return Hist(sorted(buckets.items()), total, count)
