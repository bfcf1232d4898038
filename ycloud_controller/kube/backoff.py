"""Bounded exponential backoff with jitter, computed by tenacity's wait strategies.

Loops that must never give up (informer reconnects, work-queue retries) keep a failure
count themselves and ask :class:`Backoff` for the next delay; :func:`retry_after_wait`
makes a tenacity ``wait`` honour a server's Retry-After for bounded retries.
"""

from __future__ import annotations

import random

import tenacity

from ycloud_controller.kube.errors import ApiError


class ExpJitter(tenacity.wait.wait_base):
    """tenacity wait: ``initial`` doubling per attempt, plus up to ``initial`` of random
    jitter, never more than ``maximum``."""

    def __init__(self, initial: float, maximum: float) -> None:
        self._exp = tenacity.wait_exponential(multiplier=initial, max=maximum)
        self._initial = initial
        self._maximum = maximum

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        delay = float(self._exp(retry_state)) + random.uniform(0, self._initial)
        return min(self._maximum, delay)


def exp_jitter(initial: float, maximum: float) -> tenacity.wait.wait_base:
    """Exponential from ``initial`` doubling to ``maximum``, plus up to ``initial`` jitter."""
    return ExpJitter(initial, maximum)


def delay_for(wait: tenacity.wait.wait_base, attempt: int) -> float:
    """Delay a tenacity wait strategy gives for the ``attempt``-th failure (1-based)."""
    state = tenacity.RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = max(1, attempt)
    return float(wait(state))


def retry_after_of(exc: BaseException | None) -> float | None:
    if isinstance(exc, ApiError) and exc.retry_after is not None and exc.retry_after >= 0:
        return exc.retry_after
    return None


def honour_retry_after(
    delay: float, exc: BaseException | None, jitter: float, ceiling: float
) -> float:
    """At least the server's Retry-After (plus jitter), never above ``ceiling``."""
    retry_after = retry_after_of(exc)
    if retry_after is None:
        return delay
    return max(delay, min(retry_after + random.uniform(0, jitter), ceiling))


class Backoff:
    """Failure counter turned into bounded, jittered exponential delays.

    ``next_delay(exc)`` counts a failure and returns how long to wait: the exponential
    delay (``initial`` doubling up to ``maximum``), or at least the server's Retry-After
    when ``exc`` carries one (up to ``retry_after_max``). ``reset()`` after a success.
    """

    def __init__(
        self, initial: float = 0.5, maximum: float = 30.0, retry_after_max: float = 60.0
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.retry_after_max = retry_after_max
        self._wait = exp_jitter(initial, maximum)
        self.failures = 0

    def next_delay(self, exc: BaseException | None = None) -> float:
        self.failures += 1
        delay = delay_for(self._wait, self.failures)
        return honour_retry_after(delay, exc, self.initial, self.retry_after_max)

    def reset(self) -> None:
        self.failures = 0


class RetryAfterWait(tenacity.wait.wait_base):
    """tenacity wait: exponential jittered, or the Retry-After of the last ApiError."""

    def __init__(self, initial: float, maximum: float, retry_after_max: float = 60.0) -> None:
        self._wait = exp_jitter(initial, maximum)
        self._initial = initial
        self._retry_after_max = retry_after_max

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        delay = float(self._wait(retry_state))
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None and outcome.failed else None
        return honour_retry_after(delay, exc, self._initial, self._retry_after_max)
