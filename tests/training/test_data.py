"""Tests for the dataset layer; every fixture file is written on the fly in tmp_path."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from nas_convnext.training import data
from nas_convnext.training.data import (
    DATASETS,
    GENERATOR_VERSION,
    SYNTHETIC_CLASS_NAMES,
    Dataset,
    generate_synthetic,
    imagefolder,
    load_dataset,
    to_resolution,
)

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # Never touch the user's ~/.cache from tests.
    cache = tmp_path / "default-cache"
    monkeypatch.setenv("NAS_CONVNEXT_CACHE", str(cache))
    return cache


@pytest.fixture(scope="module")
def small_synthetic() -> Dataset:
    return generate_synthetic(2_400, 1_200, seed=0, use_cache=False)


# --------------------------------------------------------------------------
# fixture writers
# --------------------------------------------------------------------------


def write_idx(path: Path, array: np.ndarray, *, gz: bool = False, magic: int | None = None) -> Path:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    head = struct.pack(">HBB", 0, 0x08, array.ndim) if magic is None else struct.pack(">I", magic)
    blob = head + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as fh:
            fh.write(blob)
    else:
        path.write_bytes(blob)
    return path


def make_idx_dir(root: Path, *, gz: bool = False, n_train: int = 6, n_val: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        # Every class 0..5 has a training image (the loader refuses labels that skip values).
        "train-labels-idx1-ubyte": rng.permutation(np.arange(n_train) % 6).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_val, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.array([0, 1, 2, 5][:n_val], dtype=np.uint8),
    }
    root.mkdir(parents=True, exist_ok=True)
    paths = {name: write_idx(root / name, arr, gz=gz) for name, arr in arrays.items()}
    return arrays, paths


def write_cifar_batch(path: Path, images: np.ndarray, labels, *, key: bytes = b"labels", protocol: int = 3):
    """images: (N, 3, 32, 32) uint8, stored as the official (N, 3072) rows.

    Protocol 3+: Python 3's protocol 2 stores bytes via _codecs.encode, which
    the official (Python 2) files never reference and the loader refuses.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    obj = {b"batch_label": b"test batch", key: labels, b"data": images.reshape(len(images), 3072), b"filenames": []}
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=protocol)


def make_cifar10(folder: Path, per_batch: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    train_imgs, train_labels = [], []
    for i in range(1, 6):
        imgs = rng.integers(0, 256, (per_batch, 3, 32, 32), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        write_cifar_batch(folder / f"data_batch_{i}", imgs, labels)
        train_imgs.append(imgs)
        train_labels += labels
    test_imgs = rng.integers(0, 256, (2, 3, 32, 32), dtype=np.uint8)
    write_cifar_batch(folder / "test_batch", test_imgs, [9, 0])
    return np.concatenate(train_imgs), train_labels, test_imgs, [9, 0]


def save_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def solid(rgb, h: int = 8, w: int = 8) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, dtype=np.uint8), (h, w, 3)).copy()


# --------------------------------------------------------------------------
# general errors
# --------------------------------------------------------------------------


def test_unknown_dataset_names_the_allowed_ones():
    with pytest.raises(ValueError) as err:
        load_dataset("imagenet")
    msg = str(err.value)
    assert "'imagenet'" in msg
    for name in DATASETS:
        assert name in msg


def test_mnist_name_points_to_idx():
    with pytest.raises(ValueError, match="'idx'"):
        load_dataset("mnist")


@pytest.mark.parametrize("name", ["idx", "cifar10", "cifar100", "imagefolder"])
def test_data_dir_is_required(name):
    with pytest.raises(ValueError) as err:
        load_dataset(name)
    assert str(err.value) == f"--data-dir is required for dataset {name!r}"


@pytest.mark.parametrize("name", ["idx", "cifar10", "imagefolder"])
def test_missing_data_dir_is_named(tmp_path, name):
    missing = tmp_path / "no-such-folder"
    with pytest.raises(ValueError, match="does not exist") as err:
        load_dataset(name, missing)
    assert str(missing) in str(err.value)


def test_data_dir_that_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        load_dataset("idx", f)


# --------------------------------------------------------------------------
# Dataset container and subset
# --------------------------------------------------------------------------


def _tiny(n_train=30, n_val=12, k=3, channels=1):
    x = torch.arange(n_train, dtype=torch.uint8).view(-1, 1, 1, 1).expand(n_train, channels, 2, 2).contiguous()
    vx = torch.arange(n_val, dtype=torch.uint8).view(-1, 1, 1, 1).expand(n_val, channels, 2, 2).contiguous()
    return Dataset("tiny", x, torch.arange(n_train) % k, vx, torch.arange(n_val) % k, k)


def test_dataset_rejects_wrong_dtypes_and_labels():
    good = _tiny()
    with pytest.raises(ValueError, match="uint8"):
        Dataset("bad", good.train_x.float(), good.train_y, good.val_x, good.val_y, 3)
    with pytest.raises(ValueError, match="int64"):
        Dataset("bad", good.train_x, good.train_y.int(), good.val_x, good.val_y, 3)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        Dataset("bad", good.train_x, good.train_y, good.val_x, good.val_y, 2)


def test_dataset_is_hashable_by_identity():
    a, b = _tiny(), _tiny()
    assert a != b and a == a
    assert len({a, b, a}) == 2


def test_subset_is_seeded_balanced_nested_and_consistent():
    ds = _tiny(n_train=30, n_val=12, k=3)
    sub = ds.subset(9, 6, seed=3)
    assert sub.train_x.shape == (9, 1, 2, 2) and sub.val_x.shape == (6, 1, 2, 2)
    assert torch.bincount(sub.train_y, minlength=3).tolist() == [3, 3, 3]
    assert torch.bincount(sub.val_y, minlength=3).tolist() == [2, 2, 2]
    # Each image still carries its own label (pixel value i has label i % 3).
    assert torch.equal(sub.train_x[:, 0, 0, 0].long() % 3, sub.train_y)
    assert torch.equal(sub.val_x[:, 0, 0, 0].long() % 3, sub.val_y)
    again = ds.subset(9, 6, seed=3)
    assert torch.equal(again.train_x, sub.train_x)
    other = ds.subset(9, 6, seed=4)
    assert not torch.equal(other.train_x, sub.train_x)
    bigger = ds.subset(15, 6, seed=3)
    assert set(sub.train_x[:, 0, 0, 0].tolist()) <= set(bigger.train_x[:, 0, 0, 0].tolist())
    assert ds.subset(5, seed=3).val_x.shape[0] == 12  # n_val=None keeps the whole val split


def test_subset_too_large_is_an_error():
    with pytest.raises(ValueError, match="only has 30"):
        _tiny().subset(31, 1)


# --------------------------------------------------------------------------
# to_resolution
# --------------------------------------------------------------------------


def test_to_resolution_pads_centred_with_zeros():
    x = torch.randint(1, 256, (2, 1, 28, 28), dtype=torch.uint8)
    out = to_resolution(x, 32)
    assert out.dtype == torch.uint8 and out.shape == (2, 1, 32, 32)
    assert torch.equal(out[:, :, 2:30, 2:30], x)
    border = out.clone()
    border[:, :, 2:30, 2:30] = 0
    assert int(border.sum()) == 0


def test_to_resolution_odd_padding():
    x = torch.full((1, 3, 29, 29), 7, dtype=torch.uint8)
    out = to_resolution(x, 32)
    assert out.shape == (1, 3, 32, 32)
    # 3 extra pixels: 1 before, 2 after.
    assert out[0, 0, 1, 1] == 7 and out[0, 0, 0, 0] == 0 and out[0, 0, 29, 29] == 7 and out[0, 0, 30, 30] == 0


def test_to_resolution_downscales_with_antialias():
    x = torch.zeros((1, 3, 64, 64), dtype=torch.uint8)
    x[..., 32:] = 200  # left half dark, right half bright
    x[:, 1] = 90  # a constant channel must stay exactly constant
    out = to_resolution(x, 16)
    assert out.dtype == torch.uint8 and out.shape == (1, 3, 16, 16)
    assert torch.all(out[0, 1] == 90)
    assert torch.all(out[0, 0, :, :7] == 0) and torch.all(out[0, 0, :, 9:] == 200)
    # Antialiasing: a fine checkerboard averages to mid-grey instead of aliasing.
    checker = ((torch.arange(64).view(-1, 1) + torch.arange(64)) % 2 * 255).to(torch.uint8).expand(1, 1, 64, 64)
    small = to_resolution(checker, 16).float()
    assert small[0, 0, 2:-2, 2:-2].sub(127.5).abs().max() < 3


def test_to_resolution_non_square_and_identity():
    x = torch.full((1, 1, 40, 20), 100, dtype=torch.uint8)
    out = to_resolution(x, 10)
    assert out.shape == (1, 1, 10, 10)
    # Height 40 -> 10, width 20 -> 5, then padded 2 left and 3 right.
    assert torch.all(out[0, 0, :, 2:7] == 100)
    assert torch.all(out[0, 0, :, :2] == 0) and torch.all(out[0, 0, :, 7:] == 0)
    same = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    assert torch.equal(to_resolution(same, 8), same)
    assert to_resolution(same[0], 10).shape == (3, 10, 10)


def test_to_resolution_rejects_bad_resolution():
    with pytest.raises(ValueError, match="resolution"):
        to_resolution(torch.zeros((1, 1, 4, 4), dtype=torch.uint8), 0)


# --------------------------------------------------------------------------
# synthetic
# --------------------------------------------------------------------------


def test_synthetic_shapes_classes_and_balance(small_synthetic):
    ds = small_synthetic
    assert ds.name == "synthetic"
    assert ds.train_x.dtype == torch.uint8 and ds.train_x.shape == (2_400, 3, 32, 32)
    assert ds.val_x.shape == (1_200, 3, 32, 32)
    assert ds.train_y.dtype == torch.int64
    assert ds.num_classes == len(SYNTHETIC_CLASS_NAMES) >= 10
    for y, n in ((ds.train_y, 2_400), (ds.val_y, 1_200)):
        counts = torch.bincount(y, minlength=ds.num_classes)
        assert counts.max() - counts.min() <= 1 and counts.sum() == n
    # Uses the whole range of intensities, not a washed-out band.
    assert int(ds.train_x.min()) == 0 and int(ds.train_x.max()) == 255


def test_synthetic_is_deterministic_per_seed(small_synthetic):
    again = generate_synthetic(2_400, 1_200, seed=0, use_cache=False)
    assert torch.equal(again.train_x, small_synthetic.train_x)
    assert torch.equal(again.val_y, small_synthetic.val_y)
    other = generate_synthetic(2_400, 1_200, seed=1, use_cache=False)
    assert not torch.equal(other.train_y, small_synthetic.train_y)
    assert (other.train_x != small_synthetic.train_x).float().mean() > 0.5
    # Train and validation are different images.
    assert not torch.equal(small_synthetic.train_x[:1_200], small_synthetic.val_x)


def test_synthetic_val_does_not_depend_on_n_train(small_synthetic):
    fewer = generate_synthetic(600, 1_200, seed=0, use_cache=False)
    assert torch.equal(fewer.val_x, small_synthetic.val_x)


def test_synthetic_not_separable_by_mean_colour(small_synthetic):
    ds = small_synthetic
    feats = ds.train_x.float().mean(dim=(2, 3))
    means = torch.stack([feats[ds.train_y == c].mean(0) for c in range(ds.num_classes)])
    val_feats = ds.val_x.float().mean(dim=(2, 3))
    pred = torch.cdist(val_feats, means).argmin(1)
    acc = (pred == ds.val_y).float().mean().item()
    assert acc < 0.5
    assert acc < 2.5 / ds.num_classes  # close to chance, not merely below 50%


def test_synthetic_labels_live_in_spatial_structure(small_synthetic):
    # A colour-blind, position-blind feature (radial power spectrum of the
    # grey image) sees texture scale and the ring's hole: it must beat chance
    # clearly (the label is encoded in structure) yet stay far from solving
    # the task (a network has to combine texture with the shape's layout).
    ds = small_synthetic

    def spectrum(x):
        g = x.float().mean(1)
        g = g - g.mean(dim=(1, 2), keepdim=True)
        mag = torch.fft.fft2(g).abs()
        f = torch.fft.fftfreq(g.shape[-1]).abs()
        bins = (torch.sqrt(f.view(-1, 1) ** 2 + f.view(1, -1) ** 2) * 16).long().clamp(max=11)
        out = torch.zeros(x.shape[0], 12).index_add_(1, bins.flatten(), mag.flatten(1))
        return out / out.sum(1, keepdim=True)

    tr, va = spectrum(ds.train_x), spectrum(ds.val_x)
    means = torch.stack([tr[ds.train_y == c].mean(0) for c in range(ds.num_classes)])
    acc = (torch.cdist(va, means).argmin(1) == ds.val_y).float().mean().item()
    assert 1.8 / ds.num_classes < acc < 0.5


def test_synthetic_64_shows_the_same_scenes_scaled():
    small = generate_synthetic(48, 12, resolution=32, seed=5, use_cache=False)
    large = generate_synthetic(48, 12, resolution=64, seed=5, use_cache=False)
    assert large.train_x.shape == (48, 3, 64, 64)
    assert torch.equal(small.train_y, large.train_y)
    down = torch.nn.functional.avg_pool2d(large.train_x.float(), 2)
    same = (down - small.train_x.float()).abs().mean().item()
    shuffled = (down - small.train_x.float().roll(1, 0)).abs().mean().item()
    # Same scene at twice the detail (noise and speckle differ), unlike another image.
    assert same < 0.5 * shuffled


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_train": 5}, "n_train"),
        ({"n_val": -1}, "n_val"),
        ({"resolution": 8}, "resolution"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_synthetic_rejects_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate_synthetic(**{"n_train": 100, "n_val": 10, "use_cache": False, **kwargs})


def test_synthetic_default_size_via_load_dataset(tmp_path):
    ds = load_dataset("synthetic", cache_dir=tmp_path)
    assert ds.train_x.shape == (16_000, 3, 32, 32) and ds.val_x.shape == (4_000, 3, 32, 32)
    assert ds.num_classes >= 10
    assert len(list(tmp_path.glob("synthetic-*.pt"))) == 1


def test_generation_restores_thread_count():
    before = torch.get_num_threads()
    generate_synthetic(24, 12, use_cache=False)
    assert torch.get_num_threads() == before


# --------------------------------------------------------------------------
# cache
# --------------------------------------------------------------------------


def _forbid_generation(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("generator ran although the cache should have been used")

    monkeypatch.setattr(data.synthetic, "_synthetic_split", boom)


def test_cache_is_hit_on_second_call(tmp_path, monkeypatch):
    first = generate_synthetic(120, 24, seed=2, cache_dir=tmp_path)
    files = list(tmp_path.glob("synthetic-*.pt"))
    assert len(files) == 1
    assert not list(tmp_path.glob("*.tmp"))  # the atomic write left no temp file
    _forbid_generation(monkeypatch)
    second = generate_synthetic(120, 24, seed=2, cache_dir=tmp_path)
    assert torch.equal(first.train_x, second.train_x) and torch.equal(first.val_y, second.val_y)
    assert second.num_classes == first.num_classes
    # Other settings are other cache entries (and need the generator).
    with pytest.raises(AssertionError, match="generator ran"):
        generate_synthetic(120, 24, seed=3, cache_dir=tmp_path)


def test_cache_key_includes_generator_version(tmp_path, monkeypatch):
    generate_synthetic(60, 12, cache_dir=tmp_path)
    monkeypatch.setattr(data.synthetic, "GENERATOR_VERSION", GENERATOR_VERSION + 1)
    generate_synthetic(60, 12, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("synthetic-*.pt"))) == 2


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    env_dir = tmp_path / "from-env"
    monkeypatch.setenv("NAS_CONVNEXT_CACHE", str(env_dir))
    load_dataset("synthetic", n_train=60, n_val=12)
    assert len(list(env_dir.glob("synthetic-*.pt"))) == 1
    monkeypatch.delenv("NAS_CONVNEXT_CACHE")
    assert data.default_cache_dir() == Path.home() / ".cache" / "nas-convnext"


def test_use_cache_false_writes_nothing(tmp_path):
    generate_synthetic(60, 12, cache_dir=tmp_path, use_cache=False)
    assert list(tmp_path.iterdir()) == []


def test_corrupt_cache_is_regenerated(tmp_path):
    first = generate_synthetic(60, 12, seed=4, cache_dir=tmp_path)
    (path,) = tmp_path.glob("synthetic-*.pt")
    path.write_bytes(path.read_bytes()[:100])  # truncated
    with pytest.warns(UserWarning, match="unreadable cache"):
        again = generate_synthetic(60, 12, seed=4, cache_dir=tmp_path)
    assert torch.equal(first.train_x, again.train_x)
    # The file was rewritten and is good again.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        third = generate_synthetic(60, 12, seed=4, cache_dir=tmp_path)
    assert torch.equal(third.val_x, first.val_x)


def test_cache_with_wrong_contents_is_regenerated(tmp_path):
    first = generate_synthetic(60, 12, seed=4, cache_dir=tmp_path)
    (path,) = tmp_path.glob("synthetic-*.pt")
    torch.save({"train_x": torch.zeros(3)}, path)
    with pytest.warns(UserWarning, match="unreadable cache"):
        again = generate_synthetic(60, 12, seed=4, cache_dir=tmp_path)
    assert torch.equal(first.train_x, again.train_x)


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_cache_file_cannot_run_code(tmp_path):
    generate_synthetic(60, 12, seed=4, cache_dir=tmp_path)
    (path,) = tmp_path.glob("synthetic-*.pt")
    marker = tmp_path / "pwned-by-cache"
    with open(path, "wb") as fh:
        pickle.dump({"train_x": _Exploit(marker)}, fh, protocol=2)
    with pytest.warns(UserWarning, match="unreadable cache"):
        ds = generate_synthetic(60, 12, seed=4, cache_dir=tmp_path)
    assert not marker.exists()
    assert ds.train_x.shape == (60, 3, 32, 32)


# --------------------------------------------------------------------------
# IDX
# --------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path, gz):
    arrays, paths = make_idx_dir(tmp_path / "mnist", gz=gz)
    assert all(p.suffix == (".gz" if gz else "") for p in paths.values())
    ds = load_dataset("idx", tmp_path / "mnist")
    assert ds.name == "idx"
    assert ds.train_x.dtype == torch.uint8 and ds.train_x.shape == (6, 1, 28, 28)
    assert ds.val_x.shape == (4, 1, 28, 28)
    assert np.array_equal(ds.train_x[:, 0].numpy(), arrays["train-images-idx3-ubyte"])
    assert np.array_equal(ds.val_x[:, 0].numpy(), arrays["t10k-images-idx3-ubyte"])
    assert ds.train_y.dtype == torch.int64
    assert ds.train_y.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert ds.val_y.tolist() == [0, 1, 2, 5]
    assert ds.num_classes == 6  # max label + 1


def test_idx_resolution_pads(tmp_path):
    arrays, _ = make_idx_dir(tmp_path)
    ds = load_dataset("idx", tmp_path, resolution=32)
    assert ds.train_x.shape == (6, 1, 32, 32)
    assert np.array_equal(ds.train_x[:, 0, 2:30, 2:30].numpy(), arrays["train-images-idx3-ubyte"])


def test_idx_subset_via_load_dataset(tmp_path):
    make_idx_dir(tmp_path)
    ds = load_dataset("idx", tmp_path, n_train=3, n_val=2)
    assert ds.train_x.shape[0] == 3 and ds.val_x.shape[0] == 2


def test_idx_missing_file_names_expected_files(tmp_path):
    make_idx_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(ValueError) as err:
        load_dataset("idx", tmp_path)
    msg = str(err.value)
    assert "missing t10k-labels-idx1-ubyte" in msg
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"):
        assert name in msg


def test_idx_truncated_file(tmp_path):
    make_idx_dir(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="truncated") as err:
        load_dataset("idx", tmp_path)
    assert str(path) in str(err.value)


def test_idx_truncated_gz_file(tmp_path):
    make_idx_dir(tmp_path, gz=True)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-5]))  # valid gzip, short payload
    with pytest.raises(ValueError, match="truncated") as err:
        load_dataset("idx", tmp_path)
    assert str(path) in str(err.value)
    path.write_bytes(gzip.compress(raw)[:-20])  # broken gzip stream
    with pytest.raises(ValueError) as err:
        load_dataset("idx", tmp_path)
    assert str(path) in str(err.value)


def test_idx_trailing_bytes(tmp_path):
    make_idx_dir(tmp_path)
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(ValueError, match="longer than its header") as err:
        load_dataset("idx", tmp_path)
    assert str(path) in str(err.value)


def test_idx_bad_magic(tmp_path):
    make_idx_dir(tmp_path)
    path = write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((6, 28, 28)), magic=0x00000D03)
    with pytest.raises(ValueError, match="magic number 0x00000d03") as err:
        load_dataset("idx", tmp_path)
    assert str(path) in str(err.value)


def test_idx_label_count_mismatch(tmp_path):
    make_idx_dir(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(5))
    with pytest.raises(ValueError, match="5 labels") as err:
        load_dataset("idx", tmp_path)
    msg = str(err.value)
    assert "train-labels-idx1-ubyte" in msg and "train-images-idx3-ubyte" in msg and "6 images" in msg


def test_idx_lying_header_does_not_allocate(tmp_path):
    make_idx_dir(tmp_path, gz=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    head = struct.pack(">HBB3I", 0, 8, 3, 4_000_000, 4_000, 4_000)
    path.write_bytes(gzip.compress(head + b"\x00" * 100))
    with pytest.raises(ValueError) as err:
        load_dataset("idx", tmp_path)
    assert str(path) in str(err.value)


# --------------------------------------------------------------------------
# CIFAR
# --------------------------------------------------------------------------


@pytest.mark.parametrize("in_subfolder", [True, False])
def test_cifar10_round_trip(tmp_path, in_subfolder):
    folder = tmp_path / "cifar-10-batches-py" if in_subfolder else tmp_path / "batches"
    train_x, train_y, test_x, test_y = make_cifar10(folder)
    ds = load_dataset("cifar10", tmp_path if in_subfolder else folder)
    assert ds.num_classes == 10 and ds.train_x.dtype == torch.uint8
    assert ds.train_x.shape == (15, 3, 32, 32) and ds.val_x.shape == (2, 3, 32, 32)
    assert np.array_equal(ds.train_x.numpy(), train_x)
    assert np.array_equal(ds.val_x.numpy(), test_x)
    assert ds.train_y.tolist() == train_y and ds.val_y.tolist() == test_y


def test_cifar_row_layout_is_channel_major(tmp_path):
    # Official layout: 1024 red values, then green, then blue, each row-major.
    folder = tmp_path / "cifar-10-batches-py"
    make_cifar10(folder)
    row = np.zeros(3072, dtype=np.uint8)
    row[0] = 11  # R (0, 0)
    row[1024 + 33] = 22  # G (1, 1)
    row[2048 + 32 * 5 + 7] = 33  # B (5, 7)
    write_cifar_batch(folder / "test_batch", row.reshape(1, 3, 32, 32), [4])
    ds = load_dataset("cifar10", tmp_path)
    img = ds.val_x[0]
    assert img[0, 0, 0] == 11 and img[1, 1, 1] == 22 and img[2, 5, 7] == 33
    assert int(img.sum()) == 66


def test_cifar_numpy1_pickles_load(tmp_path):
    # Official files reference numpy.core.multiarray._reconstruct (numpy 1 name).
    folder = tmp_path / "cifar-10-batches-py"
    make_cifar10(folder)
    imgs = np.arange(3072 * 2, dtype=np.int64).astype(np.uint8).reshape(2, 3, 32, 32)
    write_cifar_batch(folder / "test_batch", imgs, [1, 2], protocol=3)
    blob = (folder / "test_batch").read_bytes()
    if b"numpy._core.multiarray" in blob:
        blob = blob.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    (folder / "test_batch").write_bytes(blob)
    assert b"numpy.core.multiarray\n_reconstruct" in blob
    ds = load_dataset("cifar10", tmp_path)
    assert np.array_equal(ds.val_x.numpy(), imgs)


def python2_cifar_pickle(rows: np.ndarray, labels: list[int]) -> bytes:
    """A batch byte-for-byte in the style of the official Python 2 files.

    Strings are BINSTRINGs (bytes under encoding="bytes") and the array uses
    numpy 1 globals; Python 3 cannot write this, so it is assembled by hand.
    """
    n = rows.shape[0]
    out = bytearray(b"\x80\x02}(")  # PROTO 2, EMPTY_DICT, MARK
    out += b"U\x04data"
    out += b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R("
    out += b"K\x01J" + struct.pack("<i", n) + b"M" + struct.pack("<H", 3072) + b"\x86"
    out += b"cnumpy\ndtype\nU\x02u1K\x00K\x01\x87R(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    out += b"\x89T" + struct.pack("<I", rows.nbytes) + rows.tobytes() + b"tb"
    out += b"U\x06labels](" + b"".join(b"K" + bytes([v]) for v in labels) + b"eu."
    return bytes(out)


def test_cifar_python2_style_batches_load(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    make_cifar10(folder)
    rows = np.random.default_rng(3).integers(0, 256, (3, 3072), dtype=np.uint8)
    (folder / "test_batch").write_bytes(python2_cifar_pickle(rows, [7, 0, 9]))
    ds = load_dataset("cifar10", tmp_path)
    assert np.array_equal(ds.val_x.numpy().reshape(3, 3072), rows)
    assert ds.val_y.tolist() == [7, 0, 9]


def test_cifar_python3_protocol2_gets_a_hint(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    make_cifar10(folder)
    write_cifar_batch(folder / "test_batch", np.zeros((1, 3, 32, 32), np.uint8), [0], protocol=2)
    with pytest.raises(ValueError, match="_codecs.encode.*protocol 3"):
        load_dataset("cifar10", tmp_path)


def test_cifar100_round_trip(tmp_path):
    folder = tmp_path / "cifar-100-python"
    rng = np.random.default_rng(1)
    train = rng.integers(0, 256, (4, 3, 32, 32), dtype=np.uint8)
    test = rng.integers(0, 256, (2, 3, 32, 32), dtype=np.uint8)
    write_cifar_batch(folder / "train", train, [0, 99, 50, 3], key=b"fine_labels", protocol=4)
    write_cifar_batch(folder / "test", test, [98, 1], key=b"fine_labels", protocol=4)
    ds = load_dataset("cifar100", tmp_path)
    assert ds.num_classes == 100
    assert np.array_equal(ds.train_x.numpy(), train) and np.array_equal(ds.val_x.numpy(), test)
    assert ds.train_y.tolist() == [0, 99, 50, 3] and ds.val_y.tolist() == [98, 1]


def test_cifar_missing_files_are_named(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    make_cifar10(folder)
    (folder / "data_batch_3").unlink()
    with pytest.raises(ValueError, match="missing data_batch_3") as err:
        load_dataset("cifar10", tmp_path)
    assert "test_batch" in str(err.value)  # lists what is expected
    with pytest.raises(ValueError, match="missing train, test"):
        load_dataset("cifar100", tmp_path)


def test_cifar_label_count_mismatch(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    make_cifar10(folder)
    write_cifar_batch(folder / "data_batch_2", np.zeros((3, 3, 32, 32), np.uint8), [1, 2])
    with pytest.raises(ValueError, match="2 labels but 3 images") as err:
        load_dataset("cifar10", tmp_path)
    assert "data_batch_2" in str(err.value)


def test_cifar_label_out_of_range(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    make_cifar10(folder)
    write_cifar_batch(folder / "test_batch", np.zeros((2, 3, 32, 32), np.uint8), [3, 10])
    with pytest.raises(ValueError, match=r"\[0, 10\)") as err:
        load_dataset("cifar10", tmp_path)
    assert "test_batch" in str(err.value)


def test_cifar_wrong_contents(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    make_cifar10(folder)
    (folder / "data_batch_4").write_bytes(b"this is not a pickle")
    with pytest.raises(ValueError, match="cannot read") as err:
        load_dataset("cifar10", tmp_path)
    assert "data_batch_4" in str(err.value)
    with open(folder / "data_batch_4", "wb") as fh:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, fh)
    with pytest.raises(ValueError, match=r"\(N, 3072\)"):
        load_dataset("cifar10", tmp_path)


def _evil_reduce_eval(marker: Path):
    class Evil:
        def __reduce__(self):
            return (eval, (f"__import__('os').system('touch {marker}')",))

    return Evil()


@pytest.mark.parametrize("flavour", ["os.system", "eval", "nested"])
def test_malicious_cifar_pickle_is_refused_and_nothing_runs(tmp_path, flavour):
    folder = tmp_path / "cifar-10-batches-py"
    make_cifar10(folder)
    marker = tmp_path / "pwned"
    if flavour == "os.system":
        payload = _Exploit(marker)
    elif flavour == "eval":
        payload = _evil_reduce_eval(marker)
    else:
        payload = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [[_Exploit(marker)]]}
    with open(folder / "data_batch_1", "wb") as fh:
        pickle.dump(payload, fh, protocol=3)
    # Sanity: the file really is dangerous for a plain unpickler.
    assert b"system" in (folder / "data_batch_1").read_bytes() or b"eval" in (folder / "data_batch_1").read_bytes()
    with pytest.raises(ValueError, match="refusing to load") as err:
        load_dataset("cifar10", tmp_path)
    msg = str(err.value)
    assert str(folder / "data_batch_1") in msg
    assert ("system" in msg) if flavour != "eval" else ("eval" in msg)
    assert not marker.exists()


def test_restricted_unpickler_refuses_harmless_looking_classes(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    make_cifar10(folder)
    with open(folder / "test_batch", "wb") as fh:
        pickle.dump({b"data": np.zeros((1, 3072), np.uint8), b"labels": {1, 2}}, fh, protocol=3)
    with pytest.raises(ValueError, match=r"builtins\.set"):
        load_dataset("cifar10", tmp_path)


# --------------------------------------------------------------------------
# image folders
# --------------------------------------------------------------------------

COLOURS = {"cat": (250, 10, 10), "dog": (10, 250, 10), "emu": (10, 10, 250)}


def make_split_folder(root: Path, n_train: int = 2, n_val: int = 1) -> None:
    for cls, rgb in COLOURS.items():
        for i in range(n_train):
            save_png(root / "train" / cls / f"{i}.png", solid(rgb))
        for i in range(n_val):
            save_png(root / "val" / cls / f"v{i}.png", solid(rgb))


def test_imagefolder_round_trip_with_split(tmp_path):
    make_split_folder(tmp_path / "imgs")
    save_png(tmp_path / "imgs" / "train" / "cat" / "grey.png", np.full((8, 8), 77, np.uint8))  # L mode -> RGB
    (tmp_path / "imgs" / "train" / "cat" / "notes.txt").write_text("not an image")
    ds = load_dataset("imagefolder", tmp_path / "imgs", resolution=8, cache_dir=tmp_path / "c")
    assert ds.name == "imagefolder" and ds.num_classes == 3
    assert ds.train_x.shape == (7, 3, 8, 8) and ds.val_x.shape == (3, 3, 8, 8)
    assert ds.train_y.tolist() == [0, 0, 0, 1, 1, 2, 2]  # sorted class names: cat, dog, emu
    assert ds.val_y.tolist() == [0, 1, 2]
    expected = {0: COLOURS["cat"], 1: COLOURS["dog"], 2: COLOURS["emu"]}
    for x, y in zip(ds.val_x, ds.val_y):
        assert x[:, 0, 0].tolist() == list(expected[int(y)]) and bool((x == x[:, :1, :1]).all())
    grey = [x for x in ds.train_x if x[0, 0, 0] == 77]
    assert len(grey) == 1 and bool((grey[0] == 77).all())


def test_imagefolder_resizes_shorter_side_then_centre_crops(tmp_path):
    img = np.zeros((40, 80, 3), np.uint8)  # h=40, w=80
    img[:, :20] = (255, 0, 0)
    img[:, 20:60] = (0, 255, 0)
    img[:, 60:] = (0, 0, 255)
    save_png(tmp_path / "a" / "wide.png", img)
    save_png(tmp_path / "b" / "x.png", solid((1, 2, 3), 40, 40))
    save_png(tmp_path / "b" / "y.png", solid((1, 2, 3), 40, 40))  # so the val split is not empty
    ds = load_dataset("imagefolder", tmp_path, resolution=16, val_fraction=0.5, use_cache=False)
    both = torch.cat([ds.train_x, ds.val_x])
    labels = torch.cat([ds.train_y, ds.val_y])
    wide = both[labels == 0][0].float()
    assert wide.shape == (3, 16, 16)
    # Only the green middle survives the centre crop (a squash would keep red and blue).
    assert wide[1].mean() > 230 and wide[0].mean() < 25 and wide[2].mean() < 25


def test_imagefolder_seeded_split_without_val(tmp_path):
    for c, cls in enumerate(["a", "b"]):
        for i in range(10):
            save_png(tmp_path / "d" / cls / f"{i}.png", solid((c, i, 0), 4, 4))
    ds = load_dataset("imagefolder", tmp_path / "d", resolution=4, seed=1, use_cache=False)
    assert ds.train_x.shape[0] == 18 and ds.val_x.shape[0] == 2
    assert sorted(ds.val_y.tolist()) == [0, 1]  # one val image per class
    ids = sorted((int(x[0, 0, 0]), int(x[1, 0, 0])) for x in torch.cat([ds.train_x, ds.val_x]))
    assert ids == [(c, i) for c in range(2) for i in range(10)]  # every image exactly once
    again = load_dataset("imagefolder", tmp_path / "d", resolution=4, seed=1, use_cache=False)
    assert torch.equal(again.val_x, ds.val_x)
    vals = {tuple(load_dataset("imagefolder", tmp_path / "d", resolution=4, seed=s, use_cache=False)
                  .val_x[:, 1, 0, 0].tolist()) for s in range(6)}
    assert len(vals) > 1  # the seed decides the split


def test_imagefolder_symlink_outside_is_not_followed(tmp_path):
    root = tmp_path / "imgs"
    make_split_folder(root)
    outside = save_png(tmp_path / "secret" / "outside.png", solid((123, 45, 67)))
    link = root / "train" / "dog" / "sneaky.png"
    link.symlink_to(outside)
    inside_link = root / "train" / "emu" / "alias.png"
    inside_link.symlink_to(root / "train" / "emu" / "0.png")  # within the folder: fine
    with pytest.warns(UserWarning, match="outside") as rec:
        ds = load_dataset("imagefolder", root, resolution=8, use_cache=False)
    assert any(str(link) in str(w.message) for w in rec)
    assert ds.train_x.shape[0] == 7  # 6 real + the in-tree alias, not the outside file
    assert not any(int(x[0, 0, 0]) == 123 for x in ds.train_x)


def test_imagefolder_symlinked_class_dir_outside_is_not_followed(tmp_path):
    root = tmp_path / "imgs"
    make_split_folder(root)
    save_png(tmp_path / "elsewhere" / "x.png", solid((9, 9, 9)))
    (root / "train" / "zebra").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.warns(UserWarning, match="outside"):
        ds = load_dataset("imagefolder", root, resolution=8, use_cache=False)
    assert ds.num_classes == 3


def test_imagefolder_class_with_only_outside_symlinks_is_an_error(tmp_path):
    root = tmp_path / "imgs"
    make_split_folder(root)
    outside = save_png(tmp_path / "secret" / "outside.png", solid((1, 1, 1)))
    (root / "train" / "yak").mkdir()
    (root / "train" / "yak" / "l.png").symlink_to(outside)
    with pytest.raises(ValueError, match="symlinks pointing outside") as err:
        load_dataset("imagefolder", root, resolution=8, use_cache=False)
    assert str(root / "train" / "yak") in str(err.value)


def test_imagefolder_split_dir_symlinked_outside_is_refused(tmp_path):
    make_split_folder(tmp_path / "real")
    root = tmp_path / "imgs"
    root.mkdir()
    (root / "train").symlink_to(tmp_path / "real" / "train", target_is_directory=True)
    (root / "val").symlink_to(tmp_path / "real" / "val", target_is_directory=True)
    with pytest.raises(ValueError, match="pointing outside") as err:
        load_dataset("imagefolder", root, resolution=8, use_cache=False)
    assert str(root / "train") in str(err.value)
    # Pointing --data-dir at the real folder works.
    assert load_dataset("imagefolder", tmp_path / "real", resolution=8, use_cache=False).num_classes == 3


def test_imagefolder_empty_validation_split_is_an_error(tmp_path):
    for cls in ("a", "b"):
        save_png(tmp_path / "d" / cls / "only.png", solid((1, 2, 3)))
    with pytest.raises(ValueError, match="empty validation split") as err:
        load_dataset("imagefolder", tmp_path / "d", resolution=8, use_cache=False)
    assert str(tmp_path / "d") in str(err.value)


def test_imagefolder_empty_class_is_an_error(tmp_path):
    root = tmp_path / "imgs"
    make_split_folder(root)
    (root / "train" / "empty").mkdir()
    with pytest.raises(ValueError, match="contains no images") as err:
        load_dataset("imagefolder", root, resolution=8, use_cache=False)
    assert str(root / "train" / "empty") in str(err.value)


def test_imagefolder_unreadable_image_is_named(tmp_path):
    root = tmp_path / "imgs"
    make_split_folder(root)
    bad = root / "val" / "dog" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(ValueError, match="cannot read image") as err:
        load_dataset("imagefolder", root, resolution=8, use_cache=False)
    assert str(bad) in str(err.value)


def test_imagefolder_val_class_unknown_to_train(tmp_path):
    root = tmp_path / "imgs"
    make_split_folder(root)
    save_png(root / "val" / "gnu" / "0.png", solid((0, 0, 0)))
    with pytest.raises(ValueError, match="gnu"):
        load_dataset("imagefolder", root, resolution=8, use_cache=False)


def test_imagefolder_no_classes(tmp_path):
    (tmp_path / "flat").mkdir()
    save_png(tmp_path / "flat" / "lonely.png", solid((0, 0, 0)))
    with pytest.raises(ValueError, match="no class subfolders") as err:
        load_dataset("imagefolder", tmp_path / "flat")
    assert str(tmp_path / "flat") in str(err.value)


def test_imagefolder_cache_hit_and_invalidation(tmp_path, monkeypatch):
    root = tmp_path / "imgs"
    make_split_folder(root)
    cache = tmp_path / "cache"
    first = load_dataset("imagefolder", root, resolution=8, cache_dir=cache)
    assert len(list(cache.glob("imagefolder-*.pt"))) == 1

    real_decode = imagefolder._decode_image
    calls: list[Path] = []

    def counting(path, resolution):
        calls.append(path)
        return real_decode(path, resolution)

    monkeypatch.setattr(imagefolder, "_decode_image", counting)
    second = load_dataset("imagefolder", root, resolution=8, cache_dir=cache)
    assert calls == [] and torch.equal(first.train_x, second.train_x)

    # Another resolution is another cache entry.
    load_dataset("imagefolder", root, resolution=4, cache_dir=cache)
    assert len(calls) == 9
    calls.clear()

    # Changing a file (new size) invalidates the cache.
    save_png(root / "val" / "cat" / "v0.png", solid((5, 6, 7), 16, 16))
    third = load_dataset("imagefolder", root, resolution=8, cache_dir=cache)
    assert len(calls) == 9
    assert third.val_x[0, :, 0, 0].tolist() == [5, 6, 7]
