"""Fixtures of the node agent's functional tests (see scripts/ycloud_lab/nodeenv.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ycloud_lab.nodeenv import NodeEnv, skip_reason


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


@pytest.fixture
def node_with_traffic(fresh_node: NodeEnv) -> NodeEnv:
    """A fresh agent that served one good ADD and one ADD of an unannotated pod."""
    fresh_node.start_agent()
    fresh_node.pod("m1")
    assert fresh_node.cni("ADD", "beef0001", fresh_node.netns("m1"), "m1")[0] == 0
    fresh_node.pod("m2", ip=None)
    assert fresh_node.cni("ADD", "beef0002", fresh_node.netns("m2"), "m2")[0] == 1
    return fresh_node
