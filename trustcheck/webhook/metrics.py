"""The webhook's Prometheus metrics (``GET /metrics``): reviews, decisions, latency, the
trust cache, the shared cache and upstream errors."""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Iterator, Sequence

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector


class _Counts:
    """A counter family for the hot path: a dict under a lock (prometheus_client's
    labelled counters cost several microseconds per increment)."""

    def __init__(self, name: str, doc: str, labels: Sequence[str]) -> None:
        self.name = name
        self.doc = doc
        self.labels = list(labels)
        self.values: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()

    def inc(self, *values: str) -> None:
        with self._lock:
            self.values[values] = self.values.get(values, 0.0) + 1.0

    def family(self) -> CounterMetricFamily:
        fam = CounterMetricFamily(self.name, self.doc, labels=self.labels)
        with self._lock:
            items = sorted(self.values.items())
        for values, count in items:
            fam.add_metric(list(values), count)
        return fam


class _Latency:
    """A histogram family with one label, for the hot path (see :class:`_Counts`)."""

    def __init__(self, name: str, doc: str, label: str, buckets: Sequence[float]) -> None:
        self.name = name
        self.doc = doc
        self.label = label
        self.buckets = list(buckets)
        self.data: dict[str, tuple[list[int], list[float]]] = {}
        self._lock = threading.Lock()

    def observe(self, value: str, seconds: float) -> None:
        index = bisect.bisect_left(self.buckets, seconds)
        with self._lock:
            found = self.data.get(value)
            if found is None:
                found = self.data[value] = ([0] * (len(self.buckets) + 1), [0.0])
            found[0][index] += 1
            found[1][0] += seconds

    def family(self) -> HistogramMetricFamily:
        fam = HistogramMetricFamily(self.name, self.doc, labels=[self.label])
        with self._lock:
            items = sorted((k, (list(c), s[0])) for k, (c, s) in self.data.items())
        for value, (counts, total) in items:
            cumulative, running = [], 0
            for le, n in zip([*self.buckets, math.inf], counts, strict=True):
                running += n
                cumulative.append((("+Inf" if le == math.inf else repr(float(le))), float(running)))
            fam.add_metric([value], cumulative, total)
        return fam


class _Collector(Collector):
    def __init__(self, parts: Sequence[_Counts | _Latency]) -> None:
        self.parts = parts

    def collect(self) -> Iterator[Metric]:
        for part in self.parts:
            yield part.family()


class Metrics:
    """Prometheus metrics of one server (its own registry)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.reviews = _Counts(
            "trustcheck_webhook_reviews",
            "Admission reviews answered, by endpoint and result "
            "(allowed, denied, skipped: not checked, invalid: HTTP 4xx, error: internal error)",
            ["endpoint", "result"],
        )
        self.decisions = _Counts(
            "trustcheck_webhook_decisions",
            "Image decisions, by result (allow, deny, warn) and deciding rule",
            ["result", "rule"],
        )
        self.latency = _Latency(
            "trustcheck_webhook_review_seconds",
            "Time to answer an admission review",
            "endpoint",
            (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.cache = _Counts(
            "trustcheck_webhook_cache_lookups",
            "Trust-collection cache lookups: hit, negative_hit (a cached error), miss",
            ["result"],
        )
        self.shared = _Counts(
            "trustcheck_webhook_shared_cache",
            "Shared (Redis) cache: hit, miss, rejected (bad MAC or did not verify), error",
            ["result"],
        )
        self.continuity = _Counts(
            "trustcheck_webhook_continuity",
            "Images whose tag had moved on from their pinned digest: admitted as released_now "
            "(another signed tag carries it) or remembered (verified as a release within the "
            "window), or denied as revoked (continuity.revoked)",
            ["result"],
        )
        self.upstream_errors = _Counts(
            "trustcheck_webhook_upstream_errors",
            "Failed fetches or verifications of trust data, by error code",
            ["code"],
        )
        r.register(
            _Collector(
                [
                    self.reviews,
                    self.decisions,
                    self.latency,
                    self.cache,
                    self.shared,
                    self.upstream_errors,
                    self.continuity,
                ]
            )
        )
        self.refreshes = Counter(
            "trustcheck_webhook_cache_refreshes",
            "Entries refreshed ahead of their expiry",
            registry=r,
        )
        self.deadlines = Counter(
            "trustcheck_webhook_deadline_exceeded",
            "Reviews denied because trust data was not verified within the deadline",
            registry=r,
        )
        self.quarantine = Counter(
            "trustcheck_webhook_quarantine",
            "ACR quarantine webhooks, by action taken",
            ["action"],
            registry=r,
        )
        self.entries = Gauge(
            "trustcheck_webhook_cache_entries", "Entries in the trust cache", registry=r
        )

    def event(self, name: str, label: str) -> None:
        """The trust cache's events."""
        if name in ("hit", "negative_hit", "miss"):
            self.cache.inc(name)
        elif name.startswith("shared_"):
            self.shared.inc(name.removeprefix("shared_"))
        elif name == "upstream_error":
            self.upstream_errors.inc(label or "unknown")
        elif name == "refresh":
            self.refreshes.inc()
