"""Alert rules (pure functions of runner state and now) and the alert book."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from race_engine.alerts import ORDER, SEVERITY, AlertBook, Rules, evaluate
from race_engine.course import Course
from race_engine.model import AlertThresholds, DangerZone, Status
from race_engine.projections import Eta, p_by
from race_engine.runner import CHIP, MANUAL, Layout, RunnerState

START = 1_800_000_000_000
MIN = 60_000
COURSE = Course.from_points(43.0 + np.linspace(0, 5000 / 111_195.0, 101), np.full(101, -2.3))
LAYOUT = Layout(START, ("start", "cp", "finish"), (0.0, 2500.0, COURSE.length_m),
                {"start": 0, "cp": 1, "finish": 2})
RULES = Rules("zeg", COURSE, AlertThresholds(), (("cp", START + 60 * MIN),),
              (DangerZone("ridge", "Ridge", 1.0, 2.0),))


def at(minutes: float) -> int:
    return START + round(minutes * MIN)


def runner(*obs: tuple[float, float], off: float = 5.0) -> RunnerState:
    r = RunnerState("9", LAYOUT)
    for minutes, p in obs:
        r.add_fix(at(minutes), p, off, 43.0, -2.3)
    return r


def kinds(r: RunnerState, now: int, **kw: object) -> set[str]:
    return {a.kind for a in evaluate(r, RULES, now, **kw)}  # type: ignore[arg-type]


def test_moving_runner_has_no_alerts() -> None:
    r = runner((5, 1000.0), (10, 2000.0))
    assert kinds(r, at(11)) == set()


def test_no_fix_after_the_threshold_with_raise_time_from_the_last_fix() -> None:
    r = runner((5, 1000.0))
    assert "no_fix" not in kinds(r, at(14))
    (a,) = [a for a in evaluate(r, RULES, at(16)) if a.kind == "no_fix"]
    assert a.raised_ms == at(15) and a.id == "zeg:9:no_fix" and a.severity == "medium"


def test_device_never_heard_from_after_the_start() -> None:
    assert "no_fix" in kinds(runner(), at(11))
    assert "no_fix" not in kinds(runner(), at(11), has_device=False)
    assert kinds(runner(), at(-30)) == set()  # before the start nothing is due


def test_stopped_while_fixes_keep_arriving() -> None:
    r = runner((5, 1000.0), *((5 + k, 1010.0 + k) for k in range(1, 10)))
    assert "stopped" in kinds(r, at(14.5))
    r.add_fix(at(15), 1300.0, 5.0, 43.0, -2.3)
    assert "stopped" not in kinds(r, at(15.5))


def test_off_course_only_after_the_duration() -> None:
    r = runner((5, 1000.0), (6, 1200.0))
    r.add_fix(at(7), 1200.0, 400.0, 43.01, -2.31)
    r.add_fix(at(8), 1200.0, 420.0, 43.01, -2.31)
    assert "off_course" not in kinds(r, at(8))
    r.add_fix(at(9.1), 1200.0, 430.0, 43.01, -2.31)
    (a,) = [a for a in evaluate(r, RULES, at(9.2)) if a.kind == "off_course"]
    assert a.raised_ms == at(9) and (a.lat, a.lon) == (43.01, -2.31)
    r.add_fix(at(9.5), 1300.0, 10.0, 43.0, -2.3)
    assert "off_course" not in kinds(r, at(9.6))


def test_low_battery() -> None:
    r = runner((5, 1000.0))
    r.add_fix(at(6), 1200.0, 5.0, 43.0, -2.3, bat=0.1)
    assert "low_battery" in kinds(r, at(6))


def test_missed_cutoff_late_split_or_no_split() -> None:
    late = runner((30, 1500.0), (70, 2600.0))
    (a,) = [a for a in evaluate(late, RULES, at(71)) if a.kind == "missed_cutoff"]
    assert a.subject == "cp" and a.id == "zeg:9:missed_cutoff:cp"
    slow = runner((30, 1500.0), (59, 2000.0))
    assert "missed_cutoff" not in kinds(slow, at(59))
    assert "missed_cutoff" in kinds(slow, at(61))
    ok = runner((30, 1500.0), (50, 2600.0))
    assert "missed_cutoff" not in kinds(ok, at(80))


def test_cutoff_risk_uses_the_optimistic_edge() -> None:
    r = runner((30, 1500.0))
    risky = [Eta("cp", at(70), at(65), at(80), "record-ratio")]
    fine = [Eta("cp", at(70), at(55), at(80), "record-ratio")]
    assert "cutoff_risk" in kinds(r, at(31), etas=risky)
    assert "cutoff_risk" not in kinds(r, at(31), etas=fine)


def test_danger_zone_only_while_the_weather_alert_is_on() -> None:
    r = runner((5, 800.0), (10, 1500.0))
    assert "danger_zone" not in kinds(r, at(10))
    (a,) = [a for a in evaluate(r, RULES, at(10), weather={"ridge"}) if a.kind == "danger_zone"]
    assert a.id == "zeg:9:danger_zone:ridge" and a.raised_ms == at(5 + 5 * 200 / 700)


def test_sos_is_critical_and_the_only_alert_for_a_runner_out_of_the_race() -> None:
    r = runner((5, 1000.0))
    r.add_fix(at(6), 1100.0, 5.0, 43.0, -2.3, bat=0.05, sos=True)
    assert {"sos", "low_battery"} <= kinds(r, at(6))
    r.set_status(Status.DNF, "rescued", at(7))
    assert kinds(r, at(60)) == {"sos"}
    assert SEVERITY["sos"] == "critical" and ORDER[0] == "sos"


def test_finished_runner_has_no_alerts() -> None:
    r = runner((5, 1000.0))
    r.set_split("finish", at(30), CHIP)
    r.refresh_status()
    assert kinds(r, at(200)) == set()


def test_book_raises_clears_and_keeps_acknowledgement() -> None:
    book = AlertBook()
    r = runner((5, 1000.0))
    raised = book.update("9", evaluate(r, RULES, at(16)))
    assert [(c["action"], c["alert"]["kind"]) for c in raised] == [("raised", "no_fix")]
    assert book.acknowledge("zeg:9:no_fix")[0]["alert"]["acknowledged"] is True
    assert book.acknowledge("zeg:9:no_fix") == []
    assert book.update("9", evaluate(r, RULES, at(20))) == []  # still on, still acked
    assert book.sorted()[0].acknowledged and book.sorted()[0].raised_ms == at(15)
    r.add_fix(at(21), 1500.0, 5.0, 43.0, -2.3)
    cleared = book.update("9", evaluate(r, RULES, at(21)))
    assert [c["action"] for c in cleared] == ["cleared"] and book.sorted() == []
    try:
        book.acknowledge("zeg:9:no_fix")
    except ValueError as e:
        assert "no active alert" in str(e)
    else:
        raise AssertionError("acknowledging a cleared alert was accepted")


def test_book_orders_by_kind_then_raise_time() -> None:
    book = AlertBook()
    quiet = runner((5, 1000.0))
    sos = runner((5, 1000.0))
    sos.bib = "1"
    sos.add_fix(at(40), 1200.0, 5.0, 43.0, -2.3, sos=True)
    book.update("9", evaluate(quiet, RULES, at(41)))
    book.update("1", evaluate(sos, RULES, at(41)))
    assert [a.kind for a in book.sorted()] == ["sos", "no_fix"]


def test_a_held_chip_read_is_an_alert_at_its_checkpoint_until_a_manual_split() -> None:
    r = runner((5, 1000.0), (10, 2000.0))
    read = at(10) + 60_000  # 2500 m from the gun in 11 min is fine...
    assert r.chip_read("cp", read) == ["cp"]
    r = runner((5, 1000.0), (10, 2000.0))
    read = at(4)  # ...in 4 min it is 10.4 m/s
    assert r.chip_read("cp", read) == []
    (a,) = [a for a in evaluate(r, RULES, at(11)) if a.kind == "implausible_chip_read"]
    assert (a.id, a.severity, a.subject, a.raised_ms) == (
        "zeg:9:implausible_chip_read:cp", "low", "cp", read)
    assert (a.progress_m, (a.lat, a.lon)) == (2500.0, COURSE.position_at(2500.0))
    assert "chip read at cp (cp) at race time 0:04:00" in a.message
    assert "10.4 m/s from the split at start (start)" in a.message
    assert "manual split" in a.message and f'"t_ms": {read}' in a.message
    r.set_status(Status.DNF, "knee", at(12))  # about the results, whatever the status
    assert "implausible_chip_read" in kinds(r, at(13))
    r.set_split("cp", read, MANUAL)  # race control decided
    assert "implausible_chip_read" not in kinds(r, at(13))


def test_cutoff_risk_says_how_likely_the_miss_is_and_its_threshold_is_a_probability() -> None:
    r = runner((30, 1500.0))
    # The cutoff (60 min) sits between p10 (55) and the median (70): about a 70% miss.
    eta = [Eta("cp", at(70), at(55), at(80), "record-ratio")]
    assert "cutoff_risk" not in kinds(r, at(31), etas=eta)  # below the default 90%
    eager = replace(RULES, thresholds=AlertThresholds(cutoff_risk_p_miss=0.6))
    (a,) = [a for a in evaluate(r, eager, at(31), etas=eta) if a.kind == "cutoff_risk"]
    p_miss = 1 - p_by(eta[0], at(60))
    assert 0.6 < p_miss < 0.9
    assert f"{p_miss:.0%} likely to miss the cutoff at cp" in a.message
    sure = [Eta("cp", at(120), at(100), at(140), "record-ratio")]
    (b,) = [a for a in evaluate(r, RULES, at(31), etas=sure) if a.kind == "cutoff_risk"]
    assert b.message.startswith("over 99% likely to miss")
