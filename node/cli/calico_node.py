"""``calico-node``: the image's own roles, one subcommand each.

Roles arrive with their issues (startup, felix, confd, health, ...); each is a thin
wrapper that parses its flags and calls into the package that owns the role.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from node import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="calico-node", description="Calico node roles.")
    sub = parser.add_subparsers(dest="role", required=True)
    p = sub.add_parser("version", help="print the version")
    p.set_defaults(func=lambda args: print(__version__) or 0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
