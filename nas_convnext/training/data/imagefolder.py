"""Image folders: `<class>/<images>`, or `train/<class>/...` and `val/<class>/...`.

Images are decoded once at the proxy's resolution (shorter side resized, centre crop) and
cached; symlinks that point out of the folder are not followed.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from . import dataset  # dataset.data_memory_limit: looked up when called
from .cache import _cached
from .dataset import (
    _MAX_IMAGE_PIXELS,
    Dataset,
    _too_big,
)

#: Bump when the image-folder decoding (resize, crop, split) changes.
IMAGEFOLDER_CACHE_VERSION = 1

IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm",
)


# --------------------------------------------------------------------------
# Image folders
# --------------------------------------------------------------------------


def _is_within(child: str, parent: str) -> bool:
    try:
        return os.path.commonpath([child, parent]) == parent
    except ValueError:  # different drives on Windows
        return False


def _scan_class(
    class_dir: Path, root_real: str, skipped: list[str]
) -> list[Path]:
    """Image files under one class folder, not leaving ``root_real``."""
    found: list[Path] = []
    visited: set[str] = set()
    stack = [class_dir]
    while stack:
        folder = stack.pop()
        real = os.path.realpath(folder)
        if real in visited:
            continue
        visited.add(real)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            raise ValueError(f"cannot list image folder {str(folder)!r}: {exc}") from exc
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            if entry.is_symlink():
                target = os.path.realpath(path)
                if not _is_within(target, root_real):
                    skipped.append(str(path))
                    continue
            if entry.is_dir():  # follows in-tree symlinks; loops stop at `visited`
                stack.append(path)
            elif entry.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
                found.append(path)
    return sorted(found)


def _class_dirs(split_dir: Path, root_real: str, skipped: list[str]) -> dict[str, Path]:
    dirs: dict[str, Path] = {}
    for entry in sorted(os.scandir(split_dir), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        if entry.is_symlink() and not _is_within(os.path.realpath(path), root_real):
            skipped.append(str(path))
            continue
        if entry.is_dir():
            dirs[entry.name] = path
    return dirs


def _scan_split(
    split_dir: Path, root_real: str, skipped: list[str], classes: list[str] | None = None
) -> dict[str, list[Path]]:
    if not _is_within(os.path.realpath(split_dir), root_real):
        raise ValueError(
            f"{str(split_dir)!r} is a symlink pointing outside the data folder; symlinks out of "
            "--data-dir are not followed, so point --data-dir at the real folder"
        )
    dirs = _class_dirs(split_dir, root_real, skipped)
    if classes is None:
        if not dirs:
            raise ValueError(
                f"image folder {str(split_dir)!r} has no class subfolders; expected "
                "<class>/<image files> (optionally under train/ and val/)"
            )
    else:
        unknown = sorted(set(dirs) - set(classes))
        if unknown:
            raise ValueError(
                f"image folder {str(split_dir)!r} has classes {unknown} that the train folder lacks"
            )
    out: dict[str, list[Path]] = {}
    for name, folder in dirs.items():
        before = len(skipped)
        files = _scan_class(folder, root_real, skipped)
        if not files:
            why = (
                " (its only images were symlinks pointing outside the data folder, which are not followed)"
                if len(skipped) > before
                else f" (looked for {', '.join(IMAGE_EXTENSIONS)})"
            )
            raise ValueError(f"class folder {str(folder)!r} contains no images{why}")
        out[name] = files
    return out


def _decode_image(path: Path, resolution: int) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - PIL comes with torchvision
        raise ValueError("dataset 'imagefolder' needs Pillow (pip install pillow)") from exc
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # palette/transparency chatter
            with Image.open(path) as img:
                # JPEG decoders can downscale by 1/2..1/8 while decoding,
                # which is much cheaper than decoding full size.
                img.draft("RGB", (resolution, resolution))
                _check_pixels(path, img.size)  # what will be decoded, before decoding it
                img = img.convert("RGB")
                w, h = img.size
                scale = resolution / min(w, h)
                new_w, new_h = max(resolution, round(w * scale)), max(resolution, round(h * scale))
                img = img.resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=3.0)
                left, top = (new_w - resolution) // 2, (new_h - resolution) // 2
                img = img.crop((left, top, left + resolution, top + resolution))
                arr = np.asarray(img, dtype=np.uint8)
    except _ImageTooLarge:
        raise
    except Exception as exc:
        raise ValueError(f"cannot read image {str(path)!r}: {type(exc).__name__}: {exc}") from exc
    return arr.transpose(2, 0, 1)


class _ImageTooLarge(ValueError):
    pass


def _check_pixels(path: Path, size: tuple[int, int]) -> None:
    """Refuse an image whose header declares more pixels than one image may decode to.

    PIL only warns between its MAX_IMAGE_PIXELS and twice that, and warnings are silenced
    around decoding, so a small PNG declaring 100 megapixels would be inflated in full. The
    limit is PIL's own (about 89 MP, lower if the caller lowered it); PIL's global setting
    is read, never changed.
    """
    from PIL import Image

    limit = min(v for v in (Image.MAX_IMAGE_PIXELS, _MAX_IMAGE_PIXELS) if v)
    w, h = size
    if w * h > limit:
        raise _ImageTooLarge(
            f"image {str(path)!r} declares {w}x{h} pixels ({w * h / 1e6:.0f} MP), more than the "
            f"{limit / 1e6:.0f} MP one image may decode to (a decompression bomb, or a photo far "
            "larger than a proxy needs): shrink or remove it"
        )


def _stack(items: list[tuple[Path, int]], resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.empty((len(items), 3, resolution, resolution), dtype=torch.uint8)
    for i, (path, _) in enumerate(items):
        x[i] = torch.from_numpy(np.ascontiguousarray(_decode_image(path, resolution)))
    y = torch.tensor([label for _, label in items], dtype=torch.int64)
    return x, y


def _split(root: Path, root_real: str, skipped: list[str], seed: int, val_fraction: float
           ) -> tuple[list[tuple[Path, int]], list[tuple[Path, int]], list[str], str]:
    """(training items, validation items, classes, how they were split) of an image folder:
    its train/ and val/ folders, or a seeded, stratified split of its classes."""
    train_dir = root / "train"
    val_dir = next((root / n for n in ("val", "validation") if (root / n).is_dir()), None)
    if train_dir.is_dir() and val_dir is not None:
        train_files = _scan_split(train_dir, root_real, skipped)
        classes = sorted(train_files)
        val_files = _scan_split(val_dir, root_real, skipped, classes)
        index = {c: i for i, c in enumerate(classes)}
        train_items = [(p, index[c]) for c in classes for p in train_files[c]]
        val_items = [(p, index[c]) for c in classes for p in val_files.get(c, [])]
        split_desc = "given"
    else:
        if train_dir.is_dir():
            warnings.warn(
                f"image folder {str(root)!r} has train/ but no val/; splitting train/ with seed {seed}",
                stacklevel=4,
            )
            root_for_split = train_dir
        else:
            root_for_split = root
        files = _scan_split(root_for_split, root_real, skipped)
        classes = sorted(files)
        rng = np.random.default_rng(np.random.SeedSequence([seed & 0xFFFFFFFFFFFFFFFF, 7]))
        train_items, val_items = [], []
        for label, c in enumerate(classes):
            paths = files[c]
            order = rng.permutation(len(paths))
            # Stratified: every class with 2+ images gets at least one val image.
            n_val = min(len(paths) - 1, max(1 if len(paths) >= 2 else 0, round(len(paths) * val_fraction)))
            val_set = set(order[:n_val].tolist())
            for i, p in enumerate(paths):
                (val_items if i in val_set else train_items).append((p, label))
        split_desc = f"seed={seed},fraction={val_fraction}"
    return train_items, val_items, classes, split_desc


def _load_imagefolder(
    root: Path,
    *,
    resolution: int,
    seed: int,
    val_fraction: float,
    cache_dir: str | Path | None,
    use_cache: bool,
) -> Dataset:
    if not isinstance(val_fraction, (int, float)) or isinstance(val_fraction, bool) or not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be a number strictly between 0 and 1, got {val_fraction!r}")
    root_real = os.path.realpath(root)
    skipped: list[str] = []
    train_items, val_items, classes, split_desc = _split(root, root_real, skipped, seed,
                                                         val_fraction)
    for split, items in (("training", train_items), ("validation", val_items)):
        if not items:
            raise ValueError(
                f"image folder {str(root)!r} gives an empty {split} split; add images (at least two "
                "per class when there is no val/ folder) or a val/ folder with images"
            )
    if skipped:
        shown = ", ".join(repr(s) for s in skipped[:5]) + (" ..." if len(skipped) > 5 else "")
        warnings.warn(
            f"skipped {len(skipped)} symlink(s) pointing outside {str(root)!r}: {shown}",
            stacklevel=3,
        )

    def fingerprint(items: Iterable[tuple[Path, int]]) -> list[Any]:
        out = []
        for path, label in items:
            st = path.stat()
            out.append([os.path.relpath(path, root), label, st.st_size, st.st_mtime_ns])
        return out

    settings = {
        "version": IMAGEFOLDER_CACHE_VERSION,
        "root": root_real,
        "resolution": resolution,
        "split": split_desc,
        "classes": classes,
        "files": hashlib.sha256(
            json.dumps([fingerprint(train_items), fingerprint(val_items)]).encode()
        ).hexdigest(),
    }

    def build() -> Dataset:
        n, limit = len(train_items) + len(val_items), dataset.data_memory_limit()
        if n * 3 * resolution * resolution > limit:
            raise _too_big(root, f"has {n:,} images, at {resolution}x{resolution} pixels",
                           n * 3 * resolution * resolution, 0, limit)
        train_x, train_y = _stack(train_items, resolution)
        val_x, val_y = _stack(val_items, resolution)
        return Dataset("imagefolder", train_x, train_y, val_x, val_y, len(classes))

    return _cached("imagefolder", settings, build, cache_dir, use_cache)
