"""A stand-in for kube-apiserver, for tests: the HTTP wire protocol the client speaks.

No kube-apiserver can be installed on the test machines, so the Kubernetes datastore is
tested against this: a small in-memory API server on loopback that answers the requests
the official ``kubernetes`` client sends, the way kube-apiserver answers them:

* JSON objects and lists with a cluster-wide resourceVersion (one counter, like etcd's
  revision); ``limit``/``continue`` paging; label selectors (``=``, ``==``, ``!=``,
  ``in``, ``notin``, ``k``, ``!k``) and ``metadata.name``/``metadata.namespace`` field
  selectors;
* watches as chunked ``application/json`` streams of ADDED/MODIFIED/DELETED events from
  a resourceVersion, BOOKMARK events when ``allowWatchBookmarks`` is set, and an ERROR
  event with a 410 Expired Status when the version is older than the retained history
  (``compact()`` drops history; ``drop_watches()`` cuts open streams);
* Status errors: 404 NotFound, 409 AlreadyExists and Conflict (resourceVersion and
  DeleteOptions preconditions), 410, 422 Invalid, 415;
* strategic-merge and merge patches (strategic: maps merge, ``conditions``,
  ``addresses``, ``containers``, ``ports`` and ``podIPs`` lists merge by their keys,
  other lists are replaced), and the ``status`` subresource of nodes, pods, services,
  KubeVirt's migrations and the Calico kinds whose CRDs have one (the main resource
  keeps the stored status, ``/status`` keeps the stored spec; ``/status`` of a kind
  without it is 404). Which Calico kinds have it is ``status_subresources``: by default
  those of Calico v3.32.1's CRDs (``V3_32_STATUS_SUBRESOURCES``, as manifests/crds.yaml),
  ``LATER_STATUS_SUBRESOURCES`` for Calico's later ones; ``set_status_subresource``
  switches one kind;
* what admission and defaulting do that Calico notices: namespaces must exist, pods,
  services and the kinds of status-subresource CRDs (KubeVirt's
  VirtualMachineInstanceMigrations, ...) are created without status, Secret
  ``stringData`` becomes ``data``;
* service-account TokenRequests (``POST .../serviceaccounts/<name>/token``): an unsigned
  JWT-shaped token per request, and ``serviceaccounts/token`` in ``GET /api/v1`` discovery;
* RBAC for the bearer tokens in ``rbac`` (each a user and the rules bound to it, as in a
  ClusterRole, or a Role when a rule names its ``namespace``): a request no rule grants
  gets kube-apiserver's 403 Forbidden; a list or watch field-selected on
  ``metadata.name`` is checked against ``resourceNames`` with that name. Other requests
  are not checked (the tests' own admin access).

It is deliberately not a full API server: no validation of object schemas, no
admission plugins, no garbage collection, no graceful deletion.
"""
from __future__ import annotations

import base64
import bisect
import copy
import datetime as dt
import json
import re
import socket
import ssl
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from node.cli.ctl.patch import merge_patch  # RFC 7386, the same for every API

CALICO_PLURALS = {
    "bgpconfigurations": ("BGPConfiguration", False), "bgpfilters": ("BGPFilter", False),
    "bgppeers": ("BGPPeer", False), "blockaffinities": ("BlockAffinity", False),
    "caliconodestatuses": ("CalicoNodeStatus", False), "clusterinformations": ("ClusterInformation", False),
    "felixconfigurations": ("FelixConfiguration", False), "globalnetworkpolicies": ("GlobalNetworkPolicy", False),
    "globalnetworksets": ("GlobalNetworkSet", False), "hostendpoints": ("HostEndpoint", False),
    "ipamblocks": ("IPAMBlock", False), "ipamhandles": ("IPAMHandle", False), "ippools": ("IPPool", False),
    "ipreservations": ("IPReservation", False),
    "kubecontrollersconfigurations": ("KubeControllersConfiguration", False),
    "networkpolicies": ("NetworkPolicy", True), "networksets": ("NetworkSet", True),
    "stagedglobalnetworkpolicies": ("StagedGlobalNetworkPolicy", False),
    "stagedkubernetesnetworkpolicies": ("StagedKubernetesNetworkPolicy", True),
    "stagednetworkpolicies": ("StagedNetworkPolicy", True), "tiers": ("Tier", False),
}

# The Calico kinds (plurals) whose CRDs have the status subresource: in Calico v3.32.1
# (libcalico-go/config/crd/, and its API server's projectcalico.org/v3 resources)
# KubeControllersConfiguration only; Calico's later CRDs (projectcalico/calico#12352,
# v3.34) add it to CalicoNodeStatus, IPPool and Tier.
V3_32_STATUS_SUBRESOURCES = ("kubecontrollersconfigurations",)
LATER_STATUS_SUBRESOURCES = ("caliconodestatuses", "ippools", "kubecontrollersconfigurations", "tiers")


@dataclass(frozen=True)
class Res:
    kind: str
    namespaced: bool
    status_subresource: bool = False
    create_without_status: bool = False
    core: bool = False


def _resources(groups: tuple[str, ...],
               status_subresources: tuple[str, ...] = V3_32_STATUS_SUBRESOURCES) -> dict[tuple[str, str], Res]:
    out = {
        ("v1", "nodes"): Res("Node", False, status_subresource=True, core=True),
        ("v1", "pods"): Res("Pod", True, status_subresource=True, create_without_status=True, core=True),
        ("v1", "namespaces"): Res("Namespace", False, core=True),
        ("v1", "serviceaccounts"): Res("ServiceAccount", True, core=True),
        ("v1", "services"): Res("Service", True, status_subresource=True, create_without_status=True, core=True),
        ("v1", "configmaps"): Res("ConfigMap", True, core=True),
        ("v1", "secrets"): Res("Secret", True, core=True),
        ("networking.k8s.io/v1", "networkpolicies"): Res("NetworkPolicy", True, core=True),
        ("discovery.k8s.io/v1", "endpointslices"): Res("EndpointSlice", True, core=True),
        # CRDs themselves, stored and served back (calicoctl datastore migrate import
        # installs Calico's); the Calico kinds below are served whether or not they exist.
        ("apiextensions.k8s.io/v1", "customresourcedefinitions"): Res("CustomResourceDefinition", False, core=True),
        # network-policy-api's CRD; a test removes it to play a cluster without it.
        ("policy.networking.k8s.io/v1alpha2", "clusternetworkpolicies"): Res("ClusterNetworkPolicy", False, core=True),
        # KubeVirt's CRD (with its status subresource, so status is set through /status);
        # a test removes it to play a cluster without KubeVirt.
        ("kubevirt.io/v1", "virtualmachineinstancemigrations"): Res(
            "VirtualMachineInstanceMigration", True, status_subresource=True, create_without_status=True),
    }
    for group in groups:
        plurals = dict(CALICO_PLURALS)
        if group == "crd.projectcalico.org/v1":
            plurals["ipamconfigs"] = ("IPAMConfig", False)
        else:
            plurals["ipamconfigurations"] = ("IPAMConfiguration", False)
        for plural, (kind, namespaced) in plurals.items():
            out[(group, plural)] = _calico_res(kind, namespaced, plural in status_subresources)
    return out


def _calico_res(kind: str, namespaced: bool, status_subresource: bool) -> Res:
    # A CRD with the status subresource: create drops status, only /status writes it.
    return Res(kind, namespaced, status_subresource=status_subresource, create_without_status=status_subresource)


class HTTPProblem(Exception):
    def __init__(self, code: int, reason: str, message: str):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message


def _modified(plural: str, name: str) -> HTTPProblem:
    """The 409 for a write whose resourceVersion is out of date."""
    return HTTPProblem(409, "Conflict", f'Operation cannot be fulfilled on {plural} "{name}": the object has been '
                                        "modified; please apply your changes to the latest version and try again")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cut(socks) -> None:
    """Shut client connections down; their handler threads then finish."""
    for sock in socks:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


# -- selectors ---------------------------------------------------------------------------

_REQ = re.compile(r"\s*(!?)([A-Za-z0-9._/-]+)\s*(?:(==|=|!=)\s*([A-Za-z0-9._-]*)|\s+(in|notin)\s*\(([^)]*)\))?\s*")


def parse_label_selector(text: str):
    """A predicate over label dicts for Kubernetes' label selector syntax."""
    if not text:
        return lambda labels: True
    parts = []
    depth = 0
    current = ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    reqs = []
    for part in parts:
        m = _REQ.fullmatch(part)
        if not m:
            raise HTTPProblem(400, "BadRequest", f"unable to parse requirement: {part!r}")
        neg, key, op, value, setop, values = m.groups()
        if neg and (op or setop):
            raise HTTPProblem(400, "BadRequest", f"unable to parse requirement: {part!r}")
        reqs.append((neg, key, op, value, setop, [v.strip() for v in (values or "").split(",") if v.strip()]))

    def matches(labels: dict) -> bool:
        for neg, key, op, value, setop, values in reqs:
            present = key in labels
            if neg:
                if present:
                    return False
            elif op in ("=", "=="):
                if labels.get(key) != value:
                    return False
            elif op == "!=":
                if labels.get(key) == value:
                    return False
            elif setop == "in":
                if labels.get(key) not in values:
                    return False
            elif setop == "notin":
                if present and labels[key] in values:
                    return False
            elif not present:
                return False
        return True
    return matches


def parse_field_selector(text: str):
    if not text:
        return lambda obj: True
    reqs = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(metadata\.name|metadata\.namespace)\s*(==|=|!=)\s*(\S*)\s*", part)
        if not m:
            raise HTTPProblem(400, "BadRequest", f"field label not supported: {part!r}")
        reqs.append(m.groups())

    def matches(obj: dict) -> bool:
        meta = obj.get("metadata") or {}
        for field, op, value in reqs:
            actual = meta.get(field.split(".")[1], "")
            if (actual == value) != (op != "!="):
                return False
        return True
    return matches


# -- patches -----------------------------------------------------------------------------

_MERGE_KEYS = {"conditions": "type", "addresses": "type", "containers": "name", "initContainers": "name",
               "ports": "containerPort", "podIPs": "ip"}


def strategic_merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            out.pop(key, None)
        elif isinstance(value, list) and key in _MERGE_KEYS and isinstance(out.get(key), list):
            merge_key = _MERGE_KEYS[key]
            merged = [copy.deepcopy(item) for item in out[key]]
            for item in value:
                if not isinstance(item, dict) or merge_key not in item:
                    merged.append(copy.deepcopy(item))
                    continue
                for index, existing in enumerate(merged):
                    if isinstance(existing, dict) and existing.get(merge_key) == item[merge_key]:
                        merged[index] = strategic_merge_patch(existing, item)
                        break
                else:
                    merged.append(copy.deepcopy(item))
            out[key] = merged
        else:
            out[key] = strategic_merge_patch(out.get(key), value)
    return out


# -- the server ----------------------------------------------------------------------------

class KubeStandin:
    """An in-memory API server on 127.0.0.1 (see the module docstring)."""

    def __init__(self, groups: tuple[str, ...] = ("crd.projectcalico.org/v1",), *,
                 bookmark_interval: float = 1.0, namespaces: tuple[str, ...] = ("default", "kube-system"),
                 token: str = "", tls: tuple[Path, Path] | None = None,
                 status_subresources: tuple[str, ...] = V3_32_STATUS_SUBRESOURCES):
        """``token``: require ``Authorization: Bearer <token>`` (401 otherwise).
        ``tls``: (certificate, key) to serve HTTPS with (see ``make_tls``).
        ``status_subresources``: the Calico kinds (plurals) whose CRDs have the status
        subresource (see the module docstring)."""
        self.groups = groups
        self.token = token
        self.tls = tls
        self.resources = _resources(groups, status_subresources)
        self.bookmark_interval = bookmark_interval
        self.rv = 1
        self.objects: dict[tuple[str, str, str, str], dict] = {}
        self.events: list[tuple[int, tuple, str, dict, dict | None]] = []
        self.compacted = 0
        self.cond = threading.Condition()
        self.requests: list[tuple[str, str]] = []
        self.bookmarks: list[tuple[str, int]] = []  # (plural, resourceVersion) of each BOOKMARK sent
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._watch_sockets: set = set()
        self._connections: set = set()  # every open client connection, cut by stop()
        self._generation = 0
        self.port = 0
        # TokenRequests: (namespace, service account, request body, answer) of each one
        # answered; token_max_seconds caps the lifetime as kube-apiserver's
        # --service-account-max-token-expiration does (but below its 10-minute floor, for
        # tests); token_request_api=False plays a server without the TokenRequest API.
        self.token_requests: list[tuple[str, str, dict, dict]] = []
        self.token_max_seconds: float | None = None
        self.token_request_api = True
        # RBAC: bearer token -> (user name, rules); and each request refused, as
        # (verb, resource, namespace, name).
        self.rbac: dict[str, tuple[str, list[dict]]] = {}
        self.forbidden: list[tuple[str, str, str, str]] = []
        for ns in namespaces:
            self.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> "KubeStandin":
        standin = self

        class Handler(_Handler):
            server_standin = standin

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(self.tls[0]), str(self.tls[1]))
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="kube-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut every open connection, watches and kept-alive ones alike,
        as a server going down does (the data is kept: start() again serves it on the same
        port)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.drop_watches()
        with self.cond:
            socks = list(self._connections)
        _cut(socks)

    def __enter__(self) -> "KubeStandin":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def kubeconfig(self, path: Path, token: str = "", ca: Path | None = None) -> Path:
        user = {"token": token} if token else {}
        cluster = {"server": self.url, **({"certificate-authority": str(ca)} if ca else {})}
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "standin",
            "clusters": [{"name": "standin", "cluster": cluster}],
            "users": [{"name": "standin", "user": user}],
            "contexts": [{"name": "standin", "context": {"cluster": "standin", "user": "standin"}}],
        }))
        return path

    # -- test controls -----------------------------------------------------------------

    def compact(self) -> None:
        """Forget all history: watches from any older resourceVersion get 410."""
        with self.cond:
            self.compacted = self.rv
            self.events.clear()

    def drop_watches(self) -> None:
        """Cut every open watch connection (as a restarting API server or a proxy would)."""
        with self.cond:
            self._generation += 1
            socks = list(self._watch_sockets)
            self.cond.notify_all()
        _cut(socks)

    def watch_count(self) -> int:
        with self.cond:
            return len(self._watch_sockets)

    def set_status_subresource(self, plural: str, enabled: bool) -> None:
        """Serve the Calico kind ``plural`` (in every Calico group) from a CRD with the
        status subresource, or without it; the objects stored stay as they are."""
        with self.cond:
            keys = [key for key in self.resources if key[1] == plural and key[0].split("/")[0] in
                    ("crd.projectcalico.org", "projectcalico.org")]
            if not keys:
                raise KeyError(f"no Calico resource {plural!r}")
            for key in keys:
                res = self.resources[key]
                self.resources[key] = _calico_res(res.kind, res.namespaced, enabled)

    # -- direct object access for tests (same semantics as the HTTP verbs) ------------

    def _res(self, api_version: str, plural: str) -> Res:
        res = self.resources.get((api_version, plural))
        if res is None:
            raise HTTPProblem(404, "NotFound", f"the server could not find the requested resource ({plural})")
        return res

    def create(self, api_version: str, plural: str, obj: dict, namespace: str = "") -> dict:
        with self.cond:
            return copy.deepcopy(self._store_create(api_version, plural, namespace, copy.deepcopy(obj)))

    def get(self, api_version: str, plural: str, name: str, namespace: str = "") -> dict | None:
        with self.cond:
            obj = self.objects.get((api_version, plural, namespace, name))
            return copy.deepcopy(obj)

    def items(self, api_version: str, plural: str) -> list[dict]:
        with self.cond:
            return [copy.deepcopy(o) for k, o in sorted(self.objects.items()) if k[:2] == (api_version, plural)]

    def update(self, api_version: str, plural: str, obj: dict, subresource: str = "") -> dict:
        meta = obj.get("metadata") or {}
        with self.cond:
            return copy.deepcopy(self._store_update(api_version, plural, meta.get("namespace", ""),
                                                    meta.get("name", ""), copy.deepcopy(obj), subresource))

    def patch(self, api_version: str, plural: str, name: str, patch: dict, namespace: str = "",
              subresource: str = "", strategic: bool = True) -> dict:
        with self.cond:
            return copy.deepcopy(self._store_patch(api_version, plural, namespace, name, patch, subresource,
                                                   strategic))

    def delete(self, api_version: str, plural: str, name: str, namespace: str = "") -> dict:
        with self.cond:
            return copy.deepcopy(self._store_delete(api_version, plural, namespace, name, {}))

    # -- storage (callers hold self.cond) -----------------------------------------------

    def _next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def _record(self, key: tuple, kind: str, obj: dict, prev: dict | None) -> None:
        self.events.append((int(obj["metadata"]["resourceVersion"]), key, kind, copy.deepcopy(obj),
                            copy.deepcopy(prev)))
        if len(self.events) > 10000:
            drop = self.events[:5000]
            self.events = self.events[5000:]
            self.compacted = drop[-1][0]
        self.cond.notify_all()

    def _events_after(self, since: int) -> list:
        return self.events[bisect.bisect_right(self.events, since, key=lambda e: e[0]):]

    def _store_create(self, api_version: str, plural: str, namespace: str, obj: dict) -> dict:
        res = self._res(api_version, plural)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise HTTPProblem(400, "BadRequest", "metadata must be an object")
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        name = meta.get("name") or ""
        if not name:
            raise HTTPProblem(422, "Invalid", f"{res.kind}: metadata.name: Required value: name or generateName "
                                              "is required")
        if res.namespaced:
            namespace = namespace or meta.get("namespace") or ""
            if not namespace:
                raise HTTPProblem(400, "BadRequest", f"{res.kind} {name}: a namespace is required")
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise HTTPProblem(400, "BadRequest", "the namespace of the provided object does not match the "
                                                     "namespace sent on the request")
            if ("v1", "namespaces", "", namespace) not in self.objects:
                raise HTTPProblem(404, "NotFound", f'namespaces "{namespace}" not found')
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
            namespace = ""
        key = (api_version, plural, namespace, name)
        if key in self.objects:
            raise HTTPProblem(409, "AlreadyExists", f'{plural} "{name}" already exists')
        if res.create_without_status:
            obj.pop("status", None)
        if res.kind == "Secret":
            self._secret_string_data(obj)
        obj["apiVersion"] = api_version
        obj["kind"] = res.kind
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = _now()
        meta["resourceVersion"] = str(self._next_rv())
        meta.pop("deletionTimestamp", None)
        self.objects[key] = obj
        self._record(key, "ADDED", obj, None)
        return obj

    @staticmethod
    def _secret_string_data(obj: dict) -> None:
        string_data = obj.pop("stringData", None) or {}
        if string_data:
            data = dict(obj.get("data") or {})
            for k, v in string_data.items():
                data[k] = base64.b64encode(str(v).encode()).decode()
            obj["data"] = data

    def _existing(self, api_version: str, plural: str, namespace: str, name: str) -> tuple[tuple, dict, Res]:
        res = self._res(api_version, plural)
        key = (api_version, plural, namespace if res.namespaced else "", name)
        current = self.objects.get(key)
        if current is None:
            raise HTTPProblem(404, "NotFound", f'{plural} "{name}" not found')
        return key, current, res

    def _store_update(self, api_version: str, plural: str, namespace: str, name: str, obj: dict,
                      subresource: str) -> dict:
        key, current, res = self._existing(api_version, plural, namespace, name)
        meta = obj.get("metadata") or {}
        if meta.get("name", name) != name:
            raise HTTPProblem(400, "BadRequest", "the name of the object does not match the name on the URL")
        rv = meta.get("resourceVersion") or ""
        if not rv and not res.core:
            raise HTTPProblem(422, "Invalid", f'{res.kind} "{name}" is invalid: metadata.resourceVersion: Invalid '
                                              "value: 0x0: must be specified for an update")
        if rv and rv != current["metadata"]["resourceVersion"]:
            raise _modified(plural, name)
        if meta.get("uid") and meta["uid"] != current["metadata"]["uid"]:
            raise HTTPProblem(409, "Conflict", f'Precondition failed: UID in object meta: {meta["uid"]}, UID in '
                                               f'storage: {current["metadata"]["uid"]}')
        new = copy.deepcopy(obj)
        if res.status_subresource:
            if subresource == "status":
                if "spec" in current:
                    new["spec"] = copy.deepcopy(current["spec"])
                else:
                    new.pop("spec", None)
            else:
                if "status" in current:
                    new["status"] = copy.deepcopy(current["status"])
                else:
                    new.pop("status", None)
        elif subresource:
            raise HTTPProblem(404, "NotFound", f"{plural} has no {subresource} subresource")
        if res.kind == "Secret":
            self._secret_string_data(new)
        nmeta = new.setdefault("metadata", {})
        for k in ("uid", "creationTimestamp", "namespace", "name"):
            if k in current["metadata"]:
                nmeta[k] = current["metadata"][k]
        new["apiVersion"] = api_version
        new["kind"] = res.kind
        if _without_rv(new) == _without_rv(current):
            return current  # a no-op update does not change the resourceVersion
        nmeta["resourceVersion"] = str(self._next_rv())
        self.objects[key] = new
        self._record(key, "MODIFIED", new, current)
        return new

    def _store_patch(self, api_version: str, plural: str, namespace: str, name: str, patch: dict,
                     subresource: str, strategic: bool) -> dict:
        _, current, _ = self._existing(api_version, plural, namespace, name)
        if not isinstance(patch, dict):
            raise HTTPProblem(400, "BadRequest", "a merge patch must be a JSON object")
        pmeta = patch.get("metadata") or {}
        if pmeta.get("resourceVersion") and pmeta["resourceVersion"] != current["metadata"]["resourceVersion"]:
            raise _modified(plural, name)
        if pmeta.get("uid") and pmeta["uid"] != current["metadata"]["uid"]:
            raise HTTPProblem(409, "Conflict", f"Precondition failed: UID in precondition: {pmeta['uid']}, UID in "
                                               f"object meta: {current['metadata']['uid']}")
        merged = (strategic_merge_patch if strategic else merge_patch)(copy.deepcopy(current), patch)
        merged.setdefault("metadata", {})["resourceVersion"] = current["metadata"]["resourceVersion"]
        return self._store_update(api_version, plural, namespace, name, merged, subresource)

    def _store_delete(self, api_version: str, plural: str, namespace: str, name: str, options: dict) -> dict:
        key, current, _ = self._existing(api_version, plural, namespace, name)
        pre = (options or {}).get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != current["metadata"]["uid"]:
            raise HTTPProblem(409, "Conflict", f"Precondition failed: UID in precondition: {pre['uid']}, UID in "
                                               f"object meta: {current['metadata']['uid']}")
        if pre.get("resourceVersion") and pre["resourceVersion"] != current["metadata"]["resourceVersion"]:
            raise HTTPProblem(409, "Conflict", "Precondition failed: ResourceVersion in precondition: "
                                               f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                                               f"{current['metadata']['resourceVersion']}")
        del self.objects[key]
        gone = copy.deepcopy(current)
        gone["metadata"]["resourceVersion"] = str(self._next_rv())
        self._record(key, "DELETED", gone, current)
        return gone

    # -- reads --------------------------------------------------------------------------

    def _list(self, api_version: str, plural: str, namespace: str, query: dict) -> dict:
        res = self._res(api_version, plural)
        label_ok = parse_label_selector(query.get("labelSelector", ""))
        field_ok = parse_field_selector(query.get("fieldSelector", ""))
        limit = int(query.get("limit") or 0)
        start = query.get("continue", "")
        after = tuple(json.loads(base64.b64decode(start))) if start else None
        selected = []
        for key in sorted(self.objects):
            if key[:2] != (api_version, plural):
                continue
            if res.namespaced and namespace and key[2] != namespace:
                continue
            if after is not None and key[2:] <= after:
                continue
            obj = self.objects[key]
            if label_ok((obj.get("metadata") or {}).get("labels") or {}) and field_ok(obj):
                selected.append((key, obj))
        meta: dict = {"resourceVersion": str(self.rv)}
        if limit and len(selected) > limit:
            selected = selected[:limit]
            meta["continue"] = base64.b64encode(json.dumps(list(selected[-1][0][2:])).encode()).decode()
        return {"kind": f"{res.kind}List", "apiVersion": api_version, "metadata": meta,
                "items": [copy.deepcopy(o) for _, o in selected]}

    # -- TokenRequest (callers hold self.cond) --------------------------------------------

    def _token_request(self, namespace: str, name: str, body: dict) -> dict:
        """A stand-in for kube-apiserver's TokenRequest: the service account must exist and
        expirationSeconds be at least 10 minutes (its validation); the token is JWT-shaped
        but unsigned, and unique per request."""
        if not self.token_request_api:
            raise HTTPProblem(404, "NotFound", "the server could not find the requested resource")
        _, account, _ = self._existing("v1", "serviceaccounts", namespace, name)
        spec = body.get("spec") if isinstance(body, dict) else None
        spec = spec if isinstance(spec, dict) else {}
        seconds = spec.get("expirationSeconds") or 3600
        if not isinstance(seconds, int) or seconds < 600:
            raise HTTPProblem(422, "Invalid", f'TokenRequest.authentication.k8s.io "{name}" is invalid: '
                                              f"spec.expirationSeconds: Invalid value: {seconds}: may not specify "
                                              "a duration less than 10 minutes")
        lifetime = min(seconds, self.token_max_seconds) if self.token_max_seconds else seconds
        audiences = spec.get("audiences") or ["https://kubernetes.default.svc.cluster.local"]
        now = time.time()
        expires = int(now + lifetime)
        claims = {"aud": audiences, "exp": expires, "iat": int(now), "nbf": int(now), "jti": str(uuid.uuid4()),
                  "iss": "https://kubernetes.default.svc.cluster.local",
                  "sub": f"system:serviceaccount:{namespace}:{name}",
                  "kubernetes.io": {"namespace": namespace,
                                    "serviceaccount": {"name": name, "uid": account["metadata"]["uid"]}}}

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).decode().rstrip("=")

        token = ".".join((b64(b'{"alg":"none","typ":"JWT"}'), b64(json.dumps(claims).encode()), b64(b"stand-in")))
        answer = {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                  "metadata": {"name": name, "namespace": namespace, "creationTimestamp": None},
                  "spec": {"audiences": audiences, "expirationSeconds": int(lifetime), "boundObjectRef": None},
                  "status": {"token": token, "expirationTimestamp": dt.datetime.fromtimestamp(
                      expires, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}}
        self.token_requests.append((namespace, name, copy.deepcopy(body), copy.deepcopy(answer)))
        return answer

    def authorize(self, method: str, authorization: str, api_version: str | None, plural: str, namespace: str,
                  name: str, sub: str, query: dict) -> None:
        """Raise kube-apiserver's 403 for a request whose bearer token is in ``rbac`` and
        that none of its rules grants. Discovery (no resource) is always allowed."""
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() != "bearer" or given not in self.rbac or api_version is None or not plural:
            return
        user, rules = self.rbac[given]
        verb = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method, "")
        if method == "GET" and not name:
            verb = "watch" if query.get("watch") in ("true", "1") else "list"
            one = re.fullmatch(r"\s*metadata\.name\s*==?\s*([^,\s]+)\s*", query.get("fieldSelector", ""))
            name = one.group(1) if one else ""
        group = api_version.split("/")[0] if "/" in api_version else ""
        resource = f"{plural}/{sub}" if sub else plural

        def grants(rule: dict) -> bool:
            return (any(g in ("*", group) for g in rule.get("apiGroups") or [])
                    and any(r in ("*", resource) for r in rule.get("resources") or [])
                    and any(v in ("*", verb) for v in rule.get("verbs") or [])
                    and (not rule.get("resourceNames") or name in rule["resourceNames"])
                    and (not rule.get("namespace") or rule["namespace"] == namespace))

        if any(grants(rule) for rule in rules):
            return
        self.forbidden.append((verb, resource, namespace, name))
        subject = f'{plural} "{name}"' if name else plural
        where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
        raise HTTPProblem(403, "Forbidden", f'{subject} is forbidden: User "{user}" cannot {verb} resource '
                                            f'"{resource}" in API group "{group}"{where}')

    def core_discovery(self) -> dict:
        """``GET /api/v1``: the core resources, with TokenRequest's subresource when served."""
        resources = [{"name": plural, "namespaced": res.namespaced, "kind": res.kind}
                     for (group, plural), res in sorted(self.resources.items()) if group == "v1"]
        if self.token_request_api:
            resources.append({"name": "serviceaccounts/token", "namespaced": True, "group": "authentication.k8s.io",
                              "version": "v1", "kind": "TokenRequest", "verbs": ["create"]})
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1", "resources": resources}


def _without_rv(obj: dict) -> dict:
    out = copy.deepcopy(obj)
    out.get("metadata", {}).pop("resourceVersion", None)
    return out


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without TCP_NODELAY every answer
    # waits for the client's delayed ACK (~40 ms).
    disable_nagle_algorithm = True
    server_standin: KubeStandin

    def log_message(self, fmt, *args):  # quiet
        pass

    def setup(self) -> None:
        super().setup()
        with self.server_standin.cond:
            self.server_standin._connections.add(self.connection)

    def finish(self) -> None:
        with self.server_standin.cond:
            self.server_standin._connections.discard(self.connection)
        super().finish()

    # -- plumbing --------------------------------------------------------------------------

    def _send_json(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _status(self, problem: HTTPProblem) -> None:
        self._send_json(problem.code, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                       "message": problem.message, "reason": problem.reason,
                                       "code": problem.code})

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            raise HTTPProblem(400, "BadRequest", "the request body is not valid JSON") from None

    def _route(self):
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        segs = [s for s in parts.path.split("/") if s]
        if segs[:2] == ["api", "v1"]:
            api_version, rest = "v1", segs[2:]
        elif len(segs) >= 3 and segs[0] == "apis":
            api_version, rest = f"{segs[1]}/{segs[2]}", segs[3:]
        else:
            return None, None, "", "", "", query, segs
        namespace = ""
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        plural = rest[0] if rest else ""
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        return api_version, plural, namespace, name, sub, query, segs

    def _handle(self, method: str) -> None:
        standin = self.server_standin
        try:
            api_version, plural, namespace, name, sub, query, segs = self._route()
            standin.requests.append((method, self.path))
            if standin.token:
                scheme, _, given = (self.headers.get("Authorization") or "").partition(" ")
                if scheme.lower() != "bearer" or given != standin.token:
                    if method in ("POST", "PUT", "PATCH", "DELETE"):
                        self._body()
                    raise HTTPProblem(401, "Unauthorized", "Unauthorized")
            try:
                with standin.cond:
                    standin.authorize(method, self.headers.get("Authorization") or "", api_version, plural,
                                      namespace, name, sub, query)
            except HTTPProblem:
                if method in ("POST", "PUT", "PATCH", "DELETE"):
                    self._body()
                raise
            if api_version is None:
                if method == "GET" and segs == ["api"]:
                    return self._send_json(200, {"kind": "APIVersions", "versions": ["v1"]})
                if method == "GET" and segs == ["apis"]:
                    groups = sorted({g.split("/")[0] for g, _ in standin.resources if "/" in g})
                    return self._send_json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                        {"name": g, "versions": [{"groupVersion": v, "version": v.split("/")[1]}
                                                for v in sorted({gv for gv, _ in standin.resources
                                                                 if gv.split("/")[0] == g})]}
                        for g in groups]})
                raise HTTPProblem(404, "NotFound", f"the server could not find the requested resource "
                                                   f"{self.path}")
            if method == "GET" and api_version == "v1" and not plural:
                with standin.cond:
                    return self._send_json(200, standin.core_discovery())
            if method == "GET" and not name:
                if query.get("watch") in ("true", "1"):
                    return self._watch(api_version, plural, namespace, query)
                with standin.cond:
                    return self._send_json(200, standin._list(api_version, plural, namespace, query))
            body = self._body() if method in ("POST", "PUT", "PATCH", "DELETE") else None
            with standin.cond:
                if method == "GET":
                    _, obj, _ = standin._existing(api_version, plural, namespace, name)
                    return self._send_json(200, obj)
                if method == "POST" and (api_version, plural, sub) == ("v1", "serviceaccounts", "token"):
                    return self._send_json(201, standin._token_request(namespace, name, body))
                if method == "POST" and not name:
                    return self._send_json(201, standin._store_create(api_version, plural, namespace, body))
                if method == "PUT" and name:
                    return self._send_json(200, standin._store_update(api_version, plural, namespace, name,
                                                                      body, sub))
                if method == "PATCH" and name:
                    ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
                    if ctype not in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
                        raise HTTPProblem(415, "UnsupportedMediaType", f"the body of the request was in an "
                                                                        f"unknown format - accepted media types "
                                                                        f"include: application/merge-patch+json, "
                                                                        f"application/strategic-merge-patch+json "
                                                                        f"(got {ctype!r})")
                    strategic = ctype == "application/strategic-merge-patch+json"
                    if strategic and not standin._res(api_version, plural).core:
                        raise HTTPProblem(415, "UnsupportedMediaType", "strategic merge patch is not supported "
                                                                        "for custom resources")
                    return self._send_json(200, standin._store_patch(api_version, plural, namespace, name, body,
                                                                     sub, strategic))
                if method == "DELETE" and name:
                    return self._send_json(200, standin._store_delete(api_version, plural, namespace, name,
                                                                      body))
            raise HTTPProblem(405, "MethodNotAllowed", f"{method} is not supported on {self.path}")
        except HTTPProblem as problem:
            self._status(problem)
        except (BrokenPipeError, ConnectionResetError):
            pass

    do_GET = lambda self: self._handle("GET")  # noqa: E731
    do_POST = lambda self: self._handle("POST")  # noqa: E731
    do_PUT = lambda self: self._handle("PUT")  # noqa: E731
    do_PATCH = lambda self: self._handle("PATCH")  # noqa: E731
    do_DELETE = lambda self: self._handle("DELETE")  # noqa: E731

    # -- watches ---------------------------------------------------------------------------

    def _chunk(self, event: dict) -> None:
        data = json.dumps(event).encode() + b"\n"
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _watch(self, api_version: str, plural: str, namespace: str, query: dict) -> None:
        standin = self.server_standin
        res = standin._res(api_version, plural)
        label_ok = parse_label_selector(query.get("labelSelector", ""))
        field_ok = parse_field_selector(query.get("fieldSelector", ""))
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        timeout = float(query.get("timeoutSeconds") or 1800)
        rv_text = query.get("resourceVersion") or "0"
        try:
            since = int(rv_text)
        except ValueError:
            raise HTTPProblem(400, "BadRequest", f"invalid resource version {rv_text!r}") from None
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()

        def selected(key: tuple, obj: dict | None) -> bool:
            if obj is None or key[:2] != (api_version, plural):
                return False
            if res.namespaced and namespace and key[2] != namespace:
                return False
            return label_ok((obj.get("metadata") or {}).get("labels") or {}) and field_ok(obj)

        deadline = time.monotonic() + timeout
        with standin.cond:
            generation = standin._generation
            standin._watch_sockets.add(self.connection)
        try:
            with standin.cond:
                if since and since < standin.compacted:
                    self._chunk({"type": "ERROR", "object": {
                        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": f"too old resource version: {since} ({standin.compacted})", "reason": "Expired",
                        "code": 410}})
                    self.wfile.write(b"0\r\n\r\n")
                    return
                if since == 0:
                    pending = [("ADDED", obj) for key, obj in sorted(standin.objects.items()) if selected(key, obj)]
                    since = standin.rv
                else:
                    pending = []
            last_bookmark = time.monotonic()
            while True:
                for kind, obj in pending:
                    self._chunk({"type": kind, "object": obj})
                pending = []
                now = time.monotonic()
                if now >= deadline:
                    break
                with standin.cond:
                    if standin._generation != generation:
                        break
                    fresh = standin._events_after(since)
                    if not fresh:
                        standin.cond.wait(min(0.2, deadline - now))
                        fresh = standin._events_after(since)
                    if standin._generation != generation:
                        break
                    for rv, key, kind, obj, prev in fresh:
                        since = rv
                        now_in, was_in = selected(key, obj if kind != "DELETED" else prev), selected(key, prev)
                        if kind == "DELETED":
                            if was_in:
                                pending.append(("DELETED", obj))
                        elif now_in and was_in:
                            pending.append(("MODIFIED", obj))
                        elif now_in:
                            pending.append(("ADDED", obj))
                        elif was_in:
                            pending.append(("DELETED", obj))
                    current_rv = standin.rv
                if bookmarks and not pending and time.monotonic() - last_bookmark >= standin.bookmark_interval:
                    last_bookmark = time.monotonic()
                    self._chunk({"type": "BOOKMARK", "object": {"kind": res.kind, "apiVersion": api_version,
                                                                 "metadata": {"resourceVersion": str(current_rv)}}})
                    standin.bookmarks.append((plural, current_rv))
                    since = max(since, current_rv)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True
        finally:
            with standin.cond:
                standin._watch_sockets.discard(self.connection)


def make_tls(workdir: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key) for 127.0.0.1, made with openssl."""
    def openssl(*args: str) -> None:
        result = subprocess.run(["openssl", *args], cwd=workdir, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"openssl {' '.join(args)} failed: {result.stderr.strip()}")

    key_args = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *key_args, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=kube-standin-ca", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    (workdir / "server.ext").write_text("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                                        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("req", *key_args, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=kube-apiserver")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.crt", "-days", "2", "-extfile", "server.ext")
    return workdir / "ca.crt", workdir / "server.crt", workdir / "server.key"
