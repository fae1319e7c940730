"""``node.supervise.logtee``: a supervised program's output to the container log and,
svlogd-style timestamped and rotated, to its log directory, with the program keeping the
pid supervisord started and no line lost at a stop."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from node.supervise import logtee as logtee_module
from node.supervise.config import LOGTEE

STAMP = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{5} ")


def logtee(directory: Path, *program: str, max_bytes: int = 10_000_000, backups: int = 5,
           streams: str = "out") -> list[str]:
    return [sys.executable, "-I", "-S", str(LOGTEE), str(directory), str(max_bytes), str(backups), streams,
            "--", *program]


def stamped_lines(path: Path) -> list[bytes]:
    lines = path.read_bytes().splitlines()
    assert all(STAMP.match(line) for line in lines), lines[:5]
    return [line[26:] for line in lines]


def wait_for_file_lines(path: Path, count: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_bytes().splitlines()) >= count:
            return
        time.sleep(0.05)


def test_output_goes_to_stdout_and_to_timestamped_file(tmp_path):
    script = 'echo "pid $$"; echo to-stderr >&2; printf "no newline yet"; sleep 0.3; echo " then one"; exit 3'
    proc = subprocess.Popen(logtee(tmp_path / "felix", "sh", "-c", script), stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=20)  # the logger holds stdout until it has written everything
    assert proc.returncode == 3  # the program's own exit status
    # The program is the process that was started (supervisord watches that pid).
    assert out == f"pid {proc.pid}\nto-stderr\nno newline yet then one\n".encode()
    current = tmp_path / "felix" / "current"
    assert stamped_lines(current) == [f"pid {proc.pid}".encode(), b"to-stderr", b"no newline yet then one"]
    assert oct(current.stat().st_mode & 0o777) == "0o644"
    # A stamp is UTC now, svlogd -ttt's form.
    first = current.read_bytes()[:19].decode()
    assert abs(time.mktime(time.strptime(first, "%Y-%m-%dT%H:%M:%S")) - time.mktime(time.gmtime())) < 60


def test_a_lot_of_output_loses_nothing(tmp_path):
    count = 50_000
    script = f"import sys\nfor i in range({count}): sys.stdout.write('line %d\\n' % i)\n"
    proc = subprocess.run(logtee(tmp_path / "bird", sys.executable, "-c", script), stdout=subprocess.PIPE,
                          timeout=60)
    assert proc.returncode == 0
    expected = [f"line {i}".encode() for i in range(count)]
    assert proc.stdout.splitlines() == expected
    assert stamped_lines(tmp_path / "bird" / "current") == expected


ROTATED = re.compile(r"@[0-9a-f]{24}\.s")


def test_tai64n_labels():
    """svlogd's name for a rotated file: "@", then TAI64N in hex: 8 bytes of TAI seconds
    (2**62 + 10 + Unix seconds), 4 bytes of nanoseconds."""
    assert logtee_module.tai64n_label(0) == "@400000000000000a00000000"
    assert logtee_module.tai64n_label(1_700_000_000_123_456_789) == "@400000006553f10a075bcd15"
    # Fixed width, so the names sort in time order.
    assert logtee_module.tai64n_label(9_999_999_999) < logtee_module.tai64n_label(10_000_000_000)
    assert logtee_module.is_rotated_name("@400000006553f10a075bcd15.s")
    assert logtee_module.is_rotated_name("@400000006553f10a075bcd15.u")
    assert not logtee_module.is_rotated_name("@400000006553f10a075bcd15.t")  # svlogd's processor temp
    assert not logtee_module.is_rotated_name("current")


def _tai64n_seconds(name: str) -> float:
    return int(name[1:17], 16) - 2**62 - 10 + int(name[17:25], 16) / 1e9


def test_rotation_keeps_whole_lines_and_the_newest_files_named_as_svlogd_names_them(tmp_path):
    directory = tmp_path / "confd"
    directory.mkdir()
    # Files a previous svlogd (or logger) left: older than anything rotated now.
    for stale in ("@4000000060000000000000aa.s", "@4000000060000001000000bb.u"):
        (directory / stale).write_text("stale\n")
    (directory / "unrelated").write_text("kept\n")
    started = time.time()
    script = "for i in range(200): print('line %03d' % i, flush=i % 7 == 0)"
    subprocess.run(logtee(directory, sys.executable, "-c", script, max_bytes=400, backups=2),
                   stdout=subprocess.DEVNULL, check=True, timeout=30)
    names = sorted(p.name for p in directory.iterdir())
    rotated = [name for name in names if name.startswith("@")]
    assert names == [*rotated, "current", "lock", "unrelated"]
    # The newest two old files are kept, the stale ones and older rotations removed.
    assert len(rotated) == 2 and all(ROTATED.fullmatch(name) for name in rotated), names
    for name in rotated:  # labelled with the rotation time
        assert started - 1 < _tai64n_seconds(name) < time.time() + 1, name
        assert oct((directory / name).stat().st_mode & 0o777) == "0o644"  # Calico's patched svlogd
    assert oct((directory / "current").stat().st_mode & 0o777) == "0o644"
    kept = []
    for name in (*rotated, "current"):  # oldest first
        path = directory / name
        assert 0 < path.stat().st_size <= 400, name
        kept += stamped_lines(path)
    # What is kept is the end of the output, in order, nothing cut in the middle.
    assert kept == [f"line {i:03d}".encode() for i in range(200 - len(kept), 200)]


def test_rotation_with_n0_keeps_every_old_file(tmp_path):
    """svlogd's n0: nothing is removed."""
    script = "for i in range(100): print('line %03d' % i, flush=True)"
    subprocess.run(logtee(tmp_path / "bird", sys.executable, "-c", script, max_bytes=200, backups=0),
                   stdout=subprocess.DEVNULL, check=True, timeout=30)
    directory = tmp_path / "bird"
    rotated = sorted(p.name for p in directory.iterdir() if p.name.startswith("@"))
    assert len(rotated) > 5 and all(ROTATED.fullmatch(name) for name in rotated)
    kept = [line for name in (*rotated, "current") for line in stamped_lines(directory / name)]
    assert kept == [f"line {i:03d}".encode() for i in range(100)]


def test_a_stop_signal_to_the_group_loses_no_line(tmp_path):
    """supervisord signals the whole process group: the logger keeps going until the
    program has written its last line."""
    script = ("import signal, sys, time\n"
              "def bye(*_):\n    time.sleep(0.3); print('bye', flush=True); sys.exit(0)\n"
              "signal.signal(signal.SIGTERM, bye)\n"
              "print('ready', flush=True)\n"
              "while True: time.sleep(1)\n")
    proc = subprocess.Popen(logtee(tmp_path / "felix", sys.executable, "-c", script), stdout=subprocess.PIPE,
                            start_new_session=True)
    current = tmp_path / "felix" / "current"
    wait_for_file_lines(current, 1)
    os.killpg(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    assert out == b"ready\nbye\n"
    assert stamped_lines(current) == [b"ready", b"bye"]


def test_stderr_only_leaves_stdout_to_the_program(tmp_path):
    """The restarter's stdout is supervisord's event protocol: only stderr is logged."""
    proc = subprocess.run(logtee(tmp_path / "restarter", "sh", "-c", "echo protocol; echo complaint >&2",
                                 streams="err"), capture_output=True, timeout=20)
    assert proc.stdout == b"protocol\n"
    assert proc.stderr == b"complaint\n"
    assert stamped_lines(tmp_path / "restarter" / "current") == [b"complaint"]


def test_an_unwritable_log_directory_still_reaches_the_container_log(tmp_path):
    blocker = tmp_path / "log"
    blocker.write_text("a file where the directory should be")
    proc = subprocess.run(logtee(blocker / "felix", "sh", "-c", "echo one; sleep 0.2; echo two"),
                          stdout=subprocess.PIPE, timeout=20)
    lines = proc.stdout.decode().splitlines()
    assert [line for line in lines if not line.startswith("logtee:")] == ["one", "two"]
    complaints = [line for line in lines if line.startswith("logtee:")]
    assert len(complaints) == 1 and f"cannot write to {blocker / 'felix' / 'current'}" in complaints[0]


def test_a_program_that_cannot_run(tmp_path):
    proc = subprocess.run(logtee(tmp_path / "x", str(tmp_path / "missing")), stdout=subprocess.PIPE, timeout=20)
    assert proc.returncode == 127
    assert b"logtee: cannot run" in proc.stdout
    assert b"logtee: cannot run" in (tmp_path / "x" / "current").read_bytes()


def test_parent_stdout_writes_to_the_starters_stdout(tmp_path):
    """With --parent-stdout (as supervisord runs it) the copy goes to the stdout of the
    process that started logtee, even after that process closed the program's pipes."""
    out_file = tmp_path / "container.log"
    argv = logtee(tmp_path / "felix", "sh", "-c", "echo hello >&2")
    argv.insert(4, "--parent-stdout")
    # A Python process stands in for supervisord: its stdout is the container log; the
    # program's stdout and stderr go where it never reads them.
    starter = ("import subprocess, sys; "
               "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)")
    with open(out_file, "ab") as out:
        subprocess.run([sys.executable, "-c", starter, *argv], stdout=out, timeout=20, check=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and out_file.read_bytes() != b"hello\n":
        time.sleep(0.05)
    assert out_file.read_bytes() == b"hello\n"
