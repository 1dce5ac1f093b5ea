"""A webhook's slots in Redis (shared.coordination.slots): a slot passed on within a process
stays within the cap, and is freed instead when the cap shrank under it."""

import uuid

import pytest
import redis

from shared.coordination.slots import Refusal, Slot, Slots


@pytest.fixture
def slots(settings):
    client = redis.Redis.from_url(settings.redis_url)
    yield Slots(client, slow_cap=1, fast_cap=2, ttl=60, slow_after=1.0, owner="test")
    client.close()


def _webhook() -> str:
    return str(uuid.uuid4())


def test_at_an_unproven_webhooks_cap_the_refusal_says_it_is_slow(slots):
    webhook = _webhook()
    assert isinstance(slots.acquire(webhook, 0), Slot)
    refusal = slots.acquire(webhook, 0)
    assert isinstance(refusal, Refusal) and refusal.slow and refusal.wait == 0


def test_a_fast_webhooks_slot_is_kept_for_the_next_task_within_its_cap(slots):
    webhook = _webhook()
    first = slots.acquire(webhook, 0)
    slots.finish(first, 0.01, 0)  # a quick answer: the webhook is fast (cap 2)
    one, two = slots.acquire(webhook, 0), slots.acquire(webhook, 0)
    assert isinstance(one, Slot) and isinstance(two, Slot)
    refusal = slots.acquire(webhook, 0)
    assert isinstance(refusal, Refusal) and not refusal.slow
    assert slots.keep(one, 0.01, 2) == (True, [])
    assert slots.running(webhook) == 2  # still taken, by the task it goes to
    assert isinstance(slots.acquire(webhook, 0), Refusal)


def test_a_slot_is_freed_not_kept_when_a_slow_answer_shrank_the_cap(slots):
    webhook = _webhook()
    slots.finish(slots.acquire(webhook, 0), 0.01, 0)
    one, two = slots.acquire(webhook, 0), slots.acquire(webhook, 0)
    kept, handed = slots.keep(one, 2.5, 2)  # slow now: cap 1, and two were running
    assert (kept, handed) == (False, [])
    assert slots.running(webhook) == 1
    assert isinstance(two, Slot)


def test_deliveries_expected_to_wait_get_the_slots_of_attempts_that_end(slots):
    webhook = _webhook()
    slots.finish(slots.acquire(webhook, 0), 0.01, 0)  # fast: cap 2
    running = slots.acquire(webhook, 0)
    assert slots.finish(running, 0.01, 2) == []  # nobody counted as waiting
    running = slots.acquire(webhook, 0)
    slots.expect_waiting(webhook, 3)
    slots.expect_waiting(webhook, 1)  # never lowers the count
    handed = slots.finish(running, 0.01, 2)
    assert len(handed) == 2  # its slot and the free one, each to a waiting delivery
    assert slots.running(webhook) == 2
