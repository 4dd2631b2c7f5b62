"""The network a design describes, as plain layer specs (no torch).

One plan feeds two consumers: `build.py` turns each spec into a module and `complexity.py`
sums each spec's cost. Keeping the structure in one place is what lets the analytic count
equal fvcore on the built model: both sides read the same list. A stage's blocks after the
first are identical, so a stage stores its first block, its repeated block and a count; the
complexity count then costs O(stages), not O(blocks).
"""
from __future__ import annotations

from typing import NamedTuple

from .arch import GROUPS_DEPTHWISE, Arch


class Conv(NamedTuple):
    cin: int
    cout: int
    k: int
    stride: int
    pad: int
    groups: int
    bias: bool
    linear: bool = False   # a 1x1 conv computed as nn.Linear on channels-last tensors


class Norm(NamedTuple):
    kind: str              # "bn" or "ln"
    c: int
    channels_last: bool = False


class Act(NamedTuple):
    pass


class MaxPool(NamedTuple):
    k: int = 3
    stride: int = 2
    pad: int = 1



class Block(NamedTuple):
    ops: tuple          # the residual branch, in order
    shortcut: tuple     # () for identity, else (Conv, Norm) projection
    layer_scale: int    # channels of the per-channel residual scale, 0 when none
    post_act: bool      # activation after the residual add (ResNet style)
    cin: int
    cout: int


class Stage(NamedTuple):
    downsample: tuple   # () or (Norm, Conv): separate downsampling before the blocks
    first: Block
    rest: Block | None
    depth: int


class Plan(NamedTuple):
    in_chans: int
    stem: tuple
    stages: tuple
    head_norm: Norm | None   # after global pooling (ConvNeXt's LN), on (N, C, 1, 1)
    features: int
    num_classes: int


def _groups(arch: Arch, channels: int) -> int:
    return channels if arch.groups == GROUPS_DEPTHWISE else int(arch.groups)


def block_plan(arch: Arch, cin: int, stream: int, hidden: int, stride: int) -> Block:
    """One residual block. The spatial conv carries the stride; the rules (which convs have a
    norm, an activation or a bias) are the README's "Design fields"."""
    k = arch.kernel
    if arch.spatial_conv == "middle":
        specs = [(cin, hidden, 1, 1), (hidden, hidden, k, stride), (hidden, stream, 1, 1)]
        spatial = 1
    else:
        specs = [(cin, cin, k, stride), (cin, hidden, 1, 1), (hidden, stream, 1, 1)]
        spatial = 0
    # LayerNorm normalises the channel axis, which is the last axis of a channels-last tensor;
    # LN blocks therefore run their 1x1 convs as Linear layers on channels-last tensors (as
    # timm's ConvNeXt does). BN blocks stay channels-first with 1x1 Conv2d (as timm's ResNet).
    linear_pw = arch.norm == "ln"
    ops: list = []
    channels_last = False
    for j, (ci, co, kk, s) in enumerate(specs):
        is_pw = kk == 1 and j != spatial
        channels_last = linear_pw and is_pw
        has_norm = arch.norms == "every" or j == spatial
        # A bias is redundant only right before a BatchNorm, whose shift absorbs it.
        bias = not (has_norm and arch.norm == "bn")
        g = _groups(arch, ci) if j == spatial else 1
        ops.append(Conv(ci, co, kk, s, kk // 2, g, bias, channels_last))
        if has_norm:
            ops.append(Norm(arch.norm, co, channels_last))
        last = j == len(specs) - 1
        if (arch.activations == "every" and not last) or (arch.activations == "single" and j == 1):
            ops.append(Act())
    shortcut: tuple = ()
    if cin != stream or stride != 1:
        shortcut = (Conv(cin, stream, 1, stride, 0, 1, arch.norm != "bn"), Norm(arch.norm, stream))
    return Block(tuple(ops), shortcut, stream if arch.layer_scale is not None else 0,
                 arch.activations == "every", cin, stream)


def network_plan(arch: Arch, num_classes: int = 1000, in_chans: int = 3) -> Plan:
    stem_c = arch.stem_channels
    every_act = arch.activations == "every"
    if arch.stem == "resnet":
        stem: list = [Conv(in_chans, stem_c, 7, 2, 3, 1, arch.norm != "bn"), Norm(arch.norm, stem_c)]
        if every_act:
            stem.append(Act())
        stem.append(MaxPool())
    else:
        stem = [Conv(in_chans, stem_c, 4, 4, 0, 1, arch.norm != "bn"), Norm(arch.norm, stem_c)]
        if every_act:
            stem.append(Act())
    stages = []
    prev = stem_c
    for i, depth in enumerate(arch.depths):
        stream, hidden = arch.stage_widths(i)
        downsample: tuple = ()
        stride = 2 if i > 0 else 1
        if arch.downsample == "separate" and i > 0:
            downsample = (Norm(arch.norm, prev), Conv(prev, stream, 2, 2, 0, 1, True))
            prev, stride = stream, 1
        first = block_plan(arch, prev, stream, hidden, stride)
        rest = block_plan(arch, stream, stream, hidden, 1) if depth > 1 else None
        stages.append(Stage(downsample, first, rest, depth))
        prev = stream
    head_norm = Norm(arch.norm, prev) if arch.downsample == "separate" else None
    return Plan(in_chans, tuple(stem), tuple(stages), head_norm, prev, num_classes)


def out_size(size: int, k: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - k) // stride + 1


def stage_sizes(arch: Arch, resolution: int) -> list[int]:
    """Feature-map side length at each stage's output; the proxy checks none reaches 0."""
    plan = network_plan(arch)
    h = resolution
    for op in plan.stem:
        if isinstance(op, Conv):
            h = out_size(h, op.k, op.stride, op.pad)
        elif isinstance(op, MaxPool):
            h = out_size(h, op.k, op.stride, op.pad)
    sizes = []
    for stage in plan.stages:
        for op in stage.downsample:
            if isinstance(op, Conv):
                h = out_size(h, op.k, op.stride, op.pad)
        for op in stage.first.ops:
            if isinstance(op, Conv):
                h = out_size(h, op.k, op.stride, op.pad)
        sizes.append(h)
    return sizes
