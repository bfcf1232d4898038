"""Fixtures for the Kubernetes plumbing tests against the in-process FakeKube."""

from fakekube.fixtures import api_client, backend, fake, spawn, stop

__all__ = ["api_client", "backend", "fake", "spawn", "stop"]
