"""ycloud_controller.assemble: the parts of a controller are started in their order and
stopped together, also when one of them cannot start."""

from __future__ import annotations

import pytest
from fakekube.util import wait_for
from ovn_sandbox import Sandbox

from topology.nbsync.client import NbClient
from ycloud_controller.assemble import assemble
from ycloud_controller.config import Config
from ycloud_controller.memkube.backend import MemoryBackend
from ycloud_controller.memkube.store import MemoryStore


def test_an_nb_that_cannot_be_reached_stops_what_had_started(tmp_path) -> None:  # noqa: ANN001
    cfg = Config(nb_remote=f"unix:{tmp_path}/absent.sock")
    parts = assemble(cfg, MemoryBackend(MemoryStore()), nb_timeout=1.0, emulate=True)
    with pytest.raises(TimeoutError):
        parts.start()
    assert parts.ctl.stop_event.is_set()  # the informers and the writer were told to stop
    assert not any(t.is_alive() for t in parts.ctl._threads)  # noqa: SLF001
    assert parts.nb.session is None and parts.sb is None


def test_a_client_handed_in_is_left_to_its_owner(nb: NbClient, sandbox: Sandbox) -> None:
    assert sandbox.state is not None
    with assemble(Config(nb_remote=sandbox.state.nb_remote), MemoryBackend(MemoryStore()),
                  nb=nb, emulate=True) as parts:
        assert parts.start(wait=30)
        assert parts.ctl.nb is nb
        parts.serve()
        wait_for(parts.ctl.ready, timeout=30, what="the serve loop's first full sync")
    assert parts.loop is not None and not parts.loop.is_alive()  # stopped with the rest
    assert nb.connected()  # not ours to stop
