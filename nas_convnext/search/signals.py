"""Stopping a search cleanly: SIGINT and SIGTERM as exceptions, deferred where they would cut.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any


# ----- stopping: signals and the time budget -----
class Terminated(KeyboardInterrupt):
    """SIGTERM, raised as Ctrl-C's KeyboardInterrupt is, so that one clean stop serves both."""


class StopSignals:
    """SIGINT and SIGTERM during a search, as exceptions (KeyboardInterrupt, Terminated).

    Without this, SIGTERM reaches the handler that `ray.init` installs, which kills Ray's own
    processes under the driver and exits: the driver then aborts in Ray's C++ code (status
    134), with no resume command and no table of the trials in flight. Here SIGTERM takes
    Ctrl-C's path instead. Only the first SIGTERM is raised: the ones after it would cut the
    clean stop itself short. Inside `deferred()` sections (Ray's start, making the run folder,
    creating the study, the final write) both signals wait until the section ends, so no
    signal leaves half of one behind.
    """

    def __init__(self) -> None:
        self.previous: dict[int, Any] = {}
        self.depth = 0
        self.waiting: BaseException | None = None
        self.terminated = False

    def install(self) -> "StopSignals":
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                current = signal.getsignal(sig)
                if current != self._handle:
                    self.previous.setdefault(sig, current)
                signal.signal(sig, self._handle)
        return self

    def restore(self) -> None:
        import signal

        for sig, handler in self.previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        self.previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        import signal

        if signum == signal.SIGTERM:
            if self.terminated:
                return
            self.terminated = True
            exc: BaseException = Terminated()
        else:
            exc = KeyboardInterrupt()
        if self.depth:
            self.waiting = self.waiting or exc
            return
        raise exc

    @contextmanager
    def deferred(self):
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
        if self.depth == 0 and self.waiting is not None:
            exc, self.waiting = self.waiting, None
            raise exc


def signal_name(exc: KeyboardInterrupt) -> str:
    return "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"
