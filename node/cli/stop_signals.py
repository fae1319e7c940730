"""Stopping a long-running role on SIGTERM or SIGINT, safely.

A Python signal handler runs in the main thread, between two bytecodes of whatever it
was doing. A role's main thread spends its life in ``stop.wait()`` (or in a loop that
waits on an Event); if the handler itself called ``stop.set()`` while the interrupted
code held that Event's internal lock (entering or leaving ``wait``), ``set()`` would
block on a lock its own thread holds, for ever. The same goes for a handler that logs,
or that calls a role's ``stop()`` method.

So the handler here does one thing that takes no lock: it writes the signal's number
into a pipe. A thread of its own reads the pipe and does the rest, outside any signal
handler: logs which signal came, then sets the Event (or calls the callable) it was given.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Callable, Iterable, Union

StopTarget = Union[threading.Event, Callable[[], None]]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def stop_on_signals(target: StopTarget, logger: logging.Logger | None = None,
                    signals: Iterable[int] = STOP_SIGNALS) -> Callable[[], None]:
    """Install handlers for ``signals`` (SIGTERM and SIGINT) that wake ``target`` safely:
    an Event is set, a callable called, from a helper thread, on every such signal. With
    ``logger``, each signal is logged (at info level, from that thread). Call from the
    main thread. Returns a function that puts the previous handlers back."""
    act = target.set if isinstance(target, threading.Event) else target
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    os.set_blocking(write_fd, False)  # a handler never blocks; a full pipe already wakes the thread

    def handler(signum, frame) -> None:  # noqa: ARG001  (no locks here: see the module's docstring)
        try:
            os.write(write_fd, bytes((signum,)))
        except OSError:
            pass

    def relay() -> None:
        try:
            while True:
                try:
                    data = os.read(read_fd, 64)
                except InterruptedError:
                    continue
                if not data:  # restored: the write end is closed
                    return
                for signum in data:
                    if logger is not None:
                        logger.info("Received %s; stopping", signal.Signals(signum).name)
                    try:
                        act()
                    except Exception:  # keep relaying: a later signal may still stop the role
                        logging.getLogger(__name__).exception("Stopping on a signal failed")
        finally:
            os.close(read_fd)

    previous: dict = {}
    try:
        for sig in signals:
            previous[sig] = signal.signal(sig, handler)
    except BaseException:  # e.g. not the main thread
        for sig, old in previous.items():
            signal.signal(sig, old)
        os.close(read_fd)
        os.close(write_fd)
        raise
    threading.Thread(target=relay, name="stop-signals", daemon=True).start()

    def restore() -> None:
        if not previous:
            return
        for sig, old in previous.items():
            signal.signal(sig, old)
        previous.clear()
        os.close(write_fd)  # the relay thread sees end of file and ends

    return restore
