"""Datasets for proxy training, one module per source.

`load_dataset(name, data_dir, ...)` is the entry point: `synthetic` (built in, needs no
files), `idx`, `cifar10`, `cifar100` and `imagefolder`. Every file read here may come from a
stranger (a downloaded archive, a shared folder), so parsers validate sizes before
allocating, pickles go through an unpickler that can only build numpy arrays, caches are
written in formats that cannot carry code, and image folders do not follow symlinks out of
themselves. Problems are ValueErrors naming the path and what to do, so the CLI can print
them as one line.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from .cache import CACHE_ENV_VAR, default_cache_dir
from .cifar import _load_cifar
from .dataset import _MAX_SIDE, Dataset, _require_data_dir, to_resolution
from .idx import _load_idx
from .imagefolder import IMAGE_EXTENSIONS, _load_imagefolder
from .synthetic import (
    _SYNTHETIC_DEFAULT_TRAIN,
    _SYNTHETIC_DEFAULT_VAL,
    GENERATOR_VERSION,
    SYNTHETIC_CLASS_NAMES,
    generate_synthetic,
)

__all__ = [
    "CACHE_ENV_VAR",
    "DATASETS",
    "GENERATOR_VERSION",
    "IMAGE_EXTENSIONS",
    "SYNTHETIC_CLASS_NAMES",
    "Dataset",
    "default_cache_dir",
    "generate_synthetic",
    "load_dataset",
    "to_resolution",
]

DATASETS: tuple[str, ...] = ("synthetic", "idx", "cifar10", "cifar100", "imagefolder")

# --------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    *,
    resolution: int | None = None,
    cache_dir: str | Path | None = None,
    seed: int = 0,
    n_train: int | None = None,
    n_val: int | None = None,
    val_fraction: float = 0.1,
    use_cache: bool = True,
) -> Dataset:
    """Load a dataset by name.

    ``resolution``: for ``synthetic`` and ``imagefolder`` the size images are
    made at (default 32); for ``idx`` and the CIFARs, when given, images are
    brought to it with :func:`to_resolution`.

    ``n_train`` / ``n_val``: for ``synthetic`` how many images to generate
    (default 16,000 / 4,000); for the others a seeded class-balanced subset.

    ``seed`` drives the synthetic generator, the split of an unsplit image
    folder and subsetting. ``val_fraction`` is the validation share of an
    unsplit image folder. ``cache_dir`` (default ``$NAS_CONVNEXT_CACHE`` or
    ``~/.cache/nas-convnext``) holds generated/decoded tensors;
    ``use_cache=False`` neither reads nor writes it.
    """
    _check_arguments(name, seed, resolution)
    if name == "synthetic":
        if data_dir is not None:
            warnings.warn("dataset 'synthetic' is generated; the data directory is ignored", stacklevel=2)
        return generate_synthetic(
            n_train=_SYNTHETIC_DEFAULT_TRAIN if n_train is None else n_train,
            n_val=_SYNTHETIC_DEFAULT_VAL if n_val is None else n_val,
            resolution=32 if resolution is None else resolution,
            seed=seed,
            cache_dir=cache_dir,
            use_cache=use_cache,
        )

    root = _require_data_dir(name, data_dir)
    if name == "idx":
        ds = _load_idx(root)
    elif name in ("cifar10", "cifar100"):
        ds = _load_cifar(name, root)
    else:
        ds = _load_imagefolder(
            root,
            resolution=32 if resolution is None else resolution,
            seed=seed,
            val_fraction=val_fraction,
            cache_dir=cache_dir,
            use_cache=use_cache,
        )
    if resolution is not None and ds.resolution != resolution:
        ds = Dataset(
            name=ds.name,
            train_x=to_resolution(ds.train_x, resolution),
            train_y=ds.train_y,
            val_x=to_resolution(ds.val_x, resolution),
            val_y=ds.val_y,
            num_classes=ds.num_classes,
        )
    if n_train is not None or n_val is not None:
        ds = ds.subset(
            int(ds.train_y.shape[0]) if n_train is None else n_train,
            n_val,
            seed,
        )
    return ds


def _check_arguments(name: str, seed: int, resolution: int | None) -> None:
    if name not in DATASETS:
        hint = ""
        if isinstance(name, str) and name.lower().replace("-", "").replace("_", "") in (
            "mnist", "fashionmnist", "kmnist", "emnist"
        ):
            hint = " (MNIST-style files load with dataset 'idx')"
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}{hint}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if resolution is not None and (
        isinstance(resolution, bool) or not isinstance(resolution, int) or not 1 <= resolution <= _MAX_SIDE
    ):
        raise ValueError(f"resolution must be an integer between 1 and {_MAX_SIDE}, got {resolution!r}")
