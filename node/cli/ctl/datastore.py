"""``calicoctl datastore migrate export|import|lock|unlock``: move a cluster from etcd to Kubernetes.

As Calico v3.32.1's calicoctl (commands/datastore/migrate/) does it:

* ``lock`` sets ClusterInformation ``default``'s ``datastoreReady`` to false (creating
  ClusterInformation and the default tiers first when missing), so calico/node and Felix
  stop acting on changes; ``unlock`` sets it back to true.
* ``export`` (etcdv3 only, and only while locked) prints the whole datastore as one
  stream: for each exported kind, in Calico's order, its list as YAML followed by
  ``---``; then ``===`` and ClusterInformation ``default`` as JSON; then ``===`` and the
  IPAM records as JSON (see ``_migrate_ipam``). Nodes take the name of their ``k8s``
  orchestrator reference (a node without one stops the export), and the node-specific
  FelixConfigurations and BGPConfigurations (``node.<name>``) and IPAM records follow
  them. WorkloadEndpoints and Profiles are left out (Kubernetes holds them as Pods,
  Namespaces and ServiceAccounts), and so are Kubernetes NetworkPolicies (``knp.default.*``).
* ``import -f FILE`` (kubernetes only) creates or updates Calico's CRDs, refuses a target
  that already holds Calico resources or IPAM records, initialises and locks it, applies
  the resources, copies the cluster GUID and Calico version into its ClusterInformation
  and creates the IPAM records. The target stays locked until ``unlock``.

Output lines and error messages are Calico's, including its quirks: the apply summary of
the import, the unterminated "[WARNING] ..." line for a node that has no Kubernetes node,
and "error trying to create block affinity ..." for any IPAM record that fails.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path
from typing import Callable

from node.cli.ctl._common import CommandFailed, check_version_mismatch
from node.cli.ctl._gofmt import marshal_json
from node.cli.ctl._migrate_ipam import IPAMFileError, MigrateIPAM
from node.cli.ctl._printers import Listed, Printer, output_dict, render
from node.config import ETCDV3, KUBERNETES, DatastoreConfig, calicoctl_datastore_config
from node.datastore.client import PROTECTED_TIERS, DatastoreClient, OperationNotSupported
from node.errors import CalicoError, NotFound
from node.model import KINDS, Resource, UnknownKind, from_dict, kind_info, load_documents

log = logging.getLogger(__name__)

# Every kind export writes, in Calico's order (allV3Resources): tiers before the policies
# in them, nodes before the kinds whose names follow node names.
ALL_V3_RESOURCES = (
    "ippools", "bgppeers", "tiers", "globalnetworkpolicies", "stagedglobalnetworkpolicies", "globalnetworksets",
    "hostendpoints", "kubecontrollersconfigurations", "networkpolicies", "stagednetworkpolicies",
    "stagedkubernetesnetworkpolicies", "networksets", "nodes", "bgpconfigurations", "felixconfigurations",
    "ipreservations", "bgpfilters",
)
# The names Calico gives them in messages (resourceDisplayMap), "Policy" twice included.
DISPLAY = {
    "ippools": "IPPools", "bgpconfigurations": "BGPConfigurations", "bgppeers": "BGPPeers",
    "felixconfigurations": "FelixConfigurations", "globalnetworkpolicies": "GlobalNetworkPolicies",
    "stagedglobalnetworkpolicies": "StagedGlobalNetworkPolicies", "globalnetworksets": "GlobalNetworkSets",
    "hostendpoints": "HostEndpoints", "kubecontrollersconfigurations": "KubeControllersConfigurations",
    "networkpolicies": "NetworkPolicies", "stagednetworkpolicies": "StagedNetworkPolicies",
    "stagedkubernetesnetworkpolicies": "StagedKubernetesNetworkPolicyPolicies", "networksets": "NetworkSets",
    "nodes": "Nodes", "ipreservations": "IPReservations", "bgpfilters": "BGPFilters", "tiers": "Tiers",
}
# The namespaced kinds Calico lists across all namespaces. (The staged namespaced
# policies are not among them, so Calico exports and checks only those in "default".)
ALL_NAMESPACES = ("networkpolicies", "networksets")

KNP_PREFIX = "knp.default."  # kube-controllers' name for Kubernetes NetworkPolicies kept in etcd
SECTION = "===\n"
LOCK_HINT = "datastore is not locked. Run the `calicoctl datastore migrate lock` command in order to begin migration"
# The Calico CRDs the import installs (libcalico-go/config/crd/, as manifests/crds.yaml has
# them): the source checkout's file, or wherever CALICO_CRDS_FILE says (the image sets it).
CRDS_FILE_ENV = "CALICO_CRDS_FILE"
SOURCE_CRDS_FILE = Path(__file__).resolve().parents[3] / "manifests" / "crds.yaml"
CRD_PREFIX = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
IMPORT_QPS = "50"
IPTABLES_ACTION_FIELDS = ("defaultEndpointToHostAction", "iptablesFilterAllowAction",
                          "iptablesMangleAllowAction", "iptablesFilterDenyAction")


def register(subparsers) -> None:
    p = subparsers.add_parser("datastore", help="calico datastore management",
                              description="Datastore specific commands for calicoctl.")
    sub = p.add_subparsers(dest="datastore_command", required=True, metavar="COMMAND")
    m = sub.add_parser("migrate", help="migrate the contents of an etcdv3 datastore to a Kubernetes datastore",
                       description="Migration specific commands.")
    msub = m.add_subparsers(dest="migrate_command", required=True, metavar="COMMAND")

    exp = msub.add_parser(
        "export", help="export the contents of the etcdv3 datastore to yaml",
        description="Export the contents of the etcdv3 datastore (locked first with 'calicoctl datastore "
                    "migrate lock') to stdout; save it to a file for the import command. Exported: "
                    + ", ".join(DISPLAY[r] for r in ALL_V3_RESOURCES)
                    + ", ClusterInformation and the IPAM records. Not exported: WorkloadEndpoints, Profiles.")
    exp.set_defaults(func=cmd_export)
    imp = msub.add_parser("import", help="store and convert yaml of resources into the Kubernetes datastore",
                          description="Import the contents of the etcdv3 datastore from the file created by "
                                      "the export command.")
    imp.add_argument("-f", "--filename", required=True, metavar="FILENAME",
                     help='file to import resources from ("-" reads stdin)')
    imp.set_defaults(func=cmd_import)
    lock = msub.add_parser("lock", help="lock the datastore to prevent changes from occurring during datastore "
                                        "migration",
                           description="Lock the datastore to prepare it for migration. This prevents any new "
                                       "Calico resources from affecting the cluster but does not prevent "
                                       "updating or creating new Calico resources.")
    lock.set_defaults(func=cmd_lock)
    unlock = msub.add_parser("unlock", help="unlock the datastore to allow changes once the migration is completed",
                             description="Unlock the datastore to complete migration. This once again allows "
                                         "Calico resources to take effect in the cluster.")
    unlock.set_defaults(func=cmd_unlock)
    # -c/--config and --allow-version-mismatch are every command's (node.cli.calicoctl).


# --------------------------------------------------------------------------------------
# The client and ClusterInformation.

def _config(args) -> DatastoreConfig:
    return calicoctl_datastore_config(getattr(args, "config", None))


def _client(config: DatastoreConfig) -> DatastoreClient:
    from node.datastore.factory import client_for

    return client_for(config)


def _close(client: DatastoreClient | None) -> None:
    close = getattr(getattr(client, "kv", None), "close", None)
    if close is not None:
        close()


def check_locked(client: DatastoreClient) -> bool:
    """common.CheckLocked: the datastore is locked when datastoreReady is false. (Calico
    dereferences an unset datastoreReady and crashes; here unset reads as not locked.)"""
    try:
        info = client.get("ClusterInformation", "default")
    except CalicoError as exc:
        raise CommandFailed(f"error while checking if datastore was locked: "
                            f"error retrieving ClusterInformation: {exc}") from exc
    return info.spec.get("datastoreReady") is False


def set_datastore_ready(client: DatastoreClient, ready: bool, config: DatastoreConfig) -> None:
    """lock.go / unlock.go: the lock first makes sure ClusterInformation (and the default
    tiers) exist, as libcalico-go's EnsureInitialized does."""
    what = "unlocking" if ready else "locking"
    if not ready:
        from startup.cluster import ensure_initialized

        try:
            ensure_initialized(client, "", "", config.datastore_type)
        except CalicoError as exc:
            raise CommandFailed(f"unable to initialize cluster information for the datastore migration: {exc}") \
                from exc
    try:
        info = client.get("ClusterInformation", "default")
    except CalicoError as exc:
        raise CommandFailed(f"error retrieving ClusterInformation for {what}: {exc}") from exc
    info.spec["datastoreReady"] = ready
    try:
        client.update(info)
    except CalicoError as exc:
        raise CommandFailed(f"error updating ClusterInformation for {what}: {exc}") from exc
    print("Datastore unlocked." if ready else "Datastore locked.")


def _lock_or_unlock(args, ready: bool) -> int:
    check_version_mismatch(args)
    config = _config(args)
    client = _client(config)
    try:
        set_datastore_ready(client, ready, config)
    finally:
        _close(client)
    return 0


def cmd_lock(args) -> int:
    return _lock_or_unlock(args, False)


def cmd_unlock(args) -> int:
    return _lock_or_unlock(args, True)


# --------------------------------------------------------------------------------------
# export

def title_case(text: str) -> str:
    """golang.org/x/text's cases.Title(language.English) of a lower-cased word."""
    return text.title()


def convert_iptables_fields(spec: dict) -> None:
    """ConvertIptablesFields: the FelixConfiguration actions that the v1 API wrote in
    capitals (DROP, ACCEPT, RETURN) in the v3 API's spelling (Drop, Accept, Return)."""
    for name in IPTABLES_ACTION_FIELDS:
        value = spec.get(name)
        if isinstance(value, str) and value:
            spec[name] = title_case(value.lower())


def export_metadata(res: Resource) -> Resource:
    """The item as export writes it: no uid, resourceVersion, creation or deletion stamps
    (the namespace stays)."""
    out = res.copy()
    for key in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"):
        out.metadata.pop(key, None)
    return out


def k8s_node_name(node: Resource) -> str:
    """The node name of the node's (last) ``k8s`` orchestrator reference, or ""."""
    name = ""
    for ref in node.spec.get("orchRefs") or []:
        if isinstance(ref, dict) and ref.get("orchestrator") == "k8s":
            name = ref.get("nodeName") or ""
    return name


def export_items(plural: str, items: list[Resource], node_map: dict[str, str]) -> list[Resource]:
    """One kind's list as export writes it; fills ``node_map`` (etcd name -> Kubernetes
    name) from the Nodes and renames ``node.<name>`` configurations by it."""
    items = [export_metadata(r) for r in items]
    if plural == "networkpolicies":
        items = [r for r in items if not r.name.startswith(KNP_PREFIX)]
    elif plural == "nodes":
        for node in items:
            new_name = k8s_node_name(node)
            if not new_name:
                raise CommandFailed(f"unable to process metadata for export for Node resource: node {node.name} "
                                    "missing a 'k8s' orchestrator reference. Unable to export data unless every "
                                    "node has a 'k8s' orchestrator reference")
            node_map[node.name] = new_name
            node.metadata["name"] = new_name
    elif plural in ("felixconfigurations", "bgpconfigurations"):
        for config in items:
            if config.name.startswith("node.") and config.name[len("node."):] in node_map:
                config.metadata["name"] = "node." + node_map[config.name[len("node."):]]
            if plural == "felixconfigurations":
                convert_iptables_fields(config.spec)
    return items


def _list_namespace(plural: str) -> str:
    info = kind_info(plural)
    return "default" if info.namespaced and plural not in ALL_NAMESPACES else ""


def cmd_export(args) -> int:
    check_version_mismatch(args)
    config = _config(args)
    client = _client(config)
    try:
        if not check_locked(client):
            raise CommandFailed(LOCK_HINT)
        if config.datastore_type != ETCDV3:
            raise CommandFailed(f"invalid datastore type: {config.datastore_type} to export from for datastore "
                                "migration. Datastore type must be etcdv3")
        export(client, sys.stdout.write)
    finally:
        _close(client)
    return 0


def export(client: DatastoreClient, write: Callable[[str], object]) -> None:
    """The export stream, written section by section as it is read (as Calico prints
    it, so a failure part-way leaves what came before on stdout)."""
    node_map: dict[str, str] = {}
    for plural in ALL_V3_RESOURCES:
        info = kind_info(plural)
        try:
            items, revision = client.list_at(info.kind, _list_namespace(plural))
        except CalicoError as exc:
            raise CommandFailed(str(exc)) from exc
        items = export_items(plural, sorted(items, key=lambda r: (r.namespace, r.name)), node_map)
        write(render(Printer("yaml"), [Listed(info, items, revision)]))
        write("---\n")

    write(SECTION)
    try:
        info = client.get("ClusterInformation", "default")
    except CalicoError as exc:
        raise CommandFailed(str(exc)) from exc
    write(marshal_json(output_dict(info)) + "\n")

    write(SECTION)
    ipam = MigrateIPAM(node_map=node_map)
    try:
        ipam.pull(client.kv)
    except CalicoError as exc:
        raise CommandFailed(str(exc)) from exc
    write(marshal_json(ipam.to_json()) + "\n")


# --------------------------------------------------------------------------------------
# import

def crds_file() -> Path:
    return Path(os.environ.get(CRDS_FILE_ENV) or SOURCE_CRDS_FILE)


def calico_crds(path: Path | None = None) -> list[dict]:
    import yaml

    path = path or crds_file()

    try:
        docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise CalicoError(f"cannot read Calico's CRDs from {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise CalicoError(f"cannot parse Calico's CRDs in {path}: {exc}") from exc
    crds = [d for d in docs if isinstance(d, dict) and d.get("kind") == "CustomResourceDefinition"]
    if not crds:
        raise CalicoError(f"no CustomResourceDefinitions in {path}")
    return crds


def import_crds(api, crds: list[dict]) -> None:
    """Create each CRD, or replace it at its current resourceVersion when it exists."""
    from node.datastore.kubernetes.api import ApiError

    for crd in crds:
        name = crd["metadata"]["name"]
        try:
            api.create(CRD_PREFIX, crd)
        except ApiError as exc:
            if exc.status != 409:
                raise CalicoError(f"error creating CRD {name}: {exc}") from exc
            try:
                current = api.get(f"{CRD_PREFIX}/{name}")
            except CalicoError as exc2:
                raise CalicoError(f"error retrieving existing CRD to update: {name}: {exc2}") from exc2
            if current is None:
                raise CalicoError(f"error retrieving existing CRD to update: {name}: it is gone")
            body = json.loads(json.dumps(crd))
            body["metadata"]["resourceVersion"] = current["metadata"].get("resourceVersion", "")
            try:
                api.replace(f"{CRD_PREFIX}/{name}", body)
            except CalicoError as exc2:
                raise CalicoError(f"error updating CRD {name}: {exc2}") from exc2
        except CalicoError as exc:
            raise CalicoError(f"error creating CRD {name}: {exc}") from exc
        log.debug("Applied %s CRD", name)


def check_empty(client: DatastoreClient) -> None:
    """checkCalicoResourcesNotExist: no Calico resource of an exported kind (the built-in
    tiers and Kubernetes NetworkPolicies aside; Nodes are Kubernetes'), no
    ClusterInformation and no IPAM record."""
    for plural in ALL_V3_RESOURCES + ("clusterinformations",):
        if plural == "nodes":
            continue
        info = kind_info(plural)
        try:
            items = client.list(info.kind, _list_namespace(plural))
        except CalicoError as exc:
            raise CalicoError(f"failed to retrieve {DISPLAY.get(plural, info.kind)} resources during datastore "
                              f"check: {exc}") from exc
        if plural == "networkpolicies":
            items = [r for r in items if not r.name.startswith(KNP_PREFIX)]
        elif plural == "tiers":
            items = [r for r in items if r.name not in PROTECTED_TIERS]
        if items:
            raise CalicoError(f"found existing Calico {info.kind} resource")
    ipam = MigrateIPAM()
    try:
        ipam.pull(client.kv, affinity_types=("host", "virtual"))
    except CalicoError as exc:
        raise CalicoError(f"failed to retrieve IPAM resources during datastore check: {exc}") from exc
    if not ipam.is_empty():
        raise CalicoError("found existing IPAM resources")


def read_import_file(filename: str) -> tuple[str, str, str, str]:
    """(name, v3 resources, cluster information, IPAM) of an export (splitImportFile)."""
    name = "/dev/stdin" if filename == "-" else filename
    try:
        if filename == "-":
            text = sys.stdin.read()
        else:
            with open(filename, encoding="utf-8") as fh:
                text = fh.read()
    except OSError as exc:
        reason = (exc.strerror or str(exc))
        raise CommandFailed(f"error while reading migration file: open {name}: "
                            f"{reason[:1].lower() + reason[1:]}") from exc
    except UnicodeDecodeError as exc:
        raise CommandFailed(f"error while reading migration file: {name}: not UTF-8 text "
                            f"({exc.reason} at byte {exc.start})") from exc
    parts = text.split(SECTION)
    if len(parts) != 3:
        raise CommandFailed(f"error while reading migration file: imported file: {name} is improperly formatted. "
                            "Try recreating with 'calicoctl export'")
    return name, parts[0], parts[1], parts[2]


def _go_errors(errors: list[str]) -> str:
    """A []error as Go's %v prints it."""
    return "[" + " ".join(errors) + "]"


def parse_v3_section(text: str, name: str) -> list[Resource]:
    source = f"{name} (v3 resources section)"
    try:
        docs = load_documents(text, source)
        for doc in docs:
            kind = doc.get("kind") if isinstance(doc, dict) else None
            info = KINDS.get(kind) if isinstance(kind, str) else None
            if info is not None and info.extra.get("not_in_calicoctl"):
                raise UnknownKind(f"unknown resource type ({kind}) and/or version ({doc.get('apiVersion') or ''})")
        return [from_dict(doc, strict=True) for doc in docs]
    except (CalicoError, UnknownKind) as exc:
        raise CommandFailed("failed to import v3 resources: failed to import v3 resources: "
                            f"failed to execute command: {exc}") from exc


def apply_v3(client: DatastoreClient, resources: list[Resource], name: str) -> None:
    """applyV3: apply each resource (an update where the datastore cannot create it, as
    calicoctl's apply falls back for Kubernetes Nodes), then Calico's summary."""
    fail = "failed to import v3 resources: failed to import v3 resources: "
    if not resources:
        raise CommandFailed(f"{fail}failed to apply any resources: "
                            f"[no resources specified in the v3 resources section of {name}]")
    done = 0
    errors: list[tuple[Resource, CalicoError]] = []
    for res in resources:
        try:
            if res.info.namespaced and not res.namespace:
                res.metadata["namespace"] = "default"
            elif not res.info.namespaced and res.namespace:
                raise CalicoError("namespace should not be specified for a non-namespaced resource. "
                                  f"{res.kind} is not a namespaced resource")
            try:
                client.apply(res)
            except OperationNotSupported:
                client.replace(res)
        except CalicoError as exc:
            errors.append((res, exc))
            continue
        done += 1
    kinds = {r.kind for r in resources}
    if done == 0:
        raise CommandFailed(f"{fail}failed to apply any resources: {_go_errors([str(e) for _, e in errors])}")
    if not errors:
        what = f"'{kinds.pop()}' " if len(kinds) == 1 else ""
        print(f"Successfully applied {done} {what}resource(s)")
        return
    others = []
    for res, exc in errors:
        if res.kind == "Node" and isinstance(exc, NotFound):
            # Calico's line, without its end: what is printed next continues it.
            sys.stdout.write(f"[WARNING] Attempted to import node {exc.identifier} from etcd that references a "
                             "nonexistent Kubernetes node. Skipping that node. Non-Kubernetes nodes are not "
                             "supported in the Kubernetes datastore and will be skipped.")
            continue
        others.append(str(exc))
    if others:
        raise CommandFailed(f"{fail}hit error(s): {_go_errors(others)}")


def update_cluster_info(client: DatastoreClient, text: str) -> None:
    """Carry the etcd cluster's GUID and Calico version over (updateClusterInfo)."""
    fail = "failed to update cluster information: "
    try:
        migrated = json.loads(text)
    except ValueError as exc:
        raise CommandFailed(f"{fail}error reading exported cluster info for migration: {exc}") from exc
    spec = migrated.get("spec") if isinstance(migrated, dict) else None
    if not isinstance(migrated, dict) or migrated.get("kind", "ClusterInformation") != "ClusterInformation":
        raise CommandFailed(f"{fail}error reading exported cluster info for migration: expected a "
                            "ClusterInformation object")
    spec = spec if isinstance(spec, dict) else {}
    for field in ("clusterGUID", "calicoVersion"):
        if not isinstance(spec.get(field, ""), str):
            raise CommandFailed(f"{fail}error reading exported cluster info for migration: "
                                f"ClusterInformation.spec.{field} must be a string, not {json.dumps(spec[field])}")
    try:
        info = client.get("ClusterInformation", "default")
    except CalicoError as exc:
        raise CommandFailed(f"{fail}error retrieving current cluster info for migration: {exc}") from exc
    for field in ("clusterGUID", "calicoVersion"):
        if spec.get(field):
            info.spec[field] = spec[field]
        else:
            info.spec.pop(field, None)
    try:
        client.update(info)
    except CalicoError as exc:
        raise CommandFailed(f"{fail}error updating current cluster info for migration: {exc}") from exc


def import_ipam(client: DatastoreClient, text: str) -> None:
    print("Importing IPAM resources")
    try:
        ipam = MigrateIPAM.from_json(text)
    except IPAMFileError as exc:
        raise CommandFailed(f"failed to read IPAM resources: {exc}") from exc
    total, handled, errors = ipam.push(client.kv)
    if handled == 0:
        raise CommandFailed("no IPAM resources specified in file")
    if not errors:
        print(f"Successfully applied {handled} IPAM resource(s)")
        return
    print(f"Partial success: applied the first {handled} out of {total} resources:")
    raise CommandFailed(f"hit error(s): {_go_errors(errors)}")


def cmd_import(args) -> int:
    # (No version check here: Calico's import deliberately skips it.)
    config = _config(args)
    if config.datastore_type != KUBERNETES:
        raise CommandFailed(f"invalid datastore type: {config.datastore_type} to import to for datastore "
                            "migration. Datastore type must be kubernetes")
    qps = str(config.extra.get("k8sClientQPS", "")).strip()
    if qps in ("", "0", "0.0"):
        config = dataclasses.replace(config, extra={**config.extra, "k8sClientQPS": IMPORT_QPS})
    client = None
    try:
        try:
            client = _client(config)
            import_crds(client.kv.api, calico_crds())
        except CalicoError as exc:
            raise CommandFailed(f"error applying the CRDs necessary to begin datastore import: {exc}") from exc
        try:
            check_empty(client)
        except CalicoError as exc:
            raise CommandFailed(f"datastore already has Calico resources: {exc}. Clear out all Calico resources "
                                "by deleting all Calico CRDs") from exc
        from startup.cluster import ensure_initialized

        try:
            ensure_initialized(client, "", "", KUBERNETES)
        except CalicoError as exc:
            raise CommandFailed(f"unable to initialize cluster information for the datastore migration: {exc}") \
                from exc
        if not check_locked(client):
            try:
                # Calico runs its lock command here, version check and all (its cluster
                # version is the one just initialised: empty, so the check passes).
                check_version_mismatch(argparse.Namespace(config=getattr(args, "config", None)))
                set_datastore_ready(client, False, config)
            except CommandFailed as exc:
                raise CommandFailed(f"error while attempting to lock the datastore for import: {exc}") from exc

        name, v3_text, cluster_text, ipam_text = read_import_file(args.filename)
        apply_v3(client, parse_v3_section(v3_text, name), name)
        update_cluster_info(client, cluster_text)
        import_ipam(client, ipam_text)
    finally:
        _close(client)
    print("Datastore information successfully imported. Please refer to the datastore migration documentation "
          "for next steps.")
    return 0
