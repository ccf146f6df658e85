"""Prometheus metrics of the ingest service, in a registry of its own.

Every refusal is counted by reason, so a dashboard shows at a glance whether phones
have wrong clocks (``future_time``), a tracker is missing from entrants.csv
(``unknown_device``) or someone is probing with bad keys (``bad_key``).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class IngestMetrics:
    """The ingest's counters, histograms and gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.fixes_accepted = Counter(
            "zegama_ingest_fixes_accepted", "Fixes acknowledged by Kafka", ["source"], registry=r
        )
        self.fixes_rejected = Counter(
            "zegama_ingest_fixes_rejected", "Fixes refused, by source and reason",
            ["source", "reason"], registry=r,
        )
        self.chip_reads_accepted = Counter(
            "zegama_ingest_chip_reads_accepted", "Chip reads acknowledged by Kafka", registry=r
        )
        self.chip_reads_rejected = Counter(
            "zegama_ingest_chip_reads_rejected", "Chip reads refused, by reason", ["reason"],
            registry=r,
        )
        self.requests_rejected = Counter(
            "zegama_ingest_requests_rejected", "Whole requests refused, by API and reason",
            ["api", "reason"], registry=r,
        )
        self.batch_size = Histogram(
            "zegama_ingest_batch_size", "Items per batch request", ["api"],
            buckets=BATCH_BUCKETS, registry=r,
        )
        self.kafka_ack_seconds = Histogram(
            "zegama_ingest_kafka_ack_seconds", "From handing records to the producer to "
            "Kafka's acknowledgement of all of them", buckets=ACK_BUCKETS, registry=r,
        )
        self.in_flight = Gauge(
            "zegama_ingest_requests_in_flight", "Requests being handled", ["port"], registry=r
        )
        self.kafka_ready = Gauge(
            "zegama_ingest_kafka_ready", "1 when the Kafka producer is connected", registry=r
        )
        self.entrants = Gauge(
            "zegama_ingest_entrants", "Entrants loaded from entrants.csv", registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
