"""Talk to a running BIRD (1.6) over its control socket, as ``birdcl`` does.

The renderer uses ``configure`` to make BIRD re-read its config file; the health checks
use ``show protocols``. BIRD's reply protocol: every line starts with a four-digit code
followed by ``-`` (more lines follow) or a space (last line); a line starting with a
space continues the previous code; lines starting with ``+`` are asynchronous messages.
Codes 8xxx and 9xxx are errors.
"""
from __future__ import annotations

import re
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

DEFAULT_TIMEOUT = 10.0
_LINE = re.compile(r"^(\d{4})([ -])(.*)$")


class BirdError(Exception):
    """BIRD answered a command with an error code (or the exchange broke)."""


class BirdUnreachable(BirdError):
    """Connecting to the control socket failed (whatever the reason: no socket, refused,
    no permission); the exception's cause is the OSError."""


class BirdNotRunning(BirdUnreachable):
    """Nothing listens on the control socket (BIRD is not started yet, or is restarting)."""


@dataclass(frozen=True)
class Reply:
    """BIRD's answer to one command: its lines as (code, text), in order."""

    lines: tuple[tuple[int, str], ...]
    # The same reply as BIRD wrote it, one string per line (codes and continuation
    # spaces kept): what parsers that follow Calico's line rules read.
    raw: tuple[str, ...] = ()

    @property
    def code(self) -> int:
        return self.lines[-1][0] if self.lines else 0

    @property
    def ok(self) -> bool:
        return all(code < 8000 for code, _ in self.lines)

    @property
    def text(self) -> str:
        return "\n".join(text for _, text in self.lines if text)


@dataclass(frozen=True)
class Protocol:
    """One row of ``show protocols``."""

    name: str
    proto: str
    table: str
    state: str
    since: str
    info: str


class BirdClient:
    """One connection to a BIRD control socket (use as a context manager)."""

    def __init__(self, socket_path: str | Path, timeout: float = DEFAULT_TIMEOUT):
        self.socket_path = str(socket_path)
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._buffer = b""

    def __enter__(self) -> "BirdClient":
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def connect(self) -> Reply:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            sock.close()
            raise BirdNotRunning(f"BIRD is not running (no listener on {self.socket_path}: {exc.strerror})") from exc
        except OSError as exc:
            sock.close()
            raise BirdUnreachable(f"cannot connect to BIRD at {self.socket_path}: {exc}") from exc
        self._sock = sock
        welcome = self._read_reply()  # "0001 BIRD 1.6.8 ready."
        if welcome.code != 1:
            raise BirdError(f"unexpected greeting from BIRD at {self.socket_path}: {welcome.text!r}")
        return welcome

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _read_line(self) -> str:
        assert self._sock is not None
        while b"\n" not in self._buffer:
            try:
                chunk = self._sock.recv(65536)
            except OSError as exc:
                raise BirdError(f"reading from BIRD at {self.socket_path} failed: {exc}") from exc
            if not chunk:
                raise BirdError(f"BIRD at {self.socket_path} closed the connection")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode(errors="replace")

    def _read_reply(self) -> Reply:
        lines: list[tuple[int, str]] = []
        raws: list[str] = []
        code = 0
        while True:
            raw = self._read_line()
            if raw.startswith("+"):
                continue  # an asynchronous notice, not part of this reply
            if raw.startswith(" "):
                lines.append((code, raw[1:]))
                raws.append(raw)
                continue
            m = _LINE.match(raw)
            if not m:
                raise BirdError(f"unexpected line from BIRD at {self.socket_path}: {raw!r}")
            code = int(m.group(1))
            lines.append((code, m.group(3)))
            raws.append(raw)
            if m.group(2) == " ":
                return Reply(tuple(lines), tuple(raws))

    def command(self, text: str) -> Reply:
        """Send one command and return the whole reply (errors included)."""
        if self._sock is None:
            self.connect()
        assert self._sock is not None
        try:
            self._sock.sendall(text.encode() + b"\n")
        except OSError as exc:
            raise BirdError(f"sending {text!r} to BIRD at {self.socket_path} failed: {exc}") from exc
        return self._read_reply()

    def configure(self) -> Reply:
        """Re-read the config file BIRD was started with; raises BirdError if BIRD rejects it."""
        reply = self.command("configure")
        if not reply.ok:
            raise BirdError(f"BIRD at {self.socket_path} rejected the new config: {reply.text}")
        return reply

    def show_protocols(self) -> list[Protocol]:
        reply = self.command("show protocols")
        if not reply.ok:
            raise BirdError(f"show protocols failed at {self.socket_path}: {reply.text}")
        return parse_protocols(reply)


def parse_protocols(reply: Reply) -> list[Protocol]:
    """Rows of ``show protocols`` (code 1002); the header (2002) is skipped."""
    out = []
    for code, text in reply.lines:
        if code != 1002:
            continue
        parts = text.split(None, 5)
        if len(parts) < 4:
            continue
        parts += [""] * (6 - len(parts))
        name, proto, table, state, since, info = parts
        out.append(Protocol(name, proto, table, state, since, info.strip()))
    return out


def configure(socket_path: str | Path, timeout: float = DEFAULT_TIMEOUT) -> Reply:
    """Connect, ``configure``, disconnect."""
    with BirdClient(socket_path, timeout) as client:
        return client.configure()


def show_protocols(socket_path: str | Path, timeout: float = DEFAULT_TIMEOUT) -> list[Protocol]:
    with BirdClient(socket_path, timeout) as client:
        return client.show_protocols()


@dataclass(frozen=True)
class ParseResult:
    ok: bool
    message: str


def parse_config(path: str | Path, binary: str = "bird", timeout: float = 30.0) -> ParseResult:
    """``bird -p -c PATH``: does BIRD accept this config? (Includes resolve next to PATH.)"""
    try:
        proc = subprocess.run([binary, "-p", "-c", str(path)], capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        return ParseResult(False, f"{binary} is not installed")
    except subprocess.TimeoutExpired:
        return ParseResult(False, f"{binary} -p did not finish within {timeout:.0f}s")
    message = (proc.stderr.strip() or proc.stdout.strip())
    return ParseResult(proc.returncode == 0, message)
