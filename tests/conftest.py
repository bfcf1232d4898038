"""Fixtures shared by every tier: a private OVN central started through ovn_sandbox."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from ovn_sandbox import Sandbox, SandboxState


def _have_ovn() -> str | None:
    missing = [t for t in ("ovsdb-server", "ovsdb-tool", "ovn-northd", "ovn-nbctl")
               if shutil.which(t) is None]
    return f"missing {', '.join(missing)} (run scripts/install-deps)" if missing else None


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """One NB/SB/northd per test session, in a private directory; stopped by pid."""
    reason = _have_ovn()
    if reason:
        pytest.skip(reason)
    directory = Path(os.environ.get("YCLOUD_TEST_SANDBOX_DIR")
                     or tmp_path_factory.mktemp("ovn") / "central")
    box = Sandbox(directory, tcp=True)
    box.start()
    yield box
    box.stop()


@pytest.fixture(scope="session")
def sandbox_state(sandbox: Sandbox) -> SandboxState:
    assert sandbox.state is not None
    return sandbox.state
