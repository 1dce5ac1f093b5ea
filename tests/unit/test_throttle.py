"""The per-receiver cap: only a slow receiver is held back, and only while it is slow."""

import time

from shared.throttle import ReceiverLimiter

URL = "http://receiver.example:8080/hook"


def test_a_fast_receiver_is_never_capped():
    limiter = ReceiverLimiter(limit=2, slow_after=0.05)
    tokens = [limiter.acquire(URL) for _ in range(10)]
    assert all(token is not None for token in tokens)


def test_a_receiver_becomes_capped_once_an_attempt_is_slow():
    limiter = ReceiverLimiter(limit=2, slow_after=0.05, remember=0.3)
    first, second = limiter.acquire(URL), limiter.acquire(URL)
    time.sleep(0.06)
    assert limiter.acquire(URL) is None  # two running, the oldest for longer than slow_after
    assert limiter.acquire("http://other.example/hook") is not None  # others are unaffected
    limiter.release(URL, first)
    third = limiter.acquire(URL)
    assert third is not None  # back under the cap
    assert limiter.acquire(URL) is None  # remembered as slow, so the cap still holds
    limiter.release(URL, second)
    limiter.release(URL, third)
    time.sleep(0.35)
    assert all(limiter.acquire(URL) is not None for _ in range(5))  # forgotten after a while


def test_receivers_are_told_apart_by_scheme_host_and_port():
    limiter = ReceiverLimiter(limit=1, slow_after=0.0)
    assert limiter.acquire("http://a.example:1/x") is not None
    time.sleep(0.01)
    assert limiter.acquire("http://a.example:1/y") is None
    assert limiter.acquire("http://a.example:2/x") is not None
    assert limiter.acquire("https://a.example:1/x") is not None
