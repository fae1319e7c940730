"""``calicoctl ipam show|release|check``: inspect and repair IP address management.

    calicoctl ipam show [--show-blocks | --show-borrowed | --ip ADDR]
    calicoctl ipam release [--ip ADDR] [--from-report REPORT]... [--force]
    calicoctl ipam check [--show-all-ips] [--show-problem-ips] [-o REPORT]
    calicoctl ipam configure [--strictaffinity=true|false] [--max-blocks-per-host=N]
                             [--kubevirt-ip-persistence=Enabled|Disabled]

Output follows calicoctl: ``show`` draws go-pretty's default box table, ``check``
prints its step-by-step scan and ends with ``Check complete; found N problems.``
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys

from node import __version__
from node.cli.calicoctl import CommandFailed, client_from_args
from node.errors import CalicoError, NotFound


def register(subparsers) -> None:
    p = subparsers.add_parser("ipam", help="IP address management")
    p.add_argument("-c", "--config", default=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="ipam_command", required=True)

    show = sub.add_parser("show", help="show details of a Calico assigned IP address or overall IP usage")
    show.add_argument("--ip", default="", help="report whether this specific IP address is in use")
    show.add_argument("--show-blocks", action="store_true", help="show detailed information for IP blocks as well")
    show.add_argument("--show-borrowed", action="store_true", help="show details of borrowed IP addresses")
    show.add_argument("-c", "--config", default=argparse.SUPPRESS)
    show.set_defaults(func=cmd_show)

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
    check.add_argument("-c", "--config", default=argparse.SUPPRESS)
    check.set_defaults(func=cmd_check)


def _ipam(args):
    from node.ipam.allocator import IPAM

    client = client_from_args(args)
    return IPAM(client.kv)


def _validate_ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        print(f"Error executing command: invalid IP address specified: {text}")
        raise SystemExit(1) from None


# --------------------------------------------------------------------------------------
# go-pretty's StyleDefault box table.

def render_table(header: list[str], rows: list[list[str]], right: set[int] = frozenset()) -> str:
    """Header cells are upper-cased and left-aligned; ``right`` columns right-align their
    body cells. Returns the table without a trailing newline."""
    header = [h.upper() for h in header]
    widths = [max([len(header[i])] + [len(r[i]) for r in rows]) for i in range(len(header))]
    border = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def line(cells: list[str], align_right: set[int]) -> str:
        parts = [(c.rjust(w) if i in align_right else c.ljust(w)) for i, (c, w) in enumerate(zip(cells, widths))]
        return "| " + " | ".join(parts) + " |"

    out = [border, line(header, set()), border]
    out += [line(r, set(right)) for r in rows]
    out.append(border)
    return "\n".join(out)


def _g5(n: int) -> str:
    return "%.5g" % float(n)


def _with_percentage(n: int, capacity: int) -> str:
    pct = 100 * float(n) / float(capacity) if capacity else float("nan")
    return f"{_g5(n)} ({'%.0f' % pct if pct == pct else 'NaN'}%)"


def usage_table(groups, show_blocks: bool) -> str:
    rows: list[list[str]] = []

    def row(kind: str, cidr, capacity: int, in_use: int, reserved: int, free: int) -> list[str]:
        return [kind, str(cidr), _g5(capacity), _with_percentage(in_use, capacity),
                _with_percentage(reserved, capacity), _with_percentage(free, capacity)]

    for group in groups:
        if not group.orphaned:
            rows.append(row("IP Pool", group.cidr, group.capacity, group.in_use, group.reserved, group.available))
        if show_blocks:
            rows += [row("Block", b.cidr, b.capacity, b.in_use, b.reserved, b.available) for b in group.blocks]
    return render_table(["GROUPING", "CIDR", "IPS TOTAL", "IPS IN USE", "IPS RESERVED", "IPS FREE"], rows,
                        right={2, 3, 4, 5})


def borrowed_table(blocks) -> tuple[str, int]:
    """Addresses used by a node other than the block's owner; also how many allocations
    carry no node at all (they cannot be classified)."""
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
    table = render_table(["IP", "BORROWING-NODE", "BLOCK", "BLOCK OWNER", "TYPE", "ALLOCATED-TO"], rows)
    return table, unclassified


# --------------------------------------------------------------------------------------

def cmd_show(args) -> int:
    from node.ipam.block import Reservations
    from node.ipam.usage import utilization

    ipam = _ipam(args)
    try:
        if args.ip:
            ip = _validate_ip(args.ip)
            try:
                attr = ipam.get_assignment_attributes(ip)
            except NotFound:
                print(f"{ip} is not assigned")
                return 0
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
            return 0
        # In address order: etcd lists keys as strings, which puts 10.0.0.128/26 before 10.0.0.64/26.
        blocks = sorted((b for b, _ in ipam.store.list_blocks()),
                        key=lambda b: (b.cidr.version, int(b.cidr.network_address), b.cidr.prefixlen))
        if args.show_borrowed and not args.show_blocks:
            table, unclassified = borrowed_table(blocks)
            print(table)
            if unclassified:
                print(f"\nNote: found {unclassified} IP allocations without an explicit node association. "
                      "Unable to determine if they are borrowed.")
            return 0
        groups = utilization(ipam.all_pools(), blocks, Reservations(ipam.store.reserved_cidrs()))
        print(usage_table(groups, args.show_blocks))
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


def cmd_check(args) -> int:
    from node.ipam.check import check, render, report_json

    ipam = _ipam(args)
    show_problems = args.show_all_ips or args.show_problem_ips
    try:
        result = check(ipam.kv, ipam.clock_ns(), show_all=args.show_all_ips)
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
