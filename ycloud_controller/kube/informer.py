"""List+watch informers with an indexed cache.

Threading contract
------------------
* :meth:`Informer.run` blocks in the calling thread (usually a dedicated daemon thread,
  see :meth:`Informer.start`) until its ``stop`` event is set.
* Handlers are called in that thread, one at a time, in event order: they must be quick
  (typically: compute queue keys and ``WorkQueue.add`` them) and must not block on other
  informers. A handler that raises is logged and does not stop the informer.
* Objects given to handlers and returned by :class:`Store` are the cached dicts, shared
  by every reader: treat them as read-only (copy before modifying).
* :class:`Store` reads (``get``, ``list``, ``keys``, ``by_index``) are safe from any
  thread; only the informer writes to its store.

Behaviour: list, replace the cache (handlers see ADDED/MODIFIED for what changed and
DELETED for objects that vanished since the previous list, e.g. deleted while the watch
was down), then watch from the list's resourceVersion with bookmarks. A watch that ends
normally (server timeout) is resumed from the last resourceVersion; on 410 Expired or
a broken stream the informer relists. Errors (connection, 429, 5xx) back off with bounded
exponential jittered delays (at least the server's Retry-After), reset after progress.

Memory: every object passes through ``transform`` before it is cached or handed to
handlers (client-go's TransformFunc). The default, :func:`objects.trim_for_cache`, drops
metadata.managedFields and the kubectl last-applied annotation, which no reconciler reads
(the controller writes with merge patches, so the trimmed copies are never written back).
Backends hand over compact objects (interned keys and short strings: ApiBackend) or the
in-memory store's own read-only dicts (MemoryBackend), so a cache holds no second copy.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

import structlog

from topology.ovsdb.values import gc_paused
from ycloud_controller.kube.backend import Backend, WatchIterator
from ycloud_controller.kube.backoff import Backoff
from ycloud_controller.kube.errors import ApiError, Expired
from ycloud_controller.kube.objects import only_status_changed, rv_of, trim_for_cache
from ycloud_controller.kube.resources import Resource

log = structlog.get_logger(__name__)

Handler = Callable[[str, dict[str, Any], dict[str, Any] | None], None]
IndexFunc = Callable[[dict[str, Any]], list[str]]
Transform = Callable[[dict[str, Any]], dict[str, Any]]


class Store:
    """Thread-safe key -> object cache with secondary indexes."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._items: dict[str, dict[str, Any]] = {}
        self._indexers: dict[str, IndexFunc] = {}
        self._indices: dict[str, dict[str, set[str]]] = {}
        self._values: dict[str, dict[str, list[str]]] = {}

    def get(self, key: str) -> dict[str, Any] | None:
        # one dict lookup is atomic, and `replace` swaps the whole dict: no lock needed
        # (the reconcilers read the caches by key a few times per object)
        return self._items.get(key)

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._items.values())

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._items)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._items

    def add_index(self, name: str, fn: IndexFunc) -> None:
        """Index objects by ``fn(obj)`` (a list of values); existing objects are indexed.
        ``fn`` must not read the status: a write of the status alone is not indexed again."""
        with self._lock:
            self._indexers[name] = fn
            self._build(name)

    def by_index(self, name: str, value: str) -> list[dict[str, Any]]:
        with self._lock:
            keys = self._indices[name].get(value, ())
            return [self._items[k] for k in sorted(keys)]

    def index_keys(self, name: str, value: str) -> list[str]:
        with self._lock:
            return sorted(self._indices[name].get(value, ()))

    # writes (informer only)
    def _values_of(self, name: str, key: str, obj: dict[str, Any]) -> list[str]:
        try:
            values = self._indexers[name](obj)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            log.warning("index_function_failed", index=name, key=key, error=str(exc))
            return []
        if isinstance(values, list) and len(values) < 2:
            return values
        return list(dict.fromkeys(values))

    def _set(self, name: str, key: str, values: list[str]) -> None:
        self._values[name][key] = values
        index = self._indices[name]
        for value in values:
            index.setdefault(value, set()).add(key)

    def _drop(self, name: str, key: str, values: list[str]) -> None:
        index = self._indices[name]
        for value in values:
            keys = index.get(value)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del index[value]

    def _unindex(self, key: str) -> None:
        for name in self._indexers:
            self._drop(name, key, self._values[name].pop(key, ()))

    def upsert(self, key: str, obj: dict[str, Any]) -> dict[str, Any] | None:
        with self._lock:
            old = self._items.get(key)
            self._items[key] = obj
            if old is not None and self._indexers and only_status_changed(obj, old):
                return old  # most updates: our own status written back
            for name in self._indexers:
                values = self._values_of(name, key, obj)
                before = self._values[name].get(key) if old is not None else None
                if before == values:
                    continue  # this index did not move (labels or spec changed elsewhere)
                if before:
                    self._drop(name, key, before)
                self._set(name, key, values)
            return old

    def remove(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._unindex(key)
            return old

    def replace(self, items: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Swap the whole content; returns the previous content."""
        with self._lock:
            old = self._items
            self._items = dict(items)
            for name in self._indexers:
                self._build(name)
            return old

    def _build(self, name: str) -> None:
        """Index every cached object by `name` (a new index, or after a relist)."""
        index: dict[str, set[str]] = {}
        known: dict[str, list[str]] = {}
        values_of = self._values_of
        for key, obj in self._items.items():
            known[key] = values = values_of(name, key, obj)
            for value in values:
                keys = index.get(value)
                if keys is None:
                    index[value] = {key}
                else:
                    keys.add(key)
        self._indices[name], self._values[name] = index, known


class Informer:
    """List+watch one resource into a :class:`Store` and call handlers on changes.

    See the module docstring for the threading contract. ``restarts`` counts watch
    restarts; ``on_restart(reason)`` is called on each (reasons: ``expired``,
    ``connection``, ``throttled``, ``http_<code>``).
    """

    def __init__(
        self,
        backend: Backend,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        name: str | None = None,
        watch_timeout: float = 300.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        on_restart: Callable[[str], None] | None = None,
        transform: Transform | None = trim_for_cache,
        quiet_first_list: bool = False,
    ) -> None:
        self.backend = backend
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector  # e.g. spec.nodeName=<node> (the node agent)
        self.name = name or resource.plural
        self.watch_timeout = watch_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.on_restart = on_restart
        self.transform = transform
        # the owner handles every object of the first list itself (a controller's first full
        # sync): handlers hear only what changes after it (relists included)
        self.quiet_first_list = quiet_first_list
        self.store = Store()
        self.restarts = 0
        self.resource_version = ""
        self._handlers: list[Handler] = []
        self._synced = threading.Event()
        self._watch_lock = threading.Lock()
        self._watch: WatchIterator | None = None
        self._progressed = False
        self._log = log.bind(informer=self.name)

    def add_handler(self, fn: Handler) -> None:
        """Register ``fn(event_type, obj, old)``; call before :meth:`run`."""
        self._handlers.append(fn)

    def has_synced(self) -> bool:
        """True once the first list is in the store and its handlers have run (none with
        ``quiet_first_list``)."""
        return self._synced.is_set()

    def wait_synced(self, timeout: float | None = None) -> bool:
        return self._synced.wait(timeout)

    def caught_up(self) -> bool | None:
        """True once every write the backend has made to this resource so far is in the
        cache and its handlers have run (what is handled last sets ``resource_version``).

        Exact for a backend that knows its latest write (``latest_resource_version``: the
        in-memory store); None when it cannot be told (a real API server) or when this
        informer filters by namespace or labels (writes it never sees count there).
        """
        latest = getattr(self.backend, "latest_resource_version", None)
        if latest is None or self.namespace or self.label_selector or self.field_selector:
            return None
        if not self.has_synced():
            return False
        try:
            return int(self.resource_version or 0) >= int(latest(self.resource))
        except ValueError:
            return None

    def start(self, stop: threading.Event) -> threading.Thread:
        """Run in a new daemon thread."""
        thread = threading.Thread(
            target=self.run, args=(stop,), name=f"informer-{self.name}", daemon=True
        )
        thread.start()
        return thread

    def run(self, stop: threading.Event) -> None:
        """List and watch until ``stop`` is set (blocking)."""
        threading.Thread(
            target=self._abort_on_stop, args=(stop,), name=f"informer-{self.name}-stop",
            daemon=True,
        ).start()
        backoff = Backoff(self.backoff_initial, self.backoff_max)
        need_list = True
        expired_streak = 0
        while not stop.is_set():
            try:
                if need_list:
                    self._list()
                    need_list = False
                if self._watch_once(stop):
                    backoff.reset()
                    expired_streak = 0
            except Expired as exc:
                self._restart("expired", exc)
                need_list = True
                expired_streak += 1
                if expired_streak > 1:
                    stop.wait(backoff.next_delay(exc))
            except ApiError as exc:
                if stop.is_set():
                    break
                if exc.code == 0:
                    reason = "connection"
                elif exc.code == 429:
                    reason = "throttled"
                else:
                    reason = f"http_{exc.code}"
                self._restart(reason, exc)
                need_list = True
                if self._progressed:
                    backoff.reset()
                stop.wait(backoff.next_delay(exc))
        self._log.info("informer_stopped")

    def _abort_on_stop(self, stop: threading.Event) -> None:
        stop.wait()
        with self._watch_lock:
            watch = self._watch
        if watch is not None:
            watch.close()

    def _restart(self, reason: str, exc: ApiError) -> None:
        self.restarts += 1
        self._log.warning("informer_restart", reason=reason, error=str(exc),
                          resource_version=self.resource_version)
        if self.on_restart is not None:
            try:
                self.on_restart(reason)
            except Exception:  # noqa: BLE001 - a metrics hook must not kill the informer
                self._log.exception("on_restart_hook_failed")

    def _list(self) -> None:
        # a list of many objects allocates many containers and no garbage cycles: with the
        # other caches already large, the collections it would trigger scan them all
        with gc_paused():
            items, resource_version = self.backend.list(
                self.resource, self.namespace, self.label_selector,
                field_selector=self.field_selector,
            )
            key_of = self.resource.key_of
            if self.transform is not None:
                items = [self.transform(obj) for obj in items]
            new = {key_of(obj): obj for obj in items}
            old = self.store.replace(new)
        quiet = self.quiet_first_list and not self._synced.is_set()  # old is empty then
        for key, obj in () if quiet else new.items():
            prev = old.get(key)
            if prev is None:
                self._dispatch("ADDED", obj, None)
            elif rv_of(prev) != rv_of(obj):
                self._dispatch("MODIFIED", obj, prev)
        for key, prev in old.items():
            if key not in new:
                self._dispatch("DELETED", prev, prev)
        self.resource_version = resource_version
        self._log.info("informer_listed", count=len(new), resource_version=resource_version)
        self._synced.set()

    def _watch_once(self, stop: threading.Event) -> bool:
        """Watch until the stream ends; True when it delivered events or ended normally."""
        self._progressed = False
        timeout = self.watch_timeout * random.uniform(1.0, 2.0)
        watch = self.backend.watch(
            self.resource, self.resource_version, timeout, True,
            namespace=self.namespace, label_selector=self.label_selector,
            field_selector=self.field_selector,
        )
        with self._watch_lock:
            self._watch = watch
        try:
            if stop.is_set():
                return False
            for event in watch:
                self._progressed = True
                self._handle(event)
                if stop.is_set():
                    break
            return True
        finally:
            with self._watch_lock:
                self._watch = None
            watch.close()

    def _handle(self, event: dict[str, Any]) -> None:
        type_ = event.get("type")
        obj = event.get("object") or {}
        resource_version = rv_of(obj)
        if type_ == "BOOKMARK":
            if resource_version:
                self.resource_version = resource_version
            return
        if self.transform is not None and type_ in ("ADDED", "MODIFIED", "DELETED"):
            obj = self.transform(obj)
        key = self.resource.key_of(obj)
        if type_ in ("ADDED", "MODIFIED"):
            old = self.store.upsert(key, obj)
            if old is None:
                self._dispatch("ADDED", obj, None)
            elif rv_of(old) != resource_version:
                self._dispatch("MODIFIED", obj, old)
        elif type_ == "DELETED":
            old = self.store.remove(key)
            self._dispatch("DELETED", obj, old)
        else:
            self._log.warning("unknown_watch_event", type=type_)
        if resource_version:
            self.resource_version = resource_version

    def _dispatch(self, type_: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        for handler in self._handlers:
            try:
                handler(type_, obj, old)
            except Exception:  # noqa: BLE001 - one bad handler must not stop the informer
                self._log.exception("informer_handler_failed", event=type_,
                                    key=self.resource.key_of(obj))
