"""Prometheus metrics: requests and latency per route (ASGI middleware), vectors and bytes per index
(collected at scrape time). Each app has its own registry, so several apps can live in one process."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

# Service latencies sit between ~100 µs and seconds.
_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class Metrics:
    def __init__(self, store_getter, batcher_getter=lambda: None):
        self.registry = CollectorRegistry()
        self.requests = Counter("adanns_requests", "HTTP requests by route, method and status",
                                ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram("adanns_request_seconds", "HTTP request latency by route and method",
                                 ["route", "method"], buckets=_BUCKETS, registry=self.registry)
        self.registry.register(_IndexCollector(store_getter))
        self.registry.register(_BatcherCollector(batcher_getter))


class _BatcherCollector:
    """The search threads' native calls and the requests they answered: requests / calls is how many
    searches were merged into one call on average (see batcher.py)."""

    def __init__(self, batcher_getter):
        self._batcher = batcher_getter

    def collect(self):
        calls = CounterMetricFamily("adanns_search_calls", "native search calls made by the search threads")
        requests = CounterMetricFamily("adanns_search_merged_requests",
                                       "search requests answered by those calls (merged when they waited together)")
        batcher = self._batcher()
        calls.add_metric([], batcher.calls if batcher is not None else 0)
        requests.add_metric([], batcher.merged_requests if batcher is not None else 0)
        yield calls
        yield requests


class _IndexCollector:
    def __init__(self, store_getter):
        self._store = store_getter

    def collect(self):
        vectors = GaugeMetricFamily("adanns_index_vectors", "vectors held per index", labels=["index"])
        size = GaugeMetricFamily("adanns_index_bytes", "bytes held per index (vectors, ids, centroids)",
                                 labels=["index"])
        store = self._store()
        if store is not None:
            for name in store.names():
                try:
                    count, nbytes = store.get(name).stats()
                except Exception:  # deleted between names() and get(): skip it
                    continue
                vectors.add_metric([name], count)
                size.add_metric([name], nbytes)
        yield vectors
        yield size


def route_template(app, scope) -> str:
    """The template of the route that matches ``scope`` (the docs and schema routes do not record
    themselves in the scope as API routes do), or "unmatched"."""
    from starlette.routing import Match

    node = app
    while node is not None and not hasattr(node, "routes"):  # through the middleware layers
        node = getattr(node, "router", None) or getattr(node, "app", None)
    for route in getattr(node, "routes", ()):
        if route.matches(scope)[0] == Match.FULL:
            return getattr(route, "path", "unmatched")
    return "unmatched"


class MetricsMiddleware:
    """Labels by route template (``/indexes/{name}/search``), not raw path, to keep label sets bounded."""

    def __init__(self, app, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = 500

        async def recording_send(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            path = getattr(scope.get("route"), "path", None) or route_template(self.app, scope)
            self.metrics.requests.labels(path, scope["method"], str(status)).inc()
            self.metrics.latency.labels(path, scope["method"]).observe(time.perf_counter() - start)
