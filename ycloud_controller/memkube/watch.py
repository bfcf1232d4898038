"""Watch subscriptions of the MemoryStore.

A :class:`Subscription` is a queue of watch events for one (resource, namespace,
selector) filter. The store appends to it under its own lock, so a subscription sees
every event after its starting resourceVersion exactly once and in order. Consumers
call :meth:`Subscription.next_event` from any single thread.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ycloud_controller.kube.errors import ApiError
from ycloud_controller.kube.registry import storage_key
from ycloud_controller.kube.resources import Resource
from ycloud_controller.memkube.history import History, field_paths
from ycloud_controller.memkube.labelsel import selector_matcher

Event = dict[str, Any]


class Subscription:
    """Ordered event queue of one watch.

    ``closed`` becomes True after :meth:`stop` (consumer side) or when the store
    closes the watch (``dropped`` is then True too, like a broken connection).
    """

    def __init__(
        self,
        resource: Resource,
        namespace: str | None,
        matcher: Callable[[dict[str, Any]], bool] | None,
        on_stop: Callable[[Subscription], None],
        request_bookmark: Callable[[Subscription], None],
    ) -> None:
        self.resource = resource
        self.namespace = namespace
        self._matcher = matcher
        self._on_stop = on_stop
        self._request_bookmark = request_bookmark
        self._events: collections.deque[Event] = collections.deque()
        self._cond = threading.Condition()
        self.closed = False
        self.dropped = False

    def _in_scope(self, obj: dict[str, Any]) -> bool:
        if self.namespace is None:
            return True
        return (obj.get("metadata") or {}).get("namespace") == self.namespace

    def offer(self, type_: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        """Queue the event this write means for this watch (store lock held).

        An object that starts matching the selector is ADDED, one that stops matching
        is DELETED, as the API server does.
        """
        if not self._in_scope(obj):
            return
        matcher = self._matcher
        if matcher is None:  # no selector: every object matches
            now, before = True, old is not None
        else:
            now = matcher(obj)
            before = old is not None and matcher(old)
        if type_ == "DELETED":
            event_type = "DELETED" if now else None
        elif now and before:
            event_type = "MODIFIED"
        elif now:
            event_type = "ADDED"
        elif before:
            event_type = "DELETED"
        else:
            event_type = None
        if event_type is not None:
            self.push({"type": event_type, "object": obj})

    def push(self, event: Event) -> None:
        with self._cond:
            if self.closed:
                return
            self._events.append(event)
            self._cond.notify_all()

    def next_event(self, timeout: float | None = None) -> Event | None:
        """The next event, or None on timeout or once closed and drained."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._events:
                if self.closed:
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            return self._events.popleft()

    def bookmark(self) -> None:
        """Queue a BOOKMARK carrying the store's current resourceVersion, in order."""
        self._request_bookmark(self)

    def pending(self) -> int:
        with self._cond:
            return len(self._events)

    def close(self, dropped: bool = False) -> None:
        """Close from the store side (``dropped``: as if the connection broke)."""
        with self._cond:
            self.closed = True
            self.dropped = self.dropped or dropped
            if dropped:
                self._events.clear()
            self._cond.notify_all()

    def stop(self) -> None:
        """Consumer is done: unsubscribe and wake any waiter."""
        self.close()
        self._on_stop(self)

    def __iter__(self) -> Iterator[Event]:
        while True:
            event = self.next_event(timeout=None)
            if event is None:
                return
            yield event


class WatchMixin:
    """The watch side of :class:`~ycloud_controller.memkube.store.MemoryStore`: starting
    subscriptions (history replay or synthetic ADDED), bookmarks, compaction."""

    if TYPE_CHECKING:
        _lock: threading.RLock
        _rv: int
        _objects: dict[tuple[str, str], dict[tuple[str, str], dict[str, Any]]]
        _history: History
        _subs: dict[tuple[str, str], set[Subscription]]

        def _check(self, res: Resource) -> Resource: ...

    def watch(
        self,
        res: Resource,
        namespace: str | None = None,
        resource_version: str | None = None,
        label_selector: str | dict[str, str] | None = None,
        field_selector: str | None = None,
    ) -> Subscription:
        """Subscribe to changes after ``resource_version``.

        Without a resourceVersion (or "0") the subscription starts with synthetic ADDED
        events for the current objects, as the API server does. A resourceVersion older
        than the retained history raises Expired (410).
        """
        res = self._check(res)
        matcher = selector_matcher(label_selector, field_selector)
        skey = storage_key(res)
        with self._lock:
            sub = Subscription(
                res, namespace if res.namespaced else None, matcher,
                self._unsubscribe, self._bookmark,
            )
            if resource_version in (None, "", "0"):
                for _key, obj in sorted(self._objects[skey].items()):
                    sub.offer("ADDED", obj, None)
            else:
                self._history.replay(skey, _parse_rv(str(resource_version)),
                                     field_paths(field_selector), sub.offer)
            self._subs[skey].add(sub)
            return sub

    def compact(self) -> None:
        """Forget the history: watches from any past resourceVersion now get 410."""
        with self._lock:
            self._history.clear(self._rv)

    def close_watches(self, dropped: bool = True) -> int:
        """Close every open subscription (``dropped``: like broken connections)."""
        with self._lock:
            subs = [s for group in self._subs.values() for s in group]
            self._subs.clear()
        for sub in subs:
            sub.close(dropped=dropped)
        return len(subs)

    def watch_count(self) -> int:
        with self._lock:
            return sum(len(group) for group in self._subs.values())

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs[storage_key(sub.resource)].discard(sub)

    def _bookmark(self, sub: Subscription) -> None:
        with self._lock:
            sub.push({
                "type": "BOOKMARK",
                "object": {
                    "kind": sub.resource.kind,
                    "apiVersion": sub.resource.api_version,
                    "metadata": {"resourceVersion": str(self._rv)},
                },
            })


def _parse_rv(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ApiError(400, "BadRequest", f"invalid resource version {value!r}") from None
