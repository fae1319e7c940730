"""Where supervisord's own files live: every one under a ``CALICO_*_DIR``, so several
nodes can run side by side (one ``calico-node start`` per network namespace), each with
its own configuration, control socket, pid file and logs.

    $CALICO_CONFIG_DIR/supervisord.conf       written by ``calico-node start`` on every boot
    $CALICO_RUN_DIR/supervisor.sock           supervisorctl / XML-RPC (health checks use it)
    $CALICO_RUN_DIR/supervisord.pid
    $CALICO_LOG_DIR/supervisord.log           supervisord's own log (also on stdout)
    $CALICO_LOG_DIR/<program>/current         each program's output, every line timestamped as
                                              svlogd -ttt does, rotated at 10 MB into
                                              @<tai64n>.s files as svlogd names them, the
                                              newest 5 kept (node.supervise.logtee; the
                                              output also goes to the container log)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from node.config import Paths

# Rotation as Calico's svlogd config lines s10000000 / n5.
LOG_MAX_BYTES = 10_000_000
LOG_BACKUPS = 5


@dataclass(frozen=True)
class Layout:
    paths: Paths

    @property
    def conf_file(self) -> Path:
        return self.paths.config_dir / "supervisord.conf"

    @property
    def socket(self) -> Path:
        return self.paths.run_dir / "supervisor.sock"

    @property
    def server_url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def pidfile(self) -> Path:
        return self.paths.run_dir / "supervisord.pid"

    @property
    def log_file(self) -> Path:
        return self.paths.log_dir / "supervisord.log"

    def program_log_dir(self, program: str) -> Path:
        return self.paths.log_dir / program

    def program_log(self, program: str) -> Path:
        return self.program_log_dir(program) / "current"
