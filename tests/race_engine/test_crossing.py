from race_engine.crossing import crossing_time, fit_line


def test_line_through_noisy_points_ignores_a_multipath_outlier() -> None:
    ts = [float(t) for t in range(0, 100, 10)]
    noise = [3.0, -4.0, 2.0, -1.0, 5.0, -3.0, 0.0, 4.0, -2.0, 1.0]
    ps = [1000.0 + 3.0 * t + e for t, e in zip(ts, noise, strict=True)]
    ps[5] += 120.0  # one fix far ahead
    t = crossing_time(ts, ps, 1150.0)
    assert t is not None and abs(t - 50.0) < 2.0


def test_no_crossing_from_too_few_points_or_a_standing_runner() -> None:
    assert fit_line([0.0, 10.0], [0.0, 30.0]) is None
    assert crossing_time([0.0, 10.0, 20.0, 30.0], [500.0, 501.0, 499.0, 500.0], 600.0) is None
