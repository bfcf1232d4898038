"""pytest fixtures around FakeKube; import them into a conftest.py."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes.client import ApiClient

from fakekube.server import FakeKube
from ycloud_controller.kube.backend import ApiBackend


@pytest.fixture
def fake() -> Iterator[FakeKube]:
    """A started FakeKube with fast bookmarks (0.2 s)."""
    with FakeKube(bookmark_interval=0.2, history=1000) as server:
        yield server


@pytest.fixture
def api_client(fake: FakeKube) -> Iterator[ApiClient]:
    client = fake.api_client()
    yield client
    client.close()


@pytest.fixture
def backend(api_client: ApiClient) -> ApiBackend:
    """ApiBackend with short, bounded read retries (fast tests)."""
    return ApiBackend(api_client, retry_initial=0.05, retry_max=0.5, read_attempts=5)


@pytest.fixture
def stop() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture
def spawn(stop: threading.Event) -> Iterator[Callable[..., threading.Thread]]:
    """spawn(target, *args): run in a daemon thread; at teardown ``stop`` is set and
    every thread must end within 5 s (checks that stop works)."""
    threads: list[threading.Thread] = []

    def start(target: Callable[..., Any], *args: Any) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        threads.append(thread)
        return thread

    yield start
    stop.set()
    for thread in threads:
        thread.join(timeout=5)
    alive = [t for t in threads if t.is_alive()]
    assert not alive, f"threads did not stop: {alive}"
