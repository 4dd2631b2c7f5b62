"""Tensors and caches: every torch.load is weights_only=True, no plain pickle.load anywhere,
and a cache file crafted to run code is ignored and rebuilt without running it."""
from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import pytest
import torch

from nas_convnext.training.data import generate_synthetic, load_dataset
from tests.training.test_data import make_split_folder

PACKAGE = Path(__file__).resolve().parents[2] / "nas_convnext"
SOURCES = sorted(PACKAGE.rglob("*.py"))


def _name(node) -> str:
    """`torch.load` for an Attribute chain, `load` for a Name."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    return "?"


def _calls():
    for path in SOURCES:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                yield path, node, _name(node.func)


def test_every_torch_load_is_weights_only():
    found = []
    for path, node, name in _calls():
        if name == "torch.load":
            kw = {k.arg: k.value for k in node.keywords}
            flag = kw.get("weights_only")
            ok = isinstance(flag, ast.Constant) and flag.value is True
            found.append((path.name, node.lineno, ok))
    assert found, "expected torch.load in the data cache's reader (training/data/cache.py)"
    assert all(ok for *_, ok in found), found
    # Every textual occurrence is one of the calls checked (no alias, no torch.load in a string).
    text = sum(len(re.findall(r"\btorch\.load\(", p.read_text())) for p in SOURCES)
    assert text == len(found)
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "torch":
                assert "load" not in {a.name for a in node.names}, path


def test_no_unrestricted_unpickling():
    bad = []
    for path, node, name in _calls():
        if name in ("pickle.load", "pickle.loads", "pickle.Unpickler", "pd.read_pickle",
                    "pandas.read_pickle", "joblib.load", "dill.load", "cloudpickle.load",
                    "cloudpickle.loads", "marshal.loads", "shelve.open"):
            bad.append((path.name, node.lineno, name))
        if any(k.arg == "allow_pickle" and not (isinstance(k.value, ast.Constant)
                                                and k.value.value is False) for k in node.keywords):
            bad.append((path.name, node.lineno, f"{name}(allow_pickle=...)"))
    assert not bad, bad
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module in ("pickle", "_pickle", "dill"):
                bad.append((path.name, node.lineno, f"from {node.module} import"))
    assert not bad, bad
    # The only unpicklers are restricted ones: subclasses that override find_class.
    subclasses = []
    for path in SOURCES:
        for n in ast.walk(ast.parse(path.read_text())):
            if isinstance(n, ast.ClassDef) and any(_name(b) == "pickle.Unpickler" for b in n.bases):
                subclasses.append((path.name, n))
    assert [(f, c.name) for f, c in subclasses] == [("cifar.py", "_RestrictedUnpickler")]
    for _, cls in subclasses:
        assert "find_class" in {f.name for f in cls.body if isinstance(f, ast.FunctionDef)}


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _plant(path: Path, marker: Path) -> None:
    """A torch.save of tensors with an object whose unpickling would run a command."""
    torch.save({"train_x": _Exploit(marker), "train_y": torch.zeros(2, dtype=torch.int64),
                "val_x": torch.zeros(1), "val_y": torch.zeros(1), "num_classes": 12}, path)


def test_the_payload_is_real(tmp_path):
    marker = tmp_path / "torch-load-ran-it"
    _plant(tmp_path / "x.pt", marker)
    torch.load(tmp_path / "x.pt", weights_only=False)
    assert marker.exists()


def test_crafted_synthetic_cache_is_rebuilt_without_running_it(tmp_path):
    cache = tmp_path / "cache"
    first = generate_synthetic(60, 12, seed=3, cache_dir=cache)
    (path,) = cache.glob("synthetic-*.pt")  # training/data/cache.py: <cache>/synthetic-<key>.pt
    marker = tmp_path / "pwned"
    _plant(path, marker)
    with pytest.warns(UserWarning, match="unreadable cache"):
        again = generate_synthetic(60, 12, seed=3, cache_dir=cache)
    assert not marker.exists()
    assert torch.equal(again.train_x, first.train_x) and torch.equal(again.val_y, first.val_y)
    # Rebuilt in place: the file holds tensors again.
    assert isinstance(torch.load(path, weights_only=True)["train_x"], torch.Tensor)


def test_crafted_synthetic_cache_via_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_CONVNEXT_CACHE", str(tmp_path / "envcache"))
    generate_synthetic(48, 12, seed=5)
    (path,) = (tmp_path / "envcache").glob("synthetic-*.pt")
    marker = tmp_path / "pwned"
    _plant(path, marker)
    with pytest.warns(UserWarning, match="unreadable cache"):
        generate_synthetic(48, 12, seed=5)
    assert not marker.exists()


def test_crafted_imagefolder_cache_is_rebuilt_without_running_it(tmp_path):
    root, cache = tmp_path / "imgs", tmp_path / "cache"
    make_split_folder(root)
    first = load_dataset("imagefolder", root, resolution=8, cache_dir=cache)
    (path,) = cache.glob("imagefolder-*.pt")  # training/data/cache.py: <cache>/imagefolder-<key>.pt
    marker = tmp_path / "pwned"
    _plant(path, marker)
    with pytest.warns(UserWarning, match="unreadable cache"):
        again = load_dataset("imagefolder", root, resolution=8, cache_dir=cache)
    assert not marker.exists()
    assert torch.equal(again.train_x, first.train_x) and again.num_classes == 3
