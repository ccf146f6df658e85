"""Repeated warnings and errors are counted, not written (zegama_live/repeats.py)."""

from __future__ import annotations

import logging

from zegama_live.repeats import RepeatFilter


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def record(msg: str, *args: object, level: int = logging.ERROR,
           name: str = "aiokafka.conn") -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_the_first_of_a_kind_pass_and_the_next_let_through_says_how_many_were_not() -> None:
    clock = Clock()
    f = RepeatFilter(burst=5, period_s=60, clock=clock)
    passed = []
    for i in range(1000):  # an outage: the same error 100 times a second, node ids vary
        clock.t = i / 100
        r = record("Unable connect to node with id %s: %s", i % 3, "refused")
        if f.filter(r):
            passed.append(r.getMessage())
    assert len(passed) == 5
    clock.t = 61.0
    r = record("Unable connect to node with id %s: %s", 1, "refused")
    assert f.filter(r)
    assert r.getMessage() == ("Unable connect to node with id 1: refused [and 995 more like "
                              "this in the last 60 s, not logged]")


def test_other_kinds_loggers_and_info_lines_are_not_held_back() -> None:
    f = RepeatFilter(burst=1, period_s=60, clock=Clock())
    assert f.filter(record("a %s", 1)) and not f.filter(record("a %s", 2))
    assert f.filter(record("b %s", 1))  # another message
    assert f.filter(record("a %s", 1, name="aiokafka.cluster"))  # another logger
    assert f.filter(record("a %s", 1, level=logging.WARNING))  # another level
    assert all(f.filter(record("a %s", 1, level=logging.INFO)) for _ in range(100))


def test_the_kinds_held_are_bounded() -> None:
    f = RepeatFilter(burst=1, period_s=60, max_kinds=10, clock=Clock())
    for i in range(1000):  # a stranger's input in every message template
        f.filter(record(f"unique {i}"))
    assert len(f._kinds) == 10


def test_a_formatter_that_wraps_args_still_formats_the_summary_line() -> None:
    clock = Clock()
    f = RepeatFilter(burst=1, period_s=10, clock=clock)
    f.filter(record("x %s", 1))
    f.filter(record("x %s", 2))
    clock.t = 11
    r = record("x %s", 3)
    assert f.filter(r)
    r.args = tuple(r.args or ())  # what Faust's (mode's) formatter does to args
    assert r.getMessage() == "x 3 [and 1 more like this in the last 10 s, not logged]"


def test_a_record_seen_by_several_handlers_counts_once() -> None:
    f = RepeatFilter(burst=2, period_s=60, clock=Clock())
    verdicts = []
    for i in range(3):
        r = record("y %s", i)
        verdicts.append([f.filter(r), f.filter(r)])  # the root's two handlers
    assert verdicts == [[True, True], [True, True], [False, False]]
