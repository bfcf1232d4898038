"""Run FakeKube as a process: ``python -m fakekube --port N [--kubeconfig PATH]``.

Prints the server URL on stdout (one line, flushed) and serves until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

import structlog

from fakekube.server import FakeKube


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fakekube")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--kubeconfig", help="write a kubeconfig for the server here")
    parser.add_argument("--bookmark-interval", type=float, default=5.0)
    parser.add_argument("--history", type=int, default=10000)
    args = parser.parse_args(argv)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    fake = FakeKube(host=args.host, port=args.port, bookmark_interval=args.bookmark_interval,
                    history=args.history).start()
    try:
        if args.kubeconfig:
            fake.write_kubeconfig(args.kubeconfig)
        sys.stdout.write(fake.url + "\n")
        sys.stdout.flush()
        stop.wait()
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
