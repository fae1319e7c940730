"""How the ``calico-node`` and ``calicoctl`` processes end: flush, then leave without
the interpreter's finalization.

gRPC (the etcd client) runs daemon threads of its own for streaming calls such as
watches; they outlive the call by a moment even after it is cancelled and its channel
closed. When the interpreter finalizes, it freezes daemon threads wherever they are: one
frozen while holding a call's lock makes that call's ``__del__``, run by the final
garbage collection, wait for the lock forever, and the process never exits (seen as a
``confd --oneshot`` that rendered, exited its role and then hung; grpc/grpc#17214 is the
same interaction). Each role releases what it holds (watches cancelled, channels closed,
threads joined, files written through ``with``) before returning its exit code, so
nothing is lost by skipping finalization once output is flushed.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Callable, NoReturn


def end_process(code: int | None) -> NoReturn:
    """Flush logging and standard streams, then exit with ``code`` (None: 0) at once."""
    status = 0 if code is None else int(code)
    try:
        logging.shutdown()
    except Exception:  # a handler that cannot flush must not keep the process alive
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:  # a closed pipe (calicoctl ... | head): nothing more to say there
            if status == 0 and stream is sys.stdout:
                status = 141  # as the roles report a broken pipe
    os._exit(status)


def run_and_end(main: Callable[[], int | None]) -> NoReturn:
    """``main()``'s exit code, ended through ``end_process``. An exception that escapes
    ``main`` is printed as the interpreter would print it, with status 1."""
    try:
        code = main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) or exc.code is None else 1
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:  # the reader went away (calicoctl get ... | head)
        code = 141
    except BaseException:  # noqa: BLE001 - reported, then the process ends
        import traceback

        traceback.print_exc()
        code = 1
    end_process(code)
