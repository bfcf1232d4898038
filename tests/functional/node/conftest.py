"""Fixtures of the node agent's functional tests (see nodeenv.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.functional.node.nodeenv import NodeEnv, skip_reason


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeEnv]:
    """One node with a running agent for the module's tests."""
    why = skip_reason()
    if why:
        pytest.skip(why)
    env = NodeEnv(tmp_path_factory.mktemp("node")).start()
    try:
        env.start_agent()
        yield env
    finally:
        env.stop()


@pytest.fixture
def fresh_node(tmp_path: Path) -> Iterator[NodeEnv]:
    """A node whose agent the test starts itself (with its own flags)."""
    why = skip_reason()
    if why:
        pytest.skip(why)
    env = NodeEnv(tmp_path).start()
    try:
        yield env
    finally:
        env.stop()
