"""The OpenAPI document matches the service: every route, truthful examples."""

from __future__ import annotations

import json
from pathlib import Path

from ingest.app import build_api_app
from ingest.chipreads import decode_chip_read
from ingest.osmand import decode_json
from race_engine.fixes import decode_fix

SPEC = json.loads((Path(__file__).parents[2] / "docs" / "openapi" / "ingest.json").read_text())


def test_every_api_route_is_documented(ingest: object) -> None:
    app = build_api_app(ingest)  # type: ignore[arg-type]
    routes = {(r.method.lower(), r.resource.canonical) for r in app.router.routes()
              if r.resource is not None and r.method != "HEAD"}
    documented = {(m, p) for p, ops in SPEC["paths"].items() for m in ops}
    assert routes <= documented, routes - documented
    assert SPEC["openapi"].startswith("3.")


def test_examples_decode() -> None:
    paths = SPEC["paths"]
    for fix in paths["/v1/pings"]["post"]["requestBody"]["content"]["application/json"]["example"]:
        decode_fix(fix)
    reads = paths["/v1/chip-reads"]["post"]["requestBody"]["content"]["application/json"]
    for read in reads["example"]:
        decode_chip_read(read)
    traccar = paths["/"]["post"]["requestBody"]["content"]["application/json"]["example"]
    assert decode_json(traccar, now_ms=1_779_001_200_000).speed == 3.2


def test_every_reference_resolves() -> None:
    text = json.dumps(SPEC)
    schemas = SPEC["components"]["schemas"]
    for name in {part.split('"')[0] for part in text.split("#/components/schemas/")[1:]}:
        assert name in schemas, name
