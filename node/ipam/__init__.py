"""IPAM compatible with calico-ipam: blocks, affinities, handles, and what uses them.

* ``block``     - one allocation block as plain data and the pure operations on it
* ``pools``     - which pools a request may use; the host-seeded block walk
* ``store``     - typed IPAM records in etcd with revision-guarded writes
* ``allocator`` - ``IPAM``: auto-assign, assign, release, affinities (libcalico-go's algorithm)
* ``cni``       - addresses for workloads exactly as the CNI plugin requests them
* ``tunnel``    - the node's IPIP / VXLAN / WireGuard addresses (allocate-tunnel-addrs)
* ``vm``        - KubeVirt VM handle IDs; the live-migration owner handover (vmipam)
* ``check``     - ``calicoctl ipam check``; ``usage`` - ``calicoctl ipam show``
"""
from node.ipam.allocator import IPAM, Assignments, IPAMConfig
from node.ipam.block import ReleaseOptions

__all__ = ["IPAM", "Assignments", "IPAMConfig", "ReleaseOptions"]
