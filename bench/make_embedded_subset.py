"""Make the Fashion-MNIST subset that ships inside the package (the default real images).

    .venv/bin/python bench/make_embedded_subset.py [--source /usr/share/datasets/fashion-mnist]
    .venv/bin/python bench/make_embedded_subset.py --check   # rebuild in a temp folder, compare bytes

Why a subset ships at all: the README's main command must train on real images on a machine
that reaches only the package registries, so the default data cannot depend on a download or
on Debian's ``dataset-fashion-mnist`` package being installed. Fashion-MNIST is MIT-licensed,
which allows redistributing it with the licence notice; the full set is 30 MB compressed; a
class-balanced 12,000-image training subset (more than a CPU proxy trains on) with the whole
10,000-image test set is 9.6 MB. The whole test set ships because the `cpu` proxy validates on
all of it: on 2,000 images, sampling noise alone (about 0.8 points between two models) is as
large as most differences between the roadmap's steps (docs/CALIBRATION.md).

How the subset is drawn (also written into the NOTICE file beside it): from the full training
set (60,000 images) and test set (10,000), per class 0..9 in order, with one
``numpy.random.default_rng(0)`` stream used first for the training set and then for the test
set, ``rng.permutation`` of that class's indices and its first 1,200 (training) or 1,000
(test: all of it) entries; the chosen indices are sorted, so images keep their original order. The result is
written as IDX files (the format ``load_dataset("idx", DIR)`` reads), gzip level 9 with
``mtime=0`` and no file name in the gzip header, so a rerun gives the same bytes (with the
same zlib; ``--check`` shows it).
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nas_convnext.training.data import load_dataset  # noqa: E402

SOURCE = Path("/usr/share/datasets/fashion-mnist")
TARGET = ROOT / "nas_convnext" / "training" / "data" / "embedded" / "fashion-mnist"
SEED = 0
PER_CLASS = {"train": 1_200, "test": 1_000}
FULL_SIZES = {"train": 60_000, "test": 10_000}
CLASSES = 10
FILES = {  # split -> (images file, labels file), the names the idx loader looks for
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

LICENCE = """\
The MIT License (MIT) Copyright © [2017] Zalando SE, https://tech.zalando.com

Permission is hereby granted, free of charge, to any person obtaining a copy of this software \
and associated documentation files (the “Software”), to deal in the Software without \
restriction, including without limitation the rights to use, copy, modify, merge, publish, \
distribute, sublicense, and/or sell copies of the Software, and to permit persons to whom the \
Software is furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or \
substantial portions of the Software.

THE SOFTWARE IS PROVIDED “AS IS”, WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING \
BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND \
NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, \
DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, \
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""


def idx_gz_bytes(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes (magic 0x0000080N, big-endian dimensions), gzip -9, mtime 0."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=buf, mtime=0) as gz:
        gz.write(header)
        gz.write(np.ascontiguousarray(array, dtype=np.uint8).tobytes())
    return buf.getvalue()


def draw(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of ``per_class`` images of each class, drawn without replacement."""
    chosen = []
    for c in range(CLASSES):
        members = np.flatnonzero(labels == c)
        if members.size < per_class:
            raise SystemExit(f"class {c} has only {members.size} images; need {per_class}")
        chosen.append(rng.permutation(members)[:per_class])
    return np.sort(np.concatenate(chosen))


def build(source: Path, target: Path) -> dict[str, str]:
    """Write the four files and NOTICE into ``target``; return file name -> sha256."""
    ds = load_dataset("idx", source)
    arrays = {"train": (ds.train_x[:, 0].numpy(), ds.train_y.numpy()),
              "test": (ds.val_x[:, 0].numpy(), ds.val_y.numpy())}
    for split, (x, _) in arrays.items():
        if x.shape != (FULL_SIZES[split], 28, 28):
            raise SystemExit(f"{source}: expected the full Fashion-MNIST {split} set "
                             f"({FULL_SIZES[split]} images of 28x28), found {x.shape}")
    rng = np.random.default_rng(SEED)
    target.mkdir(parents=True, exist_ok=True)
    digests: dict[str, str] = {}
    for split in ("train", "test"):  # this order is part of the recipe (one rng stream)
        x, y = arrays[split]
        keep = draw(y, PER_CLASS[split], rng)
        for name, arr in zip(FILES[split], (x[keep], y[keep].astype(np.uint8)), strict=True):
            blob = idx_gz_bytes(arr)
            (target / name).write_bytes(blob)
            digests[name] = hashlib.sha256(blob).hexdigest()
    source_digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                      for p in sorted(source.glob("*-ubyte.gz"))}
    (target / "NOTICE").write_text(notice(digests, source_digests), encoding="utf-8")
    return digests


def notice(digests: dict[str, str], source_digests: dict[str, str]) -> str:
    n_train, n_test = CLASSES * PER_CLASS["train"], CLASSES * PER_CLASS["test"]
    lines = [
        "Fashion-MNIST subset embedded in nas-convnext",
        "=============================================",
        "",
        (f"{n_train:,} training and {n_test:,} test images (28x28 greyscale, 10 classes, "
         f"{PER_CLASS['train']:,} and {PER_CLASS['test']:,} per class) of Fashion-MNIST by "
         "Han Xiao, Kashif Rasul and Roland Vollgraf (Zalando Research),"),
        "https://github.com/zalandoresearch/fashion-mnist, distributed under the MIT licence below.",
        "",
        ("Source: the full IDX files of Debian's package dataset-fashion-mnist "
         "(0.0~git20200523.55506a9-1), /usr/share/datasets/fashion-mnist/:"),
        *[f"  sha256 {d}  {n}" for n, d in source_digests.items()],
        "",
        ("How the subset was drawn (bench/make_embedded_subset.py, deterministic): per class 0..9 "
         f"in order, with one numpy.random.default_rng({SEED}) stream used first for the training "
         "set and then for the test set, rng.permutation of that class's indices and its first "
         f"{PER_CLASS['train']:,} (training) or {PER_CLASS['test']:,} (test) entries; the chosen "
         "indices are sorted, so images keep their original order. Written as IDX files, gzip "
         "level 9, mtime 0."),
        "",
        "Files (sha256):",
        *[f"  {d}  {n}" for n, d in digests.items()],
        "",
        "Licence",
        "-------",
        "",
        LICENCE,
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=SOURCE,
                    help="folder with the full Fashion-MNIST IDX files (default: Debian's)")
    ap.add_argument("--target", type=Path, default=TARGET)
    ap.add_argument("--check", action="store_true",
                    help="rebuild into a temporary folder and compare with --target byte for byte")
    args = ap.parse_args()
    if not args.check:
        for name, digest in build(args.source, args.target).items():
            size = (args.target / name).stat().st_size
            print(f"{digest}  {size:>9,}  {name}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        build(args.source, Path(tmp))
        names = sorted(p.name for p in Path(tmp).iterdir())
        differ = [n for n in names
                  if not (args.target / n).is_file()
                  or (args.target / n).read_bytes() != (Path(tmp) / n).read_bytes()]
    print("identical" if not differ else f"differ: {', '.join(differ)}")
    raise SystemExit(1 if differ else 0)


if __name__ == "__main__":
    main()
