"""What every probe's Prometheus series share (``ktop export``): bounded labels, log2 histograms.

Each model section (``ktop/model/<name>.py``) has a ``Metrics`` class built
from these; ``ktop.export.KtopMetrics`` holds one per probe. Nothing here
imports prometheus_client: a section's ``families(fam)`` is handed its
``prometheus_client.core`` module at the first scrape.

Label values are bounded (docs/prometheus.md): for each labelled counter the
first K distinct values seen get their own series and everything after
counts under ``other``, so every series only ever grows and ``rate()`` stays
right. Untrusted text (command names, function names) is stripped of control
characters and cut to 64 characters.
"""

from __future__ import annotations

from typing import Any

OTHER = "other"
LABEL_MAX = 64


def label(text: Any) -> str:
    """An untrusted string as a label value: no control characters, at most 64 characters."""
    s = str(text)
    out = "".join(c if c.isprintable() else "?" for c in s[:LABEL_MAX])
    return out or "?"


class Bounded:
    """Cumulative counts keyed by a label tuple; the first ``k`` keys are kept, the rest add up under ``other``."""

    def __init__(self, k: int, other: tuple):
        self.k = k
        self.other = other
        self.values: dict[tuple, float] = {}

    def add(self, key: tuple, n: float) -> None:
        """Adds ``n`` (0 too: a key is admitted when first seen, so metrics fed the same keys stay aligned)."""
        if key in self.values or len(self.values) < self.k or key == self.other:
            self.values[key] = self.values.get(key, 0) + n
        else:
            self.values[self.other] = self.values.get(self.other, 0) + n

    def items(self):
        return sorted(self.values.items())

    def family(self, family: Any) -> Any:
        """``family`` (a metric family made with this counter's label names) filled in."""
        for key, v in self.items():
            family.add_metric(list(key), v)
        return family


class Log2Hist:
    """A cumulative log2 histogram: per-slot counts (slot i holds values below 2**i units), sum, count."""

    def __init__(self) -> None:
        self.buckets: list[int] = []
        self.sum_s = 0.0
        self.count = 0

    def add(self, buckets, sum_s: float, count: int) -> None:
        if len(buckets) > len(self.buckets):
            self.buckets += [0] * (len(buckets) - len(self.buckets))
        for i, c in enumerate(buckets):
            self.buckets[i] += c
        self.sum_s += sum_s
        self.count += count

    def cumulative(self, unit_s: float) -> list[tuple[str, int]]:
        """(le, cumulative count) pairs for a HistogramMetricFamily, the last ``+Inf``."""
        out, acc = [], 0
        for b, c in zip(bucket_bounds_s(len(self.buckets), unit_s), self.buckets):
            acc += c
            out.append((le(b), acc))
        return out


def bucket_bounds_s(nslots: int, unit_s: float = 1e-6) -> list[float]:
    """Upper bounds in seconds of log2 slots 0..n-2 of ``unit_s`` (slot i holds values below 2**i units);
    the last is +Inf."""
    return [(1 << i) * unit_s for i in range(nslots - 1)] + [float("inf")]


def le(b: float) -> str:
    return "+Inf" if b == float("inf") else repr(b)
