"""``calico-node``: the image's own roles, one subcommand each.

Each role (startup, confd, felix, health...) lives in ``node/cli/roles/<role>.py`` as a
thin wrapper that parses its flags and calls into the package that owns the role.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from node import __version__
from node.cli.plugins import register_all


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="calico-node", description="Calico node roles.")
    sub = parser.add_subparsers(dest="role", required=True)
    p = sub.add_parser("version", help="print the version")
    p.set_defaults(func=lambda args: print(__version__) or 0)
    register_all("node.cli.roles", sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
