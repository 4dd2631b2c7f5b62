"""The in-memory dataset every proxy trains on, and the limits every loader checks.

Every dataset is loaded fully into memory as uint8 tensors with a fixed train/validation
split, because proxy runs are short and many: decoding or augmenting from disk on every epoch
would dominate their cost on a CPU box, and a fixed split keeps scores comparable across the
designs a search compares. The loaders (one module per source) validate the sizes a file
declares against `data_memory_limit` before they allocate anything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ...memory import available_bytes, format_bytes

# Largest image count / side accepted from a file header: far above any real
# proxy dataset, low enough that a lying header cannot make us allocate wildly.
_MAX_ITEMS = 50_000_000
_MAX_SIDE = 4_096
_MAX_PIXELS_TOTAL = 1 << 32
# Pixels one image may decode to: PIL's default MAX_IMAGE_PIXELS (a 24-bit image of 256 MiB).
_MAX_IMAGE_PIXELS = 89_478_485



# --------------------------------------------------------------------------
# Dataset container
# --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Dataset:
    """An in-memory dataset with a fixed split.

    ``eq=False`` keeps identity semantics: comparing tensors element-wise in
    ``__eq__`` would be slow and ambiguous, and identity hashing lets callers
    memoise per dataset.
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    num_classes: int

    def __post_init__(self) -> None:
        # Validate once here so every producer (and every test double) is held
        # to the contract that training code relies on without re-checking.
        for split, x, y in (("train", self.train_x, self.train_y), ("val", self.val_x, self.val_y)):
            if x.dtype != torch.uint8 or x.dim() != 4 or x.shape[1] not in (1, 3):
                raise ValueError(
                    f"dataset {self.name!r}: {split}_x must be uint8 (N, C, H, W) with C in (1, 3), "
                    f"got {x.dtype} {tuple(x.shape)}"
                )
            if y.dtype != torch.int64 or y.dim() != 1 or y.shape[0] != x.shape[0]:
                raise ValueError(
                    f"dataset {self.name!r}: {split}_y must be int64 (N,) matching {split}_x, "
                    f"got {y.dtype} {tuple(y.shape)} for {x.shape[0]} images"
                )
            if y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
                raise ValueError(
                    f"dataset {self.name!r}: {split} labels must lie in [0, {self.num_classes}), "
                    f"got [{int(y.min())}, {int(y.max())}]"
                )
        if self.train_x.shape[1:] != self.val_x.shape[1:]:
            raise ValueError(
                f"dataset {self.name!r}: train images {tuple(self.train_x.shape[1:])} and "
                f"val images {tuple(self.val_x.shape[1:])} differ in shape"
            )

    @property
    def channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def resolution(self) -> int:
        return int(self.train_x.shape[-1])

    def __repr__(self) -> str:
        # The default repr would print tensor contents; a summary is what
        # anyone reading a log wants.
        return (
            f"Dataset(name={self.name!r}, train={tuple(self.train_x.shape)}, "
            f"val={tuple(self.val_x.shape)}, num_classes={self.num_classes})"
        )

    def subset(self, n_train: int, n_val: int | None = None, seed: int = 0) -> Dataset:
        """A fixed, class-balanced subset, so small proxies see every class.

        The same ``seed`` always picks the same images, and a larger subset
        contains every image of a smaller one with the same seed, which keeps
        proxy scores at different budgets comparable.
        """
        n_val = int(self.val_y.shape[0]) if n_val is None else n_val
        train_idx = balanced_indices(self.train_y, n_train, self.num_classes, seed, "train", self.name)
        val_idx = balanced_indices(self.val_y, n_val, self.num_classes, seed + 1, "val", self.name)
        return Dataset(
            name=self.name,
            train_x=self.train_x[train_idx].contiguous(),
            train_y=self.train_y[train_idx].contiguous(),
            val_x=self.val_x[val_idx].contiguous(),
            val_y=self.val_y[val_idx].contiguous(),
            num_classes=self.num_classes,
        )


def balanced_indices(
    y: torch.Tensor, n: int, num_classes: int, seed: int, split: str, name: str
) -> torch.Tensor:
    """`n` sorted positions into the labels `y`, classes dealt out round-robin in a seeded
    order, so any `n` is as balanced as it can be; `split` and `name` only word the errors."""
    total = int(y.shape[0])
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"dataset {name!r}: subset size for {split} must be a non-negative integer, got {n!r}")
    if n > total:
        raise ValueError(
            f"dataset {name!r}: asked for {n} {split} images but it only has {total}; "
            f"use at most {total}"
        )
    gen = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(total, generator=gen)
    y_perm = y[perm]
    # Rank of each (shuffled) image within its class; taking the lowest ranks
    # first deals classes out round-robin.
    order = torch.argsort(y_perm, stable=True)
    counts = torch.bincount(y_perm, minlength=num_classes)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty(total, dtype=torch.int64)
    rank[order] = torch.arange(total) - starts[y_perm[order]]
    class_order = torch.randperm(num_classes, generator=gen)
    key = rank * num_classes + class_order[y_perm]
    chosen = perm[torch.argsort(key)[:n]]
    return torch.sort(chosen).values


# --------------------------------------------------------------------------
# Resolution helper
# --------------------------------------------------------------------------


def to_resolution(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """Bring images to ``resolution`` x ``resolution`` without distorting them.

    Smaller images are zero-padded in the centre rather than upscaled, so a
    28x28 digit keeps its pixels exactly; larger ones are downscaled with an
    antialiased bilinear filter (longer side to ``resolution``) and then padded
    if not square. The dtype is kept, so uint8 stays uint8.
    """
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise ValueError(f"resolution must be a positive integer, got {resolution!r}")
    squeeze = x.dim() == 3
    if squeeze:
        x = x.unsqueeze(0)
    if x.dim() != 4:
        raise ValueError(f"to_resolution expects (N, C, H, W) or (C, H, W) images, got shape {tuple(x.shape)}")
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if max(h, w) > resolution:
        scale = resolution / max(h, w)
        new_h = max(1, min(resolution, round(h * scale)))
        new_w = max(1, min(resolution, round(w * scale)))
        x = _resize(x, new_h, new_w)
        h, w = new_h, new_w
    if h < resolution or w < resolution:
        top = (resolution - h) // 2
        left = (resolution - w) // 2
        x = F.pad(x, (left, resolution - w - left, top, resolution - h - top))
    return x.squeeze(0) if squeeze else x


def _resize(x: torch.Tensor, h: int, w: int, chunk: int = 2_048) -> torch.Tensor:
    # Chunked so that resizing a whole dataset does not need a float copy of it.
    out = torch.empty((x.shape[0], x.shape[1], h, w), dtype=x.dtype)
    for i in range(0, x.shape[0], chunk):
        part = x[i : i + chunk].float()
        part = F.interpolate(part, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
        if x.dtype == torch.uint8:
            part = part.round_().clamp_(0, 255)
        out[i : i + chunk] = part.to(x.dtype)
    return out



def data_memory_limit() -> int:
    """Bytes a dataset may take in memory: half of what this process may still allocate.

    Every dataset is held in memory whole (see the module docstring); the other half is left
    for the proxy's subset at its resolution, the model, its optimizer and activations.
    """

    return available_bytes() // 2


def _too_big(path: Path, what: str, size: int, total: int, limit: int) -> ValueError:

    together = ("" if total <= size or format_bytes(total) == format_bytes(size)
                else f"; {format_bytes(total)} with the dataset's other files")
    return ValueError(
        f"{str(path)!r} {what} ({format_bytes(size)}{together}), more than the "
        f"{format_bytes(limit)} a dataset may take in memory here (half of what this process may "
        "still allocate); refused before reading it: use a smaller dataset or a machine with "
        "more memory"
    )


def _check_fits(declared: dict[str, tuple[Path, tuple[int, ...]]]) -> None:
    """Refuse, before reading, IDX files whose declared sizes together exceed the memory limit."""
    sizes = {key: math.prod(dims) for key, (_, dims) in declared.items()}
    total, limit = sum(sizes.values()), data_memory_limit()
    if total > limit:
        key = max(sizes, key=sizes.__getitem__)
        path, dims = declared[key]
        raise _too_big(path, f"declares shape {dims}", sizes[key], total, limit)


def _require_data_dir(name: str, data_dir: str | Path | None) -> Path:
    if data_dir is None or str(data_dir) == "":
        raise ValueError(f"--data-dir is required for dataset {name!r}")
    root = Path(data_dir).expanduser()
    if not root.exists():
        raise ValueError(f"data directory {str(root)!r} for dataset {name!r} does not exist")
    if not root.is_dir():
        raise ValueError(f"data directory {str(root)!r} for dataset {name!r} is not a directory")
    return root
