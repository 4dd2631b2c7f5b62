"""Datasets by name: ``fashion-mnist``, ``mnist``, ``cifar10``, ``cifar100``, found for the user.

A proxy is only as good as the images it trains on, so the default must be real images, and
it must work on a machine that reaches nothing but the package registries. A named dataset is
therefore looked up in this order, the first complete copy winning:

1. ``--data-dir`` when given (and only there: a folder the user named that holds the wrong
   files is an error, never silently replaced by something else);
2. the cache folder ``$NAS_CONVNEXT_CACHE/NAME`` (default ``~/.cache/nas-convnext/NAME``);
3. Debian's dataset folder ``/usr/share/datasets/NAME`` (``apt-get install
   dataset-fashion-mnist``; of these four datasets Debian ships only Fashion-MNIST, checked
   with ``apt-cache search dataset-``, but a folder of that name is used for any of them);
4. a download into the cache from the dataset's usual public address, checked against its
   published checksum, when the network allows (see :mod:`.download`);
5. for ``fashion-mnist`` only, the 12,000-image class-balanced training subset and the whole
   10,000-image test set that ship in the package (``embedded/fashion-mnist``, MIT licence in
   its NOTICE), so the default never needs the network.

When none works, one ``ValueError`` names every way to provide the data. Every result says
where its data came from (:attr:`NamedDataset.source`, e.g. ``"embedded subset 12000/10000"``)
so a run can record it: scores on the subset and on the full set are not the same experiment.

Parsing is not repeated here: the files are read by :func:`nas_convnext.data.load_dataset`
(``idx`` for the MNISTs, ``cifar10``/``cifar100``), with all its checks on untrusted files.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tarfile
import tempfile
import time
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from . import load_dataset
from .cache import CACHE_ENV_VAR, default_cache_dir
from .dataset import Dataset
from .download import Checksum, DownloadError, download

__all__ = [
    "DEBIAN_ROOT",
    "EMBEDDED_DIR",
    "EMBEDDED_SHA256",
    "EMBEDDED_SOURCE",
    "NAMES",
    "NamedDataset",
    "RemoteFile",
    "load_named",
    "remote_files",
    "resolve_dataset",
]

NAMES: tuple[str, ...] = ("fashion-mnist", "mnist", "cifar10", "cifar100")

#: Where Debian's ``dataset-*`` packages put their files (``/usr/share/datasets/NAME``).
DEBIAN_ROOT = Path("/usr/share/datasets")
#: Debian packages that provide a named dataset (``apt-cache search dataset-``).
DEBIAN_PACKAGES = {"fashion-mnist": "dataset-fashion-mnist"}

EMBEDDED_DIR = Path(__file__).resolve().parent / "embedded" / "fashion-mnist"
EMBEDDED_SIZES = (12_000, 10_000)   # training, test (the whole test set: the cpu proxy's validation)
EMBEDDED_SOURCE = f"embedded subset {EMBEDDED_SIZES[0]}/{EMBEDDED_SIZES[1]}"
#: sha256 of the shipped files, as written by bench/make_embedded_subset.py and its NOTICE.
EMBEDDED_SHA256 = {
    "train-images-idx3-ubyte.gz": "0d13ecc641972943d18179fe9cc60ab163761943ced855976d2f435abe39517c",
    "train-labels-idx1-ubyte.gz": "5df0f146aaa3475e3a9a5012f207cfbad11c8794874355023b20dc0963825108",
    "t10k-images-idx3-ubyte.gz": "78cb45a589ec14266eab4ac0cb2e9e10a4c076ae2d337fe86383d761bff83f32",
    "t10k-labels-idx1-ubyte.gz": "ae04cd950ab214637dd08f56319057c2ae10cbb660f742681f426479e3d51363",
}

_IDX_BASES = (
    "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
)
_CLASSES = {"fashion-mnist": 10, "mnist": 10, "cifar10": 10, "cifar100": 100}
# Extracted CIFAR archives: cifar-10 unpacks to about 178 MB, cifar-100 to about 161 MB.
_MAX_EXTRACTED = 400_000_000
_MAX_MEMBERS = 1_000
_STALE_AFTER_S = 86_400.0  # leftovers of killed downloads older than this are removed
_CONNECT_TIMEOUT = 10.0  # seconds: an offline machine that drops packets costs this once a run


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset on the internet.

    ``filename``: its name in the cache folder (a plain name, no folders). ``urls``: mirrors,
    tried in order. ``checksum``: ``"sha256:<hex>"`` or ``"md5:<hex>"`` (the digest the dataset
    publishes). ``max_bytes``: the most a download may bring.
    """

    filename: str
    urls: tuple[str, ...]
    checksum: str
    max_bytes: int

    def __post_init__(self) -> None:
        name = self.filename
        if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name:
            raise ValueError(f"remote file name {name!r} must be a plain file name")
        if isinstance(self.urls, str) or not self.urls or not all(isinstance(u, str) for u in self.urls):
            raise ValueError(f"remote file {name!r}: urls must be a non-empty tuple of addresses")
        object.__setattr__(self, "urls", tuple(self.urls))
        Checksum.parse(self.checksum)  # validates


def _idx_remote(mirrors: Sequence[str], md5s: Sequence[str], image_max: int) -> tuple[RemoteFile, ...]:
    return tuple(
        RemoteFile(f"{base}.gz", tuple(m + f"{base}.gz" for m in mirrors), f"md5:{md5}",
                   image_max if "images" in base else 1_000_000)
        for base, md5 in zip(_IDX_BASES, md5s, strict=True)
    )


# Addresses and checksums: the ones torchvision uses (torchvision 0.29.1,
# torchvision/datasets/mnist.py classes MNIST and FashionMNIST, `mirrors` and `resources`;
# torchvision/datasets/cifar.py, `url` and `tgz_md5`). The Fashion-MNIST md5s are also the ones
# published in the table "Get the Data" of https://github.com/zalandoresearch/fashion-mnist.
_REMOTE: dict[str, tuple[RemoteFile, ...]] = {
    "fashion-mnist": _idx_remote(
        ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
        ["8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
         "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"],
        64_000_000,
    ),
    "mnist": _idx_remote(
        ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"],
        ["f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
         "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"],
        64_000_000,
    ),
    "cifar10": (RemoteFile("cifar-10-python.tar.gz", ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
                           "md5:c58f30108f718f92721af3b95e74349a", 256_000_000),),
    "cifar100": (RemoteFile("cifar-100-python.tar.gz", ("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",),
                            "md5:eb9058c3a382ffc7106e4002c42a8d85", 256_000_000),),
}

# CIFAR: the folder its archive unpacks to and the files the loader needs in it.
_CIFAR_LAYOUT = {
    "cifar10": ("cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)),
    "cifar100": ("cifar-100-python", ("train", "test")),
}


@dataclass(frozen=True, eq=False, repr=False)
class NamedDataset(Dataset):
    """A :class:`~nas_convnext.data.Dataset` that also says where its images came from.

    ``source`` is one of ``"--data-dir PATH"``, ``"cache PATH"``, ``"Debian PATH"``,
    ``"downloaded from URL into PATH"`` or ``"embedded subset 12000/10000"``: record it with
    the run. (``subset()`` returns a plain Dataset; keep the source from here.)
    """

    source: str = ""

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, source={self.source!r})"


def remote_files(name: str) -> tuple[RemoteFile, ...]:
    """The files a named dataset is downloaded from (addresses, checksums, size limits)."""
    _check_name(name)
    return _REMOTE[name]


# long: the lookup order reads top to bottom as the README states it (--data-dir, cache,
# Debian, download, embedded subset); split, that order would be spread over several functions.
def resolve_dataset(
    name: str,
    data_dir: str | Path | None = None,
    *,
    cache_dir: str | Path | None = None,
    download: bool = True,
    urls: Sequence[RemoteFile] | None = None,
    debian_root: str | Path | None = DEBIAN_ROOT,
    timeout: float = _CONNECT_TIMEOUT,
) -> tuple[str, Path, str]:
    """Find (or fetch) a named dataset; return ``(kind, path, source)``.

    Parameters
    ----------
    name:
        One of :data:`NAMES`.
    data_dir:
        The user's ``--data-dir``: when given it is the only place looked at, and a folder
        missing the dataset's files is a ``ValueError`` saying which files it needs.
    cache_dir:
        The cache root (default :func:`nas_convnext.data.default_cache_dir`, moved by
        ``$NAS_CONVNEXT_CACHE``); the dataset lives in ``cache_dir/NAME`` and downloads go there.
    download:
        Whether to try the network when no copy is found.
    urls:
        The files to download instead of the dataset's public ones (tests point them at a
        local server); see :func:`remote_files` for the defaults.
    debian_root:
        Where Debian's dataset packages live (default ``/usr/share/datasets``; ``None``: skip).
    timeout:
        Seconds a download may wait for each network operation.

    ``kind`` is what :func:`nas_convnext.data.load_dataset` reads the folder as (``"idx"``,
    ``"cifar10"``, ``"cifar100"``), ``path`` the folder, ``source`` where it came from.
    Raises ``ValueError`` with one line when the name is unknown, ``data_dir`` holds the wrong
    files, or no copy is found and none can be downloaded.
    """
    _check_name(name)
    kind = "idx" if name in ("fashion-mnist", "mnist") else name
    if data_dir is not None and str(data_dir) != "":
        root = Path(data_dir).expanduser()
        if not root.is_dir():
            why = "does not exist" if not root.exists() else "is not a folder"
            raise ValueError(f"--data-dir {str(root)!r} {why}; for dataset {name!r} it must be a folder "
                             f"holding {_expected(name)}")
        missing = _missing(name, root)
        if missing:
            raise ValueError(f"--data-dir {str(root)!r} does not hold dataset {name!r}: missing "
                             f"{', '.join(missing)}; it must hold {_expected(name)}")
        return kind, root, f"--data-dir {root}"

    cache = (Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()) / name
    if cache.is_dir() and not _missing(name, cache):
        return kind, cache, f"cache {cache}"
    if debian_root is not None:
        system = Path(debian_root) / name
        if system.is_dir() and not _missing(name, system):
            return kind, system, f"Debian {system}"

    remote = tuple(urls) if urls is not None else _REMOTE[name]
    failure = "downloads are off"
    if download:
        try:
            used = _download_into(name, cache, remote, timeout=timeout)
            still = _missing(name, cache)
            if still:
                raise ValueError(f"after downloading, {str(cache)!r} still lacks {', '.join(still)}: "
                                 "the download addresses do not cover the dataset's files")
            return kind, cache, f"downloaded from {_common_url(used)} into {cache}"
        except DownloadError as exc:
            failure = exc.reason
            if not exc.unreachable:
                warnings.warn(f"dataset {name!r}: {exc.reason}", stacklevel=2)
        except ValueError as exc:  # a bad archive, an unwritable cache
            failure = str(exc)
            warnings.warn(f"dataset {name!r}: {exc}", stacklevel=2)

    if name == "fashion-mnist":
        _check_embedded()
        return kind, EMBEDDED_DIR, EMBEDDED_SOURCE

    ways = [f"pass --data-dir DIR holding {_expected(name)}",
            f"put them in {str(cache)!r} (${CACHE_ENV_VAR} moves the cache)"]
    if name in DEBIAN_PACKAGES:
        ways.append(f"apt-get install {DEBIAN_PACKAGES[name]}")
    where = remote[0].urls[0] if remote else "its public address"
    ways.append(f"allow the download from {where} (this time: {failure})")
    raise ValueError(f"dataset {name!r} is not available here: {', or '.join(ways)}")


def load_named(
    name: str,
    data_dir: str | Path | None = None,
    *,
    cache_dir: str | Path | None = None,
    download: bool = True,
    urls: Sequence[RemoteFile] | None = None,
    debian_root: str | Path | None = DEBIAN_ROOT,
    **load_kwargs: Any,
) -> NamedDataset:
    """Load a named dataset found by :func:`resolve_dataset`; the result records its ``source``.

    ``name``, ``data_dir``, ``cache_dir``, ``download``, ``urls`` and ``debian_root`` are as in
    :func:`resolve_dataset`. ``load_kwargs`` go to :func:`nas_convnext.data.load_dataset`
    (``resolution``, ``seed``, ``n_train``, ``n_val``): e.g. ``n_train=10_000`` takes a seeded,
    class-balanced subset. The dataset's ``name`` is ``name`` (not the file format).

    Raises ``ValueError`` with one line naming the dataset, where it came from and the
    problem (unknown name, wrong or damaged files, more images asked than there are).
    """
    kind, path, source = resolve_dataset(name, data_dir, cache_dir=cache_dir, download=download,
                                         urls=urls, debian_root=debian_root)
    try:
        ds = load_dataset(kind, path, **load_kwargs)
    except ValueError as exc:
        hint = ""
        if source == EMBEDDED_SOURCE:
            hint = (f" (the embedded subset has {EMBEDDED_SIZES[0]:,} training and {EMBEDDED_SIZES[1]:,} "
                    "test images; for the full set install dataset-fashion-mnist, allow the download "
                    "or pass --data-dir)")
        elif source.startswith(("cache ", "downloaded ")):
            hint = f" (remove {str(path)!r} to fetch it again)"
        raise ValueError(f"dataset {name!r} from {source}: {exc}{hint}") from None
    expected = _CLASSES[name]
    if ds.num_classes != expected:
        raise ValueError(f"dataset {name!r} from {source} has {ds.num_classes} classes, expected {expected}: "
                         "these are not its files")
    return NamedDataset(name=name, train_x=ds.train_x, train_y=ds.train_y, val_x=ds.val_x, val_y=ds.val_y,
                        num_classes=ds.num_classes, source=source)


# --------------------------------------------------------------------------
# Folder checks
# --------------------------------------------------------------------------


def _check_name(name: object) -> None:
    if name in NAMES:
        return
    hint = ""
    if isinstance(name, str):
        squashed = name.lower().replace("-", "").replace("_", "").replace(" ", "")
        close = [n for n in NAMES if n.replace("-", "") == squashed]
        if close:
            hint = f" (did you mean {close[0]!r}?)"
    raise ValueError(f"unknown dataset {name!r}; the named datasets are {', '.join(NAMES)}{hint}")


def _missing(name: str, folder: Path) -> list[str]:
    """The files ``folder`` lacks to hold ``name`` (empty when it holds them all)."""
    if name in ("fashion-mnist", "mnist"):
        return [f"{b}(.gz)" for b in _IDX_BASES
                if not ((folder / b).is_file() or (folder / f"{b}.gz").is_file())]
    sub, files = _CIFAR_LAYOUT[name]
    if (folder / sub).is_dir():
        return [f"{sub}/{f}" for f in files if not (folder / sub / f).is_file()]
    missing = [f for f in files if not (folder / f).is_file()]
    return [f"{sub}/"] if len(missing) == len(files) else missing


def _expected(name: str) -> str:
    if name in ("fashion-mnist", "mnist"):
        return f"the IDX files {', '.join(_IDX_BASES)} (each may be .gz)"
    sub, files = _CIFAR_LAYOUT[name]
    return f"{sub}/ (or its files {', '.join(files)}) as unpacked from {_REMOTE[name][0].filename}"


def _check_embedded() -> None:
    """The shipped subset, checked: a damaged install must not train on damaged images quietly."""
    for fname, expected in EMBEDDED_SHA256.items():
        path = EMBEDDED_DIR / fname
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError as exc:
            raise ValueError(f"the embedded Fashion-MNIST subset is incomplete ({str(path)!r}: "
                             f"{exc.strerror or exc}); reinstall nas-convnext") from None
        if digest != expected:
            raise ValueError(f"the embedded Fashion-MNIST file {str(path)!r} is damaged (sha256 {digest}, "
                             f"expected {expected}); reinstall nas-convnext")


# --------------------------------------------------------------------------
# Downloads
# --------------------------------------------------------------------------


def _download_into(name: str, folder: Path, remote: Sequence[RemoteFile], *, timeout: float) -> list[str]:
    """Download what ``folder`` lacks of ``name``; return the URLs used.

    IDX files arrive one by one (each verified and renamed into place, so an interrupted run
    keeps the whole files and fetches only the rest next time); a CIFAR archive is unpacked
    and removed. A server that cannot be reached at all stops the attempt at once, so an
    offline machine pays one timeout, not one per file and mirror.
    """
    if not remote:
        raise DownloadError(f"no download address is known for dataset {name!r}", url="")
    _sweep_stale(folder)
    used: list[str] = []
    for item in remote:
        if name in _CIFAR_LAYOUT:
            pass  # the archive is the whole dataset: fetched when the folder lacks anything
        elif (folder / item.filename).is_file() or (folder / item.filename.removesuffix(".gz")).is_file():
            continue
        errors: list[DownloadError] = []
        for url in item.urls:
            try:
                download(url, folder / item.filename, checksum=item.checksum, max_bytes=item.max_bytes,
                         timeout=timeout)
                used.append(url)
                break
            except DownloadError as exc:
                errors.append(exc)
        else:
            # Prefer the most telling error: a server that answered wrongly over an unreachable one.
            raise next((e for e in errors if not e.unreachable), errors[0])
        if name in _CIFAR_LAYOUT:
            _unpack_cifar(name, folder / item.filename, folder)
    return used


def _sweep_stale(folder: Path) -> None:
    """Remove what killed downloads left: hidden ``.part`` files and ``.unpack-`` folders.

    A download removes its temporary file on every failure Python sees; only a process killed
    outright (SIGKILL, power loss) leaves one, and it is never read. Only those older than a
    day go, so a download running in parallel (another Ray worker) keeps its own.
    """
    if not folder.is_dir():
        return
    cutoff = time.time() - _STALE_AFTER_S
    for entry in folder.iterdir():
        try:
            info = entry.lstat()
            if info.st_mtime >= cutoff or not entry.name.startswith("."):
                continue
            if entry.name.endswith(".part") and stat.S_ISREG(info.st_mode):
                entry.unlink()
            elif entry.name.startswith(".unpack-") and stat.S_ISDIR(info.st_mode):
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            continue  # another process got there first, or it is not ours to remove


def _unpack_cifar(name: str, archive: Path, folder: Path) -> None:
    """Unpack a CIFAR archive into ``folder`` (via a temporary folder, renamed when whole)."""
    sub, files = _CIFAR_LAYOUT[name]
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=folder))
    try:
        _extract_tar(archive, staging)
        lacking = [f for f in files if not (staging / sub / f).is_file()]
        if lacking:
            raise ValueError(f"{str(archive)!r} does not unpack to {sub}/ with {', '.join(lacking)}; "
                             "it is not the CIFAR archive expected")
        try:
            os.replace(staging / sub, folder / sub)
        except OSError as exc:
            if not (folder / sub).is_dir() or _missing(name, folder):  # not a parallel run that won
                raise ValueError(f"cannot put the unpacked {sub}/ into {str(folder)!r} ({exc.strerror or exc}); "
                                 f"remove {str(folder / sub)!r} and try again") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        archive.unlink(missing_ok=True)


def _extract_tar(archive: Path, into: Path) -> None:
    """Unpack regular files and folders only, each inside ``into``, within size limits.

    A downloaded archive is untrusted even after its checksum matched (a mirror's own file
    with a new published sum): links, devices, absolute names or ``..`` could write outside
    the cache, and a small archive could inflate without bound. Any such member stops the
    extraction with a ValueError; owners and modes in the archive are ignored.
    """
    total = 0
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for count, member in enumerate(tar, start=1):
                if count > _MAX_MEMBERS:
                    raise ValueError(f"{str(archive)!r} has more than {_MAX_MEMBERS} entries; refused")
                rel = PurePosixPath(member.name)
                if rel.is_absolute() or ".." in rel.parts or "\\" in member.name:
                    raise ValueError(f"{str(archive)!r} has an entry {member.name!r} outside its folder; refused")
                target = into.joinpath(*rel.parts)
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                if not member.isfile() or not rel.parts:
                    raise ValueError(f"{str(archive)!r} has an entry {member.name!r} that is a link or a "
                                     "special file; refused")
                total += member.size
                if total > _MAX_EXTRACTED:
                    raise ValueError(f"{str(archive)!r} unpacks to more than {_MAX_EXTRACTED:,} bytes; refused")
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                if source is None:  # pragma: no cover - isfile() members always have data
                    raise ValueError(f"{str(archive)!r}: cannot read entry {member.name!r}")
                with source, open(target, "xb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise ValueError(f"cannot unpack {str(archive)!r}: {type(exc).__name__}: {exc}") from None


def _common_url(urls: Sequence[str]) -> str:
    """The shared folder of the URLs used (one URL as is), for a short ``source`` string."""
    if len(urls) == 1:
        return urls[0]
    prefix = os.path.commonprefix(list(urls))
    return prefix[: prefix.rfind("/") + 1] or ", ".join(urls)
