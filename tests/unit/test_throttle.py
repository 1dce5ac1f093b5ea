"""The caps: per webhook until it has shown itself fast, per host always, and a bounded share of
threads for slow or unproven webhooks together."""

import time

from shared.throttle import WebhookLimiter, host_key

HOST = "http://receiver.example:8080"


def _limiter(**caps) -> WebhookLimiter:
    options = {
        "per_webhook": 2,
        "per_host": 100,
        "slow_share": 100,
        "slow_after": 1.0,
        "probation_share": 1,
    }
    return WebhookLimiter(**{**options, **caps})


def _answered(limiter: WebhookLimiter, webhook: str, took: float, host: str = HOST) -> None:
    lease = limiter.acquire(webhook, host)
    limiter.sending(lease)
    limiter.answered(lease, took)
    limiter.release(lease)


def _answered_quickly(limiter: WebhookLimiter, webhook: str, host: str = HOST) -> None:
    _answered(limiter, webhook, 0.01, host)


def test_a_webhook_not_heard_from_yet_is_capped_and_others_on_its_host_are_not():
    limiter = _limiter()
    assert limiter.acquire("hanging", HOST) is not None
    assert limiter.acquire("hanging", HOST) is not None
    assert limiter.acquire("hanging", HOST) is None  # it may be hanging: no more until it answers
    # Another webhook on the same host (another path, another tenant) is not held back.
    assert limiter.acquire("neighbour", HOST) is not None


def test_slow_and_unproven_webhooks_together_hold_a_bounded_share():
    limiter = _limiter(per_webhook=4, slow_share=6, probation_share=2)
    held = [
        limiter.acquire(f"hanging-{n}", f"http://host{n}:80") for n in range(8) for _ in range(4)
    ]
    # Six in the slow share, and two first attempts on probation.
    assert sum(lease is not None for lease in held) == 8


def test_a_new_webhook_gets_a_first_attempt_while_hanging_ones_fill_the_slow_share():
    limiter = _limiter(per_webhook=4, slow_share=4, slow_after=0.01)
    for n in range(2):  # two webhooks found slow: their first attempts took too long
        _answered(limiter, f"hanging-{n}", 0.02)
    held = [limiter.acquire(f"hanging-{n}", HOST) for n in range(2) for _ in range(4)]
    assert sum(lease is not None for lease in held) == 4  # the slow share is full
    first = limiter.acquire("brand-new", HOST)
    assert first is not None and first.share == "probation"
    assert limiter.acquire("brand-new", HOST) is None  # one first attempt, not more


def test_a_fast_webhook_is_not_capped_by_the_slow_share():
    limiter = _limiter(per_webhook=1, slow_share=1)
    _answered_quickly(limiter, "fast")
    leases = [limiter.acquire("fast", HOST) for _ in range(10)]
    assert all(lease is not None for lease in leases)
    assert limiter.acquire("unproven", "http://other:80") is not None  # on probation
    assert limiter.acquire("unproven-2", "http://other:80") is not None  # the one slow slot
    assert limiter.acquire("unproven-3", "http://other:80") is None  # both shares are taken


def test_the_per_host_cap_holds_for_everyone():
    limiter = _limiter(per_host=3)
    for webhook in ("a", "b"):
        _answered_quickly(limiter, webhook)
    leases = [limiter.acquire(webhook, HOST) for webhook in ("a", "b", "a")]
    assert all(leases)
    assert limiter.acquire("b", HOST) is None


def test_a_share_given_back_without_a_request_does_not_count_as_an_answer():
    limiter = _limiter(per_webhook=1)
    limiter.release(limiter.acquire("w", HOST))  # no request was made: nothing answered
    assert limiter.acquire("w", HOST) is not None
    assert limiter.acquire("w", HOST) is None  # still not heard from: still capped


def test_a_fast_webhook_is_capped_as_soon_as_an_attempt_is_slow():
    limiter = _limiter(per_webhook=1, slow_after=0.05)
    _answered_quickly(limiter, "w")
    _answered(limiter, "w", 0.1)
    assert limiter.acquire("w", HOST) is not None
    assert limiter.acquire("w", HOST) is None


def test_a_request_running_long_caps_its_webhook_before_it_ends():
    limiter = _limiter(per_webhook=1, slow_after=0.05)
    _answered_quickly(limiter, "w")
    hanging = limiter.acquire("w", HOST)
    limiter.sending(hanging)
    time.sleep(0.1)
    assert limiter.acquire("w", HOST) is None  # its request is taking long: capped already


def test_time_spent_on_this_side_does_not_make_a_webhook_slow():
    """Waiting for a database connection on a busy worker is not the receiver's doing."""
    limiter = _limiter(per_webhook=1, slow_after=0.05)
    _answered_quickly(limiter, "w")
    waiting = limiter.acquire("w", HOST)  # claimed, but its request has not started
    time.sleep(0.1)
    assert limiter.acquire("w", HOST) is not None  # still fast: not capped
    limiter.sending(waiting)
    limiter.answered(waiting, 0.01)
    time.sleep(0.1)  # now recording its outcome, on this side again
    assert limiter.acquire("w", HOST) is not None


def test_stale_webhooks_are_forgotten():
    limiter = WebhookLimiter(1, 10, 10, slow_after=1.0, remember=0.05)
    for n in range(50):
        _answered_quickly(limiter, f"w{n}")
    time.sleep(0.1)
    assert limiter.tracked() == 0


def test_hosts_are_told_apart_by_scheme_host_and_port():
    assert host_key("http://a.example/x") == "http://a.example:"
    assert host_key("https://a.example:8443/y?q=1") == "https://a.example:8443"
    assert host_key("http://a.example:8080/z") != host_key("https://a.example:8080/z")


def test_room_is_what_acquire_would_grant():
    limiter = _limiter(per_webhook=1, slow_share=1)
    assert limiter.has_room("new")
    lease = limiter.acquire("new", HOST)  # its first attempt, on probation
    assert not limiter.has_room("new")  # unproven and at its cap
    assert limiter.has_room("other")
    limiter.acquire("other", "http://other:80")  # the slow share's one slot
    assert not limiter.has_room("third")  # probation and the slow share are taken
    limiter.release(lease)
    assert limiter.has_room("third")
