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

K may be "all" (every trial).
"""
from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

ENV = "NAS_CONVNEXT_FAULT"


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


def in_driver(config: dict[str, Any], result: dict[str, Any]) -> None:
    """In the search process, for each reported result: the "interrupt" fault."""
    if kind(config) == "interrupt" and result.get("epoch") == 1:
        os.kill(os.getpid(), signal.SIGINT)


class PoisonedLoss:
    """torch.nn.functional, except that the training loss is NaN once `on` (the "nan" fault)."""

    def __init__(self, real: Any):
        self.real, self.on = real, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def cross_entropy(self, *args: Any, **kwargs: Any) -> Any:
        loss = self.real.cross_entropy(*args, **kwargs)
        if self.on and kwargs.get("reduction", "mean") == "mean":  # evaluation sums
            return loss * float("nan")
        return loss
