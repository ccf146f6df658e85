"""Prometheus metrics of a processor worker (served at /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()

EVENTS = Counter("zegama_process_events_total", "Input records processed, by topic",
                 ["topic"], registry=REGISTRY)
REJECTED = Counter("zegama_process_rejected_total",
                   "Input records skipped, by topic and reason", ["topic", "reason"],
                   registry=REGISTRY)
PUBLISHED = Counter("zegama_process_published_total", "Output records sent, by topic",
                    ["topic"], registry=REGISTRY)
FIX_LAG = Histogram("zegama_process_fix_lag_seconds",
                    "Processing time minus fix time (how late a fix is processed)",
                    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800, 3600),
                    registry=REGISTRY)
BATCH = Histogram("zegama_process_batch_seconds", "Time to process one input batch",
                  buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
                  registry=REGISTRY)
PUBLISH = Histogram("zegama_process_publish_seconds", "Time of one publish round of a race",
                    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
                    registry=REGISTRY)
CONSUMER_LAG = Gauge("zegama_process_consumer_lag", "Records not yet processed, by topic",
                     ["topic"], registry=REGISTRY)
TABLE_KEYS = Gauge("zegama_process_table_keys", "Keys held in memory, by table",
                   ["table"], registry=REGISTRY)
RECOVERY = Gauge("zegama_process_recovery_seconds",
                 "Time from the latest partition assignment to tables recovered",
                 registry=REGISTRY)
ALERTS_OPEN = Gauge("zegama_process_alerts_open", "Open alerts, by race and kind",
                    ["race", "kind"], registry=REGISTRY)
FLUSH = Histogram("zegama_process_flush_seconds",
                  "Wall time of one round of table writes, from its start to the input "
                  "it covers acknowledged",
                  buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
                  registry=REGISTRY)
FLUSH_STEP = Histogram("zegama_process_flush_step_seconds",
                       "Time of one step of table writes (the worker does nothing else "
                       "meanwhile)",
                       buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
                       registry=REGISTRY)
FLUSH_BYTES = Counter("zegama_process_flush_bytes_total",
                      "Bytes of runner state written to the tables", registry=REGISTRY)
TORN = Gauge("zegama_process_torn_summaries",
             "Runner summaries whose curve did not fit the per-race stage's copy (points "
             "before it missing); the runner's next whole curve mends it", registry=REGISTRY)
STALE = Counter("zegama_process_stale_total",
                "Input records fetched before a rebalance and left unprocessed for the "
                "partitions' next owner, by topic", ["topic"], registry=REGISTRY)
