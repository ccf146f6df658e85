"""Race-control commands are validated against the race folder before publishing."""

from __future__ import annotations

import pytest
from broadcast_records import MINI

from broadcast.commands import CommandError, build_command
from broadcast.views import RaceView
from race_engine.racefolder import load_race

VIEW = RaceView(load_race(MINI))


@pytest.mark.parametrize("fields", [
    {"op": "dnf", "bib": "1", "reason": "hypothermia"}, {"op": "dns", "bib": "2"},
    {"op": "reinstate", "bib": "1"}, {"op": "reassign", "device": "ZGM-9", "bib": "3"},
    {"op": "ack", "alert_id": "mini:1:sos"}, {"op": "resolve_sos", "bib": "1"},
    {"op": "weather", "zone": "top-ridge", "on": True},
    {"op": "manual_split", "bib": "2", "checkpoint": "top", "t_ms": 1779001500000},
])
def test_valid_commands_become_stamped_control_records(fields: dict) -> None:  # type: ignore[type-arg]
    record = build_command(VIEW, fields, "control:maite", 1779001923000)
    assert record == {"v": 1, "race": "mini", "id": record["id"], **fields,
                      "by": "control:maite", "at_ms": 1779001923000}
    assert record["id"].startswith("c-") and list(record)[:4] == ["v", "race", "id", "op"]


def test_a_client_id_is_kept_for_idempotent_retries() -> None:
    record = build_command(VIEW, {"op": "dsq", "bib": "1", "id": "page-42"}, "control:a", 1)
    assert record["id"] == "page-42"


@pytest.mark.parametrize(("fields", "says"), [
    ("dnf", "must be an object"), ({"op": "shoot"}, "not one of"),
    ({"op": "dnf"}, "needs field 'bib'"), ({"op": "dnf", "bib": 7}, "must be a string"),
    ({"op": "dnf", "bib": "99"}, "bib '99' is not in race mini"),
    ({"op": "weather", "zone": "top-ridge", "on": "yes"}, "true or false"),
    ({"op": "weather", "zone": "summit", "on": True}, "use one of top-ridge"),
    ({"op": "manual_split", "bib": "1", "checkpoint": "top", "t_ms": True}, "an integer"),
    ({"op": "manual_split", "bib": "1", "checkpoint": "moon", "t_ms": 5}, "checkpoint 'moon'"),
    ({"op": "dnf", "bib": "1", "by": "me"}, "has no field by"),
    ({"op": "dnf", "bib": "1", "reason": "  "}, "1 to 500 characters"),
])
def test_bad_commands_are_refused_naming_the_problem(fields: object, says: str) -> None:
    with pytest.raises(CommandError, match=says):
        build_command(VIEW, fields, "control:maite", 1)
