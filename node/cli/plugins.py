"""Find the modules that add subcommands to calico-node and calicoctl.

Every public module of a command package registers a subcommand; modules whose name
starts with ``_`` are shared helpers of that package and register nothing.
"""
from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def command_modules(package: str) -> list[ModuleType]:
    pkg = importlib.import_module(package)
    return [importlib.import_module(f"{package}.{m.name}")
            for m in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name)
            if not m.name.startswith("_")]


def register_all(package: str, subparsers) -> None:
    for module in command_modules(package):
        module.register(subparsers)
