"""A race's view from the processors' records: cards, open alerts, control log, weather,
dedupe."""

from __future__ import annotations

import pytest
from broadcast_records import MINI, RaceRecords

from broadcast.views import ALERT_ORDER, RaceView
from zegama_live.topics import ALERTS, CONTROL_LOG, RUNNER_UPDATES, STANDINGS


def fed() -> tuple[RaceRecords, RaceView, list[tuple[str, str, dict]]]:  # type: ignore[type-arg]
    rr = RaceRecords(MINI)
    view = RaceView(rr.race)
    records = [rec for tick in rr.run() for rec in tick]
    for topic, _, rec in records:
        view.apply(topic, rec)
    return rr, view, records


def test_cards_are_the_latest_per_bib_and_alerts_the_open_set() -> None:
    rr, view, records = fed()
    latest = {r["bib"]: r for t, _, r in records if t == RUNNER_UPDATES}
    assert {b: h["card"] for b, h in view.runners.items()} == \
        {b: r["card"] for b, r in latest.items()}
    assert view.runner_seq == max(r["seq"] for r in latest.values())
    truth = {a["id"] for a in rr.engine.alerts()}
    assert {a["id"] for a in view.open_alerts()} == truth
    urgency = [ALERT_ORDER.index(a["kind"]) for a in view.open_alerts()]
    assert urgency == sorted(urgency) and len(urgency) >= 2


def test_old_and_repeated_records_are_skipped() -> None:
    _rr, view, records = fed()
    before = (dict(view.runners), dict(view.alerts), view.board.board)
    for topic, _, rec in records[: len(records) // 2]:
        assert not view.apply(topic, rec)
    assert (dict(view.runners), dict(view.alerts), view.board.board) == before
    assert view.duplicates > 0 and view.board.skipped > 0


def test_acknowledged_alerts_say_by_whom_and_the_log_keeps_200() -> None:
    rr, view, _ = fed()
    alert = view.open_alerts()[0]
    view.apply(ALERTS, {"v": 1, "race": "mini", "seq": rr.next_seq(), "t_ms": 1,
                        "action": "acknowledged", "alert": {**alert, "acknowledged": True},
                        "by": "control:maite"})
    assert view.alerts[alert["id"]]["acknowledged_by"] == "control:maite"
    view.take_pending()
    for i in range(250):
        command = {"id": f"c-{i}", "op": "dnf", "bib": "1", "by": "control:maite",
                   "at_ms": 1000 + i}
        topic, _, rec = rr.control_log(command)
        view.apply(topic, rec)
    assert len(view.log) == 200 and view.log[-1]["id"] == "c-249" and "v" not in view.log[-1]
    assert len(view.take_pending().log) == 250


def weather_entry(rr: RaceRecords, i: int, on: bool, result: str = "applied",
                  by: str = "control:maite", zone: str = "top-ridge") -> dict:  # type: ignore[type-arg]
    command = {"v": 1, "race": rr.race.id, "id": f"c-w{i}", "op": "weather", "zone": zone,
               "on": on, "by": by, "at_ms": 5000 + i}
    return rr.control_log(command, result)[2]


def test_the_weather_state_follows_applied_and_unchanged_weather_commands() -> None:
    rr = RaceRecords(MINI)
    view = RaceView(rr.race)
    assert view.weather == {}
    view.apply(CONTROL_LOG, weather_entry(rr, 1, True))
    on = {"on": True, "by": "control:maite", "t_ms": 5051}
    assert view.weather == {"top-ridge": on}
    assert view.take_pending().weather == {"top-ridge": on}
    # A repeat (the processors say unchanged) keeps who switched it on and when.
    view.apply(CONTROL_LOG, weather_entry(rr, 2, True, "unchanged", by="control:ane"))
    pending = view.take_pending()
    assert view.weather == {"top-ridge": on} and pending.weather == {} and len(pending.log) == 1
    # A rejected command changes nothing; nor does an entry that lacks the zone or 'on'.
    view.apply(CONTROL_LOG, weather_entry(rr, 3, False, "rejected"))
    odd = weather_entry(rr, 4, False)
    del odd["command"]["on"]
    view.apply(CONTROL_LOG, odd)
    assert view.weather == {"top-ridge": on} and view.take_pending().weather == {}
    # Turned off by someone else; then an "unchanged" off of a zone never switched.
    view.apply(CONTROL_LOG, weather_entry(rr, 5, False, by="control:ane"))
    view.apply(CONTROL_LOG, weather_entry(rr, 6, False, "unchanged", zone="low-ford"))
    off = {"on": False, "by": "control:ane", "t_ms": 5055}
    assert view.weather == {"top-ridge": off,
                            "low-ford": {"on": False, "by": "control:maite", "t_ms": 5056}}
    assert set(view.take_pending().weather) == {"top-ridge", "low-ford"}


def test_the_weather_state_outlives_the_log_kept_and_ignores_duplicates() -> None:
    rr = RaceRecords(MINI)
    view = RaceView(rr.race)
    first = weather_entry(rr, 1, True)
    view.apply(CONTROL_LOG, first)
    for i in range(250):
        command = {"id": f"c-{i}", "op": "dnf", "bib": "1", "by": "control:maite",
                   "at_ms": 1000 + i}
        view.apply(*rr.control_log(command)[::2])
    assert all(e["op"] == "dnf" for e in view.log)  # the weather entry left the log...
    assert view.weather["top-ridge"]["on"] is True  # ...its state did not
    view.take_pending()
    assert not view.apply(CONTROL_LOG, {**first, "command": {**first["command"], "on": False}})
    assert view.weather["top-ridge"]["on"] is True and view.take_pending().weather == {}


@pytest.mark.parametrize(("topic", "record", "says"), [
    (RUNNER_UPDATES, {"bib": "1", "seq": "7"}, "'seq' must be an integer"),
    (RUNNER_UPDATES, {"bib": "1", "seq": 7}, "lacks 'card' or 'track'"),
    (ALERTS, {"seq": 7, "action": "exploded", "alert": {"id": "x"}}, "raised/cleared"),
    (STANDINGS, {"seq": 7, "type": "delta"}, "'snapshot' or 'update'"),
    (CONTROL_LOG, {"seq": None}, "'seq' must be an integer"),
    ("pings.v1", {"seq": 1}, "not one the broadcaster follows"),
])
def test_bad_records_raise_naming_the_field(topic: str, record: dict, says: str) -> None:  # type: ignore[type-arg]
    view = RaceView(RaceRecords(MINI).race)
    with pytest.raises(ValueError, match=says):
        view.apply(topic, record)
