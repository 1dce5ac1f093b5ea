"""Name lookups within an attempt's deadline: the attempts to one host share one lookup, so a
name server that hangs holds one resolver thread per host, and a finished lookup is not kept."""

import threading

import pytest

from shared import deadline


class HangingResolver:
    """A resolver that answers only when told to, counting the lookups it was asked for."""

    def __init__(self):
        self.calls = 0
        self.answer = threading.Event()

    def __call__(self, host, port, **_):
        self.calls += 1
        self.answer.wait(10)
        return [("address", host, port)]


def test_attempts_to_one_host_share_its_lookup():
    resolver = HangingResolver()
    results = []

    def attempt():
        results.append(deadline.resolve("hangs.example", 80, deadline.Deadline(5), resolver))

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for thread in threads:
        thread.start()
    threading.Event().wait(0.3)
    resolver.answer.set()
    for thread in threads:
        thread.join()
    assert resolver.calls == 1
    assert results == [[("address", "hangs.example", 80)]] * 6


def test_an_attempt_gives_up_at_its_deadline_and_the_next_one_waits_on_the_same_lookup():
    resolver = HangingResolver()
    with pytest.raises(deadline.DeadlineExceeded):
        deadline.resolve("slow.example", 443, deadline.Deadline(0.2), resolver)
    resolver.answer.set()
    assert deadline.resolve("slow.example", 443, deadline.Deadline(2), resolver)
    assert resolver.calls == 1


def test_a_lookup_that_is_over_is_not_kept():
    count = []

    def answering(host, port, **_):
        count.append(host)
        return [("address", host, port)]

    for _ in range(3):
        deadline.resolve("fast.example", 80, deadline.Deadline(2), answering)
    assert len(count) == 3
