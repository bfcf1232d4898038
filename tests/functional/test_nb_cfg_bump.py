"""`--bump-nb-cfg`: every NB transaction of the controller increments NB_Global.nb_cfg, as
`ovn-nbctl --wait=hv` does, and ovn-northd acknowledges it (NB_Global.sb_cfg). hv_cfg needs
chassis: `python -m bench --pipeline` reads it with real ovn-controllers."""

from __future__ import annotations

import time

from ovn_sandbox import Sandbox

from tests.functional.conftest import wipe_nb
from tests.functional.test_apply import base
from tests.functional.test_cli import EXAMPLES, cli
from topology.nbsync.applier import Applier
from topology.nbsync.client import NbClient


def nb_global(sandbox: Sandbox, column: str) -> int:
    return int(sandbox.nbctl("get", "NB_Global", ".", column).strip())


def northd_caught_up(sandbox: Sandbox, timeout: float = 30.0) -> tuple[int, int]:
    """(nb_cfg, sb_cfg) once ovn-northd has acknowledged nb_cfg in sb_cfg (or the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        nb_cfg, sb_cfg = nb_global(sandbox, "nb_cfg"), nb_global(sandbox, "sb_cfg")
        if sb_cfg >= nb_cfg or time.monotonic() > deadline:
            return nb_cfg, sb_cfg
        time.sleep(0.05)


def test_each_commit_bumps_nb_cfg_once_and_an_empty_plan_not_at_all(sandbox: Sandbox,
                                                                     nb: NbClient) -> None:
    assert sandbox.state is not None
    bumping = NbClient(sandbox.state.nb_remote, timeout=30, bump_nb_cfg=True).start()
    try:
        before = nb_global(sandbox, "nb_cfg")
        first = Applier(bumping).apply(base())
        assert first.ok and first.transactions == 1
        assert nb_global(sandbox, "nb_cfg") == before + 1
        again = Applier(bumping).apply(base())  # nothing to change: nothing sent
        assert again.ok and again.transactions == 0
        assert nb_global(sandbox, "nb_cfg") == before + 1
        nb_cfg, sb_cfg = northd_caught_up(sandbox)
        assert sb_cfg == nb_cfg == before + 1
        # the rows of that very transaction are in SB once sb_cfg says so
        assert "vpc-vpc1" in sandbox.sbctl("--columns=external_ids", "list", "Datapath_Binding")
        # a client without the option leaves nb_cfg alone
        wipe_nb(sandbox)
        assert Applier(nb).apply(base()).transactions == 1
        assert nb_global(sandbox, "nb_cfg") == before + 1
    finally:
        bumping.stop()


def test_sync_once_flag_bumps_nb_cfg_and_northd_follows(sandbox: Sandbox, nb: NbClient) -> None:
    before = nb_global(sandbox, "nb_cfg")
    plain = cli(sandbox, "sync", "--once", "--manifests", str(EXAMPLES))
    assert plain.returncode == 0, plain.stderr[-2000:]
    assert nb_global(sandbox, "nb_cfg") == before  # off by default
    wipe_nb(sandbox)
    bumped = cli(sandbox, "sync", "--once", "--bump-nb-cfg", "--manifests", str(EXAMPLES))
    assert bumped.returncode == 0, bumped.stderr[-2000:]
    commits = bumped.stderr.count('"nb transaction"')
    after = nb_global(sandbox, "nb_cfg")
    assert commits >= 1 and after == before + commits
    nb_cfg, sb_cfg = northd_caught_up(sandbox)
    assert sb_cfg == nb_cfg == after
    restart = cli(sandbox, "sync", "--once", "--bump-nb-cfg", "--manifests", str(EXAMPLES))
    assert restart.returncode == 0, restart.stderr[-2000:]
    assert nb_global(sandbox, "nb_cfg") == after  # nothing written, nothing bumped
