"""Tasks waiting in their thread for a slot of their webhook (shared.coordination.waiters)."""

import threading

import pytest

from shared.coordination import waiters as module
from shared.coordination.slots import Slot
from shared.coordination.waiters import SlotWaiters


@pytest.fixture(autouse=True)
def short_waits(monkeypatch):
    monkeypatch.setattr(module, "WAIT_SECONDS", 0.3)
    monkeypatch.setattr(module, "WAIT_SLICE", 0.05)


def _waiting(waiters: SlotWaiters, webhook: str, got: list, try_free=lambda: None):
    thread = threading.Thread(
        target=lambda: got.append(waiters.wait(webhook, try_free, lambda slot: None))
    )
    thread.start()
    return thread


def _until(condition) -> None:
    for _ in range(200):
        if condition():
            return
        threading.Event().wait(0.005)
    raise AssertionError("never happened")


def test_a_slot_given_goes_to_the_oldest_waiting_task():
    waiters, got = SlotWaiters(), []
    first = _waiting(waiters, "w", got)
    _until(lambda: waiters.any("w"))
    second = _waiting(waiters, "w", got)
    _until(lambda: len(waiters._waiting["w"]) == 2)
    assert waiters.give("w", Slot("w", "a"), 1.0)
    first.join(timeout=2)
    assert got == [(Slot("w", "a"), 1.0)]
    assert waiters.give("w", Slot("w", "b"), 2.0)
    second.join(timeout=2)
    assert got[1] == (Slot("w", "b"), 2.0)
    assert not waiters.any("w")


def test_nothing_is_given_to_another_webhooks_tasks():
    waiters, got = SlotWaiters(), []
    thread = _waiting(waiters, "w", got)
    _until(lambda: waiters.any("w"))
    assert not waiters.give("other", Slot("other", "a"), 1.0)
    thread.join(timeout=2)
    assert got == [None]  # it waited its time, then gave up
    assert not waiters.any("w")


def test_a_task_takes_a_slot_freed_in_another_process_while_it_waits():
    waiters, got = SlotWaiters(), []
    tries = []

    def try_free():
        tries.append(1)
        return Slot("w", "freed") if len(tries) == 2 else None

    _waiting(waiters, "w", got, try_free).join(timeout=2)
    assert got[0][0] == Slot("w", "freed")
    assert len(tries) == 2
    assert not waiters.any("w")
