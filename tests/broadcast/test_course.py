"""The course the pages draw, from the real Zegama race folder."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

from broadcast.course import course_payload, race_summary
from race_engine.racefolder import load_race

ZEGAMA = Path(__file__).resolve().parents[2] / "races" / "zegama-2026"


def test_the_course_is_downsampled_to_about_500_points_start_to_finish() -> None:
    race = load_race(ZEGAMA)
    body = course_payload(race)
    dist = [p["dist_m"] for p in body["points"]]
    assert 400 <= len(dist) <= 500 < len(race.course.dist)
    assert dist[0] == 0.0 and dist[-1] == round(race.course.length_m, 1)
    assert dist == sorted(dist)
    steps = [b - a for a, b in pairwise(dist)]
    assert max(steps) < 3 * race.course.length_m / 500  # evenly spread, no long gap
    assert body["climb_m"] == 2736.0
    assert [c["id"] for c in body["checkpoints"]] == [c.id for c in race.checkpoints]
    cutoffs = [c for c in body["checkpoints"] if c["cutoff_s"] is not None]
    assert all(c["cutoff_ms"] == race.start_ms + c["cutoff_s"] * 1000 for c in cutoffs)
    zone = body["danger_zones"][0]
    assert zone["from_km"] < zone["to_km"]
    profile = body["profile"]
    assert len(profile["dist_m"]) == len(profile["ele"]) and profile["dist_m"][-1] == 42195.0


def test_the_race_summary_names_the_race_and_its_checkpoints() -> None:
    race = load_race(ZEGAMA)
    summary = race_summary(race)
    assert summary["id"] == "zegama-2026" and summary["entrants"] == 500
    assert summary["checkpoints"][-1]["id"] == "finish"
