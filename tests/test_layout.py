"""The package's shape: parts used in one direction, only search/ imports Ray (raytune.py and mo_asha.py), only
cli.py knows the command line, no module over 500 lines, no function over 80 lines unless a
note says why."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nas_convnext"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
#: What each part may import from the package (besides itself): design <- training <- search,
#: design <- analysis <- report; results, userfile and memory serve every part.
SHARED = {"results", "userfile", "memory"}
#: The only modules that import Ray (lazily): the search's Ray glue and the Ray Tune class of
#: the multi-objective scheduler, which lives beside its rule.
RAY_GLUE = (Path("search/raytune.py"), Path("search/mo_asha.py"))
ALLOWED = {
    "design": {"userfile"},
    "training": {"design"} | SHARED,
    "search": {"design", "training"} | SHARED,
    "analysis": {"design"} | SHARED,
    "report": {"design", "analysis"} | SHARED,
    "results": {"design", "userfile"},
    "userfile": set(),
    "memory": set(),
}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _part(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file, at any depth."""
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    package = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
                if not node.module:  # from . import x: each x is a module
                    out += [(node.lineno, f"{name}.{a.name}") for a in node.names]
                    continue
            else:
                name = node.module or ""
            out.append((node.lineno, name))
    return out


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_parts_are_used_in_one_direction(path):
    part = _part(path)
    if part in ("cli", "runs", "run_end", "__init__"):
        return  # the top (the command, the commands that run trials, their end): every part
    allowed = ALLOWED[part] | {part}
    for line, name in _imports(path):
        if name.startswith("nas_convnext."):
            used = name.split(".")[1]
            assert used in allowed, f"{path.name}:{line} ({part}) imports {name}"
        if name.split(".")[0] == "ray":
            assert path.relative_to(PACKAGE) in RAY_GLUE, \
                f"{path.name}:{line} imports Ray; only {', '.join(map(str, RAY_GLUE))} may"
        if name == "argparse":
            assert path.name == "cli.py", f"{path.name}:{line} knows the command line"


def test_the_check_sees_imports():
    """Not vacuous: the checker finds the imports it judges."""
    raytune = {name: line for line, name in _imports(PACKAGE / "search" / "raytune.py")}
    assert "ray" in raytune and "nas_convnext.training.trial" in raytune
    assert "nas_convnext.design.arch" in {n for _, n in _imports(PACKAGE / "analysis" / "run.py")}


def _long_functions(path: Path) -> list[str]:
    lines = path.read_text().splitlines()
    out = []
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
            noted = any("# long:" in lines[i] for i in range(max(0, first - 3), node.lineno))
            if length > MAX_FUNCTION_LINES and not noted:
                out.append(f"{node.name} ({length} lines)")
    return out


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_and_functions_stay_small(path):
    n = len(path.read_text().splitlines())
    assert n <= MAX_MODULE_LINES, f"{path.relative_to(PACKAGE)} has {n} lines"
    assert not _long_functions(path), (
        f"{path.relative_to(PACKAGE)}: {_long_functions(path)} are over {MAX_FUNCTION_LINES} "
        "lines; split them, or say why on a '# long: ...' comment just above")


def test_the_size_check_sees_long_functions(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "m.py").write_text(f"def f():\n{body}\n\n\n# long: a table\ndef g():\n{body}\n")
    assert _long_functions(tmp_path / "m.py") == [f"f ({MAX_FUNCTION_LINES + 1} lines)"]
