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


class AdamW(torch.optim.AdamW):
    """torch's AdamW, without importing torch._dynamo (see the module's docstring)."""

    def step(self, closure=None):
        with torch.no_grad():
            return inspect.unwrap(torch.optim.AdamW.step)(self, closure)

    def zero_grad(self, set_to_none: bool = True) -> None:
        inspect.unwrap(torch.optim.Optimizer.zero_grad)(self, set_to_none)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        inspect.unwrap(torch.optim.Optimizer.add_param_group)(self, param_group)


class SGD(torch.optim.SGD):
    """torch's SGD, without importing torch._dynamo (see the module's docstring)."""

    def step(self, closure=None):
        with torch.no_grad():
            return inspect.unwrap(torch.optim.SGD.step)(self, closure)

    zero_grad = AdamW.zero_grad
    add_param_group = AdamW.add_param_group
