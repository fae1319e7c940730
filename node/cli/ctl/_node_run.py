"""``calicoctl node run``: start the node image in Docker, as calicoctl does.

The flags, their checks and error texts, the environment and volumes handed to the
container and the ``docker run`` command printed by ``--dryrun`` are calicoctl's. The real
run prepares the kernel (modules, forwarding, conntrack limit), replaces any container
named ``calico-node`` and starts the new one through the Docker Engine API (the ``docker``
client library; ``DOCKER_HOST`` and friends choose the daemon), then follows its output
for up to 10 s until the line ``Calico node started successfully``.

Two differences from calicoctl, both said on the terminal when they apply:

* Where this host's capability bounding set lacks capabilities, Docker cannot start a
  ``--privileged`` container ("unable to apply caps"). The container then gets the
  equivalent explicit set: every capability the host has, no seccomp or AppArmor profile,
  unmasked /proc and /sys paths and a read-write /sys.
* ``--init-system`` really runs in the foreground: the container's output is streamed,
  SIGTERM/SIGINT stop the container, and the exit status is the container's. (calicoctl
  captures ``docker run``'s output instead and only shows it at the end.)
"""
from __future__ import annotations

import ipaddress
import logging
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from node.cli.ctl._common import CommandFailed

log = logging.getLogger(__name__)

CONTAINER_NAME = "calico-node"
DEFAULT_IMAGE = "quay.io/calico/node:latest"
DEFAULT_LOG_DIR = "/var/log/calico"
STARTED_LINE = "Calico node started successfully"
CHECK_LOG_TIMEOUT = 10.0

ETCD_KEY_NODE_FILE = "/etc/calico/certs/key.pem"
ETCD_CERT_NODE_FILE = "/etc/calico/certs/cert.crt"
ETCD_CA_CERT_NODE_FILE = "/etc/calico/certs/ca_cert.crt"
FELIX_CONFIG_NODE_FILE = "/etc/calico/felix.cfg"

FIRST_FOUND = "first-found"
CAN_REACH = "can-reach="
INTERFACE = "interface="
SKIP_INTERFACE = "skip-interface="
BACKENDS = re.compile(r"^(none|bird)$")

SYSCTL_ROOT = Path("/proc/sys")
CONNTRACK_MAX = "1000000"

# Linux capability numbers and the names Docker uses for them.
CAPABILITIES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
    "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
    "CHECKPOINT_RESTORE",
)


class StdoutFailure(CommandFailed):
    """A failure calicoctl reports on stdout (its argument validators print and exit 1)."""


# --------------------------------------------------------------------------------------
# Flags and the container they describe.

@dataclass
class RunOptions:
    ip: str = ""
    ip6: str = ""
    as_number: str = ""
    name: str = ""
    ip_autodetection_method: str = FIRST_FOUND
    ip6_autodetection_method: str = FIRST_FOUND
    log_dir: str = DEFAULT_LOG_DIR
    node_image: str = DEFAULT_IMAGE
    backend: str = "bird"
    config: str | None = None
    felix_config: str = ""
    dryrun: bool = False
    init_system: bool = False
    no_default_ippools: bool = False


@dataclass
class ContainerPlan:
    """What calicoctl hands Docker: environment (in calicoctl's insertion order), volumes
    (host path, container path) in its fixed order, the image, and how it is run."""

    env: dict[str, str]
    volumes: list[tuple[str, str]]
    image: str
    init_system: bool


@dataclass(frozen=True)
class Privileges:
    """``--privileged``, or the explicit equivalent where the host cannot grant it."""

    missing: tuple[str, ...] = ()  # capabilities the host's bounding set lacks

    @property
    def privileged(self) -> bool:
        return not self.missing

    def flags(self) -> list[str]:
        if self.privileged:
            return ["--privileged"]
        out = ["--cap-add", "ALL"]
        for cap in self.missing:
            out += ["--cap-drop", cap]
        for opt in ("seccomp=unconfined", "apparmor=unconfined", "systempaths=unconfined"):
            out += ["--security-opt", opt]
        return out

    def extra_volumes(self) -> list[tuple[str, str]]:
        # --privileged mounts /sys read-write; otherwise Docker mounts it read-only.
        return [] if self.privileged else [("/sys", "/sys")]

    def note(self) -> str:
        caps = ", ".join(f"CAP_{c}" for c in self.missing)
        return (f"Note: this host's capability bounding set lacks {caps}, so Docker cannot start a --privileged "
                f"container here; using the equivalent explicit set instead: {' '.join(self.flags())} -v /sys:/sys")


def _parse_ip(text: str):
    """Go's net.ParseIP: a bare address (no prefix, no zone); IPv4-mapped IPv6 is IPv4."""
    if "%" in text or "/" in text:
        raise ValueError(text)
    addr = ipaddress.ip_address(text)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _validate_ip(text: str, flag: str, version: int) -> None:
    try:
        addr = _parse_ip(text)
    except ValueError:
        raise StdoutFailure(f"Error executing command: invalid IP address specified: {text}") from None
    if addr.version != version:
        raise CommandFailed(f"error executing command: {flag} is wrong IP version")


def _validate_asn(text: str) -> str:
    from node.model.schema import parse_asn

    try:
        return str(parse_asn(text))
    except ValueError:
        raise StdoutFailure(f"Error executing command: invalid AS Number specified: {text}") from None


def _resolves_to(host: str, version: int) -> bool:
    """Whether ``host`` resolves to at least one address of IP ``version``."""
    try:
        infos = socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError):
        raise CommandFailed(f"error executing command: cannot resolve address specified for IP autodetection: "
                            f"{host}") from None
    for *_rest, sockaddr in infos:
        try:
            if _parse_ip(str(sockaddr[0]).split("%")[0]).version == version:
                return True
        except ValueError:
            continue
    return False


def validate_autodetection_method(method: str, version: int) -> None:
    """calicoctl's check: first-found, can-reach=HOST (resolving to the right family),
    interface=REGEX[,REGEX...] or skip-interface=REGEX[,REGEX...]; nothing else."""
    if method == FIRST_FOUND:
        return
    if method.startswith(CAN_REACH):
        host = method[len(CAN_REACH):]
        if not _resolves_to(host, version):
            raise CommandFailed(f"error executing command: address for IP autodetection does not resolve to an "
                                f"IPv{version} address: {host}")
        return
    if method.startswith(INTERFACE) or method.startswith(SKIP_INTERFACE):
        whole = method.split("=", 1)[1]
        for regex in whole.split(","):
            # calicoctl compiles the whole list for interface= and each entry for skip-interface=.
            try:
                re.compile(whole if method.startswith(INTERFACE) else regex)
            except re.error:
                raise CommandFailed(f"error executing command: invalid interface regex specified for IP "
                                    f"autodetection: {regex}") from None
        return
    raise CommandFailed(f"error executing command: invalid IP autodetection method: {method}")


def hostname() -> str:
    """libcalico-go's names.Hostname(): the OS host name, trimmed and lowercased."""
    return socket.gethostname().strip().lower()


def _datastore(config_path: str | None):
    from node.config import DEFAULT_CALICOCTL_CONFIG, ETCDV3, calicoctl_datastore_config
    from node.errors import ConfigError

    if config_path and config_path != DEFAULT_CALICOCTL_CONFIG and not os.path.exists(config_path):
        raise StdoutFailure(f"Error reading config file: {config_path}")
    try:
        cfg = calicoctl_datastore_config(config_path)
    except ConfigError as exc:
        detail = str(exc).removeprefix("invalid config file: ")
        raise CommandFailed(f"error executing command: invalid config file: {detail}") from None
    if cfg.datastore_type != ETCDV3:
        raise CommandFailed("error executing command: unsupported backend specified in config")
    return cfg


def plan_container(opts: RunOptions) -> ContainerPlan:
    """Check the flags as calicoctl does (same order, same messages) and describe the
    container. Raises CommandFailed (StdoutFailure for calicoctl's stdout errors)."""
    if opts.ip and opts.ip != "autodetect":
        _validate_ip(opts.ip, "--ip", 4)
    if opts.ip6 and opts.ip6 != "autodetect":
        _validate_ip(opts.ip6, "--ip6", 6)
    as_number = _validate_asn(opts.as_number) if opts.as_number else ""
    if not BACKENDS.match(opts.backend):
        raise CommandFailed(f"error executing command: unknown backend '{opts.backend}'")
    validate_autodetection_method(opts.ip_autodetection_method, 4)
    validate_autodetection_method(opts.ip6_autodetection_method, 6)
    name = opts.name
    if not name:
        name = hostname()
        if not name:
            raise CommandFailed("error executing command: unable to determine node name")
    cfg = _datastore(opts.config)

    env = {"NODENAME": name, "CALICO_NETWORKING_BACKEND": opts.backend, "CALICO_MANAGE_CNI": "false"}
    if opts.no_default_ippools:
        env["NO_DEFAULT_POOLS"] = "true"
    if opts.ip_autodetection_method != FIRST_FOUND:
        env["IP_AUTODETECTION_METHOD"] = opts.ip_autodetection_method
    if opts.ip6_autodetection_method != FIRST_FOUND:
        env["IP6_AUTODETECTION_METHOD"] = opts.ip6_autodetection_method
    if as_number:
        env["AS"] = as_number
    if opts.ip:
        env["IP"] = opts.ip
    if opts.ip6:
        env["IP6"] = opts.ip6
    volumes = [(opts.log_dir, "/var/log/calico"), ("/var/run/calico", "/var/run/calico"),
               ("/var/lib/calico", "/var/lib/calico"), ("/lib/modules", "/lib/modules"), ("/run", "/run")]
    if opts.felix_config:
        volumes.append((opts.felix_config, FELIX_CONFIG_NODE_FILE))
    env["ETCD_ENDPOINTS"] = ",".join(cfg.etcd_endpoints)
    env["ETCD_DISCOVERY_SRV"] = cfg.etcd_discovery_srv
    if cfg.etcd_ca_cert_file:
        env["ETCD_CA_CERT_FILE"] = ETCD_CA_CERT_NODE_FILE
        volumes.append((cfg.etcd_ca_cert_file, ETCD_CA_CERT_NODE_FILE))
    if cfg.etcd_key_file and cfg.etcd_cert_file:
        env["ETCD_KEY_FILE"] = ETCD_KEY_NODE_FILE
        volumes.append((cfg.etcd_key_file, ETCD_KEY_NODE_FILE))
        env["ETCD_CERT_FILE"] = ETCD_CERT_NODE_FILE
        volumes.append((cfg.etcd_cert_file, ETCD_CERT_NODE_FILE))
    return ContainerPlan(env, volumes, opts.node_image, opts.init_system)


def docker_command(plan: ContainerPlan, privileges: Privileges = Privileges()) -> list[str]:
    cmd = ["docker", "run", "--net=host", *privileges.flags(), f"--name={CONTAINER_NAME}"]
    cmd += ["--rm"] if plan.init_system else ["-d", "--restart=always"]
    for key, value in plan.env.items():
        cmd += ["-e", f"{key}={value}"]
    for host, container in plan.volumes + privileges.extra_volumes():
        cmd += ["-v", f"{host}:{container}"]
    cmd.append(plan.image)
    return cmd


def dryrun_text(plan: ContainerPlan) -> str:
    out = ["Use the following command to start the calico/node container:", "",
           " ".join(docker_command(plan)), ""]
    if plan.init_system:
        out += ["Use the following command to stop the calico/node container:", "", "docker stop calico-node", ""]
    else:
        out += ["If you are running calico/node in an init system, use the --init-system flag",
                "to display the appropriate start and stop commands."]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------
# The host: privileges, kernel preparation.

def host_privileges(status_path: str = "/proc/self/status",
                    last_cap_path: str = "/proc/sys/kernel/cap_last_cap") -> Privileges:
    """Which capabilities the bounding set lacks (runc cannot grant those, so --privileged
    fails with "unable to apply caps")."""
    try:
        bounding = next(int(line.split()[1], 16) for line in open(status_path) if line.startswith("CapBnd:"))
        last = int(open(last_cap_path).read().strip())
    except (OSError, StopIteration, ValueError):
        return Privileges()
    last = min(last, len(CAPABILITIES) - 1)
    return Privileges(tuple(CAPABILITIES[n] for n in range(last + 1) if not bounding >> n & 1))


def prepare_kernel(out: Callable[[str], None], sysctl_root: Path = SYSCTL_ROOT,
                   modprobe: tuple[str, ...] = ("modprobe",)) -> None:
    """calicoctl's host preparation: best-effort module load, forwarding (fatal if it
    cannot be set), conntrack limit (a warning). Sysctls already right are not rewritten
    and a larger conntrack limit is never lowered."""
    from startup.kernel import KernelReport, set_sysctl

    report = KernelReport()
    argv = [*modprobe, "-a", "xt_set", "ip6_tables"]
    out(f"Running command to load modules: {' '.join(argv)}")
    try:  # the very command printed, once; its result is not checked (calicoctl's neither)
        subprocess.run(argv, capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        pass
    out("Enabling IPv4 forwarding")
    try:
        set_sysctl(sysctl_root, "net.ipv4.ip_forward", "1", report)
    except OSError:
        raise CommandFailed("ERROR: Could not enable ipv4 forwarding") from None
    if (sysctl_root / "net" / "ipv6").exists():
        out("Enabling IPv6 forwarding")
        try:
            set_sysctl(sysctl_root, "net.ipv6.conf.all.forwarding", "1", report)
        except OSError:
            raise CommandFailed("ERROR: Could not enable ipv6 forwarding") from None
    out("Increasing conntrack limit")
    path = sysctl_root / "net" / "netfilter" / "nf_conntrack_max"
    try:
        current = path.read_text().strip()
    except OSError:
        current = ""
    if current.isdigit() and int(current) >= int(CONNTRACK_MAX):
        return
    try:
        set_sysctl(sysctl_root, "net.netfilter.nf_conntrack_max", CONNTRACK_MAX, report)
    except OSError:
        out("WARNING: Could not set nf_conntrack_max. This may have an impact at scale.")


def enforce_root() -> None:
    if os.geteuid() != 0:
        raise StdoutFailure("Need super user privileges: Operation not permitted")


# --------------------------------------------------------------------------------------
# Docker.

def docker_client():
    """A Docker Engine API client for the daemon the environment names (DOCKER_HOST...)."""
    import docker

    try:
        return docker.from_env(timeout=120)
    except docker.errors.DockerException as exc:
        raise CommandFailed(_docker_failure("cannot reach the Docker daemon", str(exc))) from None


def _docker_failure(summary: str, detail: str) -> str:
    lines = [f"Error executing command: {summary}"]
    lines += [f" | {line}" for line in detail.splitlines()] or [" | "]
    return "\n".join(lines)


def _api_error_text(exc) -> str:
    explanation = getattr(exc, "explanation", None)
    return f"Error response from daemon: {explanation}" if explanation else str(exc)


def remove_old_container(client) -> None:
    """``docker rm -f calico-node``, errors ignored as calicoctl ignores them (there may be
    no such container; an unreachable daemon is reported by the start that follows)."""
    try:
        client.api.remove_container(CONTAINER_NAME, force=True)
    except Exception as exc:
        log.debug("Unable to remove calico-node container (ok if container was not running): %s", exc)


def create_container(client, plan: ContainerPlan, privileges: Privileges, out: Callable[[str], None]) -> str:
    """Create the container (pulling the image when missing, as docker run does); its
    id. Failures are reported as calicoctl reports docker run's."""
    import docker

    api = client.api
    host_config = api.create_host_config(
        binds=[f"{host}:{container}" for host, container in plan.volumes + privileges.extra_volumes()],
        network_mode="host",
        privileged=privileges.privileged,
        cap_add=None if privileges.privileged else ["ALL"],
        cap_drop=None if privileges.privileged else list(privileges.missing),
        security_opt=None if privileges.privileged else ["seccomp=unconfined", "apparmor=unconfined"],
        restart_policy=None if plan.init_system else {"Name": "always"},
        auto_remove=plan.init_system,
    )
    if not privileges.privileged:
        # The CLI's --security-opt systempaths=unconfined: nothing masked or read-only in /proc.
        host_config["MaskedPaths"] = []
        host_config["ReadonlyPaths"] = []
    env = [f"{k}={v}" for k, v in plan.env.items()]

    def create() -> str:
        return api.create_container(plan.image, name=CONTAINER_NAME, environment=env, host_config=host_config,
                                    detach=not plan.init_system)["Id"]

    try:
        try:
            container_id = create()
        except docker.errors.ImageNotFound:
            out(f"Unable to find image '{plan.image}' locally")
            repo, tag = _split_image(plan.image)
            api.pull(repo, tag=tag)
            container_id = create()
    except docker.errors.APIError as exc:
        raise CommandFailed(_docker_failure("docker run failed", _api_error_text(exc))) from None
    except docker.errors.DockerException as exc:
        raise CommandFailed(_docker_failure("docker run failed", str(exc))) from None
    except OSError as exc:  # requests' connection errors are OSErrors
        raise CommandFailed(_docker_failure("cannot reach the Docker daemon", str(exc))) from None
    return container_id


def start_container(client, container_id: str) -> None:
    import docker

    try:
        client.api.start(container_id)
    except docker.errors.APIError as exc:
        raise CommandFailed(_docker_failure("docker run failed", _api_error_text(exc))) from None
    except (docker.errors.DockerException, OSError) as exc:
        raise CommandFailed(_docker_failure("docker run failed", str(exc))) from None


def _split_image(ref: str) -> tuple[str, str]:
    name, _, digest = ref.partition("@")
    if digest:
        return name, digest
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1:]
    return name, "latest"


@dataclass
class _LineReader:
    """Lines of a container's stdout, read on a thread so the wait can time out."""

    stream: object
    lines: "queue.Queue[str | None]" = field(default_factory=queue.Queue)

    def start(self) -> "_LineReader":
        threading.Thread(target=self._run, name="calico-node-logs", daemon=True).start()
        return self

    def _run(self) -> None:
        pending = b""
        try:
            for chunk in self.stream:
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    self.lines.put(line.decode(errors="replace").rstrip("\r"))
            if pending:
                self.lines.put(pending.decode(errors="replace"))
        except Exception:
            pass  # the stream was closed (timeout) or the daemon went away
        finally:
            self.lines.put(None)

    def close(self) -> None:
        try:
            self.stream.close()
        except Exception:
            pass


def wait_for_start(client, container_id: str, out: Callable[[str], None], timeout: float = CHECK_LOG_TIMEOUT) -> None:
    """Echo the container's stdout until its success line; fail after ``timeout`` or
    when the output ends first (the container stopped)."""
    import docker

    try:
        stream = client.api.logs(container_id, stdout=True, stderr=False, stream=True, follow=True)
    except (docker.errors.DockerException, OSError) as exc:
        raise CommandFailed(f"error executing command:  unable to check calico/node logs: {exc}") from None
    reader = _LineReader(stream).start()
    deadline = time.monotonic() + timeout
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                line = reader.lines.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                break
            out(line)
            if line == STARTED_LINE:
                return
    finally:
        reader.close()
    raise CommandFailed("error executing command: calico/node has terminated, check logs for details")


def run_foreground(client, container_id: str) -> int:
    """--init-system: start the container and stream its output until it exits (and is
    removed); SIGTERM or SIGINT stop it first. Returns the container's exit status."""
    api = client.api
    outcome: dict = {}

    def wait_removed() -> None:  # as `docker run --rm` does: wait for the removal
        try:
            outcome["status"] = int(api.wait(container_id, timeout=None, condition="removed").get("StatusCode", 0))
        except Exception as exc:
            outcome["error"] = exc

    def copy_output(stream) -> None:
        try:
            for out_chunk, err_chunk in stream:
                if out_chunk:
                    sys.stdout.buffer.write(out_chunk)
                    sys.stdout.flush()
                if err_chunk:
                    sys.stderr.buffer.write(err_chunk)
                    sys.stderr.flush()
        except Exception:
            pass  # the daemon closed the stream

    stop_requested = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop_requested.set()) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        waiter = threading.Thread(target=wait_removed, name="calico-node-wait", daemon=True)
        waiter.start()
        stream = api.attach(container_id, stdout=True, stderr=True, stream=True, logs=True, demux=True)
        reader = threading.Thread(target=copy_output, args=(stream,), name="calico-node-output", daemon=True)
        reader.start()
        start_container(client, container_id)
        stopping = False
        while waiter.is_alive():
            waiter.join(0.2)
            if stop_requested.is_set() and not stopping:
                stopping = True
                print("Stopping the calico-node container.", flush=True)
                try:
                    # The output keeps being copied meanwhile: a container whose output
                    # is not read blocks on writing it and cannot stop.
                    api.stop(container_id, timeout=30)
                except Exception:
                    pass
        reader.join(5)
        if "error" in outcome:
            raise CommandFailed(_docker_failure("waiting for the calico-node container failed",
                                                str(outcome["error"])))
        return outcome.get("status", 0)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def run_node(opts: RunOptions, out: Callable[[str], None] = print) -> int:
    """The whole command. The host-facing steps (kernel preparation, the Docker client,
    the privilege probe) are looked up on this module at call time, so tests can
    replace them."""
    plan = plan_container(opts)
    if opts.dryrun:
        sys.stdout.write(dryrun_text(plan))
        return 0
    enforce_root()
    if not os.environ.get("CALICO_CTL_CONTAINER"):
        prepare_kernel(out)
    client = docker_client()
    try:
        out("Removing old calico-node container (if running).")
        remove_old_container(client)
        privileges = host_privileges()
        if not privileges.privileged:
            out(privileges.note())
        out("Running the following command to start calico-node:")
        out(f"\n{' '.join(docker_command(plan, privileges))}\n")
        out("Image may take a short time to download if it is not available locally.")
        container_id = create_container(client, plan, privileges, out)
        if plan.init_system:
            return run_foreground(client, container_id)
        start_container(client, container_id)
        out("Container started, checking progress logs.\n")
        wait_for_start(client, container_id, out)
        return 0
    finally:
        client.close()
