"""The witness of `python -m bench --pipeline`: when has every chassis applied a change?

`Witness` monitors NB on its own connection: NB_Global (nb_cfg, sb_cfg, hv_cfg), the
Load_Balancer rows (name, vips) and the Logical_Switch_Port rows (name). One change is
awaited at a time (`expect`): a Load_Balancer whose vips become a given value, or a new
Logical_Switch_Port. Every writer in the bench bumps NB_Global.nb_cfg in the transaction that
carries its change (the controller with `--bump-nb-cfg`, the raw floor with the same
`mutate`), so the update notification that shows the row also shows the transaction's nb_cfg
(when the server merged several commits into one update, the latest: never too early). The
witness then records when NB_Global.sb_cfg (ovn-northd has written SB) and NB_Global.hv_cfg
(the minimum of every chassis' Chassis_Private.nb_cfg: each ovn-controller has installed the
flows) reach that nb_cfg. Times are time.monotonic() at receipt (CLOCK_MONOTONIC, shared
with the controller's process).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from bench import ovsdb


@dataclass
class Seen:
    """One awaited change: when NB showed it (and with which nb_cfg), when sb_cfg and hv_cfg
    reached that nb_cfg."""

    nb: float | None = None
    nb_cfg: int | None = None
    sb: float | None = None
    hv: float | None = None


class Witness(threading.Thread):
    def __init__(self, path: str):
        super().__init__(name="nb-witness", daemon=True)
        self.path = path
        self.client = ovsdb.Client(path)
        self.cfg_at: dict[str, float] = {}  # when each of cfg last changed
        self.cond = threading.Condition()
        self.cfg = {"nb_cfg": 0, "sb_cfg": 0, "hv_cfg": 0}
        self.lb_names: dict[str, str] = {}  # uuid -> name
        self.lb_vips: dict[str, str | None] = {}  # name -> vips value (of a single VIP)
        self.lsps: dict[str, str] = {}  # uuid -> name
        self.lsp_names: set[str] = set()
        self._target: tuple[str, str, str | None] | None = None
        self.seen = Seen()
        self._stop = False

    def start_monitor(self) -> Witness:
        requests = {"NB_Global": {"columns": ["nb_cfg", "sb_cfg", "hv_cfg"]},
                    "Load_Balancer": {"columns": ["name", "vips"]},
                    "Logical_Switch_Port": {"columns": ["name"]}}
        result = self.client.call("monitor", [ovsdb.DB, "bench-witness", requests])
        self._apply(time.monotonic(), result)
        self.start()
        return self

    def stop(self) -> None:
        self._stop = True
        self.client.hang_up()

    def run(self) -> None:
        ovsdb.follow(self.client, self._apply, lambda: self._stop)

    # -- state ----------------------------------------------------------------------------
    def _apply(self, now: float, updates: dict[str, Any]) -> None:
        with self.cond:
            for change in updates.get("NB_Global", {}).values():
                new = change.get("new") or {}
                for k in self.cfg:
                    if k in new and new[k] != self.cfg[k]:
                        self.cfg[k], self.cfg_at[k] = new[k], now
            for uuid, change in updates.get("Load_Balancer", {}).items():
                new = change.get("new")
                if new is None:
                    self.lb_vips.pop(self.lb_names.pop(uuid, ""), None)
                else:
                    pairs = new.get("vips", ["map", []])[1]
                    self.lb_names[uuid] = new["name"]
                    self.lb_vips[new["name"]] = pairs[0][1] if len(pairs) == 1 else None
            for uuid, change in updates.get("Logical_Switch_Port", {}).items():
                new = change.get("new")
                if new is None:
                    self.lsp_names.discard(self.lsps.pop(uuid, ""))
                else:
                    self.lsps[uuid] = new["name"]
                    self.lsp_names.add(new["name"])
            self._check(now)
            self.cond.notify_all()

    def _check(self, now: float) -> None:
        seen = self.seen
        if self._target is not None and seen.nb is None and self._present():
            seen.nb, seen.nb_cfg = now, self.cfg["nb_cfg"]
        if seen.nb_cfg is not None:
            if seen.sb is None and self.cfg["sb_cfg"] >= seen.nb_cfg:
                seen.sb = now
            if seen.hv is None and self.cfg["hv_cfg"] >= seen.nb_cfg:
                seen.hv = now

    def _present(self) -> bool:
        assert self._target is not None
        kind, name, value = self._target
        if kind == "lb":
            return name in self.lb_vips and self.lb_vips[name] == value
        return name in self.lsp_names

    # -- one change at a time ---------------------------------------------------------------
    def expect(self, kind: str, name: str, value: str | None = None) -> None:
        """Await a Load_Balancer `name` with vips `value` (kind "lb") or a new
        Logical_Switch_Port `name` (kind "lsp")."""
        with self.cond:
            self._target = (kind, name, value)
            self.seen = Seen()
            self._check(time.monotonic())

    def wait(self, timeout: float) -> Seen:
        """The awaited change once hv_cfg reached its nb_cfg (or what was seen by then)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.seen.hv is None and time.monotonic() < deadline:
                self.cond.wait(max(0.0, min(1.0, deadline - time.monotonic())))
            self._target = None
            return self.seen

    def caught_up(self, timeout: float, nb_cfg: int | None = None
                  ) -> tuple[float | None, float | None]:
        """Wait until sb_cfg and hv_cfg reach `nb_cfg` (default: the nb_cfg NB holds, asked
        of the server: everything committed so far); when each did (receipt of the update
        that showed it), or None for one that did not within the timeout."""
        if nb_cfg is None:
            nb_cfg = current_nb_cfg(self.path)
        deadline = time.monotonic() + timeout
        at: dict[str, float | None] = {"sb_cfg": None, "hv_cfg": None}
        with self.cond:
            while time.monotonic() < deadline:
                for k in at:
                    if at[k] is None and self.cfg[k] >= nb_cfg:
                        at[k] = self.cfg_at.get(k, time.monotonic())
                if all(v is not None for v in at.values()):
                    break
                self.cond.wait(max(0.0, min(1.0, deadline - time.monotonic())))
        return at["sb_cfg"], at["hv_cfg"]


def current_nb_cfg(path: str) -> int:
    client = ovsdb.Client(path)
    try:
        (res,) = client.transact([{"op": "select", "table": "NB_Global", "where": [],
                                   "columns": ["nb_cfg"]}])
        return max((r["nb_cfg"] for r in res["rows"]), default=0)
    finally:
        client.close()
