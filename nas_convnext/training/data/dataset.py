"""Dataset layer for proxy training.

Every dataset is loaded fully into memory as uint8 tensors with a fixed
train/validation split, because proxy runs are short and many: decoding or
augmenting from disk on every epoch would dominate their cost on a CPU box, and
a fixed split keeps scores comparable across the designs a search compares.

All files read here may come from strangers (a downloaded archive, a shared
folder), so parsers validate sizes before allocating, pickles go through an
unpickler that can only build numpy arrays, caches are written in formats that
cannot carry code, and image folders do not follow symlinks out of themselves.
Problems are reported as ``ValueError`` with the offending path and what to do,
so the CLI can print them as one line.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import math
import os
import pickle
import struct
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "DATASETS",
    "GENERATOR_VERSION",
    "IMAGE_EXTENSIONS",
    "SYNTHETIC_CLASS_NAMES",
    "Dataset",
    "default_cache_dir",
    "generate_synthetic",
    "imagefolder_classes",
    "load_dataset",
    "to_resolution",
]

DATASETS: tuple[str, ...] = ("synthetic", "idx", "cifar10", "cifar100", "imagefolder")

#: Bump whenever ``generate_synthetic`` would produce different pixels for the
#: same settings: it is part of the cache key, so stale caches are never reused.
GENERATOR_VERSION = 4

#: Bump when the image-folder decoding (resize, crop, split) changes.
IMAGEFOLDER_CACHE_VERSION = 1

IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm",
)

CACHE_ENV_VAR = "NAS_CONVNEXT_CACHE"

SYNTHETIC_TEXTURES: tuple[str, ...] = ("stripes", "checker", "dots", "speckle")
SYNTHETIC_SHAPES: tuple[str, ...] = ("disk", "square", "ring")
#: Class k is texture ``k // len(SYNTHETIC_SHAPES)`` inside shape ``k % len(SYNTHETIC_SHAPES)``.
SYNTHETIC_CLASS_NAMES: tuple[str, ...] = tuple(
    f"{t}-{s}" for t in SYNTHETIC_TEXTURES for s in SYNTHETIC_SHAPES
)

_SYNTHETIC_DEFAULT_TRAIN = 16_000
_SYNTHETIC_DEFAULT_VAL = 4_000
# Pixels rendered per chunk: bounds memory (about 20 float tensors of this
# size live at once) while keeping the number of chunks small.
_SYNTHETIC_CHUNK_PIXELS = 4_000_000

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
        train_idx = _balanced_indices(self.train_y, n_train, self.num_classes, seed, "train", self.name)
        val_idx = _balanced_indices(self.val_y, n_val, self.num_classes, seed + 1, "val", self.name)
        return Dataset(
            name=self.name,
            train_x=self.train_x[train_idx].contiguous(),
            train_y=self.train_y[train_idx].contiguous(),
            val_x=self.val_x[val_idx].contiguous(),
            val_y=self.val_y[val_idx].contiguous(),
            num_classes=self.num_classes,
        )


def _balanced_indices(
    y: torch.Tensor, n: int, num_classes: int, seed: int, split: str, name: str
) -> torch.Tensor:
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


def _require_data_dir(name: str, data_dir: str | Path | None) -> Path:
    if data_dir is None or str(data_dir) == "":
        raise ValueError(f"--data-dir is required for dataset {name!r}")
    root = Path(data_dir).expanduser()
    if not root.exists():
        raise ValueError(f"data directory {str(root)!r} for dataset {name!r} does not exist")
    if not root.is_dir():
        raise ValueError(f"data directory {str(root)!r} for dataset {name!r} is not a directory")
    return root


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
    from .memory import format_bytes

    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ValueError(f"not a torch.save archive: {exc}") from None
    if any(e.compress_type != zipfile.ZIP_STORED for e in entries):
        raise ValueError("it has compressed entries, which nas-convnext never writes")
    total, limit = sum(e.file_size for e in entries), data_memory_limit()
    if total > limit:
        raise ValueError(f"it declares {format_bytes(total)}, more than the "
                         f"{format_bytes(limit)} a dataset may take in memory here")


def _write_cache(path: Path, ds: Dataset) -> None:
    from .results import atomic_write  # the package's one atomic write (readers in parallel
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


# --------------------------------------------------------------------------
# Synthetic data
# --------------------------------------------------------------------------


def generate_synthetic(
    n_train: int = _SYNTHETIC_DEFAULT_TRAIN,
    n_val: int = _SYNTHETIC_DEFAULT_VAL,
    resolution: int = 32,
    seed: int = 0,
    *,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
) -> Dataset:
    """The built-in dataset: 12 classes = 4 textures x 3 large shapes.

    A class is "texture T inside shape S" (see ``SYNTHETIC_CLASS_NAMES``), so a
    network must resolve fine detail *and* see a region about two thirds of
    the image wide; neither a tiny receptive field nor global colour
    statistics suffice. Per image, colours, texture period/orientation/phase,
    shape position/size/rotation, a faint distractor texture in the
    background, a lighting gradient, contrast and noise are random. Shape
    areas are matched so pixel counts do not give the shape away. Everything
    is in units of a 32-pixel image, so 64x64 data shows the same scene at
    twice the detail.

    Train and validation images come from separate streams derived from
    ``seed``, so the validation set does not change with ``n_train``.
    """
    for label, value in (("n_train", n_train), ("n_val", n_val)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_ITEMS:
            raise ValueError(f"synthetic {label} must be an integer between 0 and {_MAX_ITEMS}, got {value!r}")
    if n_train < len(SYNTHETIC_CLASS_NAMES):
        raise ValueError(
            f"synthetic n_train must be at least {len(SYNTHETIC_CLASS_NAMES)} (one per class), got {n_train}"
        )
    if isinstance(resolution, bool) or not isinstance(resolution, int) or not 16 <= resolution <= 512:
        raise ValueError(f"synthetic resolution must be an integer between 16 and 512, got {resolution!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    settings = {
        "generator_version": GENERATOR_VERSION,
        "n_train": n_train,
        "n_val": n_val,
        "resolution": resolution,
        "seed": seed,
        "chunk_pixels": _SYNTHETIC_CHUNK_PIXELS,
    }

    def build() -> Dataset:
        with _single_threaded():
            train_x, train_y = _synthetic_split(n_train, resolution, _split_seed(seed, 0))
            val_x, val_y = _synthetic_split(n_val, resolution, _split_seed(seed, 1))
        return Dataset("synthetic", train_x, train_y, val_x, val_y, len(SYNTHETIC_CLASS_NAMES))

    return _cached("synthetic", settings, build, cache_dir, use_cache)


@contextlib.contextmanager
def _single_threaded() -> Iterator[None]:
    """Run torch ops on one thread, then restore the previous setting.

    Rendering is memory-bound elementwise work, so a second thread gains
    little, while on a shared, busy machine OpenMP threads spin-waiting at
    every op's barrier were measured to cost 8x the CPU time (1.2 s -> 10 s
    for the default dataset on 2 cores).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _split_seed(seed: int, split: int) -> int:
    # SeedSequence mixes (seed, split) well, so neighbouring seeds give
    # unrelated streams and negative seeds are fine.
    return int(np.random.SeedSequence([seed & 0xFFFFFFFFFFFFFFFF, split]).generate_state(1, dtype=np.uint64)[0] >> 1)


def _synthetic_split(n: int, resolution: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    # Two streams: per-image scene parameters, all drawn up front (so one seed
    # shows the same scenes at 32 and 64 pixels, whatever the chunking), and
    # per-pixel noise drawn chunk by chunk.
    scene_gen = torch.Generator().manual_seed(seed)
    pixel_gen = torch.Generator().manual_seed(seed ^ 0x5DEECE66D)
    k = len(SYNTHETIC_CLASS_NAMES)
    # Exactly balanced labels (counts differ by at most one), in random order.
    labels = (torch.arange(n) % k)[torch.randperm(n, generator=scene_gen)]
    scene = _draw_scene(labels, scene_gen)
    images = torch.empty((n, 3, resolution, resolution), dtype=torch.uint8)
    # Large chunks mean few parallel regions (each a thread barrier, which is
    # slow on a busy machine); the pixel budget bounds memory at 64x64.
    chunk = max(64, _SYNTHETIC_CHUNK_PIXELS // (resolution * resolution))
    for start in range(0, n, chunk):
        part = {key: value[start : start + chunk] for key, value in scene.items()}
        images[start : start + chunk] = _render(part, resolution, pixel_gen)
    return images, labels


def _uniform(gen: torch.Generator, lo: float, hi: float, *shape: int) -> torch.Tensor:
    return torch.rand(shape, generator=gen) * (hi - lo) + lo


def _draw_scene(labels: torch.Tensor, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Every per-image random choice, in units of a 32-pixel image."""
    n = labels.shape[0]
    n_shapes = len(SYNTHETIC_SHAPES)
    n_textures = len(SYNTHETIC_TEXTURES)
    scene: dict[str, torch.Tensor] = {"texture": labels // n_shapes, "shape": labels % n_shapes}
    # Foreground texture and its two colours; a per-channel offset of 0.3..0.7
    # (mod 1) guarantees visible texture contrast whatever colour was drawn.
    for prefix in ("fg_", "bg_"):
        scene[prefix + "period"] = _uniform(gen, 7.0, 11.0, n)
        scene[prefix + "theta"] = _uniform(gen, 0.0, math.pi, n)
        scene[prefix + "phase1"] = _uniform(gen, 0.0, 2 * math.pi, n)
        scene[prefix + "phase2"] = _uniform(gen, 0.0, 2 * math.pi, n)
    scene["colour_a"] = torch.rand((n, 3), generator=gen)
    # The second colour is a much darker or lighter shade of the first: the pattern always
    # shows as a strong luminance contrast, while its hue carries no class information.
    shade = torch.where(torch.rand((n, 1), generator=gen) < 0.5,
                        _uniform(gen, 0.15, 0.35, n, 1), _uniform(gen, 1.8, 2.6, n, 1))
    scene["colour_b"] = (scene["colour_a"] * 0.6 + 0.2) * shade
    scene["colour_b"] = scene["colour_b"].clamp(0.0, 1.0)
    # Background: flat colour, a lighting gradient and a faint texture of any
    # family (so "which texture is present" alone does not give the class).
    scene["bg_texture"] = torch.randint(0, n_textures, (n,), generator=gen)
    scene["bg_colour"] = torch.rand((n, 3), generator=gen)
    scene["bg_contrast"] = _uniform(gen, 0.0, 0.05, n)
    scene["grad_angle"] = _uniform(gen, 0.0, 2 * math.pi, n)
    scene["grad_amp"] = _uniform(gen, 0.0, 0.1, n)
    # The large shape.
    scene["radius"] = _uniform(gen, 9.5, 12.0, n)
    scene["cx"] = 16 + _uniform(gen, -3.0, 3.0, n)
    scene["cy"] = 16 + _uniform(gen, -3.0, 3.0, n)
    scene["rot"] = _uniform(gen, 0.0, math.pi / 2, n)
    # Global photometric nuisances.
    scene["contrast"] = _uniform(gen, 0.6, 1.1, n)
    scene["brightness"] = _uniform(gen, -0.1, 0.1, n)
    return scene


def _soft(z: torch.Tensor, gain: float) -> torch.Tensor:
    # Nearly binary patterns with about one pixel of antialiasing.
    return (0.5 + gain * z).clamp_(0.0, 1.0)


def _texture(
    scene: dict[str, torch.Tensor],
    prefix: str,
    family: torch.Tensor,
    u: torch.Tensor,
    v: torch.Tensor,
    pixel_gen: torch.Generator,
    scale: float,
) -> torch.Tensor:
    """Pattern in [0, 1] of shape (N, H, W); ``family`` indexes SYNTHETIC_TEXTURES."""
    n, res = family.shape[0], u.shape[-1]

    def p(key: str) -> torch.Tensor:
        return scene[prefix + key].view(n, 1, 1)

    freq = 2 * math.pi / p("period")
    c, s = torch.cos(p("theta")), torch.sin(p("theta"))
    # Speckle: random blocks about 1.5 units wide, i.e. fine but irregular.
    cells = max(2, round(res / (3.5 * scale)))
    noise = torch.rand((n, 1, cells, cells), generator=pixel_gen)
    out = torch.empty((n, res, res))
    for f, name in enumerate(SYNTHETIC_TEXTURES):
        sel = family == f
        if not bool(sel.any()):
            continue
        if name == "speckle":
            blocks = F.interpolate(noise[sel], size=(res, res), mode="bilinear", align_corners=False)
            out[sel] = _soft(blocks[:, 0] - 0.5, 4.0)
            continue
        uu, vv, fr, cc, ss = u[sel], v[sel], freq[sel], c[sel], s[sel]
        w1 = fr * (uu * cc + vv * ss) + p("phase1")[sel]
        if name == "stripes":
            out[sel] = _soft(torch.sin(w1), 1.5)
            continue
        w2 = fr * (vv * cc - uu * ss) + p("phase2")[sel]
        if name == "checker":
            out[sel] = _soft(torch.sin(w1) * torch.sin(w2), 2.5)
        else:  # dots
            out[sel] = _soft(torch.cos(w1) + torch.cos(w2) - 0.9, 1.5)
    return out


def _render(scene: dict[str, torch.Tensor], res: int, pixel_gen: torch.Generator) -> torch.Tensor:
    n = scene["texture"].shape[0]
    scale = res / 32.0

    def p(key: str) -> torch.Tensor:
        return scene[key].view(n, 1, 1)

    def rgb(key: str) -> torch.Tensor:
        return scene[key].view(n, 3, 1, 1)

    # Pixel-centre coordinates in units of a 32-pixel image.
    coords = (torch.arange(res, dtype=torch.float32) + 0.5) / scale
    v = coords.view(1, res, 1).expand(n, res, res)
    u = coords.view(1, 1, res).expand(n, res, res)

    fg_t = _texture(scene, "fg_", scene["texture"], u, v, pixel_gen, scale).unsqueeze(1)
    img = rgb("colour_a") * fg_t + rgb("colour_b") * (1 - fg_t)

    bg_t = _texture(scene, "bg_", scene["bg_texture"], u, v, pixel_gen, scale).unsqueeze(1)
    gradient = p("grad_amp") * ((u - 16) * torch.cos(p("grad_angle")) + (v - 16) * torch.sin(p("grad_angle"))) / 16
    bg = rgb("bg_colour") + gradient.unsqueeze(1) + scene["bg_contrast"].view(n, 1, 1, 1) * (bg_t - 0.5)

    # Shape mask: a signed "inside-ness" in units (> 0 inside) turned into a
    # mask with a one-pixel soft edge. All three shapes have area pi r^2.
    dx, dy = u - p("cx"), v - p("cy")
    dist = torch.sqrt(dx * dx + dy * dy)
    radius = p("radius")
    inside = torch.empty((n, res, res))
    for s, name in enumerate(SYNTHETIC_SHAPES):
        sel = scene["shape"] == s
        if not bool(sel.any()):
            continue
        r = radius[sel]
        if name == "disk":
            inside[sel] = r - dist[sel]
        elif name == "square":
            half = r * (math.sqrt(math.pi) / 2)
            rot = p("rot")[sel]
            c, si = torch.cos(rot), torch.sin(rot)
            ddx, ddy = dx[sel], dy[sel]
            along = (ddx * c + ddy * si).abs()
            across = (ddy * c - ddx * si).abs()
            inside[sel] = half - torch.maximum(along, across)
        else:  # ring
            d = dist[sel]
            inside[sel] = torch.minimum(1.2 * r - d, d - r * math.sqrt(1.2**2 - 1.0))
    mask = (0.5 + inside * scale).clamp_(0.0, 1.0).unsqueeze(1)

    img = torch.lerp(bg, img, mask)
    img = (img - 0.5) * scene["contrast"].view(n, 1, 1, 1) + 0.5 + scene["brightness"].view(n, 1, 1, 1)
    img += 0.03 * torch.randn((n, 3, res, res), generator=pixel_gen)
    return img.clamp_(0.0, 1.0).mul_(255).round_().to(torch.uint8)


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


def data_memory_limit() -> int:
    """Bytes a dataset may take in memory: half of what this process may still allocate.

    Every dataset is held in memory whole (see the module docstring); the other half is left
    for the proxy's subset at its resolution, the model, its optimizer and activations.
    """
    from .memory import available_bytes

    return available_bytes() // 2


def _too_big(path: Path, what: str, size: int, total: int, limit: int) -> ValueError:
    from .memory import format_bytes

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


# --------------------------------------------------------------------------
# CIFAR (python pickles, loaded with a restricted unpickler)
# --------------------------------------------------------------------------


def _numpy_reconstruct() -> Any:
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
    return _reconstruct


#: The only globals a CIFAR batch may reference: what pickling a numpy array
#: needs, under its numpy 1 and numpy 2 module names. Everything else --
#: os.system, builtins.eval, even harmless-looking classes -- is refused.
_ALLOWED_PICKLE_GLOBALS: dict[tuple[str, str], Callable[[], Any]] = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that can only build dicts, lists, strings, numbers and numpy arrays."""

    def __init__(self, file: BinaryIO, path: Path) -> None:
        super().__init__(file, encoding="bytes")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        factory = _ALLOWED_PICKLE_GLOBALS.get((module, name))
        if factory is None:
            hint = ""
            if (module, name) == ("_codecs", "encode"):
                # Python 3 writes bytes this way under protocol 2; harmless
                # here, but admitting it would widen what files can call.
                hint = "; if you wrote this file with Python 3, re-save it with pickle protocol 3 or later"
            raise ValueError(
                f"refusing to load {str(self._path)!r}: it references the global {module}.{name}, "
                f"which a CIFAR batch never needs (the file may be malicious or not a CIFAR batch){hint}"
            )
        return factory()

    def persistent_load(self, pid: Any) -> Any:
        raise ValueError(f"refusing to load {str(self._path)!r}: it uses persistent ids, which a CIFAR batch never does")


def _safe_unpickle(path: Path) -> Any:
    try:
        with open(path, "rb") as fh:
            return _RestrictedUnpickler(fh, path).load()
    except ValueError as exc:
        if str(path) in str(exc):
            raise
        raise ValueError(f"cannot read {str(path)!r} as a CIFAR batch: {exc}") from exc
    except MemoryError:  # a length field far beyond the file: the allocation fails first
        raise ValueError(
            f"cannot read {str(path)!r} as a CIFAR batch: it declares an object larger than the "
            "memory available (the file is damaged or not a CIFAR batch)"
        ) from None
    except Exception as exc:  # UnpicklingError, EOFError, TypeError from bad opcodes...
        raise ValueError(f"cannot read {str(path)!r} as a CIFAR batch: {type(exc).__name__}: {exc}") from exc


def _read_cifar_batch(path: Path, label_key: bytes, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    obj = _safe_unpickle(path)
    if not isinstance(obj, dict):
        raise ValueError(f"{str(path)!r} is not a CIFAR batch: expected a dict, found {type(obj).__name__}")
    data = obj.get(b"data", obj.get("data"))
    labels = obj.get(label_key, obj.get(label_key.decode()))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        desc = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ValueError(f"{str(path)!r}: entry 'data' must be a uint8 array of shape (N, 3072), found {desc}")
    if labels is None:
        raise ValueError(f"{str(path)!r}: missing the label entry {label_key.decode()!r}")
    if isinstance(labels, np.ndarray):
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"{str(path)!r}: labels {label_key.decode()!r} must be a 1-D integer list")
        lab = labels.astype(np.int64)
    elif isinstance(labels, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in labels):
        lab = np.asarray(labels, dtype=np.int64)
    else:
        raise ValueError(f"{str(path)!r}: labels {label_key.decode()!r} must be a list of integers")
    if lab.shape[0] != data.shape[0]:
        raise ValueError(
            f"{str(path)!r} has {lab.shape[0]} labels but {data.shape[0]} images; the file is damaged"
        )
    if lab.size and (lab.min() < 0 or lab.max() >= num_classes):
        raise ValueError(
            f"{str(path)!r}: labels must lie in [0, {num_classes}), found [{lab.min()}, {lab.max()}]"
        )
    return data.reshape(-1, 3, 32, 32), lab


def _load_cifar(name: str, root: Path) -> Dataset:
    if name == "cifar10":
        sub, train_files, test_files, key, k = (
            "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels", 10,
        )
    else:
        sub, train_files, test_files, key, k = "cifar-100-python", ["train"], ["test"], b"fine_labels", 100
    folder = root / sub if (root / sub).is_dir() else root
    missing = [f for f in train_files + test_files if not (folder / f).is_file()]
    if missing:
        raise ValueError(
            f"dataset {name!r}: missing {', '.join(missing)} in {str(folder)!r}; --data-dir must be the "
            f"{sub} folder (or its parent) holding {', '.join(train_files + test_files)}"
        )
    sizes = {f: (folder / f).stat().st_size for f in train_files + test_files}
    total, limit = sum(sizes.values()), data_memory_limit()
    if total > limit:
        biggest = max(sizes, key=sizes.__getitem__)
        raise _too_big(folder / biggest, "is a CIFAR batch file", sizes[biggest], total, limit)
    parts = {
        split: [_read_cifar_batch(folder / f, key, k) for f in files]
        for split, files in (("train", train_files), ("val", test_files))
    }
    tensors = {}
    for split, batches in parts.items():
        tensors[f"{split}_x"] = torch.from_numpy(np.ascontiguousarray(np.concatenate([b[0] for b in batches])))
        tensors[f"{split}_y"] = torch.from_numpy(np.concatenate([b[1] for b in batches]))
    return Dataset(name=name, num_classes=k, **tensors)


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
                stacklevel=3,
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
        n, limit = len(train_items) + len(val_items), data_memory_limit()
        if n * 3 * resolution * resolution > limit:
            raise _too_big(root, f"has {n:,} images, at {resolution}x{resolution} pixels",
                           n * 3 * resolution * resolution, 0, limit)
        train_x, train_y = _stack(train_items, resolution)
        val_x, val_y = _stack(val_items, resolution)
        return Dataset("imagefolder", train_x, train_y, val_x, val_y, len(classes))

    return _cached("imagefolder", settings, build, cache_dir, use_cache)


def imagefolder_classes(data_dir: str | Path) -> list[str]:
    """Class names of an image folder in label order (label i is the i-th name)."""
    root = _require_data_dir("imagefolder", data_dir)
    split = root / "train" if (root / "train").is_dir() else root
    return sorted(_class_dirs(split, os.path.realpath(root), []))
