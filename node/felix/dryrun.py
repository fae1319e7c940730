"""The dry run: the desired dataplane of the running agent, printed instead of programmed.

It feeds the same ``Pipeline`` the agent uses, either from resource files or from the
datastore until in sync, resolves host endpoints against this namespace's interfaces, and
renders one IP family's tables, IP sets or routes as text, or the workloads' bandwidth
limits (tc qdiscs, the same for both families). Routes are those of an agent just started:
a KubeVirt live migration's target endpoint has none (its machine is in Target until the
VM's GARP/RARP, which only the running agent watches for).
"""
from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Mapping

from node.datastore.client import default_allow_profile
from node.datastore.kubernetes.keys import native_key
from node.datastore.syncer import SyncStatus, Update, UpdateType
from node.errors import CalicoError
from node.felix.calc.offline import updates_from_resources
from node.felix.calc.routes import IPAMBlock
from node.felix.calc.services import ENDPOINT_SLICE_KIND, EndpointSliceSummary, summary_from_object
from node.felix.config import config_file_values, datastore_env
from node.felix.features import Features, detect_features
from node.felix.pipeline import FELIX_KINDS, Pipeline, felix_sources
from node.felix.qos_bandwidth import DEFAULT_TICK_IN_USEC, desired_bandwidth, render_bandwidth
from node.model import ipam as ipam_records
from node.felix.routes import DesiredRoutes, vxlan_device_name
from node.model import Resource, UnknownKind, from_dict, load_documents

log = logging.getLogger(__name__)


class DryRunError(CalicoError):
    """The dry run cannot produce an answer (no datastore, unreadable file, ...)."""


def built_in_tiers() -> list[Resource]:
    """The tiers every cluster has (libcalico-go's EnsureInitialized creates them)."""
    from startup.cluster import DEFAULT_TIERS

    return [from_dict({"apiVersion": "projectcalico.org/v3", "kind": "Tier", "metadata": {"name": name},
                       "spec": {"order": order, "defaultAction": action}})
            for name, order, action in DEFAULT_TIERS]


@dataclass
class FileInputs:
    """What the dry run reads from files: the resources, the Kubernetes EndpointSlices
    (as the agent's syncer decodes them on the Kubernetes datastore) and one line per
    document that cannot be used."""

    resources: list[Resource] = field(default_factory=list)
    endpoint_slices: list[EndpointSliceSummary] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def load_files(paths: Iterable[str]) -> tuple[list[Resource], list[str]]:
    """The resources and problems of ``load_inputs`` (EndpointSlices left out)."""
    inputs = load_inputs(paths)
    return inputs.resources, inputs.problems


def load_inputs(paths: Iterable[str]) -> FileInputs:
    """Resources from calicoctl-format files, with calicoctl's write-time defaults; and one
    problem line per document that cannot be used (naming file, document, kind, name and
    field). Kinds the agent does not follow are reported and skipped too, except
    BlockAffinity, which stands in for the IPAM block it claims (see ``block_updates``),
    and Kubernetes EndpointSlices (``discovery.k8s.io/v1``), which fill the IP sets of
    rules that name a Service, as on the Kubernetes datastore (a slice without a
    namespace is in ``default``, as kubectl would put it)."""
    from node.datastore.client import offline_write_defaults

    resources: list[Resource] = []
    slices: list[EndpointSliceSummary] = []
    problems: list[str] = []
    for path in paths:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise DryRunError(f"cannot read {path}: {exc.strerror or exc}") from None
        try:
            docs = load_documents(text, path)
        except CalicoError as exc:
            raise DryRunError(f"{path}: {exc}") from None
        for index, doc in enumerate(docs, start=1):
            where = f"{path} (document {index})"
            if isinstance(doc, dict) and doc.get("kind") == ENDPOINT_SLICE_KIND:
                summary, problem = _endpoint_slice(doc)
                if problem:
                    problems.append(f"{where}: skipped: {problem}")
                else:
                    slices.append(summary)
                continue
            if isinstance(doc, dict) and (doc.get("apiVersion"), doc.get("kind")) in KUBERNETES_POLICIES:
                doc, notes = _kubernetes_policy(doc)
                problems.extend(f"{where}: {note}" for note in notes)
                if doc is None:
                    continue
            try:
                res = from_dict(doc, strict=True)
            except (CalicoError, UnknownKind) as exc:
                problems.append(f"{where}: skipped: {exc}")
                continue
            if res.kind not in FELIX_KINDS and res.kind != "BlockAffinity":
                problems.append(f"{where}: skipped {res.identifier()}: the policy agent does not use "
                                f"{res.kind} resources")
                continue
            if res.info.namespaced and not res.namespace:
                res.metadata["namespace"] = "default"
            resources.append(res)
    resources, default_problems = offline_write_defaults(resources)
    problems.extend(default_problems)
    names = {(r.kind, r.name) for r in resources}
    resources = [t for t in built_in_tiers() if ("Tier", t.name) not in names] + resources
    return FileInputs(resources, slices, problems)


# Kubernetes' own policy kinds, as the Kubernetes datastore presents them to the agent.
KUBERNETES_POLICIES = {("networking.k8s.io/v1", "NetworkPolicy"),
                       ("policy.networking.k8s.io/v1alpha2", "ClusterNetworkPolicy")}


def _kubernetes_policy(doc: dict) -> tuple[dict | None, list[str]]:
    """A Kubernetes NetworkPolicy or ClusterNetworkPolicy document as the
    KubernetesNetworkPolicy or KubernetesClusterNetworkPolicy the agent reads on the
    Kubernetes datastore (the same conversion), with what the conversion dropped; None
    when it gives no policy (a ClusterNetworkPolicy with a bad tier or subject)."""
    from node.datastore.kubernetes import conversion

    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    if doc["kind"] == "NetworkPolicy":
        doc = {**doc, "metadata": {**meta, "namespace": meta.get("namespace") or "default"}}
        policy, notes = conversion.k8s_network_policy_to_calico(doc)
        what = f"NetworkPolicy {policy['metadata']['namespace']}/{policy['metadata']['name']}"
        return policy, [f"{what}: {note} (rule dropped)" for note in notes]
    policy, notes = conversion.k8s_cluster_network_policy_to_calico(doc)
    what = f"ClusterNetworkPolicy {meta.get('name', '')}"
    if policy is None:
        return None, [f"skipped malformed {what}: {'; '.join(notes)}"]
    return policy, [f"{what}: {note}" for note in notes]


def _endpoint_slice(doc: dict) -> tuple[EndpointSliceSummary | None, str]:
    """An EndpointSlice document's summary, or why it cannot be used."""
    meta = doc.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    if doc.get("apiVersion") != "discovery.k8s.io/v1":
        return None, f"EndpointSlice {name or ''}: apiVersion must be discovery.k8s.io/v1"
    if not isinstance(name, str) or not name:
        return None, "EndpointSlice without metadata.name"
    namespace = meta.get("namespace") or "default"
    return summary_from_object(doc, str(namespace), name), ""


def endpoint_slice_updates(slices: Iterable[EndpointSliceSummary]) -> list[Update]:
    """The syncer's updates for EndpointSlices read from files (later ones of the same
    namespace and name replace earlier ones, as in a datastore)."""
    return [Update(UpdateType.NEW, native_key(ENDPOINT_SLICE_KIND, s.namespace, s.name), s, i + 1)
            for i, s in enumerate(slices)]


def block_updates(resources: Iterable[Resource]) -> list[Update]:
    """Offline stand-ins for IPAM blocks: a confirmed BlockAffinity says its node owns the
    block, which is all the route calculation reads from a block (files cannot hold the
    blocks themselves, which are IPAM records rather than resources)."""
    out = []
    for i, res in enumerate(r for r in resources if r.kind == "BlockAffinity"):
        if res.spec.get("state", "confirmed") != "confirmed" or res.spec.get("deleted") in ("true", True):
            continue
        cidr = res.spec.get("cidr", "")
        out.append(Update(UpdateType.NEW, ipam_records.block_key(cidr),
                          IPAMBlock(str(ipaddress.ip_network(cidr, strict=False)), res.spec.get("node", "")), i + 1))
    return out


def _from_datastore(pipeline: Pipeline, env: Mapping[str, str], timeout: float) -> None:
    from node.config import datastore_config_from_env
    from node.datastore.factory import kv_for
    from node.datastore.syncer import Syncer

    try:
        config = datastore_config_from_env(env)
    except CalicoError as exc:
        raise DryRunError(str(exc)) from None
    syncer = Syncer(lambda: kv_for(config), felix_sources(env), pipeline)
    syncer.start()
    try:
        if not syncer.wait_for_status(SyncStatus.IN_SYNC, timeout):
            detail = f" ({syncer.last_error})" if getattr(syncer, "last_error", None) else ""
            raise DryRunError(f"the datastore was not in sync within {timeout:g}s{detail}")
    finally:
        syncer.stop()


def dry_run(hostname: str, env: Mapping[str, str], *, files: Iterable[str] = (), ip_version: int = 4,
            what: str = "tables", sync_timeout: float = 30.0, interfaces: Mapping[str, Iterable[str]] | None = None,
            interface_mtus: Mapping[str, int] | None = None, features: Features | None = None) -> str:
    """The text the dry run prints (``what``: tables, ipsets, routes or qos). ``interfaces``
    (name -> addresses) replaces reading this namespace's interfaces, ``interface_mtus``
    (name -> MTU) their MTUs, which the bandwidth limits use, and ``features`` this host's
    detected iptables and kernel features (tests use them)."""
    features = features if features is not None else detect_features()
    pipeline = Pipeline(hostname, env, config_file_values(env), features)
    files = list(files)
    if files:
        inputs = load_inputs(files)
        for problem in inputs.problems:
            log.error("%s", problem)
        resources = inputs.resources
        # As every datastore lists it (the syncer's builtin record): the default-allow profile.
        builtin = [default_allow_profile()]
        pipeline.on_updates(updates_from_resources(builtin + [r for r in resources if r.kind != "BlockAffinity"]))
        pipeline.on_updates(block_updates(resources))
        pipeline.on_updates(endpoint_slice_updates(inputs.endpoint_slices))
        pipeline.on_status(SyncStatus.IN_SYNC)
    else:
        # (with Felix's own datastore settings from its config file and FELIX_* variables)
        _from_datastore(pipeline, datastore_env(env, pipeline.file_config), sync_timeout)
    messages = pipeline.complete()
    mtu = None
    tick = DEFAULT_TICK_IN_USEC
    if interfaces is None:
        from node.felix.dataplane.interfaces import addresses_by_name, host_mtu, read_interfaces

        links = read_interfaces()
        interfaces = addresses_by_name(links)
        if interface_mtus is None:
            interface_mtus = {name: link.mtu for name, link in links.items()}
        if pipeline.config is not None:
            mtu = host_mtu(links, pipeline.config.MTUIfacePattern)
        if what == "qos":
            from node.felix.dataplane.qos import read_tick_in_usec

            tick = read_tick_in_usec()  # as the agent's QoS dataplane does
    pipeline.set_interfaces(interfaces)
    if pipeline.config_error is not None:
        raise DryRunError(f"the configuration cannot be used: {pipeline.config_error}")
    if what == "qos":
        return render_qos(pipeline, interface_mtus or {}, tick)
    if ip_version not in pipeline.dataplanes:
        raise DryRunError(f"IPv{ip_version} is disabled (Ipv6Support is false)")
    dp = pipeline.dataplanes[ip_version]
    missing = dp.missing_chains()
    if missing:
        raise DryRunError(f"internal error: chains referenced but not rendered: {missing}")
    if what == "ipsets":
        return dp.render_ipsets()
    if what == "routes":
        from node.felix.routes import render

        lines = render(routes_for_family(
            pipeline.desired_routes(host_mtu=mtu, live_migration=live_migration_at_start(pipeline, messages)),
            ip_version))
        return "\n".join(lines) + ("\n" if lines else "")
    return dp.render_save()


def live_migration_at_start(pipeline: Pipeline, messages: list) -> dict:
    """The live migration state of each local interface as a freshly started agent has
    it: a migration target (role ``target``) is in Target, so its routes are held back;
    nothing is Live or TimeWait yet (that takes the VM's GARP/RARP, or the role going,
    which a dry run never sees)."""
    from node.felix.live_migration import LiveMigrationMonitor, states_by_interface

    monitor = LiveMigrationMonitor()
    monitor.on_messages(messages)  # the actions (packet capture, timers, IPAM) are not carried out
    if not pipeline.dataplanes:
        return {}
    active = next(iter(pipeline.dataplanes.values())).active_workload_endpoints()
    return states_by_interface(monitor.states, active)


def render_qos(pipeline: Pipeline, mtus: Mapping[str, int], tick: float = DEFAULT_TICK_IN_USEC) -> str:
    """The bandwidth limits' qdiscs, filters and IFB devices, from the endpoints the agent
    hands its QoS dataplane (the active endpoint of each local interface); a bucket the
    kernel cannot use is logged as the agent logs it and left out."""
    active = next(iter(pipeline.dataplanes.values())).active_workload_endpoints()
    lines, problems = render_bandwidth(desired_bandwidth(active, tick), mtus)
    for problem in problems:
        log.warning("QoS bandwidth: %s; not applied", problem)
    return "\n".join(lines) + ("\n" if lines else "")


def _version(address: str) -> int:
    return ipaddress.ip_network(address, strict=False).version


def routes_for_family(desired: DesiredRoutes, version: int) -> DesiredRoutes:
    """The part of the route-side state that belongs to one IP family."""
    other = "ipv6" if version == 4 else "ipv4"
    return replace(
        desired,
        routes=tuple(r for r in desired.routes if r.version == version),
        neighbours=tuple(n for n in desired.neighbours if _version(n.ip) == version),
        fdb=tuple(f for f in desired.fdb if _version(f.dst) == version),
        vxlan_devices=tuple(d for d in desired.vxlan_devices if d.name == vxlan_device_name(version)),
        ipip_device=desired.ipip_device if version == 4 else None,
        absent_devices=tuple(d for d in desired.absent_devices if d == vxlan_device_name(version)),
        clean_ipip_addresses=desired.clean_ipip_addresses and version == 4,
        sysctls=tuple(c for c in desired.sysctls if not c.path.startswith(f"net/{other}/")),
    )
