"""The built-in synthetic dataset: 12 classes = 4 textures x 3 large shapes.

It needs no files, so the tool runs anywhere; it is a stand-in, not a substitute for
ImageNet. Generated once per setting and cached (see cache.py).
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from .cache import _cached
from .dataset import _MAX_ITEMS, Dataset

#: Bump whenever ``generate_synthetic`` would produce different pixels for the
#: same settings: it is part of the cache key, so stale caches are never reused.
GENERATOR_VERSION = 4

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
