"""The feed's OpenAPI document takes the shapes it shares with the records from them.

``docs/openapi/feed.json`` is kept by hand for its paths and responses; the schemas of
the board, the runner card and the alert (and everything they contain) are generated
from the records (``zegama-live topics --openapi`` writes them in), and a test fails
when the document and the records differ.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

from zegama_live.records.outputs import Alert, Board, Card

FEED_OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "openapi" / "feed.json"
FEED_RECORDS = (Board, Card, Alert)


def feed_components() -> dict[str, Any]:
    """The OpenAPI component schemas of the feed's records, by name."""
    _, components = msgspec.json.schema_components(
        FEED_RECORDS, ref_template="#/components/schemas/{name}")
    return components


def with_records(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` (the feed's OpenAPI document) with the records' schemas in, and the
    schemas nothing refers to any more taken out."""
    schemas = doc["components"]["schemas"]
    schemas.update(feed_components())
    while True:
        text = json.dumps(doc)
        unused = [name for name in schemas
                  if f'"#/components/schemas/{name}"' not in text]
        if not unused:
            return doc
        for name in unused:
            del schemas[name]


def write_feed_openapi(path: Path = FEED_OPENAPI) -> None:
    doc = json.loads(path.read_text())
    path.write_text(json.dumps(with_records(doc), indent=2) + "\n")
