"""What a CalicoNodeStatus's ``status`` should say, and what the reporter does about each
datastore update (pure).

``populate`` asks a query function, per family (IPv4, then IPv6) and per class of
``spec.classes``, and folds the answers into a copy of the current status, as Calico's
populators do: the Agent class fills ``agent.birdV4``/``birdV6``, BGP the peers and their
counts, Routes the routes. A BIRD that does not answer is recorded as NotReady / no
peers / no routes; any other failure of the query propagates, so nothing is written that
cycle. ``Dispatcher`` decides, from the syncer's updates, which resources get a
reporting loop, which loops hear about a change and which stop.
"""
from __future__ import annotations

import copy
import datetime as _dt
import ipaddress
from dataclasses import dataclass, field
from typing import Callable, Iterable

from node.errors import ValidationError
from node.model.resource import Resource, parse_etcd_key
from node.model.schema import Collector, canonical_struct, validate_struct
from node.nodestatus.birdtext import (FAMILIES, PEER_TYPES, BirdUnavailable, DaemonStatus, Peer, Route,
                                      parse_session_name)

KIND = "CalicoNodeStatus"
STATUS_STRUCT = "CalicoNodeStatusStatus"
AGENT, BGP, ROUTES = "Agent", "BGP", "Routes"
CLASSES = (AGENT, BGP, ROUTES)
MAX_UPDATE_PERIOD = 86400
SESSION_STATES = ("Idle", "Connect", "Active", "OpenSent", "OpenConfirm", "Established", "Close")

# query(family, class) -> DaemonStatus (Agent), list[Peer] (BGP) or list[Route] (Routes);
# raises BirdUnavailable when BIRD does not answer, anything else when the query failed.
Query = Callable[[str, str], object]


# --------------------------------------------------------------------------------------
# BIRD records as CalicoNodeStatus fields.

def _address(text: str) -> str:
    """``text`` as a valid address ('' when it is not one: the field is then left out)."""
    try:
        return str(ipaddress.ip_address(text.partition("%")[0]))
    except ValueError:
        return ""


def daemon_status(status: DaemonStatus) -> dict:
    out = {"state": "Ready" if status.ready else "NotReady", "version": status.version,
           "routerID": status.router_id, "lastBootTime": status.last_boot_time,
           "lastReconfigurationTime": status.last_reconfig_time}
    return {k: v for k, v in out.items() if v}


def peer_status(peer: Peer) -> dict:
    """A CalicoNodePeer; a BGP state outside the API's list (BIRD's "Down") is left out, as
    Calico leaves it out."""
    out = {"peerIP": _address(peer.peer_ip), "type": PEER_TYPES.get(peer.peer_type, ""),
           "state": peer.bgp_state if peer.bgp_state in SESSION_STATES else "", "since": peer.since}
    return {k: v for k, v in out.items() if v}


class UnknownRouteSource(ValueError):
    """A route learned from a protocol the API has no source type for."""


def route_status(route: Route, family: str) -> dict:
    """A CalicoNodeRoute. Calico fails the whole Routes class (and so the whole update) on
    a route from a protocol it does not know, e.g. ``Local_Workload_*``; here a local
    workload's session is a BGPPeer, and the caller skips other unknown ones."""
    source = route.learned_from
    learned: dict = {}
    if source.startswith("kernel"):
        learned["sourceType"] = "Kernel"
    elif source.startswith("static"):
        learned["sourceType"] = "Static"
    elif source.startswith("direct"):
        learned["sourceType"] = "Direct"
    else:
        parsed = parse_session_name(source, family)
        if parsed is None:
            raise UnknownRouteSource(f"route {route.dest} via {route.gateway} was learned from protocol {source!r}, "
                                     "which is not a kernel, static, direct or BGP peer protocol; it is not reported")
        prefix, ip = parsed
        learned["sourceType"] = "NodeMesh" if prefix == "Mesh" else "BGPPeer"
        if _address(ip):
            learned["peerIP"] = _address(ip)
    out = {"type": "FIB" if route.primary else "RIB", "destination": route.dest, "gateway": route.gateway,
           "interface": route.iface, "learnedFrom": learned}
    return {k: v for k, v in out.items() if v or k == "learnedFrom"}


# --------------------------------------------------------------------------------------
# The status as a whole.

def canonical_status(status: dict | None) -> dict:
    """``status`` as Calico stores it (every struct present, empty lists left out), so two
    statuses compare equal exactly when their stored bytes would."""
    return canonical_struct(status or {}, STATUS_STRUCT, "status", Collector(), False)


@dataclass(frozen=True)
class Populated:
    status: dict
    # Parts of BIRD's answer left out of the status, for the reporter to log.
    warnings: tuple[str, ...] = ()


def _set_peers(bgp: dict, family: str, peers: list[Peer]) -> None:
    up = sum(1 for p in peers if p.state == "up")
    bgp[f"numberEstablishedV{family}"] = up
    bgp[f"numberNotEstablishedV{family}"] = len(peers) - up
    bgp[f"peersV{family}"] = [peer_status(p) for p in peers]


def _set_routes(routes: dict, family: str, answer: list[Route], warnings: list[str]) -> None:
    out = []
    for route in answer:
        try:
            out.append(route_status(route, family))
        except UnknownRouteSource as exc:
            warnings.append(str(exc))
    routes[f"routesV{family}"] = out


def populate(status: dict | None, classes: Iterable[str], query: Query) -> Populated:
    """The status after asking ``query`` about each class, IPv4 first, starting from
    ``status`` (so a class no longer asked for keeps its last values, as in Calico;
    ``lastUpdated`` is left as it was).

    A BIRD that does not answer (BirdUnavailable) sets that family's daemon NotReady and
    empties that family's peers or routes. Calico empties both families' peers or routes
    there (the whole struct), so an IPv6 BIRD that is not running would wipe the IPv4
    data just read; nothing relies on that, so only the one family is emptied here."""
    new = copy.deepcopy(canonical_status(status))
    warnings: list[str] = []
    wanted = []
    for cls in classes:
        if cls in CLASSES:
            wanted.append(cls)
        else:
            warnings.append(f"spec.classes: {cls!r} is not one of Agent, BGP, Routes; ignored")
    for family in FAMILIES:
        for cls in wanted:
            try:
                answer = query(family, cls)
            except BirdUnavailable:
                answer = None
            if cls == AGENT:
                new["agent"][f"birdV{family}"] = (daemon_status(answer) if isinstance(answer, DaemonStatus)
                                                  else {"state": "NotReady"})
            elif cls == BGP:
                _set_peers(new["bgp"], family, list(answer or []))
            else:
                _set_routes(new["routes"], family, list(answer or []), warnings)
    return Populated(canonical_status(new), tuple(warnings))


def validate_status(status: dict, ident: str) -> None:
    """ValidationError naming ``ident`` and each bad field of ``status``."""
    errs = Collector()
    validate_struct(status, STATUS_STRUCT, "status", errs)
    if errs.problems:
        raise ValidationError([(f"{ident}.{path}", value, reason) for path, value, reason in errs.problems])


def stamped(status: dict, now: _dt.datetime) -> dict:
    """``status`` with ``lastUpdated`` set to ``now`` as metav1.Time writes it (RFC 3339,
    UTC, whole seconds)."""
    out = dict(status)
    out["lastUpdated"] = now.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return out


# --------------------------------------------------------------------------------------
# Which resources are reported, and when a change restarts a reporter.

def for_node(res: Resource, nodename: str) -> bool:
    spec = res.spec if isinstance(res.spec, dict) else {}
    return spec.get("node") == nodename


def update_period(res: Resource) -> int:
    """``spec.updatePeriodSeconds`` in seconds (0: only when the spec changes); a
    ValidationError naming the resource and field when it is missing or out of range."""
    spec = res.spec if isinstance(res.spec, dict) else {}
    value = spec.get("updatePeriodSeconds")
    path = f"{res.identifier()}.spec.updatePeriodSeconds"
    if value is None:
        raise ValidationError([(path, value, "must be set for the node's status to be reported")])
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_UPDATE_PERIOD:
        raise ValidationError([(path, value, f"must be a whole number of seconds from 0 to {MAX_UPDATE_PERIOD}")])
    return value


def classes_of(res: Resource) -> list[str]:
    spec = res.spec if isinstance(res.spec, dict) else {}
    classes = spec.get("classes")
    return [c for c in classes if isinstance(c, str)] if isinstance(classes, list) else []


def _revision(res: Resource) -> int | None:
    text = res.resource_version
    return int(text) if text.isdigit() else None


def is_newer(incoming: Resource, current: Resource) -> bool:
    """Is ``incoming`` a later version than ``current``? (A reporter sees its own writes
    come back from the syncer, possibly after it wrote again: those are not newer.)"""
    new, old = _revision(incoming), _revision(current)
    return new is None or old is None or new > old


def _generation(res: Resource) -> int:
    value = res.metadata.get("generation") if isinstance(res.metadata, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def spec_changed(incoming: Resource, current: Resource) -> bool:
    """Does ``incoming`` ask for something new? Calico compares only ``generation``, which
    neither the etcd datastore nor the crd.projectcalico.org CRDs' conversion ever sets,
    so there a spec change reached its reporter only after a write conflict; here a
    changed spec counts as well."""
    return _generation(incoming) > _generation(current) or incoming.spec != current.spec


@dataclass(frozen=True)
class Action:
    verb: str                      # "start", "update" or "stop"
    name: str
    resource: Resource | None = None


@dataclass
class Dispatcher:
    """Calico's NodeStatusReporter loop without its threads: updates wait until the first
    in-sync, then each resource's latest state becomes one action.

    Calico ignores an update that moves a resource to another node, or unsets its
    ``updatePeriodSeconds``, and keeps reporting into it; here either stops its reporter
    (the other node's reporter owns it now), as a deletion does."""

    nodename: str
    in_sync: bool = False
    pending: dict[str, Resource | None] = field(default_factory=dict)
    running: set[str] = field(default_factory=set)

    def on_updates(self, updates: Iterable[tuple[str, Resource | None]]) -> list[str]:
        """Take (key, resource) pairs, None for a deletion; returns problems to log."""
        problems = []
        for key, res in updates:
            parsed = parse_etcd_key(key)
            if parsed is None or parsed[0] != KIND:
                continue
            name = parsed[2]
            if res is None or not for_node(res, self.nodename):
                self.pending[name] = None
                continue
            try:
                update_period(res)
            except ValidationError as exc:
                problems.append(f"not reporting: {exc}")
                self.pending[name] = None
                continue
            self.pending[name] = res
        return problems

    def on_in_sync(self) -> None:
        self.in_sync = True

    def actions(self) -> list[Action]:
        if not self.in_sync:
            return []
        out = []
        for name, res in self.pending.items():
            if res is None:
                if name in self.running:
                    self.running.discard(name)
                    out.append(Action("stop", name))
            elif name in self.running:
                out.append(Action("update", name, res))
            else:
                self.running.add(name)
                out.append(Action("start", name, res))
        self.pending.clear()
        return out
