"""WorkQueue: coalescing, one worker per key, delays and per-key backoff."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable

from fakekube.util import wait_for

from ycloud_controller.kube.workqueue import WorkQueue

SVC_A = ("Service", "default/a")
SVC_B = ("Service", "default/b")


def test_adds_coalesce_while_queued() -> None:
    queue = WorkQueue()
    for _ in range(5):
        queue.add(SVC_A)
    queue.add(SVC_B)
    assert len(queue) == 2
    assert queue.get_batch(10, timeout=0) == [SVC_A, SVC_B]
    assert queue.get_batch(10, timeout=0) == []


def test_add_many_is_add_of_each_key() -> None:
    """Coalesced with queued and processing copies, in order; each waiting taker wakes."""
    queue = WorkQueue()
    queue.add(SVC_A)
    assert queue.get_batch(1, timeout=0) == [SVC_A]  # processing
    queue.add(SVC_B)
    taken: list[list[Hashable]] = []
    takers = [threading.Thread(target=lambda: taken.append(queue.get_batch(1, timeout=10)))
              for _ in range(2)]
    for t in takers:
        t.start()
    wait_for(lambda: len(taken) == 1)  # SVC_B
    queue.add_many([SVC_A, SVC_B, 1, 2, 1])
    for t in takers:
        t.join()
    assert sorted(map(str, taken)) == sorted(map(str, [[SVC_B], [1]]))
    assert queue.get_batch(10, timeout=0) == [2]  # SVC_A and SVC_B wait for their done
    queue.done(SVC_A, SVC_B)
    assert queue.get_batch(10, timeout=0) == [SVC_A, SVC_B]


def test_batch_size_and_timeout() -> None:
    queue = WorkQueue()
    assert queue.get_batch(5, timeout=0.05) == []  # an empty queue waits out its timeout
    for i in range(5):
        queue.add(i)
    assert queue.get_batch(2, timeout=1) == [0, 1]
    assert queue.get_batch(10, timeout=1) == [2, 3, 4]


def test_key_added_while_processing_is_requeued_on_done() -> None:
    queue = WorkQueue()
    queue.add(SVC_A)
    assert queue.get_batch(1, timeout=1) == [SVC_A]
    queue.add(SVC_A)
    queue.add(SVC_A)
    assert len(queue) == 0  # marked dirty, not queued: never handed out while processing
    assert queue.get_batch(1, timeout=0) == []
    queue.done(SVC_A)
    assert queue.get_batch(1, timeout=1) == [SVC_A]
    queue.done(SVC_A)
    assert queue.get_batch(1, timeout=0) == []


def start_workers(queue: WorkQueue, count: int,
                  handle: Callable[[list[Hashable]], None]) -> list[threading.Thread]:
    """`count` threads that take batches of up to 3 keys, pass each to `handle`, then mark
    it done, until the queue shuts down."""
    def worker() -> None:
        while True:
            batch = queue.get_batch(3, timeout=0.05)
            if not batch:
                if queue.shutting_down:
                    return
                continue
            handle(batch)
            queue.done(*batch)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads


def drain_and_stop(queue: WorkQueue, workers: list[threading.Thread]) -> None:
    wait_for(lambda: len(queue) == 0 and queue.processing() == 0, what="queue drained")
    queue.shutdown()
    for thread in workers:
        thread.join(timeout=5)


def test_never_processed_by_two_workers_at_once() -> None:
    queue = WorkQueue()
    keys = [("Pod", f"ns/p{i}") for i in range(5)]
    active: Counter = Counter()
    lock = threading.Lock()
    violations: list = []
    processed: Counter = Counter()

    def handle(batch: list[Hashable]) -> None:
        for key in batch:
            with lock:
                active[key] += 1
                if active[key] > 1:
                    violations.append(key)
                processed[key] += 1
        time.sleep(0.001)
        for key in batch:
            with lock:
                active[key] -= 1

    workers = start_workers(queue, 6, handle)
    for i in range(3000):
        queue.add(keys[i % len(keys)])
    drain_and_stop(queue, workers)
    assert not violations
    assert set(processed) == set(keys)


def test_adds_coalesce_while_workers_are_busy() -> None:
    """3000 adds of 5 keys while every key is held by a worker: each key is handed out
    twice (the batch held when the adds came, then once more because it was added
    meanwhile). Workers wait on a gate, not on the clock: the count does not depend on how
    fast the adds run."""
    queue = WorkQueue()
    keys = [("Pod", f"ns/p{i}") for i in range(5)]
    gate = threading.Event()
    lock = threading.Lock()
    processed: Counter = Counter()

    def handle(batch: list[Hashable]) -> None:
        with lock:
            processed.update(batch)
        gate.wait(30)

    for key in keys:
        queue.add(key)
    workers = start_workers(queue, 2, handle)
    # the workers hold a batch each (3 + 2 keys): every key is processing before the adds
    wait_for(lambda: queue.processing() == len(keys), what="every key handed out")
    for i in range(3000):
        queue.add(keys[i % len(keys)])
    assert len(queue) == 0  # added while processing: never queued twice, nor handed out
    gate.set()
    drain_and_stop(queue, workers)
    assert processed == Counter(dict.fromkeys(keys, 2))  # once before the adds, once after
    assert sum(processed.values()) < 3000  # adds coalesced


def test_add_after_and_earliest_delay_wins() -> None:
    """A delayed key is not ready before its delay: one of 60 s shows that without waiting
    for the clock; a second, shorter delay of the same key replaces it."""
    queue = WorkQueue()
    queue.add_after(SVC_A, 60)
    assert queue.delayed() == 1 and len(queue) == 0
    assert queue.get_batch(1, timeout=0) == []
    queue.add_after(SVC_A, 0.05)
    assert queue.delayed() == 1  # one pending add, the earlier one
    assert queue.get_batch(1, timeout=10) == [SVC_A]  # long before the 60 s
    queue.done(SVC_A)
    assert queue.delayed() == 0


def test_retry_backs_off_exponentially_and_forget_resets() -> None:
    queue = WorkQueue(base_delay=0.01, max_delay=0.08)
    delays = []
    for _ in range(6):
        delays.append(queue.retry(SVC_A, reason="test"))
        assert queue.get_batch(1, timeout=5) == [SVC_A]
        queue.done(SVC_A)
    assert queue.retries(SVC_A) == 6
    # bounded exponential with up to base_delay of jitter
    for attempt, delay in enumerate(delays, start=1):
        expected = min(0.08, 0.01 * 2 ** (attempt - 1))
        assert expected <= delay <= 0.08 + 1e-9
    queue.forget(SVC_A)
    assert queue.retries(SVC_A) == 0
    assert queue.retry(SVC_A) <= 0.02


def test_oldest_age_and_len() -> None:
    queue = WorkQueue()
    assert queue.oldest_age() == 0.0
    queue.add(SVC_A)
    wait_for(lambda: queue.oldest_age() > 0.02, what="age grows")
    queue.add(SVC_B)
    assert queue.oldest_age() > 0.02
    assert len(queue) == 2


def test_shutdown_wakes_waiters_and_hands_out_the_rest() -> None:
    queue = WorkQueue()
    result: list = []
    waiter = threading.Thread(target=lambda: result.append(queue.get_batch(1, timeout=30)))
    waiter.start()
    queue.shutdown()
    waiter.join(timeout=5)
    assert result == [[]]
    queue.add(SVC_A)  # ignored after shutdown
    assert len(queue) == 0
