"""Turns at the API (app.turns): a tenant's requests beyond its share wait for one of its own
to end; another tenant's never wait for them."""

import threading

from app.turns import Turns


def _enter_in_thread(turns: Turns, caller: str) -> tuple[threading.Thread, threading.Event]:
    entered = threading.Event()

    def run():
        turns.enter(caller)
        entered.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, entered


def test_a_request_beyond_the_share_waits_for_one_of_its_own_to_end():
    turns = Turns(per_caller=2)
    turns.enter("a")
    turns.enter("a")
    thread, entered = _enter_in_thread(turns, "a")
    assert not entered.wait(0.2)
    turns.leave("a")
    assert entered.wait(2)
    thread.join(timeout=2)


def test_another_tenants_request_does_not_wait_behind_a_full_share():
    turns = Turns(per_caller=1)
    turns.enter("a")
    _, waiting = _enter_in_thread(turns, "a")
    _, other = _enter_in_thread(turns, "b")
    assert other.wait(2)
    assert not waiting.is_set()
    turns.leave("a")
    assert waiting.wait(2)


def test_a_tenant_with_nothing_running_or_waiting_is_forgotten():
    turns = Turns(per_caller=1)
    turns.enter("a")
    turns.leave("a")
    assert turns._callers == {}
