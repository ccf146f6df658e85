"""The cluster's KafkaTopic resources: generated from the one declared topic list, valid
against Strimzi's schema, and never drifting from the list."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import jsonschema
import pytest

from zegama_live.manifests import KAFKA_TOPICS, STRIMZI_API, kafka_topics, parse, render
from zegama_live.topics import CLUSTER, LOCAL, TOPICS, replicated

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "schemas"
                     / "kafkatopic.v1.json").read_text())
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def test_the_manifest_on_disk_is_the_declared_list() -> None:
    assert KAFKA_TOPICS.read_text() == render(kafka_topics()), \
        "deploy/k8s/base/kafka-topics.yaml differs from zegama_live/topics.py: run " \
        "`zegama-live topics --kafkatopics`"


def test_every_topic_is_a_valid_strimzi_kafkatopic_replicated_three_times() -> None:
    docs = parse(KAFKA_TOPICS.read_text())
    assert [d["metadata"]["name"] for d in docs] == [t.name for t in TOPICS]
    assert SCHEMA["x-source"].endswith(STRIMZI_API)
    validator = jsonschema.Draft7Validator(SCHEMA)
    for doc, topic in zip(docs, TOPICS, strict=True):
        validator.validate(doc)
        assert doc["kind"] == "KafkaTopic" and doc["apiVersion"] == STRIMZI_API
        assert DNS_SUBDOMAIN.match(doc["metadata"]["name"]) and len(topic.name) <= 253
        spec = doc["spec"]
        assert spec["partitions"] == topic.partitions and spec["replicas"] == 3
        assert spec["config"] == {**topic.config, "min.insync.replicas": "2"}
        assert doc["metadata"]["labels"]["strimzi.io/cluster"] == "zegama"


def test_the_schema_check_rejects_a_broken_topic() -> None:
    doc = copy.deepcopy(kafka_topics()[0])
    doc["spec"]["partitions"] = 0
    with pytest.raises(jsonschema.ValidationError, match="minimum"):
        jsonschema.Draft7Validator(SCHEMA).validate(doc)


def test_replication_by_environment() -> None:
    t = TOPICS[0]
    assert replicated(t, LOCAL) == (1, {**t.config, "min.insync.replicas": "1"})
    assert replicated(t, CLUSTER)[0] == 3
