"""The host's interfaces and their addresses, read over netlink (pyroute2), and followed.

Felix's interface monitor feeds two consumers: host endpoint resolution and the
``this-host`` IP set (which interface has which addresses), and the route side (which
interface is oper-up, so workload routes and sysctls go in when a veth comes up).
``read_interfaces()`` reads that picture once; ``InterfaceMonitor`` keeps it: a thread
on a netlink socket subscribed to link and address events re-reads the picture after
each burst of events and every ``refresh_interval`` (Felix's InterfaceRefreshInterval,
which covers events lost to a full socket buffer), and calls back with the whole
``{name: Interface}`` whenever it changed. Re-reading instead of patching the picture
from each event keeps it exact however events are ordered or dropped.
"""
from __future__ import annotations

import asyncio
import logging
import re
import threading
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from node.rtnl import RTMGRP_IPV4_IFADDR, RTMGRP_IPV6_IFADDR, RTMGRP_LINK, AsyncIPRoute, IPRoute

log = logging.getLogger(__name__)

MONITOR_GROUPS = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR


@dataclass(frozen=True)
class Interface:
    name: str
    index: int
    oper_up: bool
    addresses: frozenset[str]
    mtu: int = 0


def link_oper_up(link) -> bool:
    """Operationally up: ``UP``, or ``UNKNOWN`` for devices without carrier state (lo,
    tunnels), as Felix reads IFF_RUNNING."""
    return link.get_attr("IFLA_OPERSTATE") in ("UP", "UNKNOWN")


def _build(links: Iterable, addrs: Iterable) -> dict[str, Interface]:
    names: dict[int, tuple[str, bool, int]] = {}
    for link in links:
        names[link["index"]] = (link.get_attr("IFLA_IFNAME"), link_oper_up(link), link.get_attr("IFLA_MTU") or 0)
    by_index: dict[int, set[str]] = {i: set() for i in names}
    for addr in addrs:
        ip = addr.get_attr("IFA_ADDRESS")
        if ip is None or addr["index"] not in by_index:
            continue
        by_index[addr["index"]].add(ip)
    return {name: Interface(name, index, up, frozenset(by_index[index]), mtu)
            for index, (name, up, mtu) in names.items()}


def read_interfaces(ipr: IPRoute | None = None) -> dict[str, Interface]:
    """Every link of the current network namespace with its IPv4/IPv6 addresses (link-local
    ones included: Felix reads them from the local routing table, which has them)."""
    own = ipr is None
    ipr = ipr or IPRoute()
    try:
        return _build(ipr.get_links(), ipr.get_addr())
    finally:
        if own:
            ipr.close()


async def read_interfaces_async(ipr: AsyncIPRoute) -> dict[str, Interface]:
    """``read_interfaces`` on an asyncio socket (the monitor's thread runs an event loop)."""
    links = [link async for link in await ipr.get_links()]
    addrs = [addr async for addr in await ipr.get_addr()]
    return _build(links, addrs)


def addresses_by_name(interfaces: dict[str, Interface]) -> dict[str, frozenset[str]]:
    return {name: iface.addresses for name, iface in interfaces.items()}


DEFAULT_HOST_MTU = 1460


def host_mtu(interfaces: dict[str, Interface], pattern: re.Pattern) -> int:
    """Felix's host MTU: the smallest MTU of the oper-up interfaces matching
    ``MTUIfacePattern``, or 1460 when none match."""
    mtus = [i.mtu for i in interfaces.values() if i.oper_up and i.mtu and pattern.search(i.name)]
    return min(mtus) if mtus else DEFAULT_HOST_MTU


def interface_changes(old: Mapping[str, Interface] | None, new: Mapping[str, Interface],
                      excluded: Iterable[re.Pattern] = ()) -> tuple[int, int]:
    """How many (state, address) notifications Felix's interface monitor gives for the
    move from picture ``old`` (None: nothing known yet) to ``new``. It follows interfaces
    by index: one appearing or going is a state and an address notification, one turning
    oper up or down a state notification, new addresses an address notification, and a
    rename counts as the old name going and the new one appearing. Interfaces that an
    ``excluded`` pattern (InterfaceExclude, searched as Go's MatchString does) matches get
    state notifications only."""
    def tracked(name: str) -> int:
        return 0 if any(p.search(name) for p in excluded) else 1

    before = {i.index: i for i in (old or {}).values()}
    states = addrs = 0
    seen = set()
    for now in new.values():
        seen.add(now.index)
        was = before.get(now.index)
        if was is not None and was.name != now.name:
            states, addrs = states + 1, addrs + tracked(was.name)
            was = None
        if was is None:
            states, addrs = states + 1, addrs + tracked(now.name)
            continue
        if was.oper_up != now.oper_up:
            states += 1
        if was.addresses != now.addresses:
            addrs += tracked(now.name)
    for index, was in before.items():
        if index not in seen:
            states, addrs = states + 1, addrs + tracked(was.name)
    return states, addrs


# --------------------------------------------------------------------------------------
# Following changes.

Callback = Callable[[dict[str, Interface]], None]


class InterfaceMonitor:
    """Calls ``callback({name: Interface})`` from its own thread: once when started (then
    ``in_sync`` is set), and again whenever a netlink event or the periodic re-read shows
    a different picture. ``stop()`` ends the thread and closes its sockets.

    The thread and its sockets live in the network namespace of the thread that calls
    ``start()``. ``debounce`` lets a burst of events (a veth pair appearing, its
    addresses, its state) settle before the re-read.
    """

    def __init__(self, callback: Callback, *, refresh_interval: float = 90.0, debounce: float = 0.05):
        self.callback = callback
        self.refresh_interval = refresh_interval
        self.debounce = debounce
        self.in_sync = threading.Event()
        self.error: BaseException | None = None
        self.snapshot: dict[str, Interface] | None = None
        self.reads = 0
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None

    def start(self) -> "InterfaceMonitor":
        if self._thread is not None:
            raise RuntimeError("the interface monitor was already started")
        self._thread = threading.Thread(target=self._run, name="interface-monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:
                pass  # the loop already finished
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError("the interface monitor thread did not stop")

    def __enter__(self) -> "InterfaceMonitor":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported through .error; the agent decides what to do
            self.error = exc
            log.exception("The interface monitor failed")

    async def _main(self) -> None:
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        if self._stopping.is_set():
            return
        events = AsyncIPRoute()
        dumps = AsyncIPRoute()
        pending: asyncio.Future | None = None
        stop_wait = asyncio.ensure_future(self._wake.wait())
        try:
            # Subscribe before the first read, so nothing between the two is missed.
            await events.bind(groups=MONITOR_GROUPS)
            await self._publish(await read_interfaces_async(dumps))
            self.in_sync.set()
            loop = asyncio.get_running_loop()
            next_refresh = loop.time() + self.refresh_interval
            while not self._stopping.is_set():
                if pending is None:
                    pending = asyncio.ensure_future(self._next_events(events))
                timeout = max(0.0, next_refresh - loop.time()) if self.refresh_interval > 0 else None
                done, _ = await asyncio.wait({pending, stop_wait}, timeout=timeout,
                                             return_when=asyncio.FIRST_COMPLETED)
                if self._stopping.is_set():
                    break
                if pending in done:
                    pending.result()
                    pending = None
                    await asyncio.sleep(self.debounce)
                else:
                    next_refresh = loop.time() + self.refresh_interval
                await self._publish(await read_interfaces_async(dumps))
        finally:
            for task in (pending, stop_wait):
                if task is not None and not task.done():
                    task.cancel()
                    try:
                        await task
                    except (asyncio.CancelledError, Exception):
                        pass
            events.close()
            dumps.close()

    @staticmethod
    async def _next_events(events: AsyncIPRoute) -> list:
        return [msg async for msg in events.get()]

    async def _publish(self, snapshot: dict[str, Interface]) -> None:
        self.reads += 1
        if snapshot == self.snapshot or self._stopping.is_set():
            return
        self.snapshot = snapshot
        try:
            self.callback(dict(snapshot))
        except Exception:
            log.exception("Interface monitor callback failed")


__all__ = ["DEFAULT_HOST_MTU", "Interface", "InterfaceMonitor", "addresses_by_name", "host_mtu",
           "interface_changes", "link_oper_up", "read_interfaces", "read_interfaces_async"]
