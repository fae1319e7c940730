"""``calico-node monitor-addresses``: keep the Node's addresses in step with the host.

Every AUTODETECT_POLL_INTERVAL (60s by default; the first check comes after one
interval), and also soon after the kernel reports an address change, the same rules
as startup are applied to the stored Node (``startup.ipconfig``). Only addresses and
interfaces are touched, and only what the rules allow: without ``IP=autodetect`` an
existing IPv4 address is never changed. When a Kubernetes configuration is found (as
startup finds it), each check first reads this host's Kubernetes Node again, so the
``kubernetes-internal-ip`` method follows changes of its InternalIP; failing to read it
ends the process ("failed to read Node from datastore"). A configuration error ends the
process with status 1 so the supervisor restarts it.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable, Mapping

from node.datastore.client import DatastoreClient
from node.errors import CalicoError
from node.model.schema import format_go_duration
from startup import cluster, k8s
from startup.autodetect import HostView
from startup.datastore import ExitNow, load_config, make_client
from startup.env import poll_interval, policy_only
from startup.hostnet import AddressEvents, reach_source, read_links
from startup.ipconfig import IPConfigError
from startup.logs import Fatal, configure, terminate
from startup.node import NodePlan, canonical, configure_addresses, get_node, new_node, write_node
from startup.nodename import determine_node_name

log = logging.getLogger(__name__)

WRITE_ATTEMPTS = 3
# Calico's monitor gives client-go no timeout; one this long still ends a hung request.
K8S_NODE_TIMEOUT = 30.0
# After an address event, wait this long so a burst (delete + add) is handled at once.
EVENT_SETTLE = 0.2


@dataclass(frozen=True)
class MonitorOptions:
    netlink_events: bool = True


def address_plan(client: DatastoreClient, name: str, env: Mapping[str, str],
                 k8s_node: Mapping | None) -> NodePlan:
    """The stored Node with only its addresses and interfaces recomputed."""
    current = get_node(client, name)
    node = current.copy() if current is not None else new_node(name)
    try:
        links = read_links()
    except OSError as exc:
        raise IPConfigError(f"unable to query host interfaces: {exc}") from None
    changed = configure_addresses(client, node, env, HostView(links, reach_source), k8s_node)
    return NodePlan(current, canonical(node), changed)


def check_once(client: DatastoreClient, name: str, env: Mapping[str, str], k8s_node: Mapping | None,
               datastore_type: str) -> bool:
    """One monitor pass; True when the Node was written."""
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        plan = address_plan(client, name, env, k8s_node)
        if not plan.needs_write:
            return False
        try:
            write_node(client, plan, on_create=lambda: cluster.ensure_initialized(client, "", "", datastore_type))
        except CalicoError as exc:
            log.error("Unable to set node resource configuration, retrying... attempt=%d error=%s", attempt, exc)
            continue
        log.info("Updated node IP addresses")
        return True
    return False


def _go_duration(seconds: float) -> str:
    return format_go_duration(int(round(seconds * 1e9)))


def kube_node_reader(env: Mapping[str, str], name: str) -> tuple[Callable[[], Mapping | None], Callable[[], None]]:
    """A read() -> this host's Kubernetes Node (None when Kubernetes is not configured),
    and its cleanup. read() raises Fatal when the Node cannot be read."""
    try:
        api = k8s.kube_api(env, timeout=K8S_NODE_TIMEOUT)
    except CalicoError as exc:
        # client-go's BuildConfigFromFlags failing: Calico's monitor then runs without Kubernetes.
        log.warning("Kubernetes configuration found, but it cannot be used: %s; not reading the Kubernetes Node",
                    exc)
        api = None
    if api is None:
        return (lambda: None), (lambda: None)
    k8s_name = k8s.k8s_node_name(env, name)

    def read() -> Mapping:
        try:
            return k8s.read_node(api, k8s_name, K8S_NODE_TIMEOUT)
        except CalicoError as exc:
            raise Fatal(f"failed to read Node from datastore: {exc}") from None

    return read, api.close


def _waiter(options: MonitorOptions, interval: float,
            stop: threading.Event) -> tuple[Callable[[float], bool], Callable[[], None]]:
    """A wait(timeout) -> "address event seen" function, and its cleanup. Either returns
    early once ``stop`` is set."""
    if options.netlink_events:
        try:
            events = AddressEvents()
        except OSError as exc:
            log.warning("Cannot subscribe to address events (%s); polling only", exc)
        else:
            # select() cannot wait on an Event: a pipe, written once ``stop`` is set, can.
            # (The thread lives until ``stop``, or with a process that ends without it.)
            wake_read, wake_write = os.pipe2(os.O_CLOEXEC)

            def wake() -> None:
                stop.wait()
                try:
                    os.write(wake_write, b"s")
                except OSError:  # the monitor has already closed its end
                    pass
                finally:
                    os.close(wake_write)

            threading.Thread(target=wake, name="monitor-addresses-stop", daemon=True).start()

            def close() -> None:
                events.close()
                os.close(wake_read)

            log.info("Monitoring node addresses every %s and on kernel address events", _go_duration(interval))
            return (lambda timeout: events.wait(timeout, wake_read)), close

    def sleep_only(timeout: float) -> bool:
        stop.wait(max(timeout, 0.0))
        return False

    log.info("Monitoring node addresses every %s", _go_duration(interval))
    return sleep_only, lambda: None


def monitor(env: Mapping[str, str], options: MonitorOptions, stop: threading.Event) -> None:
    """Check on every tick or address event until ``stop`` is set or a fatal error ends it."""
    name = determine_node_name(env)
    config = load_config(env)
    client = make_client(config)
    interval = poll_interval(env)
    read_k8s_node, close_kube = kube_node_reader(env, name)
    try:
        wait, close = _waiter(options, interval, stop)
    except BaseException:
        close_kube()
        client.kv.close()
        raise
    try:
        deadline = time.monotonic() + interval
        while True:
            seen = wait(deadline - time.monotonic())
            if stop.is_set():
                return
            if seen:
                log.debug("Address change reported by the kernel")
                time.sleep(EVENT_SETTLE)
                wait(0)
            elif time.monotonic() < deadline:
                continue
            else:
                deadline += interval
                if deadline < time.monotonic():
                    deadline = time.monotonic() + interval
            log.debug("Checking node IP address every %s", _go_duration(interval))
            k8s_node = read_k8s_node()  # every pass, as Calico does: its InternalIP may change
            try:
                check_once(client, name, env, k8s_node, config.datastore_type)
            except IPConfigError as exc:
                raise Fatal(str(exc)) from None
    finally:
        close()
        close_kube()
        client.kv.close()


def run(env: Mapping[str, str] | None = None, options: MonitorOptions = MonitorOptions(),
        stop: threading.Event | None = None, own_logging: bool = True) -> int:
    """The monitor until ``stop`` is set (0) or a fatal error (1). ``own_logging``: set up
    the process's log handler as the standalone role does (not when it shares a process)."""
    env = dict(os.environ if env is None else env)
    if own_logging:
        configure("monitor-addresses", env)
    if policy_only(env):
        log.info("CALICO_NETWORKING_BACKEND is none: Calico does not manage addresses here; not monitoring")
        return 0
    try:
        monitor(env, options, stop if stop is not None else threading.Event())
    except ExitNow as exc:
        return exc.code
    except Fatal as exc:
        return terminate(exc)
    except KeyboardInterrupt:
        return 0
    return 0
