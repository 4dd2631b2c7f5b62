"""MNIST-style IDX files (MNIST, Fashion-MNIST, ...), gzip or plain.

Headers are read first and the declared sizes checked against the memory limit before any
body is read, so a small gzip file that declares gigabytes is refused, not inflated.
"""

from __future__ import annotations

import contextlib
import gzip
import math
import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from .dataset import _MAX_ITEMS, _MAX_PIXELS_TOTAL, _MAX_SIDE, Dataset, _check_fits

# --------------------------------------------------------------------------
# IDX (MNIST / Fashion-MNIST)
# --------------------------------------------------------------------------

_IDX_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "val_x": "t10k-images-idx3-ubyte",
    "val_y": "t10k-labels-idx1-ubyte",
}


def _find_idx_file(root: Path, base: str) -> Path:
    for candidate in (root / base, root / (base + ".gz")):
        if candidate.is_file():
            return candidate
    expected = ", ".join(f"{b} (or {b}.gz)" for b in _IDX_FILES.values())
    raise ValueError(
        f"dataset 'idx': missing {base} (or {base}.gz) in {str(root)!r}; the folder must hold {expected}"
    )


def _read_exactly(fh: BinaryIO, n: int, path: Path, what: str) -> bytes:
    """`n` bytes of a (small) header, or a ValueError saying the file is short or corrupt."""
    try:
        data = fh.read(n)
    except (EOFError, OSError, zlib.error) as exc:
        raise ValueError(f"{str(path)!r} is truncated or corrupt while reading {what}: {exc}") from exc
    if len(data) < n:
        raise ValueError(
            f"{str(path)!r} is truncated: its header promises {n} bytes of {what} but only "
            f"{len(data)} are there; re-download the file"
        )
    return data


def _open_idx(path: Path) -> BinaryIO:
    try:
        return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")  # type: ignore[return-value]
    except OSError as exc:
        raise ValueError(f"cannot open {str(path)!r}: {exc}") from exc


def _idx_header(fh: BinaryIO, path: Path, expected_ndim: int) -> tuple[int, ...]:
    """The dimensions an IDX file declares, checked for sense; the data is not read yet."""
    head = _read_exactly(fh, 4, path, "the header")
    zero, dtype_code, ndim = struct.unpack(">HBB", head)
    if zero != 0 or dtype_code != 0x08 or ndim != expected_ndim:
        magic = struct.unpack(">I", head)[0]
        raise ValueError(
            f"{str(path)!r} is not an IDX file of unsigned bytes with {expected_ndim} dimension(s): "
            f"magic number 0x{magic:08x}, expected 0x{0x0800 + expected_ndim:08x}"
        )
    dims = struct.unpack(f">{ndim}I", _read_exactly(fh, 4 * ndim, path, "the header"))
    if dims[0] < 1 or dims[0] > _MAX_ITEMS or any(d < 1 or d > _MAX_SIDE for d in dims[1:]):
        raise ValueError(f"{str(path)!r} declares implausible dimensions {dims}")
    size = math.prod(dims)
    if size > _MAX_PIXELS_TOTAL:
        raise ValueError(f"{str(path)!r} declares {size} bytes of data, more than this tool will load")
    header_len = 4 + 4 * ndim
    if path.suffix != ".gz":
        actual = os.fstat(fh.fileno()).st_size
        if actual != header_len + size:
            problem = "truncated" if actual < header_len + size else "longer than its header says"
            raise ValueError(
                f"{str(path)!r} is {problem}: header promises {header_len + size} bytes "
                f"(dimensions {dims}), file has {actual}; re-download the file"
            )
    return dims


def _idx_body(fh: BinaryIO, path: Path, dims: tuple[int, ...]) -> np.ndarray:
    """The data after the header, read into one array allocated once at its declared size.

    Growing a buffer chunk by chunk keeps several copies alive at its end; a gzip file can
    declare and inflate to gigabytes from a few megabytes, so the size is checked against
    memory before this is called (`_check_fits`) and nothing here grows.
    """
    size = math.prod(dims)
    out = np.empty(size, dtype=np.uint8)
    view = memoryview(out)
    pos = 0
    while pos < size:
        try:
            n = fh.readinto(view[pos : pos + (1 << 24)])
        except (EOFError, OSError, zlib.error) as exc:
            raise ValueError(f"{str(path)!r} is truncated or corrupt while reading the data: {exc}") from exc
        if not n:
            raise ValueError(
                f"{str(path)!r} is truncated: its header promises {size} bytes of the data but only "
                f"{pos} are there; re-download the file"
            )
        pos += n
    try:
        extra = fh.read(1)
    except (EOFError, OSError, zlib.error) as exc:
        raise ValueError(f"{str(path)!r} is corrupt after its data: {exc}") from exc
    if extra:
        raise ValueError(
            f"{str(path)!r} is longer than its header says (dimensions {dims}); the file is damaged"
        )
    return out.reshape(dims)




def _load_idx(root: Path) -> Dataset:
    paths = {key: _find_idx_file(root, base) for key, base in _IDX_FILES.items()}
    with contextlib.ExitStack() as stack:
        handles = {key: stack.enter_context(_open_idx(path)) for key, path in paths.items()}
        dims = {
            key: _idx_header(handles[key], paths[key], 3 if key.endswith("_x") else 1)
            for key in paths
        }
        for split in ("train", "val"):
            n_img, n_lab = dims[f"{split}_x"][0], dims[f"{split}_y"][0]
            if n_img != n_lab:
                raise ValueError(
                    f"dataset 'idx': {paths[f'{split}_y'].name} has {n_lab} labels but "
                    f"{paths[f'{split}_x'].name} has {n_img} images (in {str(root)!r}); the files do not belong together"
                )
        if dims["train_x"][1:] != dims["val_x"][1:]:
            raise ValueError(
                f"dataset 'idx': {paths['train_x'].name} has images of {dims['train_x'][1:]} but "
                f"{paths['val_x'].name} has {dims['val_x'][1:]}"
            )
        _check_fits({key: (paths[key], dims[key]) for key in paths})
        arrays = {key: _idx_body(handles[key], paths[key], dims[key]) for key in paths}
    num_classes = _check_idx_labels(arrays["train_y"], arrays["val_y"], paths["train_y"], paths["val_y"])
    return Dataset(
        name="idx",
        train_x=torch.from_numpy(arrays["train_x"]).unsqueeze(1),
        train_y=torch.from_numpy(arrays["train_y"].astype(np.int64)),
        val_x=torch.from_numpy(arrays["val_x"]).unsqueeze(1),
        val_y=torch.from_numpy(arrays["val_y"].astype(np.int64)),
        num_classes=num_classes,
    )


def _check_idx_labels(train_y: np.ndarray, val_y: np.ndarray, train_path: Path, val_path: Path) -> int:
    """The number of classes, K, when the labels are 0..K-1 with every class trained on.

    IDX labels are bare bytes: the class count is only implied by the largest label, so one
    stray label (255 in a 10-class set) would silently train a 256-class head, and a label
    that skips values leaves classes the network can never learn. Both are refused, naming
    the file, the labels found and the gap.
    """
    train_labels = np.unique(train_y)
    unseen = np.setdiff1d(np.unique(val_y), train_labels)
    if unseen.size:
        raise ValueError(
            f"{str(val_path)!r} has label(s) {_ranges(unseen)} that no training image in "
            f"{str(train_path)!r} has (training labels: {_ranges(train_labels)}); a class must "
            "be in the training set to be learned: fix the labels or the files"
        )
    k = int(train_labels[-1]) + 1
    missing = np.setdiff1d(np.arange(k), train_labels)
    if missing.size:
        stray = int(np.count_nonzero(train_y == k - 1))
        raise ValueError(
            f"{str(train_path)!r} has labels {_ranges(train_labels)}: they skip "
            f"{_ranges(missing)}, so a {k}-class network would be trained with "
            f"{missing.size} class(es) that have no image (label {k - 1} is on {stray} "
            f"image(s)); IDX labels must be 0..K-1 with every class present: relabel the "
            "classes or remove the stray images"
        )
    return k


def _ranges(values: np.ndarray, limit: int = 6) -> str:
    """Sorted integers as `0-9, 255`, at most `limit` runs shown."""
    runs: list[str] = []
    vals = [int(v) for v in values]
    start = prev = vals[0]
    for v in vals[1:] + [None]:  # type: ignore[list-item]
        if v is not None and v == prev + 1:
            prev = v
            continue
        runs.append(str(start) if start == prev else f"{start}-{prev}")
        if v is not None:
            start = prev = v
    shown = ", ".join(runs[:limit])
    return shown + (f", ... ({len(runs) - limit} more runs)" if len(runs) > limit else "")
