"""Desired NB rows as frozen dataclasses.

A builder returns rows; the apply engine compares them with the rows the controller owns in NB.
Every row has a `key` (its identity among our rows of that table, stored in
external_ids[naming.KEY]), an `owner` (the Kubernetes object it exists for) and columns.

References between rows are *memberships*: "row C is in set column `col` of row P". A row
declares the memberships it is responsible for through `links()`, either as the parent
(a switch lists the LB groups it carries) or as the child (a pod port names its switch, an LB
names its group). Which side declares a given column is fixed per column in `REF_COLUMNS`,
so the engine knows whose change may remove a member. Non-ref columns are compared through a
content hash kept in external_ids, so a diff never needs to read column values back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any, ClassVar, NamedTuple

from topology import naming

Map = tuple[tuple[str, str], ...]


def fmap(d: dict[str, Any] | None = None, **kw: Any) -> Map:
    """A frozen, sorted map for dataclass fields: fmap({'a': 1}) -> (('a', '1'),)."""
    items = dict(d or {}, **kw)
    return tuple(sorted((str(k), str(v)) for k, v in items.items() if v is not None))


# Owner, RowId and Link are named tuples, not dataclasses: they key most of the engine's
# dicts and sets, and a tuple's hash and equality are C code (a dataclass's are Python
# functions: a third of the cost of a dict lookup, measured at 10k services).
class Owner(NamedTuple):
    """The Kubernetes object rows exist for: kind and `namespace/name` (or `name`)."""

    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"


class RowId(NamedTuple):
    table: str
    key: str

    def __str__(self) -> str:
        return f"{self.table}:{self.key}"


class Link(NamedTuple):
    """Membership: `child` is an element of set column `column` of `parent`."""

    parent: RowId
    column: str
    child: RowId


# (parent table, column) -> (child table, declared by: "parent" | "child", max elements or 0)
REF_COLUMNS: dict[tuple[str, str], tuple[str, str, int]] = {
    ("Logical_Switch", "ports"): ("Logical_Switch_Port", "child", 0),
    ("Logical_Switch", "load_balancer_group"): ("Load_Balancer_Group", "parent", 0),
    ("Logical_Router", "ports"): ("Logical_Router_Port", "child", 0),
    ("Logical_Router", "static_routes"): ("Logical_Router_Static_Route", "child", 0),
    ("Logical_Router", "nat"): ("NAT", "child", 0),
    ("Logical_Router", "load_balancer"): ("Load_Balancer", "child", 0),
    ("Logical_Router", "load_balancer_group"): ("Load_Balancer_Group", "parent", 0),
    ("Load_Balancer_Group", "load_balancer"): ("Load_Balancer", "child", 0),
    ("Load_Balancer", "health_check"): ("Load_Balancer_Health_Check", "child", 0),
    ("Logical_Router_Port", "gateway_chassis"): ("Gateway_Chassis", "child", 0),
    ("Logical_Router_Port", "ha_chassis_group"): ("HA_Chassis_Group", "parent", 1),
    ("HA_Chassis_Group", "ha_chassis"): ("HA_Chassis", "child", 0),
}

# Tables whose rows exist only while referenced (OVSDB non-root tables).
NON_ROOT = frozenset({
    "Logical_Switch_Port", "Logical_Router_Port", "Logical_Router_Static_Route", "NAT",
    "Load_Balancer_Health_Check", "Gateway_Chassis", "HA_Chassis",
})


@dataclass(frozen=True)
class Row:
    """Base of every desired row. Subclasses set TABLE and define their columns."""

    TABLE: ClassVar[str] = ""
    # columns that are not written as plain values (identity, references, ownership)
    NOT_COLUMNS: ClassVar[frozenset[str]] = frozenset({"owner", "vpc", "ids", "key_"})

    owner: Owner = field(kw_only=True)
    vpc: str | None = field(default=None, kw_only=True)
    ids: Map = field(default=(), kw_only=True)  # extra external_ids (naming.NODE, ...)

    @property
    def key(self) -> str:
        return self.name

    @cached_property
    def rid(self) -> RowId:
        return RowId(self.TABLE, self.key)

    def columns(self) -> dict[str, Any]:
        """Plain (non-reference) columns in python-ovs form: str, int, bool, list, dict."""
        out: dict[str, Any] = {}
        for name, is_map in _plain_fields(type(self)):
            value = getattr(self, name)
            out[name] = dict(value) if is_map else _to_ovs(value)
        return out

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # rows are immutable: compute each row's links once (the diff asks several times)
        super().__init_subclass__(**kwargs)
        make = cls.__dict__.get("links")
        if make is not None and not getattr(make, "_cached", False):
            def links(self: Row, _make: Any = make) -> tuple[Link, ...]:
                cached = self.__dict__.get("_links")
                if cached is None:
                    cached = self.__dict__["_links"] = _make(self)
                return cached
            links._cached = True  # type: ignore[attr-defined]
            links.__doc__ = make.__doc__
            cls.links = links  # type: ignore[method-assign]

    @classmethod
    def _ref_fields(cls) -> frozenset[str]:
        return frozenset()

    def links(self) -> tuple[Link, ...]:
        return ()

    def external_ids(self, columns: dict[str, Any] | None = None) -> dict[str, str]:
        """Our external_ids of the row; `columns`: its `columns()`, when the caller has
        them (the content hash is then computed from them, not from a second copy)."""
        ids = self._owner_ids()
        if columns is not None and "content_hash" not in self.__dict__:
            self.__dict__["content_hash"] = self._hash(columns, ids)  # cached_property's slot
        ids[naming.KEY] = self.key
        ids[naming.HASH] = self.content_hash
        return ids

    @cached_property
    def content_hash(self) -> str:
        return self._hash(self.columns(), self._owner_ids())

    def _owner_ids(self) -> dict[str, str]:
        ids = naming.owner_ids(self.owner.kind, self.owner.name, self.vpc)
        ids.update(self.ids)
        return ids

    def _hash(self, columns: dict[str, Any], ids: dict[str, str]) -> str:
        return naming.content_hash(_HASH_JSON([self.TABLE, self.key, columns, ids]))


# json.dumps(sort_keys=True) without building an encoder per call (the same text)
_HASH_JSON = json.JSONEncoder(sort_keys=True, check_circular=False).encode
_PLAIN_FIELDS: dict[type, tuple[tuple[str, bool], ...]] = {}


def _plain_fields(cls: type[Row]) -> tuple[tuple[str, bool], ...]:
    """(name, is a Map) of the plain columns of a row class, computed once per class."""
    found = _PLAIN_FIELDS.get(cls)
    if found is None:
        refs = cls._ref_fields()
        found = _PLAIN_FIELDS[cls] = tuple(
            (f.name, f.type == "Map") for f in fields(cls)
            if f.name not in cls.NOT_COLUMNS and f.name not in refs)
    return found


def _to_ovs(value: Any) -> Any:
    """Dataclass field value -> python-ovs value (tuple -> list, None -> [])."""
    if value is None:
        return []
    if isinstance(value, tuple):
        return list(value)
    return value


def _link(parent_table: str, parent_key: str, column: str, child: RowId) -> Link:
    return Link(RowId(parent_table, parent_key), column, child)


# -- routers ------------------------------------------------------------------------------
@dataclass(frozen=True)
class LogicalRouter(Row):
    TABLE: ClassVar[str] = "Logical_Router"
    name: str
    options: Map = ()
    lb_groups: tuple[str, ...] = ()  # Load_Balancer_Group keys carried by this router

    @classmethod
    def _ref_fields(cls) -> frozenset[str]:
        return frozenset({"lb_groups"})

    def links(self) -> tuple[Link, ...]:
        return tuple(_link(self.TABLE, self.name, "load_balancer_group",
                           RowId("Load_Balancer_Group", g)) for g in self.lb_groups)


@dataclass(frozen=True)
class LogicalRouterPort(Row):
    TABLE: ClassVar[str] = "Logical_Router_Port"
    name: str
    router: str  # Logical_Router key
    mac: str
    networks: tuple[str, ...]
    options: Map = ()
    peer: str | None = None
    ha_chassis_group: str | None = None  # HA_Chassis_Group key (a gateway port)

    @classmethod
    def _ref_fields(cls) -> frozenset[str]:
        return frozenset({"router", "ha_chassis_group"})

    def links(self) -> tuple[Link, ...]:
        out = [_link("Logical_Router", self.router, "ports", self.rid)]
        if self.ha_chassis_group:
            out.append(_link(self.TABLE, self.name, "ha_chassis_group",
                             RowId("HA_Chassis_Group", self.ha_chassis_group)))
        return tuple(out)


@dataclass(frozen=True)
class GatewayChassis(Row):
    TABLE: ClassVar[str] = "Gateway_Chassis"
    name: str
    port: str  # Logical_Router_Port key
    chassis_name: str
    priority: int

    @classmethod
    def _ref_fields(cls) -> frozenset[str]:
        return frozenset({"port"})

    def links(self) -> tuple[Link, ...]:
        return (_link("Logical_Router_Port", self.port, "gateway_chassis", self.rid),)


@dataclass(frozen=True)
class HAChassisGroup(Row):
    TABLE: ClassVar[str] = "HA_Chassis_Group"
    name: str


@dataclass(frozen=True)
class HAChassis(Row):
    TABLE: ClassVar[str] = "HA_Chassis"
    group: str  # HA_Chassis_Group key
    chassis_name: str
    priority: int

    @property
    def key(self) -> str:
        return naming.ha_chassis_key(self.group, self.chassis_name)

    @classmethod
    def _ref_fields(cls) -> frozenset[str]:
        return frozenset({"group"})

    def links(self) -> tuple[Link, ...]:
        return (_link("HA_Chassis_Group", self.group, "ha_chassis", self.rid),)


@dataclass(frozen=True)
class StaticRoute(Row):
    TABLE: ClassVar[str] = "Logical_Router_Static_Route"
    router: str
    ip_prefix: str
    nexthop: str
    policy: str = "dst-ip"
    output_port: str | None = None
    options: Map = ()

    @property
    def key(self) -> str:
        return naming.route_key(self.router, self.ip_prefix, self.nexthop, self.policy)

    @classmethod
    def _ref_fields(cls) -> frozenset[str]:
        return frozenset({"router"})

    def links(self) -> tuple[Link, ...]:
        return (_link("Logical_Router", self.router, "static_routes", self.rid),)


@dataclass(frozen=True)
class Nat(Row):
    TABLE: ClassVar[str] = "NAT"
    router: str
    type: str  # snat | dnat | dnat_and_snat
    external_ip: str
    logical_ip: str
    logical_port: str | None = None
    external_mac: str | None = None
    options: Map = ()

    @property
    def key(self) -> str:
        return naming.nat_key(self.router, self.type, self.external_ip, self.logical_ip)

    @classmethod
    def _ref_fields(cls) -> frozenset[str]:
        return frozenset({"router"})

    def links(self) -> tuple[Link, ...]:
        return (_link("Logical_Router", self.router, "nat", self.rid),)


# -- switches -----------------------------------------------------------------------------
@dataclass(frozen=True)
class LogicalSwitch(Row):
    TABLE: ClassVar[str] = "Logical_Switch"
    name: str
    other_config: Map = ()
    lb_groups: tuple[str, ...] = ()

    @classmethod
    def _ref_fields(cls) -> frozenset[str]:
        return frozenset({"lb_groups"})

    def links(self) -> tuple[Link, ...]:
        return tuple(_link(self.TABLE, self.name, "load_balancer_group",
                           RowId("Load_Balancer_Group", g)) for g in self.lb_groups)


@dataclass(frozen=True)
class LogicalSwitchPort(Row):
    TABLE: ClassVar[str] = "Logical_Switch_Port"
    name: str
    switch: str
    type: str = ""
    addresses: tuple[str, ...] = ()
    port_security: tuple[str, ...] = ()
    options: Map = ()
    tag: int | None = None  # VLAN of a localnet port

    @classmethod
    def _ref_fields(cls) -> frozenset[str]:
        return frozenset({"switch"})

    def links(self) -> tuple[Link, ...]:
        return (_link("Logical_Switch", self.switch, "ports", self.rid),)


# -- load balancing -----------------------------------------------------------------------
@dataclass(frozen=True)
class LoadBalancerGroup(Row):
    """Has no external_ids in the NB schema: recognised by its reserved name prefix."""

    TABLE: ClassVar[str] = "Load_Balancer_Group"
    name: str


@dataclass(frozen=True)
class LoadBalancer(Row):
    TABLE: ClassVar[str] = "Load_Balancer"
    name: str
    protocol: str
    vips: Map = ()
    options: Map = ()
    selection_fields: tuple[str, ...] = ()
    ip_port_mappings: Map = ()
    groups: tuple[str, ...] = ()  # Load_Balancer_Group keys
    routers: tuple[str, ...] = ()  # Logical_Router keys carrying this LB directly

    @classmethod
    def _ref_fields(cls) -> frozenset[str]:
        return frozenset({"groups", "routers"})

    def links(self) -> tuple[Link, ...]:
        return tuple(
            [_link("Load_Balancer_Group", g, "load_balancer", self.rid) for g in self.groups]
            + [_link("Logical_Router", r, "load_balancer", self.rid) for r in self.routers])


@dataclass(frozen=True)
class HealthCheck(Row):
    TABLE: ClassVar[str] = "Load_Balancer_Health_Check"
    lb: str  # Load_Balancer key
    vip: str
    options: Map = ()

    @property
    def key(self) -> str:
        return naming.health_check_key(self.lb, self.vip)

    @classmethod
    def _ref_fields(cls) -> frozenset[str]:
        return frozenset({"lb"})

    def links(self) -> tuple[Link, ...]:
        return (_link("Load_Balancer", self.lb, "health_check", self.rid),)


@dataclass(frozen=True)
class ChassisTemplateVar(Row):
    """The template variables of one chassis (one row per chassis: the schema's index):
    what a template Load_Balancer expands to there (node-local backends)."""

    TABLE: ClassVar[str] = "Chassis_Template_Var"
    chassis: str  # the chassis name (system-id): the Kubernetes node name
    variables: Map = ()

    @property
    def key(self) -> str:
        return self.chassis


ROW_TYPES: tuple[type[Row], ...] = (
    LogicalRouter, LogicalRouterPort, GatewayChassis, HAChassisGroup, HAChassis, StaticRoute,
    Nat, LogicalSwitch, LogicalSwitchPort, LoadBalancerGroup, LoadBalancer, HealthCheck,
    ChassisTemplateVar,
)
TABLES: tuple[str, ...] = tuple(t.TABLE for t in ROW_TYPES)
# Tables that have no external_ids column and are owned by name.
OWNED_BY_NAME = frozenset({"Load_Balancer_Group"})


def written_columns(table: str) -> tuple[str, ...]:
    """Plain columns the controller writes in `table` (external_ids included)."""
    row_type = next(t for t in ROW_TYPES if t.TABLE == table)
    cols = [f.name for f in fields(row_type)
            if f.name not in Row.NOT_COLUMNS and f.name not in row_type._ref_fields()]
    if table not in OWNED_BY_NAME:
        cols.append("external_ids")
    return tuple(cols)


def ref_columns(table: str) -> tuple[str, ...]:
    """Reference columns of `table` held by the controller (REF_COLUMNS order)."""
    found = _REF_COLUMNS_OF.get(table)
    if found is None:  # a table we do not write
        found = _REF_COLUMNS_OF[table] = tuple(col for (t, col) in REF_COLUMNS if t == table)
    return found


_REF_COLUMNS_OF: dict[str, tuple[str, ...]] = {}
