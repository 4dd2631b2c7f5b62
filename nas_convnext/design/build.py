"""One model builder for every design: ResNet-50, ConvNeXt-T and everything between.

`build_model` instantiates the plan of `plan.py` spec by spec; nothing here special-cases a
named network. Module names follow timm's where the roles match (stem, stages.i.downsample,
stages.i.blocks.j, head.norm, head.fc) so that weights map across with a short key table
(`tests/timm_mapping.py`).
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .arch import Arch
from .complexity import scale_width
from .plan import Act, Block, Conv, MaxPool, Norm, network_plan

_ACTS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}
LN_EPS = 1e-6
BN_EPS = 1e-5


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an (N, C, H, W) tensor.

    Built on F.layer_norm so fvcore counts it (a hand-written mean/var LN counts as 0).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


def make_norm(op: Norm) -> nn.Module:
    if op.kind == "bn":
        return nn.BatchNorm2d(op.c, eps=BN_EPS)
    return nn.LayerNorm(op.c, eps=LN_EPS) if op.channels_last else LayerNorm2d(op.c, eps=LN_EPS)


class SameConv2d(nn.Conv2d):
    """A stride-1 conv padded to keep the map's size, which skips the taps that only ever see
    padding.

    On an H x W map a tap more than H - 1 rows (W - 1 columns) from the kernel's centre
    multiplies zeros at every output position, so the centre min(k, 2H - 1) x min(k, 2W - 1)
    part of the kernel computes exactly the same outputs and gradients (the outer taps' are 0
    either way). Proxies train at 32 px, where the last two stages' maps are 2x2 and 1x1: a
    7x7 or 11x11 depthwise kernel there is mostly padding, and cropping it makes the large-
    kernel and ConvNeXt designs' training steps 1.2 to 2.2 times as fast on a CPU
    (bench/tap_crop.py, docs/BENCHMARKS.md). The weight keeps its full k x k shape, so the
    design, its parameters, its state dict and the optimizer are unchanged. Under a trace (fvcore) the whole kernel is
    used, so FLOPs stay those of the design's kernel, as the analytic count has them.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kh, kw = self.kernel_size
        h, w = x.shape[-2:]
        ch, cw = min(kh, 2 * h - 1), min(kw, 2 * w - 1)
        if (ch, cw) == (kh, kw) or torch.jit.is_tracing():
            return super().forward(x)
        top, left = (kh - ch) // 2, (kw - cw) // 2
        weight = self.weight[:, :, top:top + ch, left:left + cw]
        return F.conv2d(x, weight, self.bias, 1, (ch // 2, cw // 2), 1, self.groups)


@contextlib.contextmanager
def whole_kernels() -> Iterator[None]:
    """Within it, every `SameConv2d` computes with its whole kernel, as a plain nn.Conv2d does:
    what the crop is compared with (bench/tap_crop.py and its test). Not thread-safe: it swaps
    the class's forward for the whole process."""
    crop = SameConv2d.forward
    SameConv2d.forward = nn.Conv2d.forward
    try:
        yield
    finally:
        SameConv2d.forward = crop


def make_conv(op: Conv) -> nn.Module:
    if op.linear:
        return nn.Linear(op.cin, op.cout, bias=op.bias)
    if op.stride == 1 and op.k > 1 and op.k % 2 == 1 and op.pad == op.k // 2:
        return SameConv2d(op.cin, op.cout, op.k, 1, op.pad, groups=op.groups, bias=op.bias)
    return nn.Conv2d(op.cin, op.cout, op.k, op.stride, op.pad, groups=op.groups, bias=op.bias)


class Sequence(nn.Module):
    """A run of plan ops named conv1, norm1, act1, conv2, ... with layout changes between them.

    Linear 1x1 convs and channels-last LayerNorms want (N, H, W, C); everything else wants
    (N, C, H, W). The layout of each op is fixed by the plan, so the permutes are decided once.
    """

    def __init__(self, ops: tuple, act: str):
        super().__init__()
        self.steps: list[tuple[str, bool]] = []
        idx = 0
        for op in ops:
            if isinstance(op, Conv):
                idx += 1
                name, module, last = f"conv{idx}", make_conv(op), op.linear
            elif isinstance(op, Norm):
                name, module, last = f"norm{idx}", make_norm(op), op.channels_last
            elif isinstance(op, Act):
                name, module, last = f"act{idx}", _ACTS[act](), None
            elif isinstance(op, MaxPool):
                name, module, last = "pool", nn.MaxPool2d(op.k, op.stride, op.pad), False
            else:
                raise TypeError(f"unknown op {op!r}")
            self.add_module(name, module)
            self.steps.append((name, last))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels_last = False
        for name, wants_last in self.steps:
            if wants_last is not None and wants_last != channels_last:
                x = x.permute(0, 2, 3, 1) if wants_last else x.permute(0, 3, 1, 2)
                channels_last = wants_last
            x = getattr(self, name)(x)
        if channels_last:
            x = x.permute(0, 3, 1, 2)
        return x


class ResidualBlock(nn.Module):
    def __init__(self, block: Block, arch: Arch, drop_path: float, layer_scale: float | None):
        super().__init__()
        self.branch = Sequence(block.ops, arch.act)
        self.gamma = (nn.Parameter(layer_scale * torch.ones(block.layer_scale))
                      if block.layer_scale else None)
        self.shortcut = Sequence(block.shortcut, arch.act) if block.shortcut else nn.Identity()
        self.drop_path = _drop_path(drop_path)
        self.act = _ACTS[arch.act]() if block.post_act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.branch(x)
        if self.gamma is not None:
            y = y.mul(self.gamma.reshape(1, -1, 1, 1))
        return self.act(self.drop_path(y) + self.shortcut(x))


class Stage(nn.Module):
    def __init__(self, downsample: nn.Module, blocks: list[nn.Module]):
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class Head(nn.Module):
    def __init__(self, features: int, num_classes: int, norm: Norm | None):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.norm = make_norm(norm) if norm is not None else nn.Identity()
        self.fc = nn.Linear(features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.norm(self.pool(x)), 1))


class ConvNet(nn.Module):
    def __init__(self, arch: Arch, num_classes: int = 1000, in_chans: int = 3,
                 drop_path_rate: float = 0.0):
        super().__init__()
        self.arch = arch
        plan = network_plan(arch, num_classes, in_chans)
        self.stem = Sequence(plan.stem, arch.act)
        total = sum(arch.depths)
        # Stochastic depth grows linearly over all blocks, 0 to drop_path_rate (the paper).
        rates = [drop_path_rate * i / max(1, total - 1) for i in range(total)]
        stages, b = [], 0
        for st in plan.stages:
            blocks = []
            for j in range(st.depth):
                spec = st.first if j == 0 else st.rest
                blocks.append(ResidualBlock(spec, arch, rates[b], arch.layer_scale))
                b += 1
            down = Sequence(st.downsample, arch.act) if st.downsample else nn.Identity()
            stages.append(Stage(down, blocks))
        self.stages = nn.Sequential(*stages)
        self.head = Head(plan.features, num_classes, plan.head_norm)
        self.apply(_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


def _drop_path(rate: float) -> nn.Module:
    # timm is imported only when a block drops paths (see _trunc_normal_ for why); the `cpu`
    # profiles drop none.
    if rate <= 0:
        return nn.Identity()
    from timm.layers import DropPath

    return DropPath(rate)


def _init(m: nn.Module) -> None:
    # The paper's init for every conv and linear: truncated normal, std 0.02, zero bias.
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        _trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


@torch.no_grad()
def _trunc_normal_(w: torch.Tensor, std: float, cut: float = 2.0) -> torch.Tensor:
    """Fill `w` from a normal(0, std) cut at -cut and +cut (absolute, as the paper's code cuts).

    Drawn by inverse CDF: uniform between erf at the two standardised cuts (the normal's CDF
    mapped to (-1, 1)), then erfinv back to a normal draw. timm's `trunc_normal_` draws the same
    numbers from the same generator (a test compares them; torch's own draws others), so every
    seeded figure measured before stays as it was, without importing timm: that loads
    torchvision and all of timm's models, about 1 s in every trial worker
    (bench/worker_startup.py).
    """
    edge = math.erf(cut / std / math.sqrt(2))
    return w.uniform_(-edge, edge).erfinv_().mul_(std * math.sqrt(2)).clamp_(-cut, cut)


def build_model(arch: Arch, num_classes: int = 1000, width_mult: float = 1.0,
                in_chans: int = 3, drop_path_rate: float = 0.0) -> ConvNet:
    """The network of `arch` (at `width_mult` times its width, for proxies)."""
    return ConvNet(scale_width(arch, width_mult), num_classes, in_chans, drop_path_rate)
