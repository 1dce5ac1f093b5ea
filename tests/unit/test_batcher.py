"""Group commit: each submitter gets its own result, batches form only under load."""

import threading
import time

import pytest

from shared.store.batcher import Batcher


def test_each_thread_gets_the_result_for_its_own_item():
    batches = []

    def double(items):
        batches.append(list(items))
        time.sleep(0.01)  # while one batch runs, the others queue up
        return [item * 2 for item in items]

    batcher = Batcher(double, "test-batcher")
    results = {}

    def submit(number):
        results[number] = batcher.submit(number)

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {n: n * 2 for n in range(50)}
    assert sorted(item for batch in batches for item in batch) == list(range(50))
    assert len(batches) < 50  # some were done together


def test_a_lone_item_runs_at_once_in_its_own_thread():
    seen = []

    def run(items):
        seen.append((list(items), threading.current_thread()))
        return items

    batcher = Batcher(run, "test-batcher")
    assert batcher.submit("a") == "a"
    assert batcher.submit("b") == "b"
    assert seen == [(["a"], threading.current_thread()), (["b"], threading.current_thread())]


def test_a_failed_batch_raises_in_every_submitter_and_the_batcher_goes_on():
    def run(items):
        if "bad" in items:
            raise RuntimeError("database unreachable")
        return items

    batcher = Batcher(run, "test-batcher")
    with pytest.raises(RuntimeError, match="database unreachable"):
        batcher.submit("bad")
    assert batcher.submit("good") == "good"


def test_batches_are_capped():
    sizes = []
    release = threading.Event()

    def run(items):
        sizes.append(len(items))
        release.wait(5)
        return items

    batcher = Batcher(run, "test-batcher", max_batch=3)
    threads = [threading.Thread(target=batcher.submit, args=(n,)) for n in range(7)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    release.set()
    for thread in threads:
        thread.join()
    assert sum(sizes) == 7
    assert max(sizes) <= 3
