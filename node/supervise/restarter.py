"""supervisord event listener: start again a program supervisord has given up on.

supervisord restarts a program that exits, but one that fails ``startretries`` times in a
row before it has been up ``startsecs`` goes FATAL and stays down. Calico's runit never
gives up (it restarts a dead service about once a second, forever), and a node whose
renderer or policy agent stays down until someone notices is worse than one that keeps
trying. So this listener, told of every FATAL, starts the program again after a delay
that grows with each FATAL of the same program (5 s, 10 s, 20 s, 40 s, then every 60 s)
and starts from 5 s again once the program has not gone FATAL for 10 minutes.

    python -m node.supervise.restarter --server-url unix://$CALICO_RUN_DIR/supervisor.sock

Speaks supervisord's event listener protocol on stdin/stdout; logs on stderr.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from typing import Callable, TextIO

from node.supervise.rpc import ALREADY_STARTED, SPAWN_ERROR, Supervisor, SupervisorError

log = logging.getLogger("node.supervise.restarter")

FIRST_DELAY = 5.0
MAX_DELAY = 60.0
RESET_AFTER = 600.0


def parse_tokens(text: str) -> dict[str, str]:
    """``key:value key:value ...`` as supervisord writes headers and state payloads."""
    out = {}
    for token in text.split():
        key, sep, value = token.partition(":")
        if sep:
            out[key] = value
    return out


class Backoff:
    """Per-program delay before starting it again."""

    def __init__(self, first: float = FIRST_DELAY, maximum: float = MAX_DELAY, reset_after: float = RESET_AFTER,
                 clock: Callable[[], float] = time.monotonic):
        self.first, self.maximum, self.reset_after = first, maximum, reset_after
        self._clock = clock
        self._state: dict[str, tuple[float, float]] = {}  # name -> (last delay, when)

    def next_delay(self, name: str) -> float:
        now = self._clock()
        last = self._state.get(name)
        if last is None or now - last[1] > self.reset_after:
            delay = self.first
        else:
            delay = min(last[0] * 2, self.maximum)
        self._state[name] = (delay, now)
        return delay


class Restarter:
    def __init__(self, supervisor: Supervisor, backoff: Backoff | None = None):
        self.supervisor = supervisor
        self.backoff = backoff or Backoff()

    def on_fatal(self, group: str, process: str) -> float:
        name = f"{group}:{process}"
        delay = self.backoff.next_delay(name)
        log.warning("%s entered FATAL (supervisord gave up after repeated quick failures); "
                    "starting it again in %gs", process, delay)
        timer = threading.Timer(delay, self._start, args=(name, process))
        timer.daemon = True
        timer.start()
        return delay

    def _start(self, name: str, process: str) -> None:
        try:
            self.supervisor.start_process(name, False)
            log.info("started %s again", process)
        except SupervisorError as exc:
            if exc.code == ALREADY_STARTED:
                log.info("%s is already running again", process)
            elif exc.code == SPAWN_ERROR:
                # It died as it started: supervisord reports FATAL again, and we come back.
                log.warning("%s failed again as it started", process)
            else:
                log.error("could not start %s again: %s", process, exc)


def serve(restarter: Restarter, stdin: TextIO, stdout: TextIO) -> None:
    """The event listener loop: READY, read one event, handle it, RESULT; until EOF."""
    while True:
        stdout.write("READY\n")
        stdout.flush()
        header_line = stdin.readline()
        if not header_line:
            return
        header = parse_tokens(header_line)
        payload = stdin.read(int(header.get("len", "0")))
        if header.get("eventname") == "PROCESS_STATE_FATAL":
            body = parse_tokens(payload.split("\n", 1)[0])
            restarter.on_fatal(body.get("groupname", body.get("processname", "")), body.get("processname", ""))
        stdout.write("RESULT 2\nOK")
        stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="restarter", description=__doc__.split("\n\n")[0])
    parser.add_argument("--server-url", required=True, help="supervisord's unix:// URL")
    parser.add_argument("--first-delay", type=float, default=FIRST_DELAY, metavar="SECONDS",
                        help=f"delay before the first restart of a program (default {FIRST_DELAY:g})")
    parser.add_argument("--max-delay", type=float, default=MAX_DELAY, metavar="SECONDS",
                        help=f"the delay doubles up to this (default {MAX_DELAY:g})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s.%(msecs)03d [%(levelname)s] restarter: %(message)s",
                        datefmt="%Y-%m-%d %H:%M:%S")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    serve(Restarter(Supervisor(args.server_url), Backoff(args.first_delay, args.max_delay)), sys.stdin, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
