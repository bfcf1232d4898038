"""The lab's sandbox ("pause") image, built here from Debian's busybox-static: nothing is pulled.

`build_image(path)` writes an OCI image-layout tarball (oci-layout, index.json, blobs/sha256/):
one uncompressed layer holding /bin/busybox and a symlink per applet (sh, sleep, ip, ping, ...),
empty /dev /proc /sys /etc /tmp /root, and a config whose entrypoint is a shell that sleeps
until SIGTERM/SIGINT (PID 1 of the sandbox: it must handle the signal itself). The index
carries `io.containerd.image.name`, so `ctr -n k8s.io images import` names it `SANDBOX_IMAGE`,
which the CRI config names as its `sandbox_image`. The build is deterministic (fixed mtimes,
sorted entries): the same busybox gives the same digests, so a second import is a no-op.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

BUSYBOX = Path("/bin/busybox")
SANDBOX_IMAGE = "localhost/ycloud-lab/sandbox:busybox"  # localhost: never a registry
# PID 1 ignores signals it has no handler for: trap them, sleep in the background, wait.
ENTRYPOINT = ["/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"]
DIRS = ("bin", "dev", "etc", "proc", "root", "sys", "tmp", "var")
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"


@dataclass(frozen=True)
class Blob:
    data: bytes
    media_type: str

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.data).hexdigest()

    def descriptor(self, **extra: object) -> dict[str, object]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data),
                **extra}


def oci_arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
            "s390x": "s390x"}.get(machine, machine)


def applets(busybox: Path = BUSYBOX) -> list[str]:
    res = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True,
                         timeout=10)
    return sorted({a for a in res.stdout.split() if a and "/" not in a and a != "busybox"})


def _add(tar: tarfile.TarFile, name: str, *, kind: bytes, mode: int, data: bytes = b"",
         link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime, info.uid, info.gid = kind, mode, 0, 0, 0
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def layer_tar(busybox: Path = BUSYBOX) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in DIRS:
            _add(tar, d, kind=tarfile.DIRTYPE, mode=0o1777 if d == "tmp" else 0o755)
        _add(tar, "bin/busybox", kind=tarfile.REGTYPE, mode=0o755, data=busybox.read_bytes())
        for name in applets(busybox):
            _add(tar, f"bin/{name}", kind=tarfile.SYMTYPE, mode=0o777, link="busybox")
    return buf.getvalue()


def image_blobs(busybox: Path = BUSYBOX) -> tuple[Blob, Blob, Blob]:
    """(layer, config, manifest) of the sandbox image."""
    layer = Blob(layer_tar(busybox), MEDIA_LAYER)
    config = {
        "architecture": oci_arch(), "os": "linux",
        "config": {"Entrypoint": ENTRYPOINT, "Env": ["PATH=/bin"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [layer.digest]},
        "history": [{"created_by": f"ycloud_lab.image from {busybox}"}],
    }
    cfg = Blob(json.dumps(config, sort_keys=True).encode(), MEDIA_CONFIG)
    manifest = {"schemaVersion": 2, "mediaType": MEDIA_MANIFEST, "config": cfg.descriptor(),
                "layers": [layer.descriptor()]}
    return layer, cfg, Blob(json.dumps(manifest, sort_keys=True).encode(), MEDIA_MANIFEST)


def build_image(path: Path, name: str = SANDBOX_IMAGE, busybox: Path = BUSYBOX) -> str:
    """Write the OCI archive of the sandbox image to path; return its manifest digest."""
    layer, cfg, manifest = image_blobs(busybox)
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else "latest"
    index = {"schemaVersion": 2, "manifests": [manifest.descriptor(annotations={
        "io.containerd.image.name": name, "org.opencontainers.image.ref.name": tag})]}
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, "oci-layout", kind=tarfile.REGTYPE, mode=0o644,
             data=b'{"imageLayoutVersion":"1.0.0"}')
        _add(tar, "index.json", kind=tarfile.REGTYPE, mode=0o644,
             data=json.dumps(index, sort_keys=True).encode())
        _add(tar, "blobs", kind=tarfile.DIRTYPE, mode=0o755)
        _add(tar, "blobs/sha256", kind=tarfile.DIRTYPE, mode=0o755)
        for blob in (layer, cfg, manifest):
            _add(tar, f"blobs/sha256/{blob.digest.split(':', 1)[1]}", kind=tarfile.REGTYPE,
                 mode=0o644, data=blob.data)
    return manifest.digest
