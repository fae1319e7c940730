"""KubeVirt VM addresses: the VM's IPAM handle and the ownership handover after a live
migration (libcalico-go's ``ipam/vmipam``).

With KubeVirt address persistence the CNI plugin allocates a VM's addresses under a
handle named after the VM (not the pod), so they survive the virt-launcher pod. During a
live migration each address records two owners: the active one (the block record's
``secondary``: the pod whose node routes the address) and the alternate one
(``alternateOwnerAttrs``: the other virt-launcher pod). When the migration completes the
policy agent (Felix's live-migration monitor) calls ``ensure_active_vm_owner_attrs`` on
the target's node to make the target pod the active owner of every address.
"""
from __future__ import annotations

import base64
import hashlib
import logging

from node.errors import CalicoError, Conflict
from node.ipam.block import (
    ATTRIBUTE_NAMESPACE,
    ATTRIBUTE_POD,
    AttributeOwner,
    OwnerAttributePreconditions,
    OwnerAttributeUpdates,
)
from node.ipam.cni import DEFAULT_NETWORK
from node.ipam.errors import AlternateOwnerEmpty, AlternateOwnerMismatch, VMOwnerError, VMOwnerNotRetryable

log = logging.getLogger(__name__)

# Owner attribute keys the CNI plugin records for a virt-launcher pod, besides pod/namespace.
ATTRIBUTE_VMI_NAME = "vmi-name"
ATTRIBUTE_VMI_UID = "vmi-uid"
ATTRIBUTE_VM_UID = "vm-uid"
ATTRIBUTE_VMIM_UID = "vmim-uid"  # the migration's UID, on a migration target's attributes

MAX_VM_HANDLE_ID_LENGTH = 128
# Read-check-write rounds per address before giving up (each lost to a concurrent change).
SWAP_RETRIES = 5

_SHORTENED = "_"


def length_limited_id(prefix: str, suffix: str, max_length: int) -> str:
    """``prefix + suffix`` when it fits in ``max_length`` bytes; otherwise ``prefix``,
    ``_`` and the URL-safe, unpadded base64 SHA-256 of ``suffix`` (43 characters), cut to
    fit ``max_length`` (libcalico-go's hash.GetLengthLimitedID).

    An empty suffix counts as ``_``; a suffix that starts with ``_`` and would fill the
    limit exactly is hashed too, so it cannot be mistaken for a shortened one. ValueError
    when ``max_length`` leaves no room for even one hash character (Go panics there).

    When the room left is more than the 43 hash characters, the whole hash is used and
    the ID is shorter than ``max_length``. libcalico-go (v3.32.1 and master) slices past
    the end of the hash there and panics, so it never stores such an ID; the whole hash
    is what its documented ``<prefix>_<hash>`` form gives.
    """
    if not suffix:
        suffix = _SHORTENED
    prefix_len = len(prefix.encode())
    suffix_bytes = suffix.encode()
    total = prefix_len + len(suffix_bytes)
    if total < max_length or (total == max_length and not suffix_bytes.startswith(_SHORTENED.encode())):
        return prefix + suffix
    room = max_length - 1 - prefix_len
    if room <= 0:
        raise ValueError(f"max length {max_length} is too small for prefix {prefix!r} "
                         f"(needs at least {prefix_len + 2})")
    digest = base64.urlsafe_b64encode(hashlib.sha256(suffix_bytes).digest()).decode().rstrip("=")
    return prefix + _SHORTENED + digest[:room]


def vm_handle_id(network_name: str | None, namespace: str, vm_name: str) -> str:
    """The IPAM handle of a KubeVirt VM's addresses: ``<network>.vmi.<namespace>.<vm>``
    (the network defaults to ``k8s-pod-network``), at most 128 bytes; when longer, the
    ``<namespace>.<vm>`` part is replaced by ``_`` and its hash (see
    ``length_limited_id``: with a network name under 79 bytes, ``k8s-pod-network``
    included, Calico v3.32.1 panics there instead). A VM and its VMI share the name.
    ValueError for a network name of 122 bytes or more when the ID needs shortening."""
    prefix = f"{network_name or DEFAULT_NETWORK}.vmi."
    return length_limited_id(prefix, f"{namespace}.{vm_name}", MAX_VM_HANDLE_ID_LENGTH)


def ensure_active_vm_owner_attrs(ipam, network_name: str | None, namespace: str, vmi_name: str,
                                 target_pod: str) -> None:
    """Make ``target_pod`` the active owner of every address of the VMI's handle.

    Call it when a live migration of VMI ``namespace/vmi_name`` has completed, with the
    migration target's virt-launcher pod (same namespace). ``network_name`` is the Calico
    network (``None`` or ``""``: ``k8s-pod-network``; Felix passes ``""``). ``ipam`` is a
    ``node.ipam.allocator.IPAM`` (anything with its ``ips_by_handle``,
    ``get_assignment_attributes`` and ``set_owner_attributes``).

    For each address: if the target already is the active owner, nothing is written
    (so the call is idempotent, and a retry after a partial failure only finishes the
    addresses still left); otherwise the alternate owner must be the target, and one
    compare-and-swap write makes it the active owner and moves the previous active owner
    to the alternate side (or, when the active side is already empty because the source
    pod is gone, clears the alternate side). The write is conditional on both owners
    still being what was read, so a concurrent change (the source pod's deletion, say)
    is never undone: the address is re-read and decided again, up to ``SWAP_RETRIES``
    times.

    Returns None once the target is the active owner of every address. Raises:

    * ``AlternateOwnerEmpty`` (non-retryable): an address has no alternate owner and the
      target is not active; the target pod was deleted first. Raised at once.
    * ``AlternateOwnerMismatch`` (non-retryable): an address's alternate owner is another
      pod. Raised at once.
      Both subclass ``VMOwnerNotRetryable`` (``.retryable`` is False): stop trying. It is
      also raised as such when no handle ID can be formed (a network name of 122 bytes
      or more with a long VMI name, where Calico panics).
    * ``VMOwnerError`` (``.retryable`` True, the cause chained): anything that may pass,
      i.e. the handle does not exist or holds no addresses, an address is not allocated
      or belongs to another handle, ``SWAP_RETRIES`` lost races, a datastore failure.
      The other addresses are still attempted first; the last such failure is raised.
      Retry with backoff (Felix: up to 5 attempts, 100 ms doubling, 30 s overall).

    Blocking (a few datastore round trips per address); starts no threads and keeps no
    state, so it can run in a background thread, on an IPAM of its own or one shared
    with other threads (``EtcdKV`` serialises its connection handling).
    """
    try:
        handle_id = vm_handle_id(network_name, namespace, vmi_name)
    except ValueError as exc:
        raise VMOwnerNotRetryable(f"no IPAM handle ID for VMI {namespace}/{vmi_name}: {exc}") from exc
    try:
        ips = ipam.ips_by_handle(handle_id)
    except CalicoError as exc:
        raise VMOwnerError(f"failed to get IPs for handle {handle_id}: {exc}") from exc
    if not ips:
        raise VMOwnerError(f"no IPs found for handle {handle_id}")
    target = AttributeOwner(namespace, target_pod)
    last: VMOwnerError | None = None
    for ip in ips:
        try:
            _verify_and_swap(ipam, str(ip), handle_id, target)
        except VMOwnerNotRetryable:
            raise
        except VMOwnerError as exc:
            log.warning("Failed to make %s the active owner of %s (will be retried): %s", target, ip, exc)
            last = exc
    if last is not None:
        raise last
    log.info("%s/%s is the active owner of %s (handle %s)", namespace, target_pod, ", ".join(map(str, ips)),
             handle_id)


def _verify_and_swap(ipam, ip: str, handle_id: str, target: AttributeOwner) -> None:
    """One address: read its owners, check them, promote the target with a conditional
    write; a Conflict (the owners changed since the read, or the write lost its race)
    starts again from a fresh read."""
    for attempt in range(SWAP_RETRIES):
        try:
            attr = ipam.get_assignment_attributes(ip)
        except CalicoError as exc:
            raise VMOwnerError(f"failed to get assignment attributes for IP {ip}: {exc}") from exc
        if attr.handle_id != handle_id:
            raise VMOwnerError(f"IP {ip} is not assigned to handle {handle_id} (current handle: {attr.handle_id})")
        if target.matches(attr.secondary):
            return  # already done (an earlier call, or a retry after a partial failure)
        if not attr.alternate:
            raise AlternateOwnerEmpty(ip)
        if not target.matches(attr.alternate):
            found = AttributeOwner(attr.alternate.get(ATTRIBUTE_NAMESPACE, ""), attr.alternate.get(ATTRIBUTE_POD, ""))
            raise AlternateOwnerMismatch(ip, str(target), str(found))
        if attr.secondary:
            # The source is still recorded: swap the two sides.
            updates = OwnerAttributeUpdates(active_owner_attrs=attr.alternate, alternate_owner_attrs=attr.secondary)
            pre = OwnerAttributePreconditions(
                expected_active_owner=AttributeOwner(attr.secondary.get(ATTRIBUTE_NAMESPACE, ""),
                                                     attr.secondary.get(ATTRIBUTE_POD, "")),
                expected_alternate_owner=target)
        else:
            # The source pod is gone and its attributes were cleared: nothing to swap in.
            updates = OwnerAttributeUpdates(active_owner_attrs=attr.alternate, clear_alternate_owner=True)
            pre = OwnerAttributePreconditions(verify_active_owner_empty=True, expected_alternate_owner=target)
        try:
            ipam.set_owner_attributes(ip, handle_id, updates, pre)
        except Conflict as exc:
            log.debug("Owners of %s changed during the swap (attempt %d), retrying: %s", ip, attempt + 1, exc)
            continue
        except CalicoError as exc:
            raise VMOwnerError(f"failed to promote the target to active owner for IP {ip}: {exc}") from exc
        return
    raise VMOwnerError(f"max retries ({SWAP_RETRIES}) exceeded for IP {ip}")
