"""The one declared list of Kafka topics.

The local broker's topics are created from this list (``zegama-live kafka start``), and
the deployment manifests are checked against it. Names follow ``<thing>.v<N>``; a
breaking change of a record's shape means a new topic, never an in-place change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from zegama_live.records.codec import Codec
from zegama_live.records.control import CONTROL_CODEC, CONTROL_LOG_CODEC
from zegama_live.records.inputs import CHIP_READS_CODEC, PINGS_CODEC
from zegama_live.records.internal import RACE_BOARD_CODEC, RACE_SETTINGS_CODEC
from zegama_live.records.outputs import ALERTS_CODEC, RUNNER_UPDATES_CODEC, STANDINGS_CODEC

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


@dataclass(frozen=True, slots=True)
class Topic:
    """A topic and the codec of the records it carries (``codec.encode``/``decode``)."""

    name: str
    partitions: int
    key: str
    purpose: str
    codec: Codec[Any]
    config: dict[str, str] = field(default_factory=dict)


# Partitions: 6 for the per-runner inputs, so a race can spread over up to 6 processor
# workers (a 2-core machine runs 1-2); ordering holds per key, i.e. per runner.
# Inputs are kept 7 days: a race day plus time to replay it after an incident.
# Outputs keyed per race are compacted so a restarted broadcaster reads the latest
# state of every key, with enough retention for a race day of history.
TOPICS: tuple[Topic, ...] = (
    Topic(
        "pings.v1", 6, "race:bib",
        "Device fixes accepted by ingest, in arrival order per runner.",
        PINGS_CODEC,
        {"retention.ms": str(7 * DAY_MS), "cleanup.policy": "delete"},
    ),
    Topic(
        "chip-reads.v1", 6, "race:bib",
        "Timing-mat reads at checkpoints, the second source of truth for splits.",
        CHIP_READS_CODEC,
        {"retention.ms": str(7 * DAY_MS), "cleanup.policy": "delete"},
    ),
    Topic(
        "control.v1", 1, "race",
        "Race-control commands (DNF, reassign device, ack alert, weather alert), one "
        "partition so every command is applied in one total order.",
        CONTROL_CODEC,
        {"retention.ms": str(30 * DAY_MS), "cleanup.policy": "delete"},
    ),
    Topic(
        "runner-updates.v1", 6, "race:bib",
        "A runner's new state whenever it changes; compacted: the latest per runner.",
        RUNNER_UPDATES_CODEC,
        {"cleanup.policy": "compact", "min.compaction.lag.ms": str(HOUR_MS)},
    ),
    Topic(
        "standings.v1", 1, "race",
        "The race board: deltas at most every 0.5 s and periodic full snapshots.",
        STANDINGS_CODEC,
        {"retention.ms": str(2 * DAY_MS), "cleanup.policy": "delete"},
    ),
    Topic(
        "alerts.v1", 3, "race:alert-id",
        "Alerts raised and cleared, with stable ids; compacted: the latest per alert.",
        ALERTS_CODEC,
        {"cleanup.policy": "compact", "min.compaction.lag.ms": str(HOUR_MS)},
    ),
    Topic(
        "control-log.v1", 1, "race",
        "The audit of race control: every command with who, when, why and its result.",
        CONTROL_LOG_CODEC,
        {"retention.ms": str(30 * DAY_MS), "cleanup.policy": "delete"},
    ),
)

# Replication by environment, (replication factor, min.insync.replicas): one local
# broker, or a cluster of three where a write needs two replicas, so a broker can be
# lost with nothing acknowledged lost (producers use acks=all and idempotence).
LOCAL, CLUSTER = "local", "cluster"
REPLICATION = {LOCAL: (1, 1), CLUSTER: (3, 2)}


def replicated(t: Topic, environment: str) -> tuple[int, dict[str, str]]:
    """The replication factor and the topic config of ``t`` in ``environment``."""
    rf, isr = REPLICATION[environment]
    return rf, {**t.config, "min.insync.replicas": str(isr)}


BY_NAME = {t.name: t for t in TOPICS}
PINGS = BY_NAME["pings.v1"].name
CHIP_READS = BY_NAME["chip-reads.v1"].name
CONTROL = BY_NAME["control.v1"].name
RUNNER_UPDATES = BY_NAME["runner-updates.v1"].name
STANDINGS = BY_NAME["standings.v1"].name
ALERTS = BY_NAME["alerts.v1"].name
CONTROL_LOG = BY_NAME["control-log.v1"].name


# The tables hold a runner's stored parts (stream_processors.store): JSON objects.
TABLE_CODEC: Codec[Any] = Codec(dict[str, Any], "table")


def internal_topics(app_id: str) -> tuple[Topic, ...]:
    """The processors' own topics for consumer group ``app_id``: the routed runner
    commands, the per-race stage's input, the races' settings for every worker and the
    tables' changelogs (Faust's names). The per-race topic and tables have as many
    partitions as the inputs, so many races spread over workers."""
    compact = {"cleanup.policy": "compact"}
    return (
        Topic(f"{app_id}-runner-commands", 6, "race:bib",
              "Runner commands routed to the partition of the runner they change.",
              CONTROL_CODEC),
        Topic(f"{app_id}-race-board", 6, "race",
              "Runner summaries, race commands and audits for the per-race stage.",
              RACE_BOARD_CODEC),
        Topic(f"{app_id}-race-settings", 1, "race",
              "Each race's settings (weather, devices), read whole by every worker.",
              RACE_SETTINGS_CODEC, compact),
        Topic(f"{app_id}-runners-changelog", 6, "race:bib",
              "Changelog of the per-runner stage's table.", TABLE_CODEC, compact),
        Topic(f"{app_id}-race-summaries-changelog", 6, "race:bib",
              "Changelog of the per-race stage's runner summaries.", TABLE_CODEC, compact),
        Topic(f"{app_id}-races-changelog", 6, "race",
              "Changelog of the per-race stage's race table.", TABLE_CODEC, compact),
    )


def runner_key(race: str, bib: str) -> bytes:
    """The key that keeps one runner's events in order on one partition."""
    return f"{race}:{bib}".encode()
