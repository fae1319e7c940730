"""A throwaway single-member etcd for tests that need the real thing.

Every datastore test talks to a genuine ``/usr/bin/etcd`` rather than a mock, because
the behaviour we care about (revisions, compaction, dropped streams, TLS, auth) lives
in the server. Each instance owns its ports, data directory and process, can be
restarted on the same ports and data (to test reconnects), and removes everything it
created when closed.
"""
from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import etcd3
import grpc

ETCD_BIN = "/usr/bin/etcd"
ETCDCTL_BIN = "/usr/bin/etcdctl"
HOST = "127.0.0.1"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
PORT_CLASH_RETRIES = 5  # fresh ports tried when a first start finds one taken


# Servers not yet closed; reaped at interpreter exit in case a test run is interrupted.
_LIVE: "set[EtcdServer]" = set()


@atexit.register
def _reap_leftovers() -> None:
    for server in list(_LIVE):
        server.close()


def free_port() -> int:
    """A loopback port nobody is listening on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _scratch_root() -> str | None:
    # etcd fsyncs on every write; tmpfs keeps the suite fast when it is available.
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


class EtcdServer:
    """One etcd process on free loopback ports, optionally serving TLS."""

    def __init__(self, tls: bool = False, name: str | None = None):
        self.tls = tls
        self.name = name or f"test-{uuid.uuid4().hex[:8]}"
        self.client_port = free_port()
        self.peer_port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="etcd-test-", dir=_scratch_root()))
        self.data_dir = self.workdir / "data"
        self.log_path = self.workdir / "etcd.log"
        self.root_password: str | None = None
        self._proc: subprocess.Popen | None = None
        self._served = False  # started successfully at least once (its ports are then fixed)
        self._log_fh = None
        _LIVE.add(self)
        if tls:
            self._make_certificates()

    # -- addresses and credentials ------------------------------------------------

    @property
    def endpoint(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{HOST}:{self.client_port}"

    @property
    def ca_file(self) -> str:
        return str(self.workdir / "ca.crt")

    @property
    def client_cert_file(self) -> str:
        return str(self.workdir / "client.crt")

    @property
    def client_key_file(self) -> str:
        return str(self.workdir / "client.key")

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> "EtcdServer":
        """Start etcd (first time or after stop) and return once it serves requests.

        ``free_port`` cannot reserve its ports: another process (a parallel test run, a
        program the suite starts) may take one before etcd binds it. On the first start
        such a clash is retried on fresh ports; a restart keeps its ports (clients of
        reconnect tests know them), so it fails instead."""
        if self.running:
            return self
        first = not self._served
        for attempt in range(PORT_CLASH_RETRIES + 1):
            try:
                self._start_once()
            except RuntimeError:
                if not (first and attempt < PORT_CLASH_RETRIES and "address already in use" in self.log_tail()):
                    raise
                self.client_port, self.peer_port = free_port(), free_port()
                shutil.rmtree(self.data_dir, ignore_errors=True)
                self.log_path.write_bytes(b"")
                continue
            self._served = True
            return self
        return self  # unreachable: the last attempt returns or raises

    def _start_once(self) -> None:
        peer_url = f"http://{HOST}:{self.peer_port}"
        args = [
            ETCD_BIN,
            "--name", self.name,
            "--data-dir", str(self.data_dir),
            "--listen-client-urls", self.endpoint,
            "--advertise-client-urls", self.endpoint,
            "--listen-peer-urls", peer_url,
            "--initial-advertise-peer-urls", peer_url,
            "--initial-cluster", f"{self.name}={peer_url}",
            "--initial-cluster-state", "new",
            "--initial-cluster-token", self.name,
            "--logger", "zap",
            "--log-outputs", "stderr",
            "--log-level", "warn",
        ]
        if self.tls:
            args += [
                "--cert-file", str(self.workdir / "server.crt"),
                "--key-file", str(self.workdir / "server.key"),
                "--trusted-ca-file", self.ca_file,
                "--client-cert-auth",
            ]
        setpriv = shutil.which("setpriv")
        if setpriv:
            # If the test process is killed outright, take etcd with it (the signal is
            # tied to the thread that starts etcd: call start() from the main thread).
            args = [setpriv, "--pdeathsig", "KILL", "--", *args]
        self._log_fh = open(self.log_path, "ab")
        self._proc = subprocess.Popen(
            args, stdout=self._log_fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Terminate etcd (SIGTERM, then SIGKILL if it lingers); data stays for restart()."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT)
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None

    def restart(self) -> None:
        """Stop and start again on the same ports and data directory."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop etcd and delete everything this instance created."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)
            _LIVE.discard(self)

    def __enter__(self) -> "EtcdServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- helpers for tests --------------------------------------------------------

    def client(self, **kwargs) -> etcd3.Etcd3Client:
        """A raw python-etcd3 client, for arranging data behind the code under test.

        With TLS its certificate (CN=root) also satisfies auth. Without TLS it cannot
        log in: python-etcd3 sends the token as gRPC call credentials, which gRPC
        refuses on plaintext channels, so use ``etcdctl()`` or an EtcdKV instead.
        """
        if self.tls:
            kwargs.setdefault("ca_cert", self.ca_file)
            kwargs.setdefault("cert_cert", self.client_cert_file)
            kwargs.setdefault("cert_key", self.client_key_file)
        return etcd3.client(host=HOST, port=self.client_port, timeout=5, **kwargs)

    def etcdctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [ETCDCTL_BIN, f"--endpoints={self.endpoint}", "--command-timeout=5s"]
        if self.tls:
            cmd += [f"--cacert={self.ca_file}", f"--cert={self.client_cert_file}",
                    f"--key={self.client_key_file}"]
        if self.root_password is not None:
            cmd.append(f"--user=root:{self.root_password}")
        result = subprocess.run(
            cmd + list(args), capture_output=True, text=True, timeout=30,
            env={**os.environ, "ETCDCTL_API": "3"},
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"etcdctl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def enable_auth(self, root_password: str = "root-secret") -> str:
        """Create the root user and turn authentication on; returns the password."""
        self.etcdctl("user", "add", f"root:{root_password}", "--interactive=false")
        self.etcdctl("user", "grant-role", "root", "root")
        self.etcdctl("auth", "enable")
        self.root_password = root_password
        return root_password

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # -- internals ----------------------------------------------------------------

    def _wait_healthy(self) -> None:
        """Poll a cheap Status RPC until etcd answers; fail fast if the process dies."""
        deadline = time.monotonic() + START_TIMEOUT
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                raise RuntimeError(f"etcd exited during startup:\n{self.log_tail()}")
            try:
                # Auth is not needed for Status, so a bare client suffices even with auth on.
                kwargs = {}
                if self.tls:
                    kwargs = dict(ca_cert=self.ca_file, cert_cert=self.client_cert_file,
                                  cert_key=self.client_key_file)
                with etcd3.client(host=HOST, port=self.client_port, timeout=1, **kwargs) as c:
                    c.status()
                return
            except (etcd3.Etcd3Exception, grpc.RpcError) as exc:
                last_error = exc
                time.sleep(0.05)
        raise RuntimeError(f"etcd not healthy after {START_TIMEOUT}s ({last_error!r}):\n{self.log_tail()}")

    def _openssl(self, *args: str) -> None:
        result = subprocess.run(["openssl", *args], cwd=self.workdir, capture_output=True,
                                text=True, timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"openssl {' '.join(args)} failed: {result.stderr.strip()}")

    def _make_certificates(self) -> None:
        """A CA, a server certificate for 127.0.0.1 and a client certificate, all EC P-256."""
        key_args = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        self._openssl("req", "-x509", *key_args, "-keyout", "ca.key", "-out", "ca.crt",
                      "-days", "2", "-subj", "/CN=etcd-test-ca",
                      "-addext", "basicConstraints=critical,CA:TRUE",
                      "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        for name, cn, usage, san in (
            ("server", "etcd-server", "serverAuth,clientAuth", "IP:127.0.0.1,DNS:localhost"),
            ("client", "root", "clientAuth", None),
        ):
            ext = self.workdir / f"{name}.ext"
            lines = ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature,keyEncipherment",
                     f"extendedKeyUsage={usage}"]
            if san:
                lines.append(f"subjectAltName={san}")
            ext.write_text("\n".join(lines) + "\n")
            self._openssl("req", *key_args, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                          "-subj", f"/CN={cn}")
            self._openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                          "-CAcreateserial", "-out", f"{name}.crt", "-days", "2",
                          "-extfile", ext.name)


class TcpProxy:
    """A loopback TCP forwarder that a test can cut and restore.

    Pointing the code under test at the proxy while the test writes to etcd directly
    lets a test change etcd *while the client is disconnected*, which stopping etcd
    itself cannot do.
    """

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.port = free_port()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._links: list[tuple[socket.socket, socket.socket, list[threading.Thread]]] = []

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> "TcpProxy":
        """Accept connections (again); a no-op if already accepting."""
        with self._lock:
            if self._listener is not None:
                return self
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((HOST, self.port))
            listener.listen(64)
            self._listener = listener
            self._accept_thread = threading.Thread(target=self._accept_loop, args=(listener,),
                                                   name=f"proxy-{self.port}", daemon=True)
            self._accept_thread.start()
        return self

    restore = start

    def cut(self) -> None:
        """Sever every forwarded connection and refuse new ones until restore()."""
        with self._lock:
            listener, self._listener = self._listener, None
            accept_thread, self._accept_thread = self._accept_thread, None
            links, self._links = self._links, []
        if listener is not None:
            _shutdown(listener)  # wakes the blocked accept()
            listener.close()
        if accept_thread is not None:
            accept_thread.join(STOP_TIMEOUT)
        for client, upstream, threads in links:
            _shutdown(client)
            _shutdown(upstream)
            for thread in threads:
                thread.join(STOP_TIMEOUT)
            client.close()
            upstream.close()

    close = cut

    def __enter__(self) -> "TcpProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.cut()

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection((HOST, self.target_port), timeout=STOP_TIMEOUT)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            threads = [
                threading.Thread(target=_pump, args=(client, upstream), daemon=True),
                threading.Thread(target=_pump, args=(upstream, client), daemon=True),
            ]
            with self._lock:
                if self._listener is not listener:  # cut while we were connecting
                    client.close()
                    upstream.close()
                    return
                self._links.append((client, upstream, threads))
            for thread in threads:
                thread.start()


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        _shutdown(dst)
        _shutdown(src)


def calicoctl_config(path, endpoint: str):
    """A calicoctl config file at ``path`` for the etcd at ``endpoint``; returns the path."""
    path.write_text("apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\n"
                    f"spec: {{datastoreType: etcdv3, etcdEndpoints: '{endpoint}'}}\n")
    return path
