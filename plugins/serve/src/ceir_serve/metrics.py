"""Prometheus metrics of one server: one registry per app, so two apps in a process never collide."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: Routes measured by name; anything else is counted as "other" (a scanner probing random
#: paths must not create a label per path).
ROUTES = ("/v1/embeddings", "/v1/explain", "/v1/search", "/v1/items", "/v1/items/{id}", "/v1/models",
          "/health", "/ready", "/metrics")


def route_label(path: str) -> str:
    if path.startswith("/v1/items/"):
        return "/v1/items/{id}"
    return path if path in ROUTES else "other"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("ceir_requests", "HTTP requests answered, by route, method and status",
                                ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram("ceir_request_seconds", "Request latency in seconds, by route", ["route"],
                                 buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30),
                                 registry=self.registry)
        self.batch_size = Histogram("ceir_batch_size", "Items per inference batch, by kind (image, text)", ["kind"],
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=self.registry)
        self.queue_depth = Gauge("ceir_queue_depth", "Items waiting for a batch, by kind", ["kind"],
                                 registry=self.registry)
        self.items = Counter("ceir_items", "Inputs embedded, by kind", ["kind"], registry=self.registry)

    def on_batch(self, kind: str, size: int) -> None:
        self.batch_size.labels(kind).observe(size)
        self.items.labels(kind).inc(size)

    def on_depth(self, kind: str, depth: int) -> None:
        self.queue_depth.labels(kind).set(depth)
