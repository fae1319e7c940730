"""pyroute2's route-netlink socket, without the rest of pyroute2.

``import pyroute2`` runs the package's ``__init__``, which imports every API the library
has (NDB with its sqlite3 database, IPDB, IPVS, nl80211, WireGuard, Plan 9, ...): about
7 MB of the agent's resident memory and about 100 ms of every start for code it never
calls. The policy agent and startup need only the route-netlink socket, so the package is
registered without running its ``__init__`` and only those submodules are imported. Its submodules import as usual; a name only the
``__init__`` defines (``from pyroute2 import NDB``) initialises the whole package at that
moment, so other code sees pyroute2 as if it had been imported normally.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys


def _register_package_without_init() -> None:
    if "pyroute2" in sys.modules:
        return
    spec = importlib.util.find_spec("pyroute2")
    if spec is None or spec.loader is None:
        raise ImportError("pyroute2 is not installed", name="pyroute2")
    package = importlib.util.module_from_spec(spec)
    initialised = False

    def __getattr__(name: str):
        nonlocal initialised
        if name.startswith("__"):
            raise AttributeError(f"module 'pyroute2' has no attribute {name!r}")
        try:
            return importlib.import_module(f"pyroute2.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"pyroute2.{name}":
                raise
        if not initialised:
            initialised = True
            spec.loader.exec_module(package)
            if name in package.__dict__:
                return package.__dict__[name]
        raise AttributeError(f"module 'pyroute2' has no attribute {name!r}")

    package.__getattr__ = __getattr__
    sys.modules["pyroute2"] = package


_register_package_without_init()

from pyroute2.iproute.linux import AsyncIPRoute, IPRoute  # noqa: E402
from pyroute2.netlink.exceptions import NetlinkError  # noqa: E402
from pyroute2.netlink.rtnl import RTMGRP_IPV4_IFADDR, RTMGRP_IPV6_IFADDR, RTMGRP_LINK, ndmsg  # noqa: E402

__all__ = ["AsyncIPRoute", "IPRoute", "NetlinkError", "RTMGRP_IPV4_IFADDR", "RTMGRP_IPV6_IFADDR", "RTMGRP_LINK",
           "ndmsg"]
