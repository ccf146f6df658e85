"""Keys, tokens and the per-key token bucket."""

from __future__ import annotations

from broadcast.credentials import Caller, Credentials
from broadcast.ratelimit import RateLimiter


def test_feed_keys_and_control_tokens() -> None:
    creds = Credentials((("tv", "k1"),), (("maite", "t1"),))
    assert creds.feed_caller("k1") == Caller("tv", False)
    assert creds.feed_caller("t1") == Caller("maite", True)  # a token is also a feed key
    assert creds.feed_caller("k2") is None
    assert creds.control_name("t1") == "maite"
    assert creds.control_name("k1") is None  # a feed key opens no control channel
    assert creds.control_name(None) is None  # type: ignore[arg-type]


def test_the_bucket_allows_a_burst_then_the_rate() -> None:
    limiter = RateLimiter(rate=2.0, burst=3)
    assert [limiter.take("a", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a", 0.0) == 0.5
    assert limiter.take("b", 0.0) == 0.0  # its own bucket
    assert limiter.take("a", 0.5) == 0.0  # one token came back in 0.5 s
    assert limiter.take("a", 0.5) > 0
