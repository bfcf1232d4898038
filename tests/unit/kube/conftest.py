"""Fixtures for the Kubernetes plumbing unit tests (no server)."""

from tests.fakekube.fixtures import spawn, stop

__all__ = ["spawn", "stop"]
