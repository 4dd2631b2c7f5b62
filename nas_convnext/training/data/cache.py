"""The dataset cache: generated or decoded tensors, kept between runs in safe formats.

A cache file is a torch.save archive of plain tensors, read with weights_only=True and
checked before loading (no compressed entries, no more than memory allows), so a file
swapped into a shared cache folder can cost a rebuild, never run code or take the memory.
Files are written with the package's one atomic write.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable

import torch

from ...memory import format_bytes
from ...results import atomic_write
from . import dataset  # dataset.data_memory_limit: looked up when called
from .dataset import Dataset

CACHE_ENV_VAR = "NAS_CONVNEXT_CACHE"

# --------------------------------------------------------------------------
# Cache (safe formats only, atomic writes)
# --------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """``$NAS_CONVNEXT_CACHE`` if set, else ``~/.cache/nas-convnext``."""
    env = os.environ.get(CACHE_ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "nas-convnext"


def _cache_key(settings: dict[str, Any]) -> str:
    blob = json.dumps(settings, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


_TENSOR_KEYS = ("train_x", "train_y", "val_x", "val_y")


def _read_cache(path: Path, name: str) -> Dataset | None:
    """The cached dataset, or ``None`` if absent or unusable (it is then rebuilt)."""
    if not path.is_file():
        return None
    try:
        _check_cache_archive(path)
        # weights_only=True: the file can only hold tensors and plain
        # containers, never code, even if someone swapped it.
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(blob, dict) or any(not isinstance(blob.get(k), torch.Tensor) for k in _TENSOR_KEYS):
            raise ValueError("unexpected contents")
        num_classes = blob.get("num_classes")
        if isinstance(num_classes, torch.Tensor):
            num_classes = int(num_classes)
        if not isinstance(num_classes, int):
            raise ValueError("missing num_classes")
        return Dataset(name=name, num_classes=num_classes, **{k: blob[k] for k in _TENSOR_KEYS})
    except Exception as exc:  # any failure means: rebuild it
        warnings.warn(f"ignoring unreadable cache file {str(path)!r} ({exc}); rebuilding it", stacklevel=3)
        return None


def _check_cache_archive(path: Path) -> None:
    """Refuse a cache file that could inflate: compressed entries, or more than memory allows.

    torch.save writes a zip archive of stored (uncompressed) entries; torch.load also reads
    deflated ones, so a few megabytes swapped into a shared cache folder could declare
    gigabytes. The archive's directory is read, never its contents.
    """

    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ValueError(f"not a torch.save archive: {exc}") from None
    if any(e.compress_type != zipfile.ZIP_STORED for e in entries):
        raise ValueError("it has compressed entries, which nas-convnext never writes")
    total, limit = sum(e.file_size for e in entries), dataset.data_memory_limit()
    if total > limit:
        raise ValueError(f"it declares {format_bytes(total)}, more than the "
                         f"{format_bytes(limit)} a dataset may take in memory here")


def _write_cache(path: Path, ds: Dataset) -> None:
    # processes see no file or a whole one; a link or a device in the cache folder is refused)

    blob = {k: getattr(ds, k).contiguous() for k in _TENSOR_KEYS}
    blob["num_classes"] = torch.tensor(ds.num_classes, dtype=torch.int64)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda fh: torch.save(blob, fh))
    except OSError as exc:
        # A read-only or full disk should cost speed next time, not this run.
        warnings.warn(f"could not write cache file {str(path)!r} ({exc.strerror or exc}); "
                      "continuing without it", stacklevel=3)


def _cached(
    name: str,
    settings: dict[str, Any],
    build: Callable[[], Dataset],
    cache_dir: str | Path | None,
    use_cache: bool,
) -> Dataset:
    if not use_cache:
        return build()
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    path = folder / f"{name}-{_cache_key(settings)}.pt"
    ds = _read_cache(path, name)
    if ds is None:
        ds = build()
        _write_cache(path, ds)
    return ds
