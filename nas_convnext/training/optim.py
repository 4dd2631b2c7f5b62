"""The optimizers a trial trains with: torch's AdamW and SGD, without importing torch._dynamo.

torch wraps an optimizer's step, zero_grad and add_param_group in code for torch.compile
(`_use_grad_for_differentiable`, `torch._disable_dynamo`) that imports torch._dynamo on the
first call: about 2.3 s on a 2-core machine, more than a cpu-tiny trial trains, paid again by
every fresh trial worker of every search (docs/BENCHMARKS.md, "Trial worker start-up").
Nothing here compiles, so these classes call the functions under those wrappers: the same code
on the same tensors (a test compares the parameters after several steps, bit for bit, with
torch's own classes, and checks that a trial leaves torch._dynamo unimported). What the
wrappers do outside compilation is kept: step runs without autograd (our optimizers are not
`differentiable`), and torch's step hooks and profiler label still wrap it
(`Optimizer.__init__` adds them to every optimizer class).
"""
from __future__ import annotations

import inspect
from typing import Any

import torch

#: torch's methods under their compile wrappers, found once.
_RAW_ZERO_GRAD = inspect.unwrap(torch.optim.Optimizer.zero_grad)
_RAW_ADD_PARAM_GROUP = inspect.unwrap(torch.optim.Optimizer.add_param_group)


class _WithoutDynamo:
    """What both optimizers share: torch's own methods, called under their compile wrappers.

    `_raw_step` is the class's torch `step` unwrapped, found once when the class is made (torch
    later wraps the class's `step` in its hook wrapper, which calls this one).
    """

    _raw_step: Any

    def step(self, closure=None):
        with torch.no_grad():
            return self._raw_step(closure)

    def zero_grad(self, set_to_none: bool = True) -> None:
        _RAW_ZERO_GRAD(self, set_to_none)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        _RAW_ADD_PARAM_GROUP(self, param_group)


class AdamW(_WithoutDynamo, torch.optim.AdamW):
    """torch's AdamW, without importing torch._dynamo (see the module's docstring)."""

    _raw_step = inspect.unwrap(torch.optim.AdamW.step)


class SGD(_WithoutDynamo, torch.optim.SGD):
    """torch's SGD, without importing torch._dynamo (see the module's docstring)."""

    _raw_step = inspect.unwrap(torch.optim.SGD.step)
