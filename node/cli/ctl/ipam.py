"""``calicoctl ipam show|release|check|configure|split``: inspect and repair IP address management.

    calicoctl ipam show [--ip=IP | --show-blocks | --show-borrowed | --show-configuration]
    calicoctl ipam release [--ip ADDR] [--from-report REPORT]... [--force]
    calicoctl ipam check [--show-all-ips] [--show-problem-ips] [-o REPORT]
    calicoctl ipam configure [--strictaffinity=true|false] [--max-blocks-per-host=N]
                             [--kubevirt-ip-persistence=Enabled|Disabled]
    calicoctl ipam split NUMBER [--cidr=CIDR] [--name=POOL_NAME]

Output follows calicoctl v3.32.1: ``show`` draws tablewriter v0.0.5's default table,
``check`` prints its step-by-step scan and ends with ``Check complete; found N problems.``
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import math
import os
import re
import sys

from node import __version__, tablewriter
from node.cli.calicoctl import CommandFailed, check_version_mismatch, client_from_args
from node.errors import CalicoError, NotFound


def register(subparsers) -> None:
    p = subparsers.add_parser("ipam", help="IP address management")
    p.add_argument("-c", "--config", default=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="ipam_command", required=True)

    show = sub.add_parser("show", help="show details of a Calico configuration, assigned IP address, "
                                        "or of overall IP usage")
    which = show.add_mutually_exclusive_group()
    which.add_argument("--ip", default=None, metavar="IP", help="report whether this specific IP address is in use")
    which.add_argument("--show-blocks", action="store_true",
                       help="show detailed information for IP blocks as well as pools")
    which.add_argument("--show-borrowed", action="store_true",
                       help='show detailed information for "borrowed" IP addresses')
    which.add_argument("--show-configuration", action="store_true", help="show current Calico IPAM configuration")
    show.add_argument("-c", "--config", default=argparse.SUPPRESS)
    show.set_defaults(func=cmd_show)

    split = sub.add_parser("split", help="split the IP pool specified by the CIDR or name into the specified "
                                         "number of smaller IP pools")
    split.add_argument("number", metavar="NUMBER",
                       help="how many equal pools to split into (a power of 2)")
    split.add_argument("--cidr", default=None, help="CIDR of the IP pool to split")
    split.add_argument("--name", default=None, metavar="POOL_NAME", help="name of the IP pool to split")
    split.add_argument("-c", "--config", default=argparse.SUPPRESS)
    split.set_defaults(func=cmd_split)

    release = sub.add_parser("release", help="release a Calico assigned IP address")
    release.add_argument("--ip", default="", help="IP address to release")
    release.add_argument("--from-report", action="append", default=[], metavar="REPORT",
                         help="release the leaked addresses and handles every given report (ipam check -o) lists")
    release.add_argument("--force", action="store_true", help="force release of leaked addresses")
    release.add_argument("-c", "--config", default=argparse.SUPPRESS)
    release.set_defaults(func=cmd_release)

    configure = sub.add_parser("configure", help="configure IPAM")
    configure.add_argument("--strictaffinity", default="", metavar="true/false",
                           help="set StrictAffinity (when true, borrowing IP addresses is not allowed)")
    configure.add_argument("--max-blocks-per-host", default="", metavar="NUMBER",
                           help="set the maximum number of blocks that can be affine to a host")
    configure.add_argument("--kubevirt-ip-persistence", default="", metavar="Enabled|Disabled",
                           help="whether KubeVirt VMs keep their IP addresses across lifecycle events")
    configure.add_argument("-c", "--config", default=argparse.SUPPRESS)
    configure.set_defaults(func=cmd_configure)

    check = sub.add_parser("check", help="check the integrity of the IPAM data structures")
    check.add_argument("--show-all-ips", action="store_true", help="print all IPs that are checked")
    check.add_argument("--show-problem-ips", action="store_true",
                       help="print all IPs that are leaked or not allocated properly")
    check.add_argument("-o", "--output", default="", help="path to output report file")
    check.add_argument("--kubeconfig", default="", metavar="KUBECONFIG",
                       help="kubeconfig of the cluster whose LoadBalancer Services hold addresses "
                            "(etcd datastore; default $KUBECONFIG)")
    check.add_argument("-c", "--config", default=argparse.SUPPRESS)
    check.set_defaults(func=cmd_check)


def _ipam(args):
    from node.ipam.allocator import IPAM

    check_version_mismatch(args)
    client = client_from_args(args)
    return IPAM(client.kv)


def _validate_ip(text: str) -> str:
    """An address as Go's net.ParseIP reads it (no spaces, no IPv6 zone; an IPv4-mapped
    IPv6 address is the IPv4 address), printed as Go prints it."""
    try:
        if "%" in text:
            raise ValueError(text)
        ip = ipaddress.ip_address(text)
    except ValueError:
        print(f"Error executing command: invalid IP address specified: {text}")
        raise SystemExit(1) from None
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)


# --------------------------------------------------------------------------------------
# ipam show

def _usage_row(kind: str, cidr, in_use: float, capacity: float) -> list[str]:
    """Numbers as Go's %.5g (1.2089e+24 for an IPv6 /48) and percentages as %.f."""
    free = capacity - in_use
    return [kind, str(cidr), "%.5g" % capacity,
            "%.5g (%.0f%%)" % (in_use, 100 * in_use / capacity),
            "%.5g (%.0f%%)" % (free, 100 * free / capacity)]


def usage_table(groups, show_blocks: bool) -> str:
    """Each pool's row (its capacity is the whole CIDR; in use is what its blocks have
    allocated), then its blocks' rows with --show-blocks. The group of blocks no pool
    covers has no row of its own."""
    rows: list[list[str]] = []
    for group in groups:
        block_rows = [_usage_row("Block", b.cidr, float(b.in_use), float(b.capacity)) for b in group.blocks]
        pool_in_use = sum(float(b.in_use) for b in group.blocks)
        if group.cidr.prefixlen > 0:
            capacity = float(2 ** (group.cidr.max_prefixlen - group.cidr.prefixlen))
            rows.append(_usage_row("IP Pool", group.cidr, pool_in_use, capacity))
        if show_blocks:
            rows += block_rows
    return tablewriter.table(["GROUPING", "CIDR", "IPS TOTAL", "IPS IN USE", "IPS FREE"], rows)


def borrowed_table(blocks) -> tuple[str, int]:
    """Addresses used by a node other than the block's owner (or from a block with no
    owner), block by block in datastore order; also how many allocations carry no node
    at all (they cannot be classified)."""
    rows = []
    unclassified = 0
    for block in blocks:
        owner = ""
        if block.affinity is not None:
            parts = block.affinity.split(":")
            owner = parts[1] if len(parts) == 2 else parts[0]
        for ordinal in range(block.size):
            attr = block.attribute_of(ordinal)
            if attr is None:
                continue
            sec = attr.secondary or {}
            if "node" not in sec:
                unclassified += 1
                continue
            if sec["node"] == owner:
                continue
            ns = sec.get("namespace", "")
            if "vmi-name" in sec:
                kind, to = "vmi", f"{ns}/{sec['vmi-name']}"
            elif "pod" in sec:
                kind, to = "pod", f"{ns}/{sec['pod']}"
            else:
                kind, to = sec.get("type", ""), ""
            rows.append([str(block.ordinal_to_ip(ordinal)), sec["node"], str(block.cidr), owner, kind, to])
    table = tablewriter.table(["IP", "BORROWING-NODE", "BLOCK", "BLOCK OWNER", "TYPE", "ALLOCATED-TO"], rows)
    return table, unclassified


def configuration_table(cfg, pointer: int) -> str:
    """libcalico-go's IPAMConfig, field by field, each value as Go's %#v prints it. The
    KubeVirt setting is a pointer there, so calicoctl prints its type and an address
    (``pointer`` stands in for it), or nil."""
    persistence = cfg.kubevirt_vm_address_persistence
    rows = [["StrictAffinity", "true" if cfg.strict_affinity else "false"],
            ["AutoAllocateBlocks", "true" if cfg.auto_allocate_blocks else "false"],
            ["MaxBlocksPerHost", str(cfg.max_blocks_per_host)],
            ["KubeVirtVMAddressPersistence",
             "(*ipam.VMAddressPersistence)(" + ("nil" if persistence is None else f"{pointer:#x}") + ")"]]
    return tablewriter.table(["PROPERTY", "VALUE"], rows)


def _show_ip(ipam, text: str) -> None:
    ip = _validate_ip(text)
    try:
        attr = ipam.get_assignment_attributes(ip)
    except NotFound:
        print(f"{ip} is not assigned")
        return
    print(f"IP {ip} is in use")
    print(f"Handle ID: {attr.handle_id}" if attr.handle_id is not None else "Handle ID: <none>")
    if attr.secondary:
        print("Active Owner Attributes:")
        for key in sorted(attr.secondary):
            print(f"  {key}: {attr.secondary[key]}")
    else:
        print("No Active Owner attributes defined")
    if attr.alternate:
        print("Alternate Owner Attributes:")
        for key in sorted(attr.alternate):
            print(f"  {key}: {attr.alternate[key]}")


def cmd_show(args) -> int:
    from node.ipam.usage import utilization

    ipam = _ipam(args)
    try:
        if args.ip is not None:
            _show_ip(ipam, args.ip)
        elif args.show_borrowed:
            table, unclassified = borrowed_table([b for b, _ in ipam.store.list_blocks()])
            sys.stdout.write(table)
            if unclassified:
                print(f"\nNote: found {unclassified} IP allocations without an explicit node association. "
                      "Unable to determine if they are borrowed.")
        elif args.show_configuration:
            try:
                cfg = ipam.read_config()  # only reads: a deliberate difference (README)
            except CalicoError as exc:
                raise CommandFailed(f"error: {exc}") from exc
            sys.stdout.write(configuration_table(cfg, 0xc000000000 + (id(cfg) & 0xffffff8)))
        else:
            pools = ipam.all_pools()
            blocks = [b for b, _ in ipam.store.list_blocks()]
            sys.stdout.write(usage_table(utilization(pools, blocks), args.show_blocks))
        return 0
    except CalicoError as exc:
        raise CommandFailed(str(exc)) from exc


def cmd_release(args) -> int:
    if args.from_report:
        _release_from_reports(_ipam(args), args.from_report, args.force)
        print("You may now unlock the data store.")
        return 0
    if not args.ip:
        return 0
    ip = _validate_ip(args.ip)
    ipam = _ipam(args)
    try:
        not_allocated = ipam.release_ips([ip])
    except CalicoError as exc:
        raise CommandFailed(f"error: {exc}") from exc
    if not_allocated:
        raise CommandFailed(f"IP address {ip} is not assigned")
    print(f"Successfully released IP address {ip}")
    return 0


_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def cmd_configure(args) -> int:
    """calicoctl's ``ipam configure``: change the IPAM library configuration
    (``/calico/ipam/v2/config``; the ``default`` IPAMConfiguration on Kubernetes)."""
    strict = max_blocks = persistence = None
    if args.strictaffinity:
        if args.strictaffinity not in _GO_TRUE + _GO_FALSE:  # strconv.ParseBool
            raise CommandFailed("invalid value. Use true or false to set strictaffinity")
        strict = args.strictaffinity in _GO_TRUE
    if args.max_blocks_per_host:
        text = args.max_blocks_per_host
        digits = text[1:] if text[:1] in "+-" else text
        if not (digits.isascii() and digits.isdigit()):  # strconv.Atoi
            raise CommandFailed("invalid value for maxblockhost. Use a valid number")
        max_blocks = int(text)
    if args.kubevirt_ip_persistence:
        if args.kubevirt_ip_persistence not in ("Enabled", "Disabled"):
            raise CommandFailed("invalid value for --kubevirt-ip-persistence. Use Enabled or Disabled")
        persistence = args.kubevirt_ip_persistence
    if strict is None and max_blocks is None and persistence is None:
        raise CommandFailed("at least one configuration option must be specified")
    ipam = _ipam(args)
    try:
        cfg = ipam.get_config()
        if strict is not None:
            cfg.strict_affinity = strict
        if max_blocks is not None:
            cfg.max_blocks_per_host = max_blocks
        if persistence is not None:
            cfg.kubevirt_vm_address_persistence = persistence
        ipam.set_config(cfg)
    except CalicoError as exc:
        raise CommandFailed(f"error: {exc}") from exc
    if strict is not None:
        print(f"Successfully set StrictAffinity to: {'true' if strict else 'false'}")
    if max_blocks is not None:
        print(f"Successfully set MaxBlocksPerHost to: {max_blocks}")
    if persistence is not None:
        print(f"Successfully set KubeVirtVMAddressPersistence to: {persistence}")
    return 0


# --------------------------------------------------------------------------------------
# ipam split

_LOCK_HINT = "datastore is not locked. Run the `calicoctl datastore migrate lock` command in order split the IP pools"


def _go_quote(text: str) -> str:
    """Go's %q of a string (what strconv errors quote the input with)."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append("\\" + "abfnrtv"["\a\b\f\n\r\t\v".index(ch)])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


def _go_atoi(text: str) -> int:
    """strconv.Atoi on a 64-bit host: ValueError carrying Go's message."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise ValueError(f"strconv.Atoi: parsing {_go_quote(text)}: invalid syntax")
    value = int(text)
    if not -2 ** 63 <= value < 2 ** 63:
        raise ValueError(f"strconv.Atoi: parsing {_go_quote(text)}: value out of range")
    return value


def split_cidr(cidr: str, parts: int) -> list[str]:
    """``parts`` equal CIDRs covering ``cidr``, in address order; ValueError with
    calicoctl's reason. ``parts`` must be a power of two above 1 (judged, as calicoctl
    judges it, on the float value of the number)."""
    power = None
    if parts > 0:
        frac, exp = math.frexp(float(parts))
        if frac == 0.5 and exp > 1:
            power = exp - 1
    # calicoctl v3.32.1 lets 0 through this check (log2(0) is -Inf, which it does not
    # catch) and then deletes the pool without creating any; 0 is refused here instead.
    if power is None:
        raise ValueError(f"number to split CIDR into is not a valid power of 2: {parts}")
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        raise ValueError(f"error reading CIDR {cidr} before attempting to split it") from None
    if net.prefixlen + power > net.max_prefixlen:
        raise ValueError(f"the CIDR {cidr} is not large enough to be split into {parts} parts")
    return [str(sub) for sub in net.subnets(prefixlen_diff=power)]


def cmd_split(args) -> int:
    """calicoctl's ``ipam split``: with the datastore locked, disable the pool, create
    NUMBER equal pools ``split-<name>-<i>`` over its CIDR (its other settings, enabled),
    then delete it, leaving its blocks and their affinities where they are."""
    from node.model.schema import Collector, canonical_struct

    old_cidr = args.cidr or ""
    old_name = args.name or ""
    if not old_cidr and not old_name:
        raise CommandFailed("no name or CIDR provided. Provide a name or CIDR to denote the IP pool to split")
    check_version_mismatch(args)
    client = client_from_args(args)

    try:
        info = client.get("ClusterInformation", "default")
    except CalicoError as exc:
        raise CommandFailed(f"error while checking if datastore was locked: error retrieving ClusterInformation: "
                            f"{exc}") from exc
    ready = info.spec.get("datastoreReady")
    if ready is None or ready:  # calicoctl v3.32.1 crashes on an unset datastoreReady
        raise CommandFailed(_LOCK_HINT)

    pool = None
    if old_name:
        try:
            pool = client.get("IPPool", old_name)
        except CalicoError as exc:
            raise CommandFailed(f"unable to find IP pool with name {old_name}: {exc}") from exc
    else:
        try:
            pools = client.list("IPPool")
        except CalicoError as exc:
            raise CommandFailed(f"unable to list IP pools to find the pool specified by {old_cidr}") from exc
        for candidate in pools:
            if candidate.spec.get("cidr") == old_cidr:
                pool = candidate
    if pool is None:
        raise CommandFailed(f"unable to find IP pool {old_name} covering the specified CIDR {old_cidr}")

    pool.spec["disabled"] = True
    pool.spec = canonical_struct(pool.spec, "IPPoolSpec", "", Collector(), strict=False)
    try:
        pool = client.update(pool)
    except CalicoError as exc:
        raise CommandFailed(f"error disabling IP pool {old_cidr}") from exc

    try:
        parts = _go_atoi(args.number)
    except ValueError as exc:
        raise CommandFailed(f"error reading number to split IP pools into. {args.number} is not a valid number: "
                            f"{exc}") from exc
    pool_cidr = pool.spec.get("cidr", "")
    try:
        cidrs = split_cidr(pool_cidr, parts)
    except ValueError as exc:
        raise CommandFailed(f"error splitting the CIDR {pool_cidr} into {parts} CIDRs: {exc}") from exc

    created = []
    for i, cidr in enumerate(cidrs):
        child = pool.copy()
        meta = child.metadata
        for key in ("uid", "resourceVersion", "generation", "selfLink", "creationTimestamp", "generateName"):
            meta.pop(key, None)
        name = f"split-{pool.name}-{i}"
        if len(name) > 253:  # the longest Kubernetes name
            name = f"split-{pool.name[:245]}-{i}"
        meta["name"] = name
        child.spec["cidr"] = cidr
        child.spec.pop("disabled", None)
        child.spec = canonical_struct(child.spec, "IPPoolSpec", "", Collector(), strict=False)
        try:
            client.unsafe_create_pool(child)
        except CalicoError as exc:
            raise CommandFailed(f"error using unsafe create to make split pool with cidr {cidr}: {exc}") from exc
        created.append((name, cidr))

    try:
        client.unsafe_delete_pool(pool.name)
    except CalicoError as exc:
        raise CommandFailed(f"error removing the IP pool that was split {pool.name}: {exc}") from exc

    # calicoctl ends neither the first line nor the last with a newline.
    out = f"IP Pool {pool.name} was successfully split into {parts} smaller pools."
    out += "".join(f"Created {name} with CIDR {cidr}.\n" for name, cidr in created)
    sys.stdout.write(out + "Please refer to the documentation for final steps.")
    sys.stdout.flush()
    return 0


def _check_kube_api(args, kv):
    """The Kubernetes API whose Services ipam check reads: the datastore's own on
    Kubernetes; on etcd, ``--kubeconfig`` or ``$KUBECONFIG``'s. calicoctl insists on one;
    here an etcd cluster without a LoadBalancer controller configuration (no
    kube-controllers, so no Calico-managed Services) is checked without."""
    from node.config import DatastoreConfig
    from node.datastore.kubernetes.api import KubeAPI
    from node.datastore.kubernetes.clientconfig import client_configuration
    from node.ipam.check import load_balancer_config

    own = getattr(kv, "api", None)
    if own is not None:
        return own
    path = args.kubeconfig or os.environ.get("KUBECONFIG", "")
    if not path:
        if load_balancer_config(kv) is not None:
            raise CommandFailed("KUBECONFIG environment variable or --kubeconfig parameter not set")
        return None
    return KubeAPI(client_configuration(DatastoreConfig(kubeconfig=path), {}, home_fallback=False))


def cmd_check(args) -> int:
    from node.ipam.check import check, render, report_json

    ipam = _ipam(args)
    show_problems = args.show_all_ips or args.show_problem_ips
    try:
        kube_api = _check_kube_api(args, ipam.kv)
        result = check(ipam.kv, ipam.clock_ns(), show_all=args.show_all_ips, kube_api=kube_api)
    except CalicoError as exc:
        raise CommandFailed(str(exc)) from exc
    sys.stdout.write(render(result, show_problems))
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as fh:
                fh.write(report_json(result, __version__))
            os.chmod(args.output, 0o644)
        except OSError as exc:
            raise CommandFailed(f"failed to write report {args.output}: {exc.strerror}") from exc
    # Real calicoctl exits 0 whatever it found; scripts need to tell a clean IPAM from a
    # broken one without parsing the last line, so problems give exit code 1.
    return 1 if result.problems else 0


def _read_report(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise CommandFailed(f"open {path}: {(exc.strerror or str(exc)).lower()}") from exc
    try:
        report = json.loads(text)
    except ValueError as exc:
        raise CommandFailed(f"failed to read report {path}: {exc}") from exc
    if not isinstance(report, dict):
        raise CommandFailed(f"failed to read report {path}: not a JSON object")
    return report


def _release_from_reports(ipam, paths: list[str], force: bool) -> None:
    """calicoctl's releaseFromReports: check the reports belong to this cluster and this
    version, that one is current and the datastore is locked (``--force`` waives all but
    the cluster check), then release what every report calls leaked."""
    from node.ipam.block import ReleaseOptions
    from node.ipam.check import merge_reports

    try:
        info = ipam.client.get("ClusterInformation", "default")
    except CalicoError as exc:
        raise CommandFailed(str(exc)) from exc
    found_current = False
    reports = []
    for path in paths:
        report = _read_report(path)
        if (info.spec.get("clusterGUID") or "") != (report.get("clusterGUID") or ""):
            raise CommandFailed(f"cluster does not match the provided report ({path}): mismatched cluster GUID. "
                                "Refusing to release")
        if report.get("version") != __version__:
            if not force:
                raise CommandFailed(f"the provided report ({path}) was produced using a different version "
                                    f"({report.get('version')}) of calicoctl. Refusing to release")
            print("WARNING: Report was produced using a different version of calicoctl. Ignoring due to --force option")
        if info.resource_version == str(report.get("clusterInformationRevision") or ""):
            found_current = True
        reports.append(report)
    if not found_current:
        raise CommandFailed("the provided reports are all stale - at least one should be up-to-date. Please generate "
                            "a new report while the data store is locked and try again")
    ready = info.spec.get("datastoreReady")
    if ready is None or ready:
        if not force:
            raise CommandFailed("data store is not locked. Either lock the data store, or re-run with --force")
        print("WARNING: Data store is not locked. Ignoring due to --force option")

    leaked_ips, leaked_handles = merge_reports(reports)
    if leaked_ips:
        opts = []
        for ip, alloc in leaked_ips.items():
            seq = alloc.get("sequenceNumber")
            opts.append(ReleaseOptions(ip, str(alloc.get("handle") or ""),
                                       seq if isinstance(seq, int) and not isinstance(seq, bool) else None))
        print(f"Releasing {len(opts)} old IPs...")
        try:
            not_allocated = ipam.release_ips(opts)
        except (CalicoError, ValueError) as exc:
            print(f"An error occurred while releasing some IPs: {exc}.  Problems are often caused by an "
                  "out-of-date IPAM report.  Try regenerating the IPAM report and retry.")
        else:
            print(f"Released {len(opts) - len(not_allocated)} IPs successfully")
            if not_allocated:
                print(f"{len(not_allocated)} addresses marked as leaked in the report had already been cleaned up.")
    else:
        print("Report didn't contain any leaked IPs to clean up.")

    if leaked_handles:
        _release_handles(ipam, leaked_handles)
    else:
        print("Report didn't contain any handles to clean up.")


def _release_handles(ipam, leaked_handles) -> None:
    """Delete each leaked handle that still has the revision the reports saw."""
    from node.errors import Conflict

    print(f"Deleting {len(leaked_handles)} handles...")
    print("Key: '.' = Deleted OK; 'x' = skip, handle missing/changed.")
    released = skipped = errors = 0
    for handle_id, leaked in leaked_handles.items():
        try:
            handle = ipam.store.get_handle(handle_id)
            if handle is None:
                raise NotFound(f"IPAMHandleKey(id={handle_id})")
            if str(handle.revision) != leaked.revision:
                raise Conflict(f"IPAMHandleKey(id={handle_id})", "IPAM handle revision or UID didn't match")
            ipam.store.delete_handle(handle)
        except (NotFound, Conflict):
            skipped += 1
            print("x", end="")
        except CalicoError as exc:
            errors += 1
            print(f"\nDeleting handle {handle_id} failed: {exc}.")
        else:
            released += 1
            print(".", end="")
    print()
    print(f"Released {released} handles; {skipped} skipped; {errors} errors.")
