"""Run a program with its output copied to the container log and to timestamped files.

    python -I -S logtee.py [--parent-stdout] DIR MAX_BYTES BACKUPS out|err -- PROGRAM [ARG...]

What Calico's per-service ``log/run`` does (``tee >(svlogd -ttt DIR)``), for a program
under supervisord: the program's output (``out``: stdout and stderr; ``err``: stderr
only, for the restarter, whose stdout is supervisord's event protocol) goes through a
pipe to one logging process, which

* copies it, unchanged and a whole line at a time, to its own stdout (``err``: stderr),
  or with ``--parent-stdout`` (as supervisord's configuration runs it) to the container
  log: the stdout of the process that started it, supervisord, opened afresh as
  ``/proc/<supervisord>/fd/1`` (what ``/dev/stdout`` is to supervisord when a program's
  ``stdout_logfile`` names it; append mode), not through supervisord's pipe, which
  supervisord closes as soon as the program has exited, before the logger has written
  the program's last lines. Lines are written in pieces of at most PIPE_BUF bytes ending
  on a line boundary, so they do not mix with other programs' lines in the container
  log;
* appends each line to ``DIR/current`` behind a UTC timestamp as svlogd ``-ttt`` writes
  it (``2024-05-01T12:00:00.12345 <line>``), starting a new file when the next write
  would take ``current`` past MAX_BYTES: ``current`` is renamed, as svlogd renames it, to
  ``@<TAI64N label>.s`` (``@`` and 24 hex digits: the rotation time's TAI64N stamp, so
  the names sort oldest first), and the oldest such files beyond BACKUPS are removed
  (svlogd's ``n``; 0 keeps them all, as svlogd does).

The process supervisord started becomes PROGRAM itself (same pid, same argv), and the
logging process is its child: it forks first, and the parent execs PROGRAM. So
supervisord signals, watches and restarts the program as before. The logger ignores
SIGTERM, SIGINT, SIGHUP and SIGQUIT (supervisord signals the whole process group when it
stops a program) and exits once every writer has closed the pipe, after writing what it
read: no line is lost at a stop or a restart, and a slow disk slows the program (a full
pipe blocks it) rather than dropping lines. One logging process per program, whatever
the number of lines.

Writes to DIR are serialised with a lock on ``DIR/lock`` (as svlogd locks its
directory), so the logger of a program that was just restarted and the one still
draining its predecessor's output never rotate under each other. When DIR cannot be
written, one message says so on the container log and the lines still go there; the
file is tried again with the next line.

Standard library only, no site packages (``-S``): each program pays for one small
interpreter, not for this project's imports.
"""
from __future__ import annotations

import errno
import fcntl
import os
import signal
import sys
import time

CHUNK = 65536
PIPE_BUF = 4096
# A "line" longer than this is written out without waiting for its newline.
MAX_LINE = 65536


def stamp(now: float) -> bytes:
    """svlogd -ttt: ``YYYY-MM-DDTHH:MM:SS.xxxxx`` (UTC, five decimals) and a space."""
    seconds = int(now)
    fraction = int((now - seconds) * 100000)
    return (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:05d} ").encode()


TAI64_UNIX_OFFSET = 2**62 + 10  # TAI64 label of the Unix epoch (TAI was 10 s ahead of UTC in 1970)


def tai64n_label(now_ns: int) -> str:
    """svlogd's name for a rotated file without the suffix: ``@``, the TAI64N stamp (8
    bytes of TAI seconds, 4 of nanoseconds) in lower-case hex."""
    seconds, nanos = divmod(now_ns, 1_000_000_000)
    return f"@{TAI64_UNIX_OFFSET + seconds:016x}{nanos:08x}"


def is_rotated_name(name: str) -> bool:
    """A file svlogd counts as an old log: ``@`` + 24 characters + ``.s`` or ``.u``."""
    return len(name) == 27 and name[0] == "@" and name[25] == "." and name[26] in "su"


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def write_lines(fd: int, data: bytes) -> None:
    """``data`` in writes of at most PIPE_BUF bytes (atomic on a pipe), each ending at a
    newline unless one line alone is longer."""
    start = 0
    while start < len(data):
        end = start + PIPE_BUF
        if end < len(data):
            cut = data.rfind(b"\n", start, end) + 1
            end = cut if cut > start else end
        write_all(fd, data[start:end])
        start = end


def open_copy_target(supervisord_pid: int, fallback: int) -> int:
    """supervisord's stdout (the container log), else ``fallback``."""
    try:
        return os.open(f"/proc/{supervisord_pid}/fd/1", os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    except OSError:
        return fallback


class LogDir:
    """``DIR/current`` with size-based rotation into ``@<tai64n>.s`` files, the newest
    ``backups`` kept (svlogd's ``s`` and ``n``)."""

    def __init__(self, directory: str, max_bytes: int, backups: int, report) -> None:
        self.directory = directory
        self.current = os.path.join(directory, "current")
        self.max_bytes = max_bytes
        self.backups = backups
        self.report = report
        self.fd: int | None = None
        self.lock_fd: int | None = None
        self.failing = False

    def _open(self) -> None:
        if self.lock_fd is None:
            os.makedirs(self.directory, exist_ok=True)
            self.lock_fd = os.open(os.path.join(self.directory, "lock"), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC,
                                   0o644)
        if self.fd is not None:
            try:
                if os.fstat(self.fd).st_ino == os.stat(self.current).st_ino:
                    return
            except OSError:
                pass
            os.close(self.fd)  # rotated or removed by someone else: write to the new current
            self.fd = None
        self.fd = os.open(self.current, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def _rotate(self) -> None:
        """As svlogd's rotate(): ``current``, marked complete, is renamed to a TAI64N-named
        file no other has, a new ``current`` is started, then the oldest old files beyond
        ``backups`` are removed. The mark is mode 0644, not svlogd's 0744: Calico's image
        builds svlogd with its patch svlogd_use_0644_permission_instead_of_0744.patch."""
        while True:
            saved = os.path.join(self.directory, tai64n_label(time.time_ns()) + ".s")
            if not os.path.lexists(saved):
                break
        os.fchmod(self.fd, 0o644)
        os.close(self.fd)
        self.fd = None
        os.replace(self.current, saved)
        self.fd = os.open(self.current, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._remove_oldest()

    def _remove_oldest(self) -> None:
        if self.backups <= 0:
            return
        old = sorted(name for name in os.listdir(self.directory) if is_rotated_name(name))
        for name in old[:max(len(old) - self.backups, 0)]:
            try:
                os.unlink(os.path.join(self.directory, name))
            except FileNotFoundError:
                pass

    def write(self, data: bytes) -> None:
        """Append ``data`` (whole lines), rotating first whenever the next line would take
        ``current`` past the limit (a single longer line gets a file of its own)."""
        try:
            self._open()
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX)
            try:
                self._open()  # another logger may have rotated while we waited
                size = os.fstat(self.fd).st_size
                start = 0
                while start < len(data):
                    end = len(data)
                    if self.max_bytes > 0 and size + (end - start) > self.max_bytes:
                        # as much as fits, in whole lines (at least one line)
                        cut = data.rfind(b"\n", start, start + max(self.max_bytes - size, 0)) + 1
                        if cut > start:
                            end = cut
                        elif size > 0:
                            self._rotate()
                            size = 0
                            continue
                        else:
                            end = data.find(b"\n", start) + 1 or len(data)
                    write_all(self.fd, data[start:end])
                    size += end - start
                    start = end
                    if start < len(data):
                        self._rotate()
                        size = 0
            finally:
                fcntl.flock(self.lock_fd, fcntl.LOCK_UN)
            self.failing = False
        except OSError as exc:
            if not self.failing:
                self.report(f"logtee: cannot write to {self.current}: {exc.strerror or exc}; "
                            "its lines go to the container log only until it can be written again\n")
            self.failing = True
            if self.fd is not None:
                try:
                    os.close(self.fd)
                except OSError:
                    pass
                self.fd = None


def pump(source: int, copy_fd: int, logdir: LogDir) -> None:
    """Copy ``source`` to ``copy_fd`` and, timestamped, to ``logdir`` until end of file."""
    copy_ok = True
    pending = b""

    def emit(lines: bytes) -> None:
        nonlocal copy_ok
        if copy_ok:
            try:
                write_lines(copy_fd, lines)
            except OSError as exc:
                copy_ok = exc.errno not in (errno.EPIPE, errno.EBADF)
        prefix = stamp(time.time())
        body = lines if lines.endswith(b"\n") else lines + b"\n"
        logdir.write(b"".join(prefix + line + b"\n" for line in body[:-1].split(b"\n")))

    while True:
        try:
            chunk = os.read(source, CHUNK)
        except OSError as exc:
            if exc.errno == errno.EINTR:
                continue
            break
        if not chunk:
            break
        pending += chunk
        cut = pending.rfind(b"\n") + 1
        if cut:
            emit(pending[:cut])
            pending = pending[cut:]
        if len(pending) >= MAX_LINE:
            emit(pending)
            pending = b""
    if pending:
        emit(pending)


def _usage() -> int:
    sys.stderr.write("usage: logtee.py [--parent-stdout] DIR MAX_BYTES BACKUPS out|err -- PROGRAM [ARG...]\n")
    return 2


def main(argv: list[str]) -> int:
    parent_stdout = bool(argv) and argv[0] == "--parent-stdout"
    if parent_stdout:
        argv = argv[1:]
    if len(argv) < 6 or argv[4] != "--" or argv[3] not in ("out", "err"):
        return _usage()
    directory, streams, program = argv[0], argv[3], argv[5:]
    try:
        max_bytes, backups = int(argv[1]), int(argv[2])
    except ValueError:
        return _usage()
    own = 1 if streams == "out" else 2
    # Opened before the fork, while the starter surely still runs; close-on-exec, so the
    # program does not inherit it.
    copy_fd = open_copy_target(os.getppid(), own) if parent_stdout else own
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        # The logger: outlives a signal to the process group, ends at end of file.
        os.close(write_end)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(sig, signal.SIG_IGN)
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)  # never read the program's stdin (the restarter's is supervisord's protocol)
        if streams == "err":
            os.dup2(null, 1)  # nor write into the restarter's event protocol
        os.close(null)
        try:
            pump(read_end, copy_fd, LogDir(directory, max_bytes, backups,
                                           lambda text: write_all(copy_fd, text.encode())))
        finally:
            os._exit(0)
    # The program: same pid as supervisord started, output into the logger's pipe.
    os.close(read_end)
    if streams == "out":
        os.dup2(write_end, 1)
    os.dup2(write_end, 2)
    os.close(write_end)
    # As subprocess does for its children: the program gets default SIGPIPE/SIGXFSZ
    # handling, not the interpreter's "ignore".
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    try:
        os.execvp(program[0], program)
    except OSError as exc:
        os.write(2, f"logtee: cannot run {program[0]}: {exc.strerror or exc}\n".encode())
    return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
