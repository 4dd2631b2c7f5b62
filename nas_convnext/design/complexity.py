"""Analytic FLOPs, parameters and activations of a design, counted exactly as fvcore counts.

Convention (fvcore's and the papers'): one multiply-add is one FLOP; counted at full size
(default 224x224 input, 1000 classes, batch 1, eval mode). fvcore also counts BatchNorm (2 per
element with affine, eval), LayerNorm (5 per element with affine) and adaptive average
pooling (1 per input element), and counts activations, adds, multiplies and max pooling as 0;
so do we. "Activations" are the output elements of every conv and linear layer, as fvcore's
ActivationCountAnalysis counts them. The count sums the same plan the builder instantiates,
and `fvcore_count` cross-checks it on the built model.
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from functools import lru_cache

from .arch import GROUP_RULE_FIELDS, WIDTH_ROUND, Arch, group_divisor
from .plan import Act, Block, Conv, MaxPool, Norm, network_plan, out_size

FLOP_CONVENTION = ("FLOPs: one multiply-add = one FLOP (fvcore's convention), full-size design "
                   "at {res}x{res} input, {classes} classes, batch 1")


@dataclass(frozen=True)
class Complexity:
    flops: int          # fvcore's total: convs, linears, norms, pooling
    params: int
    acts: int
    # Conv and linear multiply-adds only. The paper's Table 10 counts this way: it matches
    # Table 10 to 0.005 GFLOPs on every roadmap step but the BN -> LN one.
    matmul_flops: int = 0

    @property
    def gflops(self) -> float:
        return self.flops / 1e9


def _conv(op: Conv, h: int, w: int) -> tuple[int, int, int, int, int]:
    ho, wo = out_size(h, op.k, op.stride, op.pad), out_size(w, op.k, op.stride, op.pad)
    macs_per_px = op.k * op.k * (op.cin // op.groups) * op.cout
    params = macs_per_px + (op.cout if op.bias else 0)
    return macs_per_px * ho * wo, params, op.cout * ho * wo, ho, wo


def _seq(ops: tuple, h: int, w: int) -> tuple[int, int, int, int, int, int]:
    flops = params = acts = mm = 0
    for op in ops:
        if isinstance(op, Conv):
            f, p, a, h, w = _conv(op, h, w)
            flops, params, acts, mm = flops + f, params + p, acts + a, mm + f
        elif isinstance(op, Norm):
            flops += (2 if op.kind == "bn" else 5) * op.c * h * w
            params += 2 * op.c
        elif isinstance(op, MaxPool):
            h, w = out_size(h, op.k, op.stride, op.pad), out_size(w, op.k, op.stride, op.pad)
        elif not isinstance(op, Act):
            raise TypeError(f"unknown op {op!r}")
    return flops, params, acts, mm, h, w


def _block(block: Block, h: int, w: int) -> tuple[int, int, int, int, int, int]:
    flops, params, acts, mm, ho, wo = _seq(block.ops, h, w)
    if block.shortcut:
        f, p, a, m, _, _ = _seq(block.shortcut, h, w)
        flops, params, acts, mm = flops + f, params + p, acts + a, mm + m
    return flops, params + block.layer_scale, acts, mm, ho, wo


def complexity(arch: Arch, resolution: int = 224, num_classes: int = 1000,
               in_chans: int = 3) -> Complexity:
    """FLOPs, params and activations of the full-size design (see the module docstring)."""
    return _complexity(_flop_key(arch), resolution, num_classes, in_chans)


#: Fields that change no FLOPs: activations are not counted (fvcore's convention) and a layer
#: scale adds parameters only. Designs differing only there have the same FLOPs.
FLOP_FREE_FIELDS = ("act", "activations", "layer_scale")


def _flop_key(arch: Arch) -> Arch:
    # FLOP_FREE_FIELDS: act and activations cost nothing; layer scale adds parameters only, so
    # keep its presence. Designs that differ only there share one cached count.
    return dataclasses.replace(arch, act="relu", activations="every",
                               layer_scale=None if arch.layer_scale is None else 1.0) \
        if (arch.act, arch.activations) != ("relu", "every") else arch


@lru_cache(maxsize=65536)
def _complexity(arch: Arch, resolution: int, num_classes: int, in_chans: int) -> Complexity:
    if resolution <= 0:
        raise ValueError(f"resolution {resolution} must be positive")
    plan = network_plan(arch, num_classes, in_chans)
    total = list(_seq(plan.stem, resolution, resolution))   # flops, params, acts, mm, h, w
    for stage in plan.stages:
        parts = [(_seq, stage.downsample, 1), (_block, stage.first, 1)]
        if stage.rest is not None:
            parts.append((_block, stage.rest, stage.depth - 1))
        for fn, item, n in parts:
            if total[4] <= 0 or total[5] <= 0:
                break
            f, p, a, m, total[4], total[5] = fn(item, total[4], total[5])
            for i, v in enumerate((f, p, a, m)):
                total[i] += n * v
    flops, params, acts, mm, h, w = total
    if h <= 0 or w <= 0:
        raise ValueError(f"resolution {resolution} is too small for this design: a stage's "
                         "feature map would be empty")
    c = plan.features
    flops += c * h * w                     # global average pooling
    if plan.head_norm is not None:
        f, p, _, _, _, _ = _seq((plan.head_norm,), 1, 1)
        flops, params = flops + f, params + p
    flops += c * num_classes
    mm += c * num_classes
    params += c * num_classes + num_classes
    acts += num_classes
    return Complexity(int(flops), int(params), int(acts), int(mm))


# ----- budgets -----
_UNITS = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}
_BUDGET_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kmgt]?)\s*(flops?|f)?\s*$",
                        re.IGNORECASE)
BUDGET_FORMS = "a positive number with an optional unit, e.g. 4.5GFLOPs, 4.5G, 4500MFLOPs or 4.5e9"


def parse_flops(text: str | float | int) -> float:
    """A FLOP budget such as '4.5GFLOPs', '4.5 G', '4500MFLOPs' or '4.5e9', in FLOPs."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
        shown = repr(text)
    else:
        shown = repr(text)
        m = _BUDGET_RE.match(str(text)) if isinstance(text, str) else None
        if not m:
            raise ValueError(f"budget {shown} is not understood: expected {BUDGET_FORMS}")
        value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"budget {shown} must be positive and finite: expected {BUDGET_FORMS}")
    return value


def fit_width(arch: Arch, budget: float | str, resolution: int = 224,
              num_classes: int = 1000, max_width: int = 2048) -> Arch:
    """The widest variant of `arch` (width a multiple of 8, valid for its groups) within budget.

    FLOPs grow monotonically with width, so a binary search over the valid widths is exact.
    """
    limit = parse_flops(budget)
    widths = valid_widths(arch, max_width)
    if not widths:
        raise ValueError(f"no width up to {max_width} (multiples of {WIDTH_ROUND}) is valid "
                         f"for groups={arch.groups!r} and expansion={arch.expansion}")

    def flops_at(i: int) -> int:
        return complexity(arch.with_width(widths[i]), resolution, num_classes).flops

    if flops_at(0) > limit:
        raise ValueError(f"even the narrowest width ({widths[0]}) needs "
                         f"{flops_at(0) / 1e9:.3f} GFLOPs, over the budget of {limit / 1e9:.3f} "
                         "GFLOPs: raise the budget or choose a cheaper design")
    lo, hi = 0, len(widths) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if flops_at(mid) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return arch.with_width(widths[lo])


def valid_widths(arch: Arch, max_width: int = 2048) -> list[int]:
    out = []
    for w in range(WIDTH_ROUND, max_width + 1, WIDTH_ROUND):
        try:
            arch.with_width(w)
        except ValueError:
            continue
        out.append(w)
    return out


def scale_width(arch: Arch, mult: float) -> Arch:
    """The design at `mult` times its width (a proxy's width multiplier), kept valid.

    The width is rounded to a multiple of 8 (at least 8). Where the design's integer `groups`
    no longer divide the narrower spatial convs' channels, the groups shrink by the same factor
    as the width (each group keeps about the channels it had), to the largest count that
    divides them; groups that still divide are kept. Why not widen instead: a proxy must
    narrow every design alike, and keeping 32 groups on a width-32 design meant training it at
    its full width while the others train at a quarter, four times the relative width and
    several times the minutes. Only a width the channel rule refuses makes it take the nearest
    valid width, preferring the wider one.
    """
    if mult == 1.0:
        return arch
    if not (mult > 0 and math.isfinite(mult)):
        raise ValueError(f"width multiplier {mult!r} must be a positive number")
    target = arch.width * mult
    base = max(WIDTH_ROUND, WIDTH_ROUND * round(target / WIDTH_ROUND))
    for step in range(0, 64):
        for w in (base + step * WIDTH_ROUND, base - step * WIDTH_ROUND):
            if w >= WIDTH_ROUND:
                narrowed = _at_width(arch, w)
                if narrowed is not None:
                    return narrowed
    raise ValueError(f"no valid width near {target:.1f} for groups={arch.groups!r}")


def _at_width(arch: Arch, width: int) -> Arch | None:
    """`arch` at `width`, with fewer groups where its own no longer fit; None where the width
    itself is invalid (the channel rule)."""
    try:
        return arch.with_width(width)
    except ValueError:
        if not isinstance(arch.groups, int) or arch.groups == 1:
            return None
    try:
        ungrouped = dataclasses.replace(arch, groups=1).with_width(width)
    except ValueError:
        return None
    divisor = group_divisor(*(getattr(ungrouped, f) for f in GROUP_RULE_FIELDS))
    want = max(1, round(arch.groups * width / arch.width))
    groups = next(g for g in range(want, 0, -1) if divisor % g == 0)
    return dataclasses.replace(ungrouped, groups=groups) if groups > 1 else ungrouped


def fvcore_count(model, resolution: int = 224, in_chans: int = 3) -> Complexity:
    """fvcore's FLOPs and activations and the parameter count of a built model (slow: traces)."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        from fvcore.nn import ActivationCountAnalysis, FlopCountAnalysis
    model = model.eval()
    x = torch.zeros(1, in_chans, resolution, resolution)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fca = FlopCountAnalysis(model, x).unsupported_ops_warnings(False) \
            .uncalled_modules_warnings(False)
        aca = ActivationCountAnalysis(model, x).unsupported_ops_warnings(False) \
            .uncalled_modules_warnings(False)
        flops, acts = int(fca.total()), int(aca.total())
        by_op = fca.by_operator()
    params = sum(p.numel() for p in model.parameters())
    return Complexity(flops, params, acts, int(by_op.get("conv", 0) + by_op.get("linear", 0)))
