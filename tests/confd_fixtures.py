"""Small builders for the resources the renderer reads (validated like calicoctl input)."""
from __future__ import annotations

from node.confd.inputs import ConfdInputs
from node.model import Resource, from_dict

API = "projectcalico.org/v3"


def _res(kind: str, name: str, spec: dict, labels: dict | None = None) -> Resource:
    meta: dict = {"name": name}
    if labels:
        meta["labels"] = labels
    return from_dict({"apiVersion": API, "kind": kind, "metadata": meta, "spec": spec})


def node(name: str, ipv4: str = "", ipv6: str = "", asn: int | None = None, labels: dict | None = None,
         rr_cluster_id: str = "", wireguard_v4: str = "") -> Resource:
    bgp: dict = {}
    if ipv4:
        bgp["ipv4Address"] = ipv4
    if ipv6:
        bgp["ipv6Address"] = ipv6
    if asn is not None:
        bgp["asNumber"] = asn
    if rr_cluster_id:
        bgp["routeReflectorClusterID"] = rr_cluster_id
    spec: dict = {"bgp": bgp} if bgp else {}
    if wireguard_v4:
        spec["wireguard"] = {"interfaceIPv4Address": wireguard_v4}
    return _res("Node", name, spec, labels)


def bgp_config(name: str = "default", **spec) -> Resource:
    return _res("BGPConfiguration", name, spec)


def peer(name: str, **spec) -> Resource:
    return _res("BGPPeer", name, spec)


def bgp_filter(name: str, **spec) -> Resource:
    return _res("BGPFilter", name, spec)


def stored(kind: str, name: str, **spec) -> Resource:
    """A resource as the renderer receives it when another writer (kubectl against the
    crd.projectcalico.org CRDs, an older release, a script writing etcd) stored a value
    Calico's validation refuses: the raw JSON at its etcd key, decoded as the syncer
    decodes it, with no validation on the way."""
    import json

    from node.datastore.client import decode_kv
    from node.model import etcd_key

    value = json.dumps({"kind": kind, "apiVersion": API, "metadata": {"name": name}, "spec": spec})
    res = decode_kv(etcd_key(kind, name, ""), value.encode(), 1)
    assert res is not None
    return res


def pool(name: str, cidr: str, **spec) -> Resource:
    return _res("IPPool", name, dict(spec, cidr=cidr))


def affinity(host: str, cidr: str, state: str = "confirmed") -> Resource:
    name = f"{host}-" + cidr.replace(".", "-").replace(":", "-").replace("/", "-")
    return _res("BlockAffinity", name, {"node": host, "cidr": cidr, "state": state, "deleted": "false"})


def inputs(*resources: Resource) -> ConfdInputs:
    out = ConfdInputs()
    for res in resources:
        out.put(res)
    return out


class RunningRenderer:
    """A confd Renderer on its own thread, writing to ``out``; stopped on exit.

    ``check_exit`` also asserts that ``run()`` returned 0 (a clean stop).
    """

    def __init__(self, config, settings, out, *, check: bool = False, check_exit: bool = False, **kwargs):
        import threading

        from node.confd.daemon import Renderer
        from node.confd.install import Installer
        from node.datastore.etcd import EtcdKV

        self.out = out
        self.check_exit = check_exit
        self.renderer = Renderer(settings, Installer(out, check=check, reload=False), lambda: EtcdKV(config), **kwargs)
        self.status: list[int] = []
        self.thread = threading.Thread(target=lambda: self.status.append(self.renderer.run()), daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.renderer.stop()
        self.thread.join(timeout=15)
        assert not self.thread.is_alive(), "renderer did not stop"
        if self.check_exit:
            assert self.status == [0]

    def text(self, name: str = "bird.cfg") -> str:
        path = self.out / name
        return path.read_text() if path.exists() else ""
