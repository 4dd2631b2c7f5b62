"""Files and designs that declare more memory than there is: refused before the work, in one line.

The two from the issue run the real command in a subprocess under resource limits set in
`preexec_fn`: its address space may grow by 500 MiB over what the same command needs to stop at
once (an unknown proxy), and its CPU time by 5 s; past either, the kernel stops it and the test
fails. The other readers (CIFAR batches, image folders, PNG headers, the dataset cache) are
checked in-process, with the memory limit lowered where the file would otherwise have to be big.
"""
from __future__ import annotations

import gzip
import math
import os
import resource
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from nas_convnext.training import data
from nas_convnext.training.data import cache
from nas_convnext.training.data import load_dataset
from tests.training.test_data import make_cifar10, save_png, solid

ROOT = Path(__file__).resolve().parents[2]
EXTRA_MEMORY = 500 << 20
EXTRA_CPU_S = 5
STATUS = "import atexit, sys\n" \
         "atexit.register(lambda: print(open('/proc/self/status').read(), file=sys.stderr))\n" \
         "from nas_convnext.cli import main\n" \
         "sys.exit(main(sys.argv[1:]))\n"


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "NAS_CONVNEXT_CACHE": str(tmp_path / "cache")}


def _cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> tuple[int, float]:
    """Peak address space (bytes) and CPU seconds of `train` when it stops at its first check."""
    tmp = tmp_path_factory.mktemp("baseline")
    before = _cpu_of_children()
    proc = subprocess.run([sys.executable, "-c", STATUS, "train", "convnext_t", "--proxy", "nope"],
                          cwd=tmp, env=_env(tmp), capture_output=True, text=True, timeout=600)
    cpu = _cpu_of_children() - before
    assert proc.returncode == 2 and "unknown proxy profile 'nope'" in proc.stderr, proc.stderr
    peak = next(int(line.split()[1]) * 1024 for line in proc.stderr.splitlines()
                if line.startswith("VmPeak:"))
    return peak, cpu


def run_limited(baseline: tuple[int, float], tmp_path: Path, *argv: str
                ) -> subprocess.CompletedProcess:
    """`nas-convnext ARGV` allowed 500 MiB and 5 CPU seconds more than stopping at once needs."""
    peak, cpu = baseline
    memory, seconds = peak + EXTRA_MEMORY, math.ceil(cpu + EXTRA_CPU_S)

    def limit() -> None:  # in the child, before exec
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 1))

    return subprocess.run([sys.executable, "-m", "nas_convnext.cli", *argv], cwd=tmp_path,
                          env=_env(tmp_path), capture_output=True, text=True, timeout=600,
                          preexec_fn=limit)


def _one_line(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, \
        f"exit {proc.returncode}\n{proc.stderr[-3000:]}"
    assert len(lines) == 1, proc.stderr
    return lines[0]


def _idx(array: np.ndarray) -> bytes:
    return struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) \
        + array.tobytes()


def gzip_idx_bomb(root: Path, n: int = 65536, side: int = 256) -> Path:
    """The issue's bomb: a .gz whose header declares (65536, 256, 256) and that holds 4 GiB of
    zeros. Written in well under a second as one compressed 64 MiB block repeated: gzip
    readers take concatenated members as one stream. About 4 MB on disk."""
    root.mkdir()
    bomb = root / "train-images-idx3-ubyte.gz"
    block = 64 << 20
    member = gzip.compress(bytes(block), compresslevel=9, mtime=0)
    with open(bomb, "wb") as fh:
        fh.write(gzip.compress(struct.pack(">HBB3I", 0, 0x08, 3, n, side, side), mtime=0))
        for _ in range(n * side * side // block):
            fh.write(member)
    (root / "train-labels-idx1-ubyte").write_bytes(_idx(np.arange(n, dtype=np.uint8) % 10))
    (root / "t10k-images-idx3-ubyte").write_bytes(_idx(np.zeros((10, side, side), np.uint8)))
    (root / "t10k-labels-idx1-ubyte").write_bytes(_idx(np.arange(10, dtype=np.uint8)))
    return bomb


def test_gzip_idx_bomb_is_refused_before_reading(baseline, tmp_path):
    bomb = gzip_idx_bomb(tmp_path / "bomb")
    assert bomb.stat().st_size < 8 << 20
    proc = run_limited(baseline, tmp_path, "train", "convnext_t", "--proxy", "cpu-tiny", "--dataset", "synthetic",
                       "--dataset", "idx", "--data-dir", str(tmp_path / "bomb"))
    line = _one_line(proc)
    assert line.startswith(f"nas-convnext: error: '{bomb}' declares shape (65536, 256, 256) "
                           "(4.0 GiB"), line
    assert "a dataset may take in memory here" in line and "refused before reading it" in line


def test_a_design_a_million_wide_is_refused_before_building(baseline, tmp_path):
    proc = run_limited(baseline, tmp_path, "train", "convnext_t", "width=1000000",
                       "--proxy", "cpu-tiny", "--dataset", "synthetic")
    line = _one_line(proc)
    assert line.startswith("nas-convnext: error: convnext_t width=1000000 needs at least "), line
    assert "TiB to train under proxy cpu-tiny" in line and "parameters at width x0.25" in line
    assert "is free for this process" in line


def test_memory_need_counts_parameters_state_and_activations():
    """The figures behind the refusal, against the built model and the optimizer's rule."""
    from nas_convnext import presets
    from nas_convnext.design.build import build_model
    from nas_convnext.training.proxy import get_proxy
    from nas_convnext.training.trial import memory_need

    arch, proxy = presets()["convnext_t"], get_proxy("cpu-tiny")
    need = memory_need(arch, proxy, num_classes=12, in_chans=3)
    model = build_model(arch, num_classes=12, width_mult=proxy.width_mult)
    assert need.params == sum(p.numel() for p in model.parameters())
    assert need.state_bytes == 16 * need.params  # fp32 weights, gradients, two AdamW moments
    assert need.batch == 64 and need.activation_bytes > 0
    sgd = memory_need(arch, proxy.with_recipe("original"), num_classes=12, in_chans=3)
    assert sgd.state_bytes == 12 * need.params  # one momentum buffer


# ----- the other readers, in-process -----


def test_cifar_batches_larger_than_memory_allows_are_refused(tmp_path, monkeypatch):
    folder = tmp_path / "cifar-10-batches-py"
    make_cifar10(folder)
    size = (folder / "data_batch_1").stat().st_size
    monkeypatch.setattr(data.dataset, "data_memory_limit", lambda: size - 1)
    with pytest.raises(ValueError) as err:
        load_dataset("cifar10", tmp_path)
    msg = str(err.value)
    assert msg.startswith(f"'{folder / 'data_batch_1'}' is a CIFAR batch file"), msg
    assert "more than the" in msg and "refused before reading it" in msg


def test_a_cifar_pickle_declaring_a_huge_object_is_one_readable_error(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    make_cifar10(folder)
    # BINBYTES8 with a length of 2**50: the unpickler allocates it before reading.
    (folder / "test_batch").write_bytes(b"\x80\x04\x8e" + struct.pack("<Q", 1 << 50) + b"abc")
    with pytest.raises(ValueError) as err:
        load_dataset("cifar10", tmp_path)
    assert str(err.value) == (f"cannot read '{folder / 'test_batch'}' as a CIFAR batch: it declares "
                              "an object larger than the memory available (the file is damaged "
                              "or not a CIFAR batch)")


def png_declaring(path: Path, width: int, height: int) -> Path:
    """A valid 1-bit greyscale PNG of width x height zeros: some kilobytes on disk."""
    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    row = b"\x00" + bytes((width + 7) // 8)  # filter byte, then the packed pixels
    pixels = zlib.compress(row * height, 9)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height,
                                                                      1, 0, 0, 0, 0))
                     + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))
    return path


def test_a_png_declaring_100_megapixels_is_refused_before_decoding(tmp_path):
    """Between PIL's limit (89 MP) and twice it, PIL only warns; the warning is not enough."""
    root = tmp_path / "imgs"
    for name in ("a", "b"):
        for i in range(2):
            save_png(root / name / f"{i}.png", solid((10, 20, 30)))
    bomb = png_declaring(root / "a" / "bomb.png", 10_000, 10_000)
    assert bomb.stat().st_size < 100_000
    with pytest.raises(ValueError) as err:
        load_dataset("imagefolder", root, resolution=8, use_cache=False)
    assert str(err.value).startswith(f"image '{bomb}' declares 10000x10000 pixels (100 MP), more "
                                     "than the 89 MP one image may decode to"), str(err.value)


def test_an_image_folder_larger_than_memory_allows_is_refused(tmp_path, monkeypatch):
    root = tmp_path / "imgs"
    for name in ("a", "b"):
        for i in range(3):
            save_png(root / name / f"{i}.png", solid((i, 20, 30)))
    need = 6 * 3 * 16 * 16
    monkeypatch.setattr(data.dataset, "data_memory_limit", lambda: need - 1)
    with pytest.raises(ValueError) as err:
        load_dataset("imagefolder", root, resolution=16, use_cache=False)
    assert str(err.value).startswith(f"'{root}' has 6 images, at 16x16 pixels (4.5 KiB)"), \
        str(err.value)
    monkeypatch.setattr(data.dataset, "data_memory_limit", lambda: need)
    assert load_dataset("imagefolder", root, resolution=16, use_cache=False).train_x.shape[1:] \
        == (3, 16, 16)


def _cache_of(tmp_path: Path, n: int, compress: int) -> Path:
    """A cache file of the dataset format with n 32x32 images, its entries stored or deflated."""
    plain = tmp_path / "plain.pt"
    x = torch.zeros((n, 1, 32, 32), dtype=torch.uint8)
    y = torch.arange(n) % 2
    torch.save({"train_x": x, "train_y": y, "val_x": x[:2], "val_y": y[:2],
                "num_classes": torch.tensor(2)}, plain)
    path = tmp_path / "synthetic-x.pt"
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(path, "w", compress) as dst:
        for entry in src.infolist():
            dst.writestr(entry.filename, src.read(entry.filename))
    return path


def test_a_cache_file_with_compressed_entries_is_not_loaded(tmp_path):
    path = _cache_of(tmp_path, 4096, zipfile.ZIP_DEFLATED)  # 4 MiB declared, a few KiB on disk
    assert path.stat().st_size < 100_000
    with pytest.warns(UserWarning) as warned:
        assert cache._read_cache(path, "synthetic") is None
    msg = str(warned[0].message)
    assert f"ignoring unreadable cache file '{path}'" in msg and "compressed entries" in msg


def test_a_cache_file_declaring_more_than_memory_allows_is_not_loaded(tmp_path, monkeypatch):
    path = _cache_of(tmp_path, 64, zipfile.ZIP_STORED)
    assert isinstance(cache._read_cache(path, "synthetic"), data.Dataset)  # the format is right
    monkeypatch.setattr(data.dataset, "data_memory_limit", lambda: 1024)
    with pytest.warns(UserWarning) as warned:
        assert cache._read_cache(path, "synthetic") is None
    assert "more than the 1.0 KiB a dataset may take in memory here" in str(warned[0].message)
