"""Datasets by name: lookup order, the embedded subset, errors, downloads from 127.0.0.1.

Every location is a tmp folder holding small generated IDX files (different per location, so
a test sees which one was read); downloads come from a real HTTP server on 127.0.0.1; Debian's
folder is always passed explicitly, so no test needs the internet or Debian's dataset.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import re
import struct
import tarfile
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from nas_convnext.training.data import named
from nas_convnext.training.data.named import (
    EMBEDDED_DIR,
    EMBEDDED_SHA256,
    EMBEDDED_SIZES,
    EMBEDDED_SOURCE,
    NAMES,
    NamedDataset,
    RemoteFile,
    load_named,
    resolve_dataset,
)

from .local_http import closed_port_url, serving

IDX_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "env-cache"  # never the user's ~/.cache
    monkeypatch.setenv("NAS_CONVNEXT_CACHE", str(cache))
    return cache


@pytest.fixture
def server():
    with serving() as srv:
        yield srv


# --------------------------------------------------------------------------
# generated files
# --------------------------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    head = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(head + array.tobytes(), mtime=0)


def idx_set(seed: int, *, n_train: int = 20, n_val: int = 10, classes: int = 10):
    """(file name -> gz bytes, arrays) of a tiny MNIST-like set; every class has training images."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train_x": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_y": rng.permutation(np.arange(n_train) % classes).astype(np.uint8),
        "val_x": rng.integers(0, 256, (n_val, 28, 28), dtype=np.uint8),
        "val_y": (np.arange(n_val) % classes).astype(np.uint8),
    }
    files = dict(zip(IDX_NAMES, (idx_bytes(arrays[k]) for k in ("train_x", "train_y", "val_x", "val_y")), strict=True))
    return files, arrays


def write_files(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, blob in files.items():
        (folder / name).write_bytes(blob)
    return folder


def serve(server, files: dict[str, bytes], mode: str = "ok", *, checksums=None) -> tuple[RemoteFile, ...]:
    """Put ``files`` on the server; the RemoteFiles that fetch them (with their true sha256)."""
    remote = []
    for name, blob in files.items():
        server.routes[f"/ds/{name}"] = (blob, mode)
        digest = (checksums or {}).get(name, hashlib.sha256(blob).hexdigest())
        remote.append(RemoteFile(name, (server.url(f"/ds/{name}"),), f"sha256:{digest}", 10_000_000))
    return tuple(remote)


def unreachable_remote(names=IDX_NAMES) -> tuple[RemoteFile, ...]:
    return tuple(RemoteFile(n, (closed_port_url(f"/{n}"),), "sha256:" + "0" * 64, 1_000) for n in names)


def same_images(ds, arrays) -> bool:
    return (np.array_equal(ds.train_x[:, 0].numpy(), arrays["train_x"])
            and ds.train_y.tolist() == arrays["train_y"].tolist()
            and np.array_equal(ds.val_x[:, 0].numpy(), arrays["val_x"]))


def visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --------------------------------------------------------------------------
# lookup order
# --------------------------------------------------------------------------


def test_lookup_order_data_dir_cache_debian_download_embedded(server, tmp_path):
    sets = {where: idx_set(seed) for seed, where in enumerate(("data-dir", "cache", "debian", "server"))}
    data_dir = write_files(tmp_path / "mine", sets["data-dir"][0])
    cache_root = tmp_path / "cache"
    write_files(cache_root / "fashion-mnist", sets["cache"][0])
    debian = tmp_path / "debian"
    write_files(debian / "fashion-mnist", sets["debian"][0])
    remote = serve(server, sets["server"][0])
    kw = {"cache_dir": cache_root, "urls": remote, "debian_root": debian}

    ds = load_named("fashion-mnist", data_dir, **kw)
    assert ds.source == f"--data-dir {data_dir}" and same_images(ds, sets["data-dir"][1])

    ds = load_named("fashion-mnist", **kw)
    assert ds.source == f"cache {cache_root / 'fashion-mnist'}" and same_images(ds, sets["cache"][1])

    for name in IDX_NAMES:
        (cache_root / "fashion-mnist" / name).unlink()
    ds = load_named("fashion-mnist", **kw)
    assert ds.source == f"Debian {debian / 'fashion-mnist'}" and same_images(ds, sets["debian"][1])
    assert server.requests == []  # nothing was downloaded while a copy was found

    ds = load_named("fashion-mnist", cache_dir=cache_root, urls=remote, debian_root=tmp_path / "no-debian")
    assert ds.source == f"downloaded from {server.url('/ds/')} into {cache_root / 'fashion-mnist'}"
    assert same_images(ds, sets["server"][1])
    assert sorted(server.requests) == sorted(f"/ds/{n}" for n in IDX_NAMES)
    assert visible(cache_root / "fashion-mnist") == sorted(IDX_NAMES)  # nothing else left there

    # The download is cached and reused: the second call makes no request.
    ds = load_named("fashion-mnist", cache_dir=cache_root, urls=remote, debian_root=tmp_path / "no-debian")
    assert ds.source == f"cache {cache_root / 'fashion-mnist'}" and same_images(ds, sets["server"][1])
    assert len(server.requests) == len(IDX_NAMES)

    ds = load_named("fashion-mnist", cache_dir=tmp_path / "empty-cache", urls=unreachable_remote(),
                    debian_root=tmp_path / "no-debian")
    assert ds.source == EMBEDDED_SOURCE and ds.train_x.shape[0] == 12_000


def test_cache_folder_follows_the_environment_variable(tmp_path, _isolated_cache):
    files, arrays = idx_set(7)
    write_files(_isolated_cache / "mnist", files)
    kind, path, source = resolve_dataset("mnist", debian_root=tmp_path / "none", download=False)
    assert (kind, path, source) == ("idx", _isolated_cache / "mnist", f"cache {_isolated_cache / 'mnist'}")
    ds = load_named("mnist", debian_root=tmp_path / "none", download=False)
    assert isinstance(ds, NamedDataset) and ds.name == "mnist" and same_images(ds, arrays)


def test_a_partial_cache_downloads_only_the_missing_files(server, tmp_path):
    files, arrays = idx_set(3)
    cache_root = tmp_path / "cache"
    write_files(cache_root / "mnist", {n: files[n] for n in IDX_NAMES[:2]})
    remote = serve(server, files)
    ds = load_named("mnist", cache_dir=cache_root, urls=remote, debian_root=None)
    assert sorted(server.requests) == sorted(f"/ds/{n}" for n in IDX_NAMES[2:])
    assert ds.source.startswith("downloaded from ") and same_images(ds, arrays)


def test_leftovers_of_killed_downloads_are_swept_when_old(server, tmp_path):
    files, _ = idx_set(6)
    folder = tmp_path / "cache" / "mnist"
    folder.mkdir(parents=True)
    old_part, new_part = folder / f".{IDX_NAMES[0]}.abc.part", folder / f".{IDX_NAMES[0]}.def.part"
    old_unpack = folder / ".unpack-xyz"
    for p in (old_part, new_part):
        p.write_bytes(b"half a file")
    old_unpack.mkdir()
    (old_unpack / "data_batch_1").write_bytes(b"x")
    two_days_ago = time.time() - 2 * 86_400
    for p in (old_part, old_unpack):
        os.utime(p, (two_days_ago, two_days_ago))
    load_named("mnist", cache_dir=tmp_path / "cache", urls=serve(server, files), debian_root=None)
    assert visible(folder) == sorted([new_part.name, *IDX_NAMES])  # a fresh one may be a parallel run's


def test_mirrors_are_tried_in_order(server, tmp_path):
    files, arrays = idx_set(4)
    good = serve(server, files)
    remote = tuple(RemoteFile(r.filename, (server.url("/gone/" + r.filename),) + r.urls, r.checksum, r.max_bytes)
                   for r in good)
    ds = load_named("mnist", cache_dir=tmp_path / "c", urls=remote, debian_root=None)
    assert same_images(ds, arrays)
    assert sum(p.startswith("/gone/") for p in server.requests) == len(IDX_NAMES)


# --------------------------------------------------------------------------
# downloads that fail leave nothing
# --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["bad-checksum", "cut"])
def test_failed_download_leaves_nothing_and_falls_back_to_the_embedded_subset(server, tmp_path, mode):
    files, _ = idx_set(5)
    wrong = {n: hashlib.sha256(b"other").hexdigest() for n in files} if mode == "bad-checksum" else None
    remote = serve(server, files, "cut" if mode == "cut" else "ok", checksums=wrong)
    cache_root = tmp_path / "cache"
    with pytest.warns(UserWarning, match="expected" if mode == "bad-checksum" else "cut after"):
        ds = load_named("fashion-mnist", cache_dir=cache_root, urls=remote, debian_root=None)
    assert ds.source == EMBEDDED_SOURCE
    assert visible(cache_root / "fashion-mnist") == []
    # The first file failed, so nothing else was tried.
    assert server.requests == [f"/ds/{IDX_NAMES[0]}"]


def test_failed_download_of_a_dataset_without_fallback_is_one_line(server, tmp_path):
    files, _ = idx_set(5)
    remote = serve(server, files, "cut")
    with pytest.warns(UserWarning), pytest.raises(ValueError) as err:
        resolve_dataset("mnist", cache_dir=tmp_path / "cache", urls=remote, debian_root=None)
    msg = str(err.value)
    assert "\n" not in msg and "cut after" in msg and "--data-dir" in msg
    assert visible(tmp_path / "cache" / "mnist") == []


def test_nothing_found_and_no_network_is_one_line_naming_every_way(tmp_path):
    remote = unreachable_remote()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no network is the ordinary offline case: no warning
        with pytest.raises(ValueError) as err:
            resolve_dataset("mnist", cache_dir=tmp_path / "cache", urls=remote, debian_root=tmp_path / "deb")
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("dataset 'mnist' is not available here")
    assert "--data-dir" in msg and str(tmp_path / "cache" / "mnist") in msg and "NAS_CONVNEXT_CACHE" in msg
    assert f"cannot reach {remote[0].urls[0]}" in msg


def test_downloads_off_says_so(tmp_path):
    with pytest.raises(ValueError, match=r"downloads are off"):
        resolve_dataset("cifar100", cache_dir=tmp_path, download=False, debian_root=None)


def test_offline_default_falls_back_quietly(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kind, path, source = resolve_dataset("fashion-mnist", cache_dir=tmp_path, urls=unreachable_remote(),
                                             debian_root=None)
    assert (kind, path, source) == ("idx", EMBEDDED_DIR, EMBEDDED_SOURCE)
    assert visible(tmp_path / "fashion-mnist") == []


# --------------------------------------------------------------------------
# CIFAR archives
# --------------------------------------------------------------------------


def cifar_batch(rng: np.random.Generator, n: int, labels=None) -> bytes:
    labels = [int(v) for v in rng.integers(0, 10, n)] if labels is None else labels
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    return pickle.dumps({b"batch_label": b"b", b"labels": labels, b"data": data, b"filenames": []}, protocol=3)


def tar_gz(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info, blob in entries:
            if blob is not None:
                info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob) if blob is not None else None)
    return buf.getvalue()


def cifar10_archive(extra: list[tuple[tarfile.TarInfo, bytes | None]] = ()) -> bytes:
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    entries = [(tarfile.TarInfo("cifar-10-batches-py"), None)]
    entries[0][0].type = tarfile.DIRTYPE
    entries += [(tarfile.TarInfo(f"cifar-10-batches-py/{n}"), cifar_batch(rng, 4, list(range(4)) if n == "test_batch"
                                                                           else None)) for n in names]
    return tar_gz(entries + list(extra))


def test_cifar_archive_is_downloaded_unpacked_and_removed(server, tmp_path):
    blob = cifar10_archive()
    remote = serve(server, {"cifar-10-python.tar.gz": blob})
    cache_root = tmp_path / "cache"
    ds = load_named("cifar10", cache_dir=cache_root, urls=remote, debian_root=None)
    assert ds.train_x.shape == (20, 3, 32, 32) and ds.val_y.tolist() == [0, 1, 2, 3] and ds.num_classes == 10
    assert ds.source.startswith("downloaded from ")
    assert visible(cache_root / "cifar10") == ["cifar-10-batches-py"]  # archive and staging gone
    again = load_named("cifar10", cache_dir=cache_root, urls=remote, debian_root=None)
    assert again.source == f"cache {cache_root / 'cifar10'}" and len(server.requests) == 1


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


@pytest.mark.parametrize("bad", [
    (tarfile.TarInfo("../escaped"), b"outside"),
    (tarfile.TarInfo("/tmp/absolute-escape"), b"outside"),
    _link("cifar-10-batches-py/evil", "/etc/passwd"),
    _link("cifar-10-batches-py/hard", "/etc/passwd", tarfile.LNKTYPE),
], ids=["dotdot", "absolute", "symlink", "hardlink"])
def test_unsafe_archive_members_are_refused_and_leave_nothing(server, tmp_path, bad):
    remote = serve(server, {"cifar-10-python.tar.gz": cifar10_archive([bad])})
    cache_root = tmp_path / "cache"
    with pytest.warns(UserWarning, match="refused"), pytest.raises(ValueError) as err:
        resolve_dataset("cifar10", cache_dir=cache_root, urls=remote, debian_root=None)
    assert "\n" not in str(err.value) and "refused" in str(err.value)
    assert visible(cache_root / "cifar10") == []
    assert not (tmp_path / "escaped").exists() and not (cache_root / "escaped").exists()


def test_archive_without_the_cifar_folder_is_refused(server, tmp_path):
    remote = serve(server, {"cifar-100-python.tar.gz": tar_gz([(tarfile.TarInfo("readme.txt"), b"hi")])})
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="does not unpack to cifar-100-python/"):
        resolve_dataset("cifar100", cache_dir=tmp_path, urls=remote, debian_root=None)
    assert visible(tmp_path / "cifar100") == []


# --------------------------------------------------------------------------
# the embedded subset
# --------------------------------------------------------------------------


def test_embedded_subset_has_the_stated_sizes_balance_and_checksums(tmp_path):
    ds = load_named("fashion-mnist", cache_dir=tmp_path, download=False, debian_root=None)
    assert ds.source == EMBEDDED_SOURCE and ds.name == "fashion-mnist" and ds.num_classes == 10
    assert tuple(ds.train_x.shape) == (12_000, 1, 28, 28) and tuple(ds.val_x.shape) == (10_000, 1, 28, 28)
    assert ds.train_y.bincount().tolist() == [1_200] * 10
    assert ds.val_y.bincount().tolist() == [1_000] * 10
    # Fashion-MNIST's mean pixel is about 73 (of 255); noise would give 127, blank images 0.
    assert 60 < ds.train_x.float().mean().item() < 90
    assert len({bytes(ds.train_x[i].numpy()) for i in range(0, 12_000, 100)}) == 120  # no repeats

    on_disk = {n: hashlib.sha256((EMBEDDED_DIR / n).read_bytes()).hexdigest() for n in IDX_NAMES}
    assert on_disk == EMBEDDED_SHA256
    notice = (EMBEDDED_DIR / "NOTICE").read_text(encoding="utf-8")
    listed = {m.group(2): m.group(1) for m in re.finditer(r"^  ([0-9a-f]{64})  (\S+)$", notice, re.MULTILINE)}
    assert listed == EMBEDDED_SHA256
    assert "MIT License" in notice and "Zalando SE" in notice and "default_rng(0)" in notice
    total = sum((EMBEDDED_DIR / n).stat().st_size for n in IDX_NAMES)
    assert 8_000_000 < total < 11_000_000


def test_the_cpu_proxy_validates_on_the_whole_shipped_test_set():
    # 2,000 validation images added about 0.8 points of sampling noise between two models, as
    # much as most roadmap steps differ (docs/CALIBRATION.md): the default data and the default
    # proxy must not drift apart again.
    from nas_convnext.training.proxy import get_proxy

    assert get_proxy("cpu").val_size >= EMBEDDED_SIZES[1] == 10_000


def test_embedded_subset_takes_seeded_balanced_subsets(tmp_path):
    ds = load_named("fashion-mnist", cache_dir=tmp_path, download=False, debian_root=None,
                    n_train=1_000, n_val=500, resolution=32, seed=1)
    assert tuple(ds.train_x.shape) == (1_000, 1, 32, 32) and ds.source == EMBEDDED_SOURCE
    assert ds.train_y.bincount().tolist() == [100] * 10


def test_asking_the_embedded_subset_for_more_images_than_it_has_is_one_line(tmp_path):
    with pytest.raises(ValueError) as err:
        load_named("fashion-mnist", cache_dir=tmp_path, download=False, debian_root=None, n_train=20_000)
    msg = str(err.value)
    assert "\n" not in msg and EMBEDDED_SOURCE in msg and "12,000 training" in msg and "--data-dir" in msg


def test_a_damaged_embedded_file_is_refused(tmp_path, monkeypatch):
    copy = tmp_path / "embedded"
    copy.mkdir()
    for n in IDX_NAMES:
        (copy / n).write_bytes((EMBEDDED_DIR / n).read_bytes())
    (copy / IDX_NAMES[1]).write_bytes(b"\x1f\x8b damaged")
    monkeypatch.setattr(named, "EMBEDDED_DIR", copy)
    with pytest.raises(ValueError, match=r"is damaged .*reinstall"):
        resolve_dataset("fashion-mnist", cache_dir=tmp_path / "c", download=False, debian_root=None)


# --------------------------------------------------------------------------
# errors for people
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name, hint", [("imagenet", ""), ("FashionMNIST", "fashion-mnist"),
                                        ("CIFAR_10", "cifar10"), ("idx", "")])
def test_unknown_name_is_one_line_listing_the_names(name, hint):
    with pytest.raises(ValueError) as err:
        resolve_dataset(name)
    msg = str(err.value)
    assert "\n" not in msg and all(n in msg for n in NAMES) and repr(name) in msg
    assert (f"did you mean {hint!r}" in msg) == bool(hint)


def test_data_dir_missing_the_files_is_one_line_and_never_replaced(tmp_path):
    folder = tmp_path / "wrong"
    folder.mkdir()
    (folder / "data_batch_1").write_bytes(b"a CIFAR file in an MNIST folder")
    with pytest.raises(ValueError) as err:
        load_named("fashion-mnist", folder, cache_dir=tmp_path, download=False, debian_root=None)
    msg = str(err.value)
    assert "\n" not in msg and f"--data-dir {str(folder)!r} does not hold dataset 'fashion-mnist'" in msg
    assert "train-images-idx3-ubyte" in msg and "t10k-labels-idx1-ubyte" in msg


def test_data_dir_that_does_not_exist_is_one_line(tmp_path):
    with pytest.raises(ValueError, match=r"^--data-dir .* does not exist; for dataset 'cifar10' .*cifar-10-batches-py"):
        resolve_dataset("cifar10", tmp_path / "nowhere")


def test_data_dir_with_files_that_are_not_idx_is_one_line(tmp_path):
    folder = write_files(tmp_path / "d", {n: gzip.compress(b"<html>not found</html>", mtime=0) for n in IDX_NAMES})
    with pytest.raises(ValueError) as err:
        load_named("mnist", folder, cache_dir=tmp_path, debian_root=None)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"dataset 'mnist' from --data-dir {folder}: ")
    assert "not an IDX file" in msg


def test_data_dir_with_the_wrong_number_of_classes_is_refused(tmp_path):
    files, _ = idx_set(2, classes=6)
    folder = write_files(tmp_path / "six", files)
    with pytest.raises(ValueError, match=r"has 6 classes, expected 10: these are not its files"):
        load_named("fashion-mnist", folder, cache_dir=tmp_path, debian_root=None)


def test_cifar_data_dir_accepts_the_folder_or_its_parent(tmp_path):
    rng = np.random.default_rng(1)
    inner = tmp_path / "parent" / "cifar-100-python"
    inner.mkdir(parents=True)
    for n in ("train", "test"):
        labels = [int(v) for v in rng.integers(0, 100, 3)]
        blob = {b"fine_labels": labels, b"data": rng.integers(0, 256, (3, 3072), dtype=np.uint8)}
        (inner / n).write_bytes(pickle.dumps(blob, protocol=3))
    for folder in (tmp_path / "parent", inner):
        kind, path, source = resolve_dataset("cifar100", folder)
        assert (kind, path, source) == ("cifar100", folder, f"--data-dir {folder}")
    (inner / "test").unlink()
    with pytest.raises(ValueError, match=r"missing cifar-100-python/test;"):
        resolve_dataset("cifar100", tmp_path / "parent")


def test_remote_file_names_cannot_leave_the_cache_folder():
    for bad in ("../x", "a/b", "..", ""):
        with pytest.raises(ValueError, match="plain file name"):
            RemoteFile(bad, ("http://127.0.0.1/x",), "sha256:" + "0" * 64, 10)


def test_public_addresses_are_http_with_published_checksums():
    for name in NAMES:
        for item in named.remote_files(name):
            assert item.urls and all(u.startswith(("http://", "https://")) for u in item.urls)
            assert re.fullmatch(r"md5:[0-9a-f]{32}", item.checksum)
    # torchvision's and the Fashion-MNIST README's published md5 of the training images
    assert named.remote_files("fashion-mnist")[0].checksum == "md5:8d4fb7e6c68d591d4c3dfef9ec88bf0d"
