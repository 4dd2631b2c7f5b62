"""Test hooks that inject faults into a search, switched on by NAS_CONVNEXT_FAULT.

The fault tests need failures at exact moments of a real search (a trial that raises, a worker
that dies, a loss that turns NaN, Ctrl-C while a given trial runs). They are set through the
environment of the search process, read once by the driver and passed to each trial in its
config, so nothing changes unless the variable is set.

    raise:K        trial K (the K-th started) raises at the end of its first epoch
    kill:K         trial K's worker process kills itself (SIGKILL) there
    nan:K          trial K's training loss is NaN from then on, so it diverges in epoch 2
    mark:K:PATH    trial K writes its worker's pid to PATH there, and trains on
                   (a test can then kill that worker from outside, mid-training)
    interrupt:K    the search process sends itself SIGINT when trial K reports its first
                   epoch, as Ctrl-C would while that trial runs
    term:K         the same with SIGTERM (as `kill`, systemd or a batch scheduler would send)
    expire:K       the run's --time-budget runs out when trial K reports its first epoch
    replace:K      the run folder is replaced by a file when trial K reports its first epoch
                   (someone removed it, or moved another file there, while the search ran)

    speed:K:MS     trial K's speed is not measured: a stand-in gives MS milliseconds of
                   batch-1 latency per full-size GFLOP (a latency budget can then be tested
                   in seconds, with times known in advance)

K may be "all" (every trial). For "interrupt" and "term", K may also name a moment of the
search's start-up instead of a trial (see `MOMENTS`): the signal is sent there.
"""
from __future__ import annotations

import os
import shutil
import signal
import threading
from pathlib import Path
from typing import Any

ENV = "NAS_CONVNEXT_FAULT"
SIGNALS = {"interrupt": signal.SIGINT, "term": signal.SIGTERM}
# The moments of a search's start-up at which a signal can be sent (`at`):
MOMENTS = ("ray-init",     # while Ray starts (from a timer: ray.init runs in Ray's own code)
           "run-folder",   # as the run folder is being made, before run.json is written
           "study")        # after run.json, as the Optuna study is being created


def from_environment() -> str:
    return os.environ.get(ENV, "")


def _parse(config: dict[str, Any]) -> tuple[str, str]:
    """(kind, argument) of the fault aimed at this trial, ("", "") for none."""
    kind, which, arg = ((config.get("fault") or "") + "::").split(":", 2)
    if which not in ("all", str(config.get("order"))):
        return "", ""
    return kind, arg.rstrip(":")


def kind(config: dict[str, Any]) -> str:
    return _parse(config)[0]


def speed_stand_in(config: dict[str, Any]) -> float | None:
    """The stand-in's milliseconds per GFLOP when this trial's fault is `speed`, else None."""
    what, arg = _parse(config)
    if what != "speed":
        return None
    try:
        return float(arg)
    except ValueError:
        raise ValueError(f"{ENV} speed:K:MS needs milliseconds per GFLOP; got {arg!r}") from None


def inject(config: dict[str, Any], epoch: int) -> str:
    """In the trial's worker, after each epoch: act out this trial's fault; returns its kind."""
    what, arg = _parse(config)
    if not what or epoch != 1:
        return ""
    if what == "raise":
        raise RuntimeError(f"injected failure in trial {config.get('order')}")
    if what == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if what == "mark" and arg:
        tmp = Path(arg + ".tmp")
        tmp.write_text(f"{os.getpid()}\n")
        tmp.replace(arg)  # the reader sees the whole pid or nothing
    return what


def in_driver(config: dict[str, Any], result: dict[str, Any], run_dir: Path | None = None
              ) -> str:
    """In the search process, for each reported result: the faults acted out by the driver
    ("interrupt", "term", "replace"); returns the kind of this trial's fault at its first
    epoch ("expire" is acted out by the caller, which owns the time budget)."""
    what = kind(config)
    if not what or result.get("epoch") != 1:
        return ""
    if what in SIGNALS:
        os.kill(os.getpid(), SIGNALS[what])
    if what == "replace" and run_dir is not None:
        shutil.rmtree(run_dir)
        Path(run_dir).write_text("not a run folder\n")
    return what


def at(fault: str, moment: str) -> None:
    """In the search process, at a named moment of the start-up: send the signal aimed there."""
    what, which, _ = (fault + "::").split(":", 2)
    if what not in SIGNALS or which != moment:
        return
    if moment == "ray-init":  # Ray's start-up is Ray's code: the signal comes from outside it
        timer = threading.Timer(0.5, os.kill, (os.getpid(), SIGNALS[what]))
        timer.daemon = True
        timer.start()
    else:
        os.kill(os.getpid(), SIGNALS[what])


class PoisonedLoss:
    """The "nan" fault: a `loss_hook` for `train_trial` that makes the training loss NaN once
    `on` (passed to the trial as a parameter; nothing in torch or the package is swapped)."""

    def __init__(self) -> None:
        self.on = False

    def __call__(self, loss: Any) -> Any:
        return loss * float("nan") if self.on else loss
