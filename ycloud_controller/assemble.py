"""Putting a controller together, for the CLI, the lab, bench and the tests: `assemble`
builds the NB client (unless one is handed in), the SB monitor (when the config names an SB
remote) and the `Controller`; the `Assembly` starts and stops them in the order they need:
the SB monitor after the Controller (which sets its callback), NB after the informers (they
list while our NB rows load), the serve loop on a thread once every informer has listed."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from topology.nbsync.client import NbClient, SslConfig
from topology.nbsync.sb_health import SbMonitor
from ycloud_controller.config import Config
from ycloud_controller.controller import Controller
from ycloud_controller.kube.backend import Backend


@dataclass
class Assembly:
    ctl: Controller
    nb: NbClient
    sb: SbMonitor | None = None
    owns_nb: bool = True  # started and stopped here (not a client handed in)
    loop: threading.Thread | None = None

    def start(self, wait: float | None = 60.0) -> bool:
        """Start the SB monitor, the informers and the Kubernetes writer, then NB; then wait
        up to `wait` seconds (None: not at all) for every informer's first list. Returns
        whether they listed. What started is stopped again if a part fails to start."""
        try:
            if self.sb is not None:
                self.sb.start()
            self.ctl.start()
            if self.owns_nb:
                self.nb.start()
        except BaseException:
            self.stop()
            raise
        return True if wait is None else self.ctl.wait_synced(timeout=wait)

    def serve(self, target: Callable[[], None] | None = None,
              name: str = "controller-loop") -> threading.Thread:
        """The serve loop (`target`: something that calls it) on a daemon thread."""
        self.loop = threading.Thread(target=target or self.ctl.run, name=name, daemon=True)
        self.loop.start()
        return self.loop

    def stop(self, join: float = 10.0) -> bool:
        """Stop the controller, wait up to `join` seconds for the serve loop (a batch may be
        waiting for NB), then stop NB (if started here) and SB. Returns whether the serve
        loop ended."""
        self.ctl.shutdown()
        ended = True
        if self.loop is not None:
            self.loop.join(timeout=join)
            ended = not self.loop.is_alive()
        if self.owns_nb:
            self.nb.stop()
        if self.sb is not None:
            self.sb.stop()
        return ended

    def __enter__(self) -> Assembly:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def assemble(cfg: Config, backend: Backend, *, nb: NbClient | None = None,
             nb_timeout: float = 60.0, ssl: SslConfig | None = None, emulate: bool = False,
             plan_only: bool = False, write_kube: bool = True,
             is_leader: Callable[[], bool] | None = None,
             object_ages: bool = True) -> Assembly:
    """A Controller on `backend` and NB `cfg.nb_remote` (or the client `nb`, started and
    stopped by its owner), with an SB monitor when `cfg.sb_remote` is set. `emulate`: no
    cluster behind the backend (manifests mode); `object_ages`: creationTimestamps are the
    objects' own (not a manifests directory's); see Controller."""
    owns_nb = nb is None
    if nb is None:
        nb = NbClient(cfg.nb_remote, timeout=nb_timeout, ssl=ssl, bump_nb_cfg=cfg.bump_nb_cfg)
    sb = SbMonitor(cfg.sb_remote, ssl=ssl) if cfg.sb_remote else None
    ctl = Controller(cfg, backend, nb, emulate=emulate, write_kube=write_kube,
                     plan_only=plan_only, is_leader=is_leader, sb=sb, object_ages=object_ages)
    return Assembly(ctl, nb, sb, owns_nb)
