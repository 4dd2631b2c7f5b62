"""How timm's parameter names map onto ours, for the weight-equivalence tests.

Our builder names modules by role (stem, stages.i.downsample, stages.i.blocks.j.branch.convK /
normK, shortcut, head.fc); timm's ResNet and ConvNeXt use their own names for the same roles.
The table below is the whole mapping: a rename, never a reshape, so equal shapes prove the
two networks have the same layers.
"""
from __future__ import annotations

import re

RESNET = [
    (r"^conv1\.", "stem.conv1."),
    (r"^bn1\.", "stem.norm1."),
    (r"^layer(\d)\.(\d+)\.conv(\d)\.", lambda m: f"stages.{int(m[1]) - 1}.blocks.{m[2]}.branch.conv{m[3]}."),
    (r"^layer(\d)\.(\d+)\.bn(\d)\.", lambda m: f"stages.{int(m[1]) - 1}.blocks.{m[2]}.branch.norm{m[3]}."),
    (r"^layer(\d)\.(\d+)\.downsample\.0\.", lambda m: f"stages.{int(m[1]) - 1}.blocks.{m[2]}.shortcut.conv1."),
    (r"^layer(\d)\.(\d+)\.downsample\.1\.", lambda m: f"stages.{int(m[1]) - 1}.blocks.{m[2]}.shortcut.norm1."),
    (r"^fc\.", "head.fc."),
]

CONVNEXT = [
    (r"^stem\.0\.", "stem.conv1."),
    (r"^stem\.1\.", "stem.norm1."),
    (r"^stages\.(\d)\.downsample\.0\.", r"stages.\1.downsample.norm0."),
    (r"^stages\.(\d)\.downsample\.1\.", r"stages.\1.downsample.conv1."),
    (r"^stages\.(\d)\.blocks\.(\d+)\.conv_dw\.", r"stages.\1.blocks.\2.branch.conv1."),
    (r"^stages\.(\d)\.blocks\.(\d+)\.norm\.", r"stages.\1.blocks.\2.branch.norm1."),
    (r"^stages\.(\d)\.blocks\.(\d+)\.mlp\.fc1\.", r"stages.\1.blocks.\2.branch.conv2."),
    (r"^stages\.(\d)\.blocks\.(\d+)\.mlp\.fc2\.", r"stages.\1.blocks.\2.branch.conv3."),
    (r"^stages\.(\d)\.blocks\.(\d+)\.gamma$", r"stages.\1.blocks.\2.gamma"),
    (r"^head\.norm\.", "head.norm."),
    (r"^head\.fc\.", "head.fc."),
]


def map_key(key: str, table) -> str:
    for pattern, repl in table:
        new, n = re.subn(pattern, repl, key)
        if n:
            return new
    raise KeyError(f"no mapping for timm key {key!r}")


def convert(timm_state: dict, table) -> dict:
    return {map_key(k, table): v for k, v in timm_state.items()}
