"""YAML from users (design spaces, design files) and the package (proxy profiles) is read with
yaml.safe_load: a Python object tag is refused with an error naming the file, and runs nothing."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from nas_convnext.cli import main
from nas_convnext.design.arch import design_from_file, load_design
from nas_convnext.design.space import DesignSpace, load_space
from nas_convnext.training import proxy as proxy_mod

PACKAGE = Path(__file__).resolve().parents[2] / "nas_convnext"
TAGS = ["!!python/object/apply:os.system", "!!python/object/new:os.system"]


def evil_space(marker: Path, tag: str = TAGS[0], nested: bool = True) -> str:
    payload = f'{tag} ["touch {marker}"]'
    if not nested:
        return payload + "\n"
    return ("name: evil\ndimensions:\n  stem: patchify\n  depths: [[3, 3, 9, 3]]\n  width: 96\n"
            "  expansion: 4\n  groups: depthwise\n"
            f"  kernel: {payload}\n"
            "  spatial_conv: first\n  act: gelu\n  activations: single\n  norm: ln\n"
            "  norms: single\n  downsample: separate\n  layer_scale: 1.0e-6\n")


def evil_design(marker: Path, tag: str = TAGS[0]) -> str:
    return f'base: convnext_t\nkernel: {tag} ["touch {marker}"]\n'


def test_the_payload_is_real(tmp_path):
    # A plain yaml.unsafe_load of these files would run the command: the tests below matter.
    for i, text in enumerate([evil_space(tmp_path / "m0"), evil_design(tmp_path / "m1")]):
        yaml.unsafe_load(text)
        assert (tmp_path / f"m{i}").exists()


def test_package_reads_yaml_and_json_only_through_the_one_loader():
    # userfile.load_file is the only reader of YAML and JSON (bounded: see test_user_files and
    # test_file_bombs), and its loader is a SafeLoader: no other module parses either format.
    from nas_convnext import userfile

    calls = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id in ("yaml", "json") and "load" in node.func.attr):
                calls.append((path.name, f"{node.func.value.id}.{node.func.attr}", node.lineno))
            if isinstance(node, ast.ImportFrom) and node.module in ("yaml", "json"):
                calls.append((path.name, f"from {node.module} import", node.lineno))
    outside = [c for c in calls if c[0] != "userfile.py"]
    assert not outside, outside
    assert issubclass(userfile._Loader, yaml.SafeLoader)
    assert [c[1] for c in calls] == ["json.loads"]  # JSON's; YAML goes through _Loader
    users = {p.name for p in PACKAGE.rglob("*.py") if "load_file(" in p.read_text()}
    assert {"space.py", "arch.py", "proxy.py", "roadmap.py", "results.py"} <= users


@pytest.mark.parametrize("tag", TAGS)
@pytest.mark.parametrize("nested", [True, False], ids=["nested", "whole-file"])
def test_space_with_python_tag_is_refused(tmp_path, tag, nested):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.yaml"
    evil.write_text(evil_space(marker, tag, nested))
    for load in (DesignSpace.from_yaml, load_space, lambda p: load_space(str(p))):
        with pytest.raises(ValueError) as err:
            load(evil)
        assert str(evil) in str(err.value)
    assert not marker.exists()


@pytest.mark.parametrize("tag", TAGS)
def test_design_file_with_python_tag_is_refused(tmp_path, tag):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.yaml"
    evil.write_text(evil_design(marker, tag))
    for load in (design_from_file, lambda p: load_design(str(p))):
        with pytest.raises(ValueError) as err:
            load(evil)
        assert str(evil) in str(err.value)
    assert not marker.exists()


@pytest.fixture
def evil_profiles(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    evil = tmp_path / "proxies.yaml"
    evil.write_text(f'cpu-tiny: {TAGS[0]} ["touch {marker}"]\n')
    monkeypatch.setattr(proxy_mod, "PROFILES_FILE", evil)
    proxy_mod._profiles.cache_clear()
    yield evil, marker
    proxy_mod._profiles.cache_clear()  # the real profiles again for later tests


def test_proxy_profiles_with_python_tag_run_nothing(evil_profiles):
    evil, marker = evil_profiles
    with pytest.raises((ValueError, yaml.YAMLError)):
        proxy_mod.profiles()
    assert not marker.exists()


def test_proxy_profiles_error_names_the_file(evil_profiles):
    evil, marker = evil_profiles
    with pytest.raises(ValueError) as err:
        proxy_mod.profiles()
    assert str(evil) in str(err.value)


def _cli(capsys, *argv) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err
    return code, err


def _one_line_naming(err: str, path: Path) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(path) in lines[0]


def test_cli_space_refuses_python_tags(tmp_path, capsys):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.yaml"
    evil.write_text(evil_space(marker))
    code, err = _cli(capsys, "space", str(evil))
    assert code == 2
    _one_line_naming(err, evil)
    assert not marker.exists()


def test_cli_flops_refuses_python_tags(tmp_path, capsys):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.yaml"
    evil.write_text(evil_design(marker))
    code, err = _cli(capsys, "flops", str(evil))
    assert code == 2
    _one_line_naming(err, evil)
    assert not marker.exists()


def test_cli_search_refuses_python_tags_before_anything(tmp_path, capsys):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.yaml"
    evil.write_text(evil_space(marker))
    results = tmp_path / "results"
    code, err = _cli(capsys, "search", "--space", str(evil), "--budget", "4.5G",
                     "--results-dir", str(results))
    assert code == 2
    _one_line_naming(err, evil)
    assert not marker.exists()
    assert not results.exists() or not any(results.iterdir())
