"""The per-receiver cap: a receiver holds more threads only once it has shown itself fast."""

import time

from shared.throttle import ReceiverLimiter

URL = "http://receiver.example:8080/hook"


def _answered_quickly(limiter: ReceiverLimiter, url: str = URL) -> None:
    limiter.release(url, limiter.acquire(url))


def test_a_receiver_not_heard_from_yet_is_capped():
    limiter = ReceiverLimiter(limit=2, slow_after=1.0)
    assert limiter.acquire(URL) is not None
    assert limiter.acquire(URL) is not None
    assert limiter.acquire(URL) is None  # it may be hanging: no more threads until it answers
    assert limiter.acquire("http://receiver.example:8080") is None  # its key counts the same
    assert limiter.acquire("http://other.example/hook") is not None  # others are unaffected


def test_a_share_given_back_without_a_request_does_not_count_as_an_answer():
    limiter = ReceiverLimiter(limit=1, slow_after=1.0)
    limiter.release(URL, limiter.acquire(URL), answered=False)
    assert limiter.acquire(URL) is not None
    assert limiter.acquire(URL) is None  # still not heard from: still capped


def test_a_fast_receiver_is_not_capped():
    limiter = ReceiverLimiter(limit=2, slow_after=0.05)
    _answered_quickly(limiter)
    tokens = [limiter.acquire(URL) for _ in range(10)]
    assert all(token is not None for token in tokens)


def test_a_fast_receiver_is_capped_as_soon_as_an_attempt_is_slow():
    limiter = ReceiverLimiter(limit=2, slow_after=0.05, remember=0.3)
    _answered_quickly(limiter)
    first, second = limiter.acquire(URL), limiter.acquire(URL)
    assert limiter.acquire(URL) is not None  # fast: over the cap is fine
    time.sleep(0.06)
    assert limiter.acquire(URL) is None  # now one has run longer than slow_after
    limiter.release(URL, first)  # slow: remembered as slow
    limiter.release(URL, second)
    assert limiter.acquire(URL) is not None  # one running (the third) + this one: at the cap
    assert limiter.acquire(URL) is None  # remembered as slow, so the cap still holds


def test_slowness_is_forgotten_after_a_while():
    limiter = ReceiverLimiter(limit=1, slow_after=0.05, remember=0.2)
    token = limiter.acquire(URL)
    time.sleep(0.06)
    limiter.release(URL, token)  # slow
    first = limiter.acquire(URL)
    assert limiter.acquire(URL) is None
    limiter.release(URL, first)  # quick: fast again, but the slow mark is still fresh
    held = limiter.acquire(URL)
    assert limiter.acquire(URL) is None
    limiter.release(URL, held)
    time.sleep(0.25)
    _answered_quickly(limiter)
    assert all(limiter.acquire(URL) is not None for _ in range(5))


def test_receivers_are_told_apart_by_scheme_host_and_port():
    limiter = ReceiverLimiter(limit=1, slow_after=10.0)
    assert limiter.acquire("http://a.example:1/x") is not None
    assert limiter.acquire("http://a.example:1/y") is None
    assert limiter.acquire("http://a.example:2/x") is not None
    assert limiter.acquire("https://a.example:1/x") is not None
