"""A Controller in this process against FakeKube and any NB remote, for the fault tests.

Like `running()` of test_controller.py (which always uses the session sandbox's unix socket),
but with the NB remote, the resync period and the NB timeout given by the test, the loop
started only once every informer has listed (as `ycloud-controller run` does), and
optionally the HTTP endpoints (`/readyz`) that `run` serves.

`handled_everything(fake, ctl)` is the witness tests wait for before checking that something
did not happen: it holds once the controller has seen every write made to FakeKube so far
(its own included) and has nothing left to do with them, whatever the time it took.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import ThreadingHTTPServer

from fakekube.server import FakeKube
from ovn_sandbox import free_port

from ycloud_controller.assemble import assemble
from ycloud_controller.config import Config
from ycloud_controller.controller import Controller
from ycloud_controller.health_server import serve
from ycloud_controller.kube.backend import ApiBackend


@dataclass
class Running:
    ctl: Controller
    loop: threading.Thread
    http: ThreadingHTTPServer | None = None

    def readyz(self) -> int:
        """HTTP status of GET /readyz (the probe Kubernetes uses)."""
        assert self.http is not None, "started without http"
        url = f"http://127.0.0.1:{self.http.server_address[1]}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=10) as reply:
                return reply.status
        except urllib.error.HTTPError as exc:
            return exc.code

    def pending(self) -> int:
        """Keys the work queue still holds: ready, waiting for a retry, or being processed."""
        q = self.ctl.queue
        return len(q) + q.delayed() + q.processing()


def handled_everything(fake: FakeKube, ctl: Controller) -> bool:
    """The controller has looked at every write made to FakeKube so far and is done with it:
    each informer has handled FakeKube's last write to its resource (its handlers ran, so the
    keys they queue are queued), then no key is queued or being reconciled (its NB
    transaction committed) and no Kubernetes write is pending; and FakeKube's last writes
    did not move meanwhile (a write made while looking, the controller's own included,
    makes this False until it is handled in turn). Keys waiting for a retry are not counted:
    they come back later, as new work."""
    def latest() -> dict[str, int]:
        return {kind: int(fake.store.latest_resource_version(inf.resource))
                for kind, inf in ctl.informers.items()}
    before = latest()
    if not all(inf.has_synced() and int(inf.resource_version or 0) >= before[kind]
               for kind, inf in ctl.informers.items()):
        return False
    queue = ctl.queue
    if len(queue) or queue.processing() or not ctl.writer.idle():
        return False
    return latest() == before


@contextmanager
def controller(fake: FakeKube, nb_remote: str, *, resync: float = 600.0,
               nb_timeout: float = 30.0, http: bool = False) -> Iterator[Running]:
    cfg = Config(nb_remote=nb_remote, batch_size=200, resync_seconds=resync)
    client = fake.api_client()
    kube = ApiBackend(client, retry_initial=0.05, retry_max=0.5)
    parts = assemble(cfg, kube, nb_timeout=nb_timeout)
    ctl = parts.ctl
    server = None
    try:
        assert parts.start(wait=30), "informers did not sync"
        if http:
            server = serve(free_port(), healthy=lambda: not ctl.stop_event.is_set(),
                           ready=ctl.ready, host="127.0.0.1")
        loop = parts.serve()
        yield Running(ctl, loop, server)
    finally:
        parts.stop(join=35)  # a batch may be waiting for NB for up to nb_timeout
        if server is not None:
            server.shutdown()
            server.server_close()
        client.close()
