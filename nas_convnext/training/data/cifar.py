"""CIFAR-10 and CIFAR-100 python batches, read with an unpickler that can only build numpy arrays.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np
import torch

from . import dataset  # dataset.data_memory_limit: looked up when called
from .dataset import Dataset, _too_big

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
    total, limit = sum(sizes.values()), dataset.data_memory_limit()
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
