import math

from race_engine.crossing import MIN_SIGMA_M, crossing, crossing_time, fit, fit_line


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


def test_the_crossing_s_error_grows_with_noise_and_with_extrapolation() -> None:
    ts = [float(t) for t in range(-90, 1, 10)]
    wobble = [8.0, -12.0, 5.0, 14.0, -6.0, -15.0, 9.0, 3.0, -10.0, 11.0]
    clean = [1000.0 + 3.0 * t for t in ts]
    noisy = [p + 2.0 * e for p, e in zip(clean, wobble, strict=True)]
    at_last = crossing(ts, noisy, 1000.0)
    beyond = crossing(ts, noisy, 1090.0)  # 30 s past the last point
    quiet = crossing(ts, clean, 1000.0)
    assert at_last is not None and beyond is not None and quiet is not None
    assert quiet[1] < at_last[1] < beyond[1]
    # Never surer than GPS noise allows: the spread's floor over the speed, sqrt(1/n).
    assert quiet[1] >= MIN_SIGMA_M / 3.0 / math.sqrt(len(ts)) - 1e-9
    line = fit(ts, noisy)
    assert line is not None and line.n == len(ts) and line.sigma > MIN_SIGMA_M
