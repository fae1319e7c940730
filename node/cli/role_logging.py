"""The roles' log lines, in the layout of Calico's Go components (libcalico-go's logutils
Formatter), one setup for all of them:

    2025-05-01 10:00:00.123 [INFO][42] cni-config-monitor/cni_token.py 404: <message>

local time to the millisecond, the level as logrus names it (``WARNING``, ``FATAL``...),
the pid, then the component calico-node's ``main.go`` gives the role, the source file and
line, and the message; on stderr (stdout is kept for what tools read).
"""
from __future__ import annotations

import logging
import os
from typing import Mapping

from startup.logs import install_handler, level_number, parse_level

log = logging.getLogger(__name__)

# The environment variables that set each role's log level (what turns debug logs on),
# in the order the role reads them: the first one set wins.
ROLE_LOG_LEVEL_ENV = {
    "startup": ("CALICO_STARTUP_LOGLEVEL",),
    "monitor-addresses": ("CALICO_STARTUP_LOGLEVEL",),
    "allocate-tunnel-addrs": ("CALICO_LOG_LEVEL", "LOG_LEVEL"),
    "confd": ("BGP_LOGSEVERITYSCREEN",),
    "felix": ("FELIX_LOGSEVERITYSCREEN",),
    "start": ("CALICO_STARTUP_LOGLEVEL",),
    "complete-startup": ("CALICO_STARTUP_LOGLEVEL",),
    "monitor-token": ("CALICO_STARTUP_LOGLEVEL",),
    "shutdown": ("CALICO_STARTUP_LOGLEVEL",),
    "status-reporter": ("CALICO_STARTUP_LOGLEVEL",),
    "hostpath-init": ("CALICO_STARTUP_LOGLEVEL",),
    "node-services": ("CALICO_STARTUP_LOGLEVEL",),
}

# The component each role logs as (calico-node's main.go: logutils.ConfigureFormatter /
# Formatter{Component: ...}); the health probe logs as calico-node itself ("node").
ROLE_COMPONENT = {
    "allocate-tunnel-addrs": "tunnel-ip-allocator",
    "monitor-token": "cni-config-monitor",
    "health": "node",
}


def role_log_level(role: str, env: Mapping[str, str]) -> tuple[str, str, str]:
    """(logrus level name, the variable that set it or "", its refused value or "") for
    ``role``: the first of its variables that is set; info when none is, or when that
    one's value is not a level."""
    for var in ROLE_LOG_LEVEL_ENV.get(role, ()):
        raw = env.get(var, "")
        if raw:
            name, bad = parse_level(raw)
            return name, var, raw if bad else ""
    return "info", "", ""


def setup_role_logging(role: str, env: Mapping[str, str] | None = None) -> int:
    """Log the role's records to stderr in Calico's layout at the role's level (see
    ``ROLE_LOG_LEVEL_ENV``); returns that level. As ``logging.basicConfig``, it leaves a
    root logger that already has handlers alone (a role run in-process, under a test)."""
    env = os.environ if env is None else env
    name, var, refused = role_log_level(role, env)
    level = level_number(name)
    if logging.getLogger().handlers:
        return level
    install_handler(ROLE_COMPONENT.get(role, role), level)
    if refused:
        log.error("Failed to parse log level %s=%r (not a valid logrus Level), defaulting to info", var, refused)
    return level
