"""Prometheus metrics of the broadcaster, in a registry of its own.

Frames per second is ``rate(zegama_broadcast_frames_sent_total[1m])``; a rising
``dropped_updates`` or ``disconnects{reason="slow"}`` says clients cannot keep up, a
rising ``kafka_lag`` that the broadcaster cannot.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST


class BroadcastMetrics:
    """The broadcaster's counters and gauges."""

    def __init__(self, lag: Callable[[], int] = lambda: 0) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.connections = Gauge("zegama_broadcast_connections", "Open websocket connections",
                                 registry=r)
        self.subscriptions = Gauge("zegama_broadcast_subscriptions",
                                   "Channel subscriptions over all connections", registry=r)
        self.channels = Gauge("zegama_broadcast_channels",
                              "Distinct channels computed each tick (followed, or within "
                              "the resume window of their last follower)", registry=r)
        self.frames_encoded = Counter("zegama_broadcast_frames_encoded",
                                      "Channel frames encoded (once per channel per tick)",
                                      registry=r)
        self.frames_sent = Counter("zegama_broadcast_frames_sent",
                                   "Frames written to websocket clients", registry=r)
        self.dropped = Counter("zegama_broadcast_dropped_updates",
                               "Updates superseded before a slow client took them", registry=r)
        self.disconnects = Counter("zegama_broadcast_disconnects",
                                   "Websocket connections closed, by reason", ["reason"],
                                   registry=r)
        self.commands = Counter("zegama_broadcast_commands",
                                "Race-control commands, by result", ["result"], registry=r)
        self.feed = Counter("zegama_broadcast_feed_requests",
                            "Feed requests, by endpoint and HTTP status", ["endpoint", "status"],
                            registry=r)
        self.records = Counter("zegama_broadcast_records", "Kafka records applied", registry=r)
        self.kafka_lag = Gauge("zegama_broadcast_kafka_lag",
                               "Records of the followed topics not read yet", registry=r)
        self.kafka_lag.set_function(lambda: float(lag()))

    def render(self) -> bytes:
        return generate_latest(self.registry)
