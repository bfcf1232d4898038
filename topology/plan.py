"""The diff between desired rows and the rows we own: a Plan.

`compute_plan` runs in the connection thread (inside a Command, or a read-only Command for
`render`), against an `OwnedIndex` consistent with the IDL. It is keyed by dicts, never by
nested loops over NB, and follows ownership strictly:

- insert = desired - owned, delete = owned - desired, per owner; update when the content
  hash in external_ids differs; extra rows with the same key (duplicates) are deleted;
- memberships (a port in a switch, an LB in a group, a group on a switch) are added when
  missing and removed only by the side that declares them (`model.REF_COLUMNS`); members
  that are not ours are never touched;
- an owner whose rows cannot be placed (a reference to a row that neither exists nor is
  being inserted, two owners wanting the same row) is left out of the plan with an error,
  and so is every owner that depended on its inserts. Other owners still land.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from topology import model
from topology.index import OwnedIndex
from topology.model import Link, Owner, Row, RowId

UUID = uuid.UUID


@dataclass(frozen=True)
class LinkOp:
    parent: RowId
    column: str
    child: RowId
    parent_uuid: UUID | None  # None: parent inserted in this plan
    child_uuid: UUID | None


@dataclass
class Plan:
    inserts: list[Row] = field(default_factory=list)
    updates: list[tuple[Row, UUID]] = field(default_factory=list)
    deletes: list[tuple[RowId, UUID, Owner | None]] = field(default_factory=list)
    link_adds: list[LinkOp] = field(default_factory=list)
    link_removes: list[LinkOp] = field(default_factory=list)
    errors: dict[Owner, str] = field(default_factory=dict)
    owners: list[Owner] = field(default_factory=list)

    def __len__(self) -> int:
        return (len(self.inserts) + len(self.updates) + len(self.deletes) + len(self.link_adds)
                + len(self.link_removes))

    def empty(self) -> bool:
        return len(self) == 0

    def summary(self) -> dict[str, int]:
        return {"insert": len(self.inserts), "update": len(self.updates),
                "delete": len(self.deletes), "link": len(self.link_adds),
                "unlink": len(self.link_removes), "errors": len(self.errors)}

    def describe(self) -> list[dict[str, Any]]:
        """Changes as plain data (for `render` and logs)."""
        out: list[dict[str, Any]] = []
        for row in self.inserts:
            out.append({"op": "insert", "table": row.TABLE, "key": row.key,
                        "owner": str(row.owner), "columns": row.columns()})
        for row, _ in self.updates:
            out.append({"op": "update", "table": row.TABLE, "key": row.key,
                        "owner": str(row.owner), "columns": row.columns()})
        for rid, _, owner in self.deletes:
            out.append({"op": "delete", "table": rid.table, "key": rid.key,
                        "owner": str(owner) if owner else None})
        for kind, ops in (("link", self.link_adds), ("unlink", self.link_removes)):
            for op in ops:
                out.append({"op": kind, "table": op.parent.table, "key": op.parent.key,
                            "column": op.column, "member": f"{op.child.table}:{op.child.key}"})
        for owner, err in self.errors.items():
            out.append({"op": "error", "owner": str(owner), "message": err})
        return out


class _Builder:
    def __init__(self, index: OwnedIndex, desired: Mapping[Owner, Sequence[Row]]):
        self.index = index
        self.desired = desired
        self.errors: dict[Owner, str] = {}
        self.want: dict[RowId, Row] = {}
        self.want_by: dict[Owner, list[RowId]] = {}
        self.deleting: dict[RowId, list[tuple[UUID, Owner | None]]] = defaultdict(list)
        self.deleting_by: dict[Owner, list[RowId]] = defaultdict(list)

    def existing(self, rid: RowId) -> UUID | None:
        uuids = self.index.lookup(rid)
        return uuids[0] if uuids else None

    def collect(self) -> None:
        """Which owner gets each wanted row. A row that two owners want, or that another
        owner holds in NB, goes to its holder in NB; when nobody holds it, to the owner
        listed first in `desired` (callers list older objects first). A row held by an owner
        that is not part of this plan (still alive, just unchanged) is never taken over.
        The losers are left out of the plan with an error that names the winner."""
        claims: dict[Owner, dict[RowId, Row]] = {}
        for owner in self.desired:
            seen: dict[RowId, Row] = {}
            for row in self.desired[owner]:
                rid = row.rid
                if row.owner != owner:
                    self.errors[owner] = f"row {rid} claims owner {row.owner}"
                    break
                if rid in seen and seen[rid] != row:
                    self.errors[owner] = f"two different desired rows {rid}"
                    break
                seen[rid] = row
            else:
                claims[owner] = seen
        claimants: dict[RowId, list[Owner]] = defaultdict(list)
        for owner, seen in claims.items():
            for rid in seen:
                claimants[rid].append(owner)
        for owner, seen in claims.items():
            conflict = next((c for c in (self._conflict(owner, rid, claimants[rid])
                                         for rid in seen) if c), None)
            if conflict is not None:
                self.errors[owner] = conflict
                continue
            self.want.update(seen)
            self.want_by[owner] = list(seen)
        for owner in self.desired:
            if owner in self.errors:
                continue  # left out of the plan: its rows in NB stay as they are
            for rid in self.index.owned_by(owner):
                if rid not in self.want:
                    for row_uuid in self.index.lookup(rid):
                        self.deleting[rid].append((row_uuid, owner))
                    self.deleting_by[owner].append(rid)

    def _holder(self, rid: RowId) -> Owner | None:
        uuids = self.index.lookup(rid)
        return self.index.meta[uuids[0]].owner if uuids else None

    def _conflict(self, owner: Owner, rid: RowId, claimants: list[Owner]) -> str | None:
        holder = self._holder(rid)
        if holder is not None and holder != owner and holder not in self.desired:
            return f"NB row {rid} belongs to {holder}"
        winner = holder if holder in claimants else claimants[0]
        if winner != owner:
            return f"NB row {rid} is wanted by {winner} as well, which keeps it"
        return None

    def drop_owner(self, owner: Owner, reason: str) -> set[RowId]:
        """Leave `owner` out of the plan; returns the rows no longer wanted."""
        self.errors.setdefault(owner, reason)
        gone = set()
        for rid in self.want_by.pop(owner, ()):
            row = self.want.get(rid)
            if row is not None and row.owner == owner:
                del self.want[rid]
                gone.add(rid)
        for rid in self.deleting_by.pop(owner, ()):
            kept = [(u, o) for u, o in self.deleting.get(rid, ()) if o != owner]
            if kept:
                self.deleting[rid] = kept
            else:
                self.deleting.pop(rid, None)
        return gone

    def resolvable(self, rid: RowId) -> bool:
        if rid in self.want:
            return True
        return self.existing(rid) is not None and rid not in self.deleting

    def check_links(self) -> None:
        """Drop owners with dangling references until nothing changes (fixpoint). After the
        first pass only rows that reference a row dropped meanwhile are checked again."""
        pending: list[Row] = list(self.want.values())
        while pending:
            gone: set[RowId] = set()
            for row in pending:
                if row.rid not in self.want:
                    continue
                for link in row.links():
                    other = link.parent if link.child == row.rid else link.child
                    if not self.resolvable(other):
                        gone |= self.drop_owner(row.owner,
                                                f"{row.rid} references missing {other}")
                        break
            if not gone:
                return
            pending = [row for row in self.want.values()
                       if any((link.parent if link.child == row.rid else link.child) in gone
                              for link in row.links())]


def _desired_links(rows: Sequence[Row]) -> dict[tuple[RowId, str], set[RowId]]:
    out: dict[tuple[RowId, str], set[RowId]] = defaultdict(set)
    for row in rows:
        for link in row.links():
            out[(link.parent, link.column)].add(link.child)
    return out


def compute_plan(index: OwnedIndex, desired: Mapping[Owner, Sequence[Row]],
                 gc: bool = False, keep: Iterable[Owner] = ()) -> Plan:
    """Diff `desired` (rows per owner; an empty list deletes the owner's rows) against NB.

    With gc=True, owners found in NB but absent from `desired` (and not in `keep`) are
    deleted too.
    """
    index.refresh()
    held = {owner for owner, rows in desired.items() if _in_place(index, owner, rows)}
    if held:  # nothing to plan for them: they stay as they are, like `keep`
        desired = {o: r for o, r in desired.items() if o not in held}
        keep = held.union(keep)
    if gc:
        desired = dict(desired)
        kept = set(keep)
        for owner in index.owners() - kept:
            desired.setdefault(owner, ())
    b = _Builder(index, desired)
    b.collect()
    b.check_links()
    plan = Plan(errors=dict(b.errors), owners=sorted(desired))
    # duplicates of wanted keys are deleted as well
    for rid, row in b.want.items():
        uuids = index.lookup(rid)
        if not uuids:
            plan.inserts.append(row)
            continue
        primary, extra = uuids[0], uuids[1:]
        for dup in extra:
            b.deleting[rid].append((dup, index.meta[dup].owner))
        meta = index.meta[primary]
        if rid.table not in model.OWNED_BY_NAME and (
                meta.hash != row.content_hash or meta.owner != row.owner):
            plan.updates.append((row, primary))
    for rid, items in b.deleting.items():
        for row_uuid, owner in items:
            plan.deletes.append((rid, row_uuid, owner))
    _plan_links(index, b, plan)
    return plan


def _in_place(index: OwnedIndex, owner: Owner, rows: Sequence[Row]) -> bool:
    """Whether NB holds exactly `rows` for `owner`: each row once, held by it, with its
    content hash; no other row of it; every link its rows declare present, and no other
    membership of ours on the declaring side. Planning such an owner changes nothing (and
    as the holder of its rows it keeps them against any other claimant), so the plan
    leaves it out: a restart or a verification plans only what differs."""
    held = index.by_owner.get(owner)
    if held is None or len(held) != len(rows):
        return not rows and held is None
    uuid_of: dict[RowId, UUID] = {}
    for row in rows:
        rid = row.rid
        uuids = index.rows.get(rid.table, {}).get(rid.key)
        if row.owner != owner or rid not in held or not uuids or len(uuids) > 1:
            return False
        meta = index.meta[uuids[0]]
        if meta.owner != owner or (rid.table not in model.OWNED_BY_NAME
                                   and meta.hash != row.content_hash):
            return False
        uuid_of[rid] = uuids[0]
    for row in rows:
        declared = set()
        for link in row.links():
            parent, child = index.lookup(link.parent), index.lookup(link.child)
            if not parent or not child or child[0] not in index.members.get(
                    (parent[0], link.column), ()):
                return False
            declared.add((link.parent, link.column, link.child))
        r_uuid = uuid_of[row.rid]
        for parent_uuid, column in index.parents_of.get(r_uuid, ()):
            pmeta = index.meta.get(parent_uuid)
            if pmeta is not None and model.REF_COLUMNS[(pmeta.table, column)][1] == "child" \
                    and (RowId(pmeta.table, pmeta.key), column, row.rid) not in declared:
                return False
        for column in model.ref_columns(row.TABLE):
            if model.REF_COLUMNS[(row.TABLE, column)][1] != "parent":
                continue
            for child_uuid in index.members.get((r_uuid, column), ()):
                cmeta = index.meta.get(child_uuid)
                if cmeta is not None and (row.rid, column,
                                          RowId(cmeta.table, cmeta.key)) not in declared:
                    return False
    return True


def _uuid_of(b: _Builder, rid: RowId) -> UUID | None:
    """Existing UUID of a wanted row, or None when the row is inserted by this plan."""
    return b.existing(rid)


def _plan_links(index: OwnedIndex, b: _Builder, plan: Plan) -> None:
    wanted_rows = list(b.want.values())
    desired_links = _desired_links(wanted_rows)
    inserted = {row.rid for row in plan.inserts}
    deleted_uuids = {u for _, u, _ in plan.deletes}
    # additions
    for (parent, column), children in desired_links.items():
        p_uuid = None if parent in inserted else _uuid_of(b, parent)
        current = index.members.get((p_uuid, column), set()) if p_uuid else set()
        for child in children:
            c_uuid = None if child in inserted else _uuid_of(b, child)
            if p_uuid is not None and c_uuid is not None and c_uuid in current:
                continue
            plan.link_adds.append(LinkOp(parent, column, child, p_uuid, c_uuid))
    # removals, by the declaring side
    for row in wanted_rows:
        if row.rid in inserted:
            continue
        r_uuid = _uuid_of(b, row.rid)
        assert r_uuid is not None
        for (parent_uuid, column) in list(index.parents_of.get(r_uuid, ())):
            pmeta = index.meta.get(parent_uuid)
            if pmeta is None or parent_uuid in deleted_uuids:
                continue
            declared_by = model.REF_COLUMNS[(pmeta.table, column)][1]
            if declared_by != "child":
                continue
            if row.rid not in desired_links.get((RowId(pmeta.table, pmeta.key), column), ()):
                plan.link_removes.append(LinkOp(RowId(pmeta.table, pmeta.key), column,
                                                row.rid, parent_uuid, r_uuid))
        for column in model.ref_columns(row.TABLE):
            if model.REF_COLUMNS[(row.TABLE, column)][1] != "parent":
                continue
            want_children = desired_links.get((row.rid, column), set())
            for child_uuid in index.members.get((r_uuid, column), set()):
                cmeta = index.meta.get(child_uuid)
                if cmeta is None:
                    continue  # not ours: never touched
                crid = RowId(cmeta.table, cmeta.key)
                if crid not in want_children:
                    plan.link_removes.append(LinkOp(row.rid, column, crid, r_uuid, child_uuid))
    # rows being deleted leave every set of ours they are in (required for non-root rows)
    for rid, row_uuid, _ in plan.deletes:
        for (parent_uuid, column) in list(index.parents_of.get(row_uuid, ())):
            if parent_uuid in deleted_uuids:
                continue
            pmeta = index.meta.get(parent_uuid)
            if pmeta is not None:
                plan.link_removes.append(LinkOp(RowId(pmeta.table, pmeta.key), column, rid,
                                                parent_uuid, row_uuid))


def links_of(rows: Sequence[Row]) -> list[Link]:
    return [link for row in rows for link in row.links()]
