"""Fixtures for the Kubernetes plumbing unit tests (no server)."""

from fakekube.fixtures import spawn, stop

__all__ = ["spawn", "stop"]
