"""Logging in calico/node's layout, and the one way a startup step gives up.

Operators grep calico-node logs for fixed phrases, so the layout follows the Go
components': ``2025-05-01 10:00:00.123 [INFO][42] startup/<file> <line>: <message>``.
Logs go to stderr; stdout is kept for the lines tools wait for.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Mapping

# logrus level names (lower-cased, as logrus.ParseLevel compares them).
_LEVELS = {
    "panic": logging.CRITICAL,
    "fatal": logging.CRITICAL,
    "error": logging.ERROR,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": logging.DEBUG,
}
_LEVEL_NAMES = {
    logging.CRITICAL: "FATAL",
    logging.ERROR: "ERROR",
    logging.WARNING: "WARNING",
    logging.INFO: "INFO",
    logging.DEBUG: "DEBUG",
}

log = logging.getLogger(__name__)


class Fatal(Exception):
    """A condition that ends startup: the message is logged, then ``Terminating``, exit 1."""


class GoFormatter(logging.Formatter):
    """One line per record in the layout of Calico's Go components."""

    def __init__(self, component: str):
        super().__init__()
        self.component = component

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created))
        millis = int(record.msecs)
        level = _LEVEL_NAMES.get(record.levelno, record.levelname)
        where = f"{self.component}/{os.path.basename(record.pathname)} {record.lineno}"
        text = f"{stamp}.{millis:03d} [{level}][{record.process}] {where}: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def parse_level(raw: str, default: str = "info") -> tuple[str, bool]:
    """(logrus level name, whether ``raw`` was refused) for a level variable's value, as
    logrus.ParseLevel reads it (case-insensitive; ``warn`` is ``warning``); ``default``
    when it is empty or refused."""
    if not raw:
        return default, False
    lowered = raw.lower()
    if lowered not in _LEVELS:
        return default, True
    return ("warning" if lowered == "warn" else lowered), False


def level_number(name: str) -> int:
    """The Python logging level of a logrus level name."""
    return _LEVELS[name]


def install_handler(component: str, level: int) -> None:
    """Make a stderr handler in Go's layout the root logger's only one, at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(GoFormatter(component))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def configure(component: str, env: Mapping[str, str], level_var: str = "CALICO_STARTUP_LOGLEVEL") -> int:
    """Send every record to stderr in Go's layout at the level ``level_var`` names (info by default)."""
    raw = env.get(level_var, "")
    name, bad = parse_level(raw)
    level = _LEVELS[name]
    install_handler(component, level)
    if bad:
        # logrus.ParseLevel's error quotes the value as Go's %q does.
        log.error("Failed to parse log level, defaulting to info. error=not a valid logrus Level: %s",
                  json.dumps(raw, ensure_ascii=False))
    log.info("Early log level set to %s", name)
    return level


def terminate(exc: Fatal) -> int:
    """Log why we stop, then Calico's ``Terminating`` line; the exit code is 1."""
    if str(exc):
        log.error("%s", exc)
    log.warning("Terminating")
    return 1
