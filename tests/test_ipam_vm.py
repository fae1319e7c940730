"""KubeVirt VM addresses: the VM handle ID, owner attributes, and the live-migration
ownership handover (libcalico-go's vmipam), against a real etcd."""
from __future__ import annotations

import ipaddress
import json

import pytest

from ipam_fixtures import Clock, make_node, make_pool, raw
from node.errors import Conflict, NotFound
from node.ipam.allocator import IPAM
from node.ipam.block import (
    AttributeOwner,
    OwnerAttributePreconditions as Pre,
    OwnerAttributeUpdates as Upd,
)
from node.ipam.errors import (
    AlternateOwnerEmpty,
    AlternateOwnerMismatch,
    IPAMError,
    VMOwnerError,
    VMOwnerNotRetryable,
)
from node.ipam.vm import SWAP_RETRIES, ensure_active_vm_owner_attrs, length_limited_id, vm_handle_id
from node.model import ipam as records

HOST = "test-host-swap"
NS = "test-ns"
HANDLE = "k8s-pod-network.vmi.test-ns.test-vm"
SOURCE = {"namespace": NS, "pod": "virt-launcher-source", "node": "node-a", "vmi-name": "test-vm"}
TARGET = {"namespace": NS, "pod": "virt-launcher-target", "node": "node-b", "vmi-name": "test-vm",
          "vmim-uid": "5f0c"}


# --------------------------------------------------------------------------------------
# Handle IDs (no datastore)

@pytest.mark.parametrize("prefix, suffix, limit, expected", [
    # libcalico-go's hash tests (GetLengthLimitedID).
    ("felix", "1234", 10, "felix1234"),
    ("felix", "123456", 11, "felix123456"),
    ("felix", "_2345", 10, "felix_kMQI"),
    ("felix", "12345678910", 13, "felix_Y2QCZIS"),
    ("felix", "", 10, "felix_"),
])
def test_length_limited_id_matches_calicos_vectors(prefix, suffix, limit, expected):
    assert length_limited_id(prefix, suffix, limit) == expected


def test_length_limited_id_refuses_a_limit_with_no_room_for_a_hash():
    with pytest.raises(ValueError):
        length_limited_id("felix", "toolong", 6)


def test_vm_handle_id_matches_calicos_examples():
    # CreateVMHandleID's documented examples and the handles of vmipam's tests.
    assert vm_handle_id("", "default", "vm1") == "k8s-pod-network.vmi.default.vm1"
    assert vm_handle_id(None, "default", "vm1") == "k8s-pod-network.vmi.default.vm1"
    assert vm_handle_id("multus-net1", "default", "vm1") == "multus-net1.vmi.default.vm1"
    assert vm_handle_id("", "test-ns", "test-vm") == HANDLE
    assert vm_handle_id("multus-net1", "test-ns", "test-vm") == "multus-net1.vmi.test-ns.test-vm"
    assert vm_handle_id("", "vmi", "a.b") == "k8s-pod-network.vmi.vmi.a.b"  # dots in the name stay


def test_vm_handle_id_length_limit():
    # 20-byte prefix + 108-byte suffix = 128 exactly: kept as is.
    fits = vm_handle_id("", "default", "y" * 100)
    assert fits == "k8s-pod-network.vmi.default." + "y" * 100 and len(fits) == 128
    # One byte more: "_" and the suffix's hash (base64url SHA-256, computed with openssl).
    assert vm_handle_id("", "default", "y" * 101) == \
        "k8s-pod-network.vmi._T0f2YZCXorGWeBLUexXn17-Ha7rcSgxfgLInrGj_fMs"
    assert vm_handle_id("", "default", "x" * 110) == \
        "k8s-pod-network.vmi._iAJQQWkOfSpmFxBeWYJMwze9ULniWDtNFN7M_LGgYGk"
    # A long network name leaves less room than the hash: it is cut to fill 128 bytes.
    cut = vm_handle_id("n" * 90, "default", "v" * 30)
    assert cut == "n" * 90 + ".vmi._NNcWL-M7DFGWtsxurZCVqL1z5LYvoq9c" and len(cut) == 128
    # Calico's exact vector at the edge: 43 characters of room, the whole hash.
    edge = vm_handle_id("n" * 79, "default", "x" * 110)
    assert edge == "n" * 79 + ".vmi._iAJQQWkOfSpmFxBeWYJMwze9ULniWDtNFN7M_LGgYGk" and len(edge) == 128
    with pytest.raises(ValueError):
        vm_handle_id("n" * 122, "default", "v" * 30)
    assert vm_handle_id("n" * 121, "default", "v" * 30) == "n" * 121 + ".vmi._N"


def test_attribute_owner_matches_namespace_and_pod():
    owner = AttributeOwner("ns", "pod-a")
    assert owner.matches({"namespace": "ns", "pod": "pod-a", "node": "x"})
    assert not owner.matches({"namespace": "ns", "pod": "pod-b"})
    assert not owner.matches({"namespace": "other", "pod": "pod-a"})
    assert not owner.matches({"pod": "pod-a"})
    assert not owner.matches(None) and not owner.matches({})
    empty = AttributeOwner()
    assert empty.matches(None) and empty.matches({})
    assert not empty.matches({"namespace": "ns", "pod": "pod-a"})


# --------------------------------------------------------------------------------------
# Datastore fixtures

@pytest.fixture
def ipam(etcd_kv):
    ipam = IPAM(etcd_kv, clock_ns=Clock())
    make_pool(ipam.client, "v4", "10.0.0.0/24")
    make_pool(ipam.client, "v6", "fd80:24e2:f998:72d6::/120")
    make_node(ipam.client, HOST)
    return ipam


@pytest.fixture
def other(etcd_kv):
    """Another writer on the same datastore (the CNI plugin on another node, say)."""
    return IPAM(etcd_kv, clock_ns=Clock())


@pytest.fixture
def vm_ips(ipam):
    """A dual-stack VM mid-migration: source active, target alternate, on both addresses."""
    v4, v6 = ipam.auto_assign(num4=1, num6=1, handle_id=HANDLE, host=HOST)
    ips = v4.check().ips + v6.check().ips
    for ip in ips:
        ipam.set_owner_attributes(ip, HANDLE, Upd(active_owner_attrs=SOURCE, alternate_owner_attrs=TARGET))
    return ips


def owners(ipam, ip):
    attr = ipam.get_assignment_attributes(ip)
    return attr.secondary, attr.alternate


def block_key(ip: str) -> str:
    """The key of the block holding ``ip`` (default block sizes: /26, /122)."""
    addr = ipaddress.ip_address(ip)
    return records.block_key(str(ipaddress.ip_network(f"{ip}/{26 if addr.version == 4 else 122}", strict=False)))


def block_record(kv, ip: str) -> dict:
    return json.loads(raw(kv, block_key(ip)))


def neighbour(ip: str, offset: int) -> str:
    return str(ipaddress.ip_address(ip) + offset)



# --------------------------------------------------------------------------------------
# set_owner_attributes

@pytest.mark.etcd
def test_set_owner_attributes_sets_and_clears_each_side(ipam):
    v4, _ = ipam.auto_assign(num4=1, handle_id="h", host=HOST)
    ip = v4.ips[0]
    assert owners(ipam, ip) == (None, None)  # auto-assign without attributes
    ipam.set_owner_attributes(ip, "h", Upd(alternate_owner_attrs={"namespace": "b", "pod": "pb"}))
    assert owners(ipam, ip) == (None, {"namespace": "b", "pod": "pb"})
    ipam.set_owner_attributes(ip, "h", Upd(active_owner_attrs={"namespace": "a", "pod": "pa"}))
    assert owners(ipam, ip) == ({"namespace": "a", "pod": "pa"}, {"namespace": "b", "pod": "pb"})
    ipam.set_owner_attributes(ip, "h", Upd(clear_active_owner=True, clear_alternate_owner=True))
    assert owners(ipam, ip) == (None, None)
    assert block_record(ipam.kv, ip)["attributes"] == [{"handle_id": "h"}]


@pytest.mark.etcd
def test_set_owner_attributes_preconditions(ipam):
    v4, _ = ipam.auto_assign(num4=1, handle_id="h", host=HOST)
    ip = v4.ips[0]
    ipam.set_owner_attributes(ip, "h", Upd(active_owner_attrs={"namespace": "a", "pod": "pa"}),
                              Pre(verify_active_owner_empty=True))
    before = raw(ipam.kv, block_key(ip))
    with pytest.raises(Conflict, match="expected namespace=a pod=wrong but found namespace=a pod=pa"):
        ipam.set_owner_attributes(ip, "h", Upd(clear_active_owner=True),
                                  Pre(expected_active_owner=AttributeOwner("a", "wrong")))
    with pytest.raises(Conflict):
        ipam.set_owner_attributes(ip, "h", Upd(active_owner_attrs={"namespace": "c", "pod": "pc"}),
                                  Pre(verify_active_owner_empty=True))
    with pytest.raises(Conflict):
        ipam.set_owner_attributes(ip, "h", Upd(alternate_owner_attrs={"pod": "x"}),
                                  Pre(expected_alternate_owner=AttributeOwner("b", "pb")))
    assert raw(ipam.kv, block_key(ip)) == before  # a failed precondition writes nothing
    # A side's precondition is only checked when that side changes (as in libcalico-go).
    ipam.set_owner_attributes(ip, "h", Upd(alternate_owner_attrs={"namespace": "b", "pod": "pb"}),
                              Pre(expected_active_owner=AttributeOwner("x", "y"), verify_alternate_owner_empty=True))
    ipam.set_owner_attributes(ip, "h", Upd(clear_active_owner=True),
                              Pre(expected_active_owner=AttributeOwner("a", "pa"),
                                  expected_alternate_owner=AttributeOwner("b", "pb")))
    assert owners(ipam, ip) == (None, {"namespace": "b", "pod": "pb"})


@pytest.mark.etcd
def test_set_owner_attributes_refusals(ipam):
    v4, _ = ipam.auto_assign(num4=1, handle_id="h", host=HOST)
    ip = v4.ips[0]
    some = {"namespace": "a", "pod": "pa"}
    for upd, pre in [(Upd(active_owner_attrs=some, clear_active_owner=True), None),
                     (Upd(alternate_owner_attrs=some, clear_alternate_owner=True), None),
                     (Upd(clear_active_owner=True),
                      Pre(expected_active_owner=AttributeOwner("a", "pa"), verify_active_owner_empty=True)),
                     (Upd(clear_alternate_owner=True),
                      Pre(expected_alternate_owner=AttributeOwner("a", "pa"), verify_alternate_owner_empty=True))]:
        with pytest.raises(IPAMError, match="mutually exclusive"):
            ipam.set_owner_attributes(ip, "h", upd, pre)
    with pytest.raises(IPAMError, match="updates cannot be None"):
        ipam.set_owner_attributes(ip, "h", None)
    with pytest.raises(IPAMError, match=f"IP {ip} is not assigned to handle wrong-handle"):
        ipam.set_owner_attributes(ip, "wrong-handle", Upd(active_owner_attrs=some))
    with pytest.raises(NotFound, match="IP is unassigned"):
        ipam.set_owner_attributes(neighbour(ip, 50), "h", Upd(active_owner_attrs=some))
    with pytest.raises(IPAMError, match="not in a configured pool"):
        ipam.set_owner_attributes("192.168.1.1", "h", Upd(active_owner_attrs=some))


@pytest.mark.etcd
def test_set_owner_attributes_changes_the_shared_attribute_entry(ipam):
    """Addresses of one handle in one block share an attribute entry; libcalico-go
    changes the entry, so the other address changes too."""
    v4, _ = ipam.auto_assign(num4=2, handle_id="h", host=HOST)
    first, second = v4.ips
    ipam.set_owner_attributes(first, "h", Upd(active_owner_attrs={"namespace": "a", "pod": "pa"}))
    assert owners(ipam, second) == ({"namespace": "a", "pod": "pa"}, None)
    rec = block_record(ipam.kv, first)
    assert rec["attributes"] == [{"handle_id": "h", "secondary": {"namespace": "a", "pod": "pa"}}]


@pytest.mark.etcd
def test_set_owner_attributes_redoes_a_lost_compare_and_swap(ipam, other, monkeypatch):
    """Another writer changes the block between our read and our write: the write fails
    its revision check in etcd and is redone from a fresh read; both changes survive."""
    v4, _ = ipam.auto_assign(num4=1, handle_id="h", host=HOST)
    ip = v4.ips[0]
    real_update = ipam.store.update_block
    calls = []

    def racing_update(block, revision):
        calls.append(revision)
        if len(calls) == 1:
            other.assign_ip(neighbour(ip, 9), handle_id="intruder", host=HOST)
        return real_update(block, revision)

    monkeypatch.setattr(ipam.store, "update_block", racing_update)
    ipam.set_owner_attributes(ip, "h", Upd(active_owner_attrs={"namespace": "a", "pod": "pa"}),
                              Pre(verify_active_owner_empty=True))
    assert len(calls) == 2 and calls[1] > calls[0]
    assert owners(ipam, ip) == ({"namespace": "a", "pod": "pa"}, None)
    assert ipam.get_assignment_attributes(neighbour(ip, 9)).handle_id == "intruder"


# --------------------------------------------------------------------------------------
# ensure_active_vm_owner_attrs

@pytest.mark.etcd
def test_swap_promotes_the_target_on_every_address(ipam, vm_ips):
    ensure_active_vm_owner_attrs(ipam, "", NS, "test-vm", "virt-launcher-target")
    for ip in vm_ips:
        assert owners(ipam, ip) == (TARGET, SOURCE)


@pytest.mark.etcd
def test_block_json_after_the_swap_is_what_calico_writes(ipam, vm_ips):
    before = block_record(ipam.kv, vm_ips[0])
    ensure_active_vm_owner_attrs(ipam, None, NS, "test-vm", "virt-launcher-target")
    text = raw(ipam.kv, block_key(vm_ips[0]))
    # model.AllocationAttribute: handle_id, secondary (active), alternateOwnerAttrs, in
    # that order, map keys sorted, compact.
    assert ('"attributes":[{"handle_id":"k8s-pod-network.vmi.test-ns.test-vm",'
            '"secondary":{"namespace":"test-ns","node":"node-b","pod":"virt-launcher-target",'
            '"vmi-name":"test-vm","vmim-uid":"5f0c"},'
            '"alternateOwnerAttrs":{"namespace":"test-ns","node":"node-a","pod":"virt-launcher-source",'
            '"vmi-name":"test-vm"}}]') in text
    after = json.loads(text)
    assert after["sequenceNumber"] == before["sequenceNumber"] + 1  # one write
    assert {k: v for k, v in after.items() if k not in ("attributes", "sequenceNumber")} == \
        {k: v for k, v in before.items() if k not in ("attributes", "sequenceNumber")}
    assert block_record(ipam.kv, vm_ips[1])["attributes"] == [
        {"handle_id": HANDLE, "secondary": TARGET, "alternateOwnerAttrs": SOURCE}]


@pytest.mark.etcd
def test_swap_is_idempotent(ipam, vm_ips):
    ensure_active_vm_owner_attrs(ipam, "", NS, "test-vm", "virt-launcher-target")
    revisions = [ipam.kv.get(block_key(ip)).mod_revision for ip in vm_ips]
    ensure_active_vm_owner_attrs(ipam, "", NS, "test-vm", "virt-launcher-target")
    assert [ipam.kv.get(block_key(ip)).mod_revision for ip in vm_ips] == revisions  # nothing written
    for ip in vm_ips:
        assert owners(ipam, ip) == (TARGET, SOURCE)


@pytest.mark.etcd
def test_swap_finishes_a_partial_swap(ipam, vm_ips):
    first = vm_ips[0]
    ipam.set_owner_attributes(first, HANDLE, Upd(active_owner_attrs=TARGET, alternate_owner_attrs=SOURCE))
    revision = ipam.kv.get(block_key(first)).mod_revision
    ensure_active_vm_owner_attrs(ipam, "", NS, "test-vm", "virt-launcher-target")
    assert ipam.kv.get(block_key(first)).mod_revision == revision  # already done: not written
    for ip in vm_ips:
        assert owners(ipam, ip) == (TARGET, SOURCE)


@pytest.mark.etcd
def test_empty_alternate_is_not_retryable(ipam, vm_ips):
    for ip in vm_ips:
        ipam.set_owner_attributes(ip, HANDLE, Upd(clear_alternate_owner=True))
    with pytest.raises(AlternateOwnerEmpty, match="AlternateOwnerAttrs is empty for IP") as exc:
        ensure_active_vm_owner_attrs(ipam, "", NS, "test-vm", "virt-launcher-target")
    assert isinstance(exc.value, VMOwnerNotRetryable) and not exc.value.retryable
    assert exc.value.ip == vm_ips[0]  # raised at the first address
    for ip in vm_ips:
        assert owners(ipam, ip) == (SOURCE, None)


@pytest.mark.etcd
def test_other_alternate_is_not_retryable(ipam, vm_ips):
    for ip in vm_ips:
        ipam.set_owner_attributes(ip, HANDLE, Upd(alternate_owner_attrs={"namespace": NS,
                                                                         "pod": "virt-launcher-unexpected"}))
    with pytest.raises(AlternateOwnerMismatch) as exc:
        ensure_active_vm_owner_attrs(ipam, "", NS, "test-vm", "virt-launcher-target")
    assert not exc.value.retryable
    assert "expected namespace=test-ns pod=virt-launcher-target" in str(exc.value)
    assert "found namespace=test-ns pod=virt-launcher-unexpected" in str(exc.value)
    # The same pod name in another namespace is another pod.
    for ip in vm_ips:
        ipam.set_owner_attributes(ip, HANDLE, Upd(alternate_owner_attrs={"namespace": "elsewhere",
                                                                         "pod": "virt-launcher-target"}))
    with pytest.raises(AlternateOwnerMismatch):
        ensure_active_vm_owner_attrs(ipam, "", NS, "test-vm", "virt-launcher-target")


@pytest.mark.etcd
def test_empty_active_promotes_the_target_and_clears_the_alternate(ipam, vm_ips):
    for ip in vm_ips:
        ipam.set_owner_attributes(ip, HANDLE, Upd(clear_active_owner=True))
    ensure_active_vm_owner_attrs(ipam, "", NS, "test-vm", "virt-launcher-target")
    for ip in vm_ips:
        assert owners(ipam, ip) == (TARGET, None)
    for ip in vm_ips:
        assert block_record(ipam.kv, ip)["attributes"] == [{"handle_id": HANDLE, "secondary": TARGET}]


@pytest.mark.etcd
def test_source_deleted_between_read_and_write_is_not_resurrected(ipam, other, vm_ips, monkeypatch):
    """The source pod's CNI DEL clears the active owner after we read the owners: our
    conditional write fails (Conflict), we read again and clear the alternate instead of
    writing the deleted source back."""
    real_get = ipam.get_assignment_attributes
    reads: list[str] = []

    def racing_get(ip):
        attr = real_get(ip)
        reads.append(str(ip))
        if reads.count(str(ip)) == 1:
            other.set_owner_attributes(ip, HANDLE, Upd(clear_active_owner=True),
                                       Pre(expected_active_owner=AttributeOwner(NS, "virt-launcher-source")))
        return attr

    monkeypatch.setattr(ipam, "get_assignment_attributes", racing_get)
    ensure_active_vm_owner_attrs(ipam, "", NS, "test-vm", "virt-launcher-target")
    assert sorted(reads) == sorted(vm_ips * 2)  # each address was read a second time
    monkeypatch.undo()
    for ip in vm_ips:
        assert owners(ipam, ip) == (TARGET, None)


@pytest.mark.etcd
def test_a_change_that_keeps_coming_gives_a_retryable_error(ipam, other, vm_ips, monkeypatch):
    real_get = ipam.get_assignment_attributes
    reads: list[str] = []

    def racing_get(ip):
        attr = real_get(ip)
        reads.append(str(ip))
        other.set_owner_attributes(ip, HANDLE, Upd(active_owner_attrs={"namespace": NS,
                                                                        "pod": f"other-{len(reads)}"}))
        return attr

    monkeypatch.setattr(ipam, "get_assignment_attributes", racing_get)
    with pytest.raises(VMOwnerError, match=f"max retries \\({SWAP_RETRIES}\\) exceeded for IP") as exc:
        ensure_active_vm_owner_attrs(ipam, "", NS, "test-vm", "virt-launcher-target")
    assert exc.value.retryable and not isinstance(exc.value, VMOwnerNotRetryable)
    assert len(reads) == SWAP_RETRIES * len(vm_ips)  # every address was tried
    assert exc.value.args[0].endswith(f"IP {vm_ips[-1]}")  # the last failure is raised
    monkeypatch.undo()
    for ip in vm_ips:
        assert owners(ipam, ip)[1] == TARGET  # never promoted


@pytest.mark.etcd
def test_address_under_another_handle_is_retryable_and_the_rest_is_done(ipam, other, vm_ips, monkeypatch):
    """The IPv4 address is released and handed to another pod after we listed the
    handle: that address fails (retryably), the IPv6 one is still swapped."""
    v4_ip = vm_ips[0]
    real_list = ipam.ips_by_handle

    def racing_list(handle):
        ips = real_list(handle)
        other.release_ips([v4_ip])
        other.assign_ip(v4_ip, handle_id="k8s-pod-network.someone-else", host=HOST)
        return ips

    monkeypatch.setattr(ipam, "ips_by_handle", racing_list)
    with pytest.raises(VMOwnerError, match=f"IP {v4_ip} is not assigned to handle {HANDLE}") as exc:
        ensure_active_vm_owner_attrs(ipam, "", NS, "test-vm", "virt-launcher-target")
    assert exc.value.retryable
    assert owners(ipam, vm_ips[1]) == (TARGET, SOURCE)
    assert ipam.get_assignment_attributes(v4_ip).handle_id == "k8s-pod-network.someone-else"


@pytest.mark.etcd
def test_no_handle_or_no_addresses_is_retryable(ipam, vm_ips):
    ipam.release_by_handle(HANDLE)
    with pytest.raises(VMOwnerError, match=f"failed to get IPs for handle {HANDLE}") as exc:
        ensure_active_vm_owner_attrs(ipam, "", NS, "test-vm", "virt-launcher-target")
    assert exc.value.retryable and isinstance(exc.value.__cause__, NotFound)


@pytest.mark.etcd
def test_custom_network_name(ipam):
    handle = "multus-net1.vmi.test-ns.test-vm"
    v4, _ = ipam.auto_assign(num4=1, handle_id=handle, host=HOST)
    ip = v4.ips[0]
    ipam.set_owner_attributes(ip, handle, Upd(active_owner_attrs=SOURCE, alternate_owner_attrs=TARGET))
    with pytest.raises(VMOwnerError, match="failed to get IPs for handle k8s-pod-network.vmi.test-ns.test-vm"):
        ensure_active_vm_owner_attrs(ipam, "", NS, "test-vm", "virt-launcher-target")
    ensure_active_vm_owner_attrs(ipam, "multus-net1", NS, "test-vm", "virt-launcher-target")
    assert owners(ipam, ip) == (TARGET, SOURCE)


def test_a_network_name_too_long_for_a_handle_is_not_retryable():
    with pytest.raises(VMOwnerNotRetryable, match="no IPAM handle ID"):
        ensure_active_vm_owner_attrs(None, "n" * 122, NS, "v" * 30, "virt-launcher-target")
