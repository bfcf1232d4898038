"""The controller in-process, for tests and the dataplane bench: `InProcessController` runs
ycloud-controller on a MemoryStore of the examples in a thread; tests change objects through
`.backend` (create/patch/delete) and read status back."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ycloud_lab.proc import LabError
from ycloud_lab.scenarios import EXAMPLES


class InProcessController:
    """ycloud-controller on a MemoryStore (manifests mode: derived ClusterIPs and
    EndpointSlices), an NbClient and an SbMonitor, its watch loop in a thread.

    `restart()` stops it and starts a new Controller on the same store and NB, like a process
    restart. Tests change objects through `backend` and read status from `store`."""

    def __init__(self, nb_remote: str, sb_remote: str | None,
                 manifests: str | Path = EXAMPLES, store: Any = None):
        """store: a MemoryStore already holding the objects (e.g. FakeKube's, which the
        node agents watch over HTTP); default: a new one loaded from `manifests`."""
        from ycloud_controller.memkube.backend import MemoryBackend
        from ycloud_controller.source import manifests_source

        self.nb_remote = nb_remote
        self.sb_remote = sb_remote
        self.backend: MemoryBackend = (
            MemoryBackend(store) if store is not None
            else manifests_source(str(manifests)).backend)  # type: ignore[assignment]
        self.store = self.backend.store
        self.ctl: Any = None
        self._parts: Any = None  # ycloud_controller.assemble.Assembly

    def start(self, timeout: float = 60.0) -> InProcessController:
        from ycloud_controller import config as config_mod
        from ycloud_controller.assemble import assemble

        cfg = config_mod.load(None, nb_remote=self.nb_remote, sb_remote=self.sb_remote)
        # object_ages=False as the CLI runs on a manifests directory: the timestamps are the
        # MemoryStore's own and decide no conflict (the holder in NB, then the name, do)
        self._parts = assemble(cfg, self.backend, emulate=True, object_ages=False)
        self.ctl = self._parts.ctl
        if not self._parts.start(wait=timeout):
            raise LabError("in-process controller: informers did not sync")
        self._parts.serve(name="ycloud-controller")
        return self

    def stop(self) -> None:
        parts, self._parts, self.ctl = self._parts, None, None
        if parts is not None and not parts.stop(join=10):
            raise LabError("in-process controller: run loop did not stop within 10s")

    def restart(self, timeout: float = 60.0) -> InProcessController:
        self.stop()
        return self.start(timeout)

    def idle(self) -> bool:
        ctl = self.ctl
        return (ctl is not None and ctl.last_sync is not None and ctl.ready()
                and len(ctl.queue) == 0 and ctl.writer.idle())

    def wait_idle(self, timeout: float = 60.0, quiet: float = 0.3) -> None:
        """Until the first full sync is done and the queue and writer stay quiet `quiet` s."""
        deadline = time.monotonic() + timeout
        since = None
        while True:
            if self.idle():
                since = since or time.monotonic()
                if time.monotonic() - since >= quiet:
                    return
            else:
                since = None
            if time.monotonic() >= deadline:
                raise LabError(f"in-process controller not idle after {timeout:.0f}s")
            time.sleep(0.05)

    # -- objects --------------------------------------------------------------------------
    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return self.backend.get(self.resource(kind), name, namespace)

    def list(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return self.backend.list(self.resource(kind), namespace)[0]

    @staticmethod
    def resource(kind: str) -> Any:
        from ycloud_controller.kube import resources as res

        return {"Pod": res.PODS, "Service": res.SERVICES, "Vnic": res.VNICS,
                "YusurService": res.YUSURSERVICES, "NetworkProbe": res.NETWORKPROBES,
                "EndpointSlice": res.ENDPOINTSLICES}[kind]

    def probe_for(self, namespace: str, ip: str, port: int) -> dict[str, Any] | None:
        """The NetworkProbe of backend ip:port in namespace."""
        for probe in self.list("NetworkProbe", namespace):
            spec = probe.get("spec") or {}
            if spec.get("ip") == ip and int(spec.get("port") or 0) == port:
                return probe
        return None
