"""`ycloud-controller run` as a child process of a test, stopped by its pid.

Its JSON log events are timed from its start (`seen`), and, with an HTTP port, its
/metrics are read (`metric`), so a test can tell when it has synced and gone idle.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from tests.functional import nbcheck


class ControllerProcess:
    """`ycloud-controller run` as a child process; its JSON log events, timed from start."""

    def __init__(self, args: list[str], log: Path, http_port: int = 0):
        self.start = time.monotonic()
        self.http_port = http_port
        if http_port:
            args = [*args, "--http-port", str(http_port)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ycloud_controller.cli", "run", *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            cwd=nbcheck.ROOT)
        self.events: dict[str, float] = {}  # the first of each event
        self.counts: dict[str, int] = {}
        self._log = log.open("a")
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._log.write(line)
            self._log.flush()
            try:
                event = json.loads(line).get("event")
            except ValueError:
                continue
            self.events.setdefault(str(event), time.monotonic() - self.start)
            self.counts[str(event)] = self.counts.get(str(event), 0) + 1

    def seen(self, event: str) -> float | None:
        return self.events.get(event)

    def metric(self, name: str) -> float | None:
        """The value of an unlabelled metric of its /metrics (None while it does not
        answer)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics",
                                        timeout=5) as reply:
                text = reply.read().decode()
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith(f"{name} "):
                return float(line.split()[1])
        return None

    def kill(self) -> None:
        """SIGKILL our own child, by its pid."""
        self.stop(signal.SIGKILL)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send `sig` to our own child, by its pid, and wait for it to end."""
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._reader.join(timeout=10)
        self._log.close()
        return code


