"""The demo's control plane as one background process: the Kubernetes API (FakeKube, real HTTP
list/watch, on every address so each chassis reaches it over its own link) holding the
manifests, and ycloud-controller on it (in this process, on the API's store, as the lab
tests run it: inprocess.InProcessController, deriving ClusterIPs and EndpointSlices as
`ycloud-controller run --manifests` does, since no kube-controller-manager runs here).
The node agents watch the API over HTTP.

    python -m ycloud_lab.apiserver --manifests DIR --ovn-nb-db NB --ovn-sb-db SB \\
        --kubeconfig PATH --http-port PORT

Writes the kubeconfig once the API listens; /healthz and /readyz (the controller's) on
127.0.0.1:PORT; stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

import yaml

from ycloud_controller import logs
from ycloud_lab.cluster import serve_api
from ycloud_lab.inprocess import InProcessController


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ycloud_lab.apiserver")
    p.add_argument("--manifests", required=True)
    p.add_argument("--ovn-nb-db", required=True)
    p.add_argument("--ovn-sb-db")
    p.add_argument("--kubeconfig", required=True, help="written once the API listens")
    p.add_argument("--http-port", type=int, default=0)
    p.add_argument("--log-format", choices=("json", "console"), default="json")
    args = p.parse_args(argv)
    logs.configure(args.log_format, "info")

    from ycloud_controller.health_server import serve

    fake = serve_api(args.manifests)
    Path(args.kubeconfig).write_text(yaml.safe_dump(fake.kubeconfig()))
    controller = InProcessController(args.ovn_nb_db, args.ovn_sb_db, store=fake.store)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if args.http_port:
        serve(args.http_port, healthy=lambda: not stop.is_set(),
              ready=lambda: controller.ctl is not None and controller.ctl.ready())
    try:
        controller.start(timeout=300)
        stop.wait()
    finally:
        controller.stop()
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
