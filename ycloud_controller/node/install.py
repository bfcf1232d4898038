"""`ycloud-controller install-cni`: the DaemonSet's init container. Installs the CNI plugin
into the host's CNI bin dir and writes the conflist, each atomically (a runtime never reads a
half-written file).

The plugin installed on the host is plugin.py itself (standard library only) behind
`#!/usr/bin/env python3`: the host needs a python3 (3.8 or later), not this image's venv.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ycloud_controller.node import plugin

CONFLIST = "10-ycloud.conflist"


def conflist(socket: str, timeout: float = plugin.DEFAULT_TIMEOUT) -> dict:
    return {"cniVersion": plugin.SPEC_VERSION, "name": "ycloud",
            "plugins": [{"type": "ycloud-cni", "socket": socket, "timeoutSeconds": timeout}]}


def _atomic_write(path: Path, text: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def install(bin_dir: Path, conf_dir: Path, socket: str, interpreter: str,
            conf_name: str = CONFLIST) -> tuple[Path, Path]:
    source = Path(plugin.__file__).read_text()
    binary = bin_dir / "ycloud-cni"
    _atomic_write(binary, f"#!{interpreter}\n{source}", 0o755)
    conf = conf_dir / conf_name
    _atomic_write(conf, json.dumps(conflist(socket), indent=2) + "\n", 0o644)
    return binary, conf


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ycloud-controller install-cni",
                                description="install ycloud-cni and its conflist on the host")
    p.add_argument("--bin-dir", default="/opt/cni/bin", help="CNI bin dir (default /opt/cni/bin)")
    p.add_argument("--conf-dir", default="/etc/cni/net.d",
                   help="CNI conf dir (default /etc/cni/net.d)")
    p.add_argument("--conf-name", default=CONFLIST, help=f"conflist name (default {CONFLIST})")
    p.add_argument("--socket", default=plugin.DEFAULT_SOCKET,
                   help=f"the node agent's socket, as the host sees it (default "
                        f"{plugin.DEFAULT_SOCKET})")
    p.add_argument("--interpreter", default="/usr/bin/env python3",
                   help="the host's python3 for the plugin's #! line (default "
                        "'/usr/bin/env python3')")
    args = p.parse_args(argv)
    binary, conf = install(Path(args.bin_dir), Path(args.conf_dir), args.socket,
                           args.interpreter, args.conf_name)
    sys.stdout.write(f"installed {binary} and {conf}\n")
    return 0
