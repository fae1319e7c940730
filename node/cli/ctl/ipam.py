"""``calicoctl ipam show|release|check``: inspect and repair IP address management.

    calicoctl ipam show [--show-blocks | --show-borrowed | --ip ADDR]
    calicoctl ipam release --ip ADDR
    calicoctl ipam check [--show-all-ips] [--show-problem-ips] [-o REPORT]

Output follows calicoctl: ``show`` draws go-pretty's default box table, ``check``
prints its step-by-step scan and ends with ``Check complete; found N problems.``
"""
from __future__ import annotations

import argparse
import ipaddress
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
    release.add_argument("-c", "--config", default=argparse.SUPPRESS)
    release.set_defaults(func=cmd_release)

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
