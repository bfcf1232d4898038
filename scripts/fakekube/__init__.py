"""In-process fake Kubernetes API server for tests (see server.FakeKube)."""

from fakekube.server import FakeKube, RequestRecord

__all__ = ["FakeKube", "RequestRecord"]
