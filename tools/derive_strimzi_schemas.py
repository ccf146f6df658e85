"""Derive the JSON Schemas the manifest checks need from Strimzi's CRDs.

    python tools/derive_strimzi_schemas.py CRD_DIR [KIND ...]

Reads each ``*-Crd-*.yaml`` in CRD_DIR (Strimzi's ``packaging/install/cluster-operator/``,
Apache License 2.0) and writes the served version's ``openAPIV3Schema`` of each KIND
(default: KafkaTopic) to ``deploy/k8s/schemas/<kind>.<version>.json``, with the CRD's
group and version. The checks in ``make test`` read only those files, never CRD_DIR.
Needs PyYAML (not a project dependency: this runs once, when the CRDs are updated).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml  # type: ignore[import-untyped]

OUT = Path(__file__).resolve().parents[1] / "deploy" / "k8s" / "schemas"


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    kinds = set(argv[1:]) or {"KafkaTopic"}
    found = set()
    for path in sorted(Path(argv[0]).glob("*-Crd-*.yaml")):
        crd = yaml.safe_load(path.read_text())
        kind = crd["spec"]["names"]["kind"]
        if kind not in kinds:
            continue
        version = next(v for v in crd["spec"]["versions"] if v.get("served"))
        doc = {"x-source": f"{path.name}, {crd['spec']['group']}/{version['name']}",
               **version["schema"]["openAPIV3Schema"]}
        out = OUT / f"{kind.lower()}.{version['name']}.json"
        out.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
        print(f"wrote {out}")
        found.add(kind)
    missing = kinds - found
    if missing:
        print(f"no CRD for {', '.join(sorted(missing))} in {argv[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
