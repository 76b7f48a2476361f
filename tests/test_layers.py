"""The house rules of colorlib's imports: the folders are the layers, each imports only those below.

    paper <- runs <- variants <- engine <- lab <- cli;   inference <- paper, runs, variants

The paper's package imports nothing but the standard library, torch and itself; inference
(colorize, checkpoint loading) never imports the engine or the lab; the engine imports no
evaluation code. Read from the source (every `import`, at any depth of a function), so an import
hidden inside a function breaks the rule as surely as one at the top.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "colorlib"
ALLOWED = {
    "paper": {"paper"},
    "runs": {"paper", "runs"},
    "variants": {"paper", "runs", "variants"},
    "engine": {"paper", "runs", "variants", "engine"},
    "inference": {"paper", "runs", "variants", "inference"},
    "lab": {"paper", "runs", "variants", "engine", "inference", "lab"},
    "cli": {"paper", "runs", "variants", "engine", "inference", "lab", "cli"},
}
LAYERS = set(ALLOWED)


def modules():
    return sorted(p for p in PACKAGE.rglob("*.py"))


def layer_of(path: Path) -> str | None:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 and parts[0] in LAYERS else None


def imported(path: Path) -> list[tuple[str, int]]:
    """(absolute dotted module, line) of every import in the file."""
    tree = ast.parse(path.read_text())
    package = ".".join(("colorlib", *path.relative_to(PACKAGE).parts[:-1]))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module
            found.append((name, node.lineno))
            if node.module is None or name in ("colorlib",):  # `from . import x`: x may be a layer
                found += [(f"{name}.{alias.name}", node.lineno) for alias in node.names]
    return found


def test_every_module_lives_in_a_layer():
    loose = [p.name for p in modules() if layer_of(p) is None and p.parent == PACKAGE
             and p.name not in ("__init__.py", "__main__.py")]
    assert not loose, f"modules outside the layer folders: {loose}"


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_only_go_down(path):
    layer = layer_of(path)
    if layer is None:
        return
    wrong = []
    for name, line in imported(path):
        parts = name.split(".")
        if parts[0] != "colorlib" or len(parts) < 2 or parts[1] not in LAYERS:
            continue
        if parts[1] not in ALLOWED[layer]:
            wrong.append(f"line {line}: {name}")
    assert not wrong, f"{layer}/ may import only {sorted(ALLOWED[layer])}: {wrong}"


@pytest.mark.parametrize("path", sorted((PACKAGE / "paper").glob("*.py")), ids=lambda p: p.name)
def test_the_paper_imports_only_the_standard_library_and_torch(path):
    others = sorted({name.split(".")[0] for name, _ in imported(path)}
                    - set(sys.stdlib_module_names) - {"torch", "colorlib", "__future__"})
    assert not others, others
    assert all(name.startswith("colorlib.paper") for name, _ in imported(path) if name.startswith("colorlib"))


def test_the_paper_is_small_and_its_iteration_is_one_function():
    lines = sum(len(p.read_text().splitlines()) for p in (PACKAGE / "paper").glob("*.py"))
    assert lines <= 600, f"colorlib/paper/ has {lines} lines"
    step = ast.parse((PACKAGE / "paper" / "step.py").read_text())
    fn = next(n for n in step.body if isinstance(n, ast.FunctionDef) and n.name == "training_iteration")
    branches = [n for n in ast.walk(fn) if isinstance(n, (ast.If, ast.IfExp, ast.Try))]
    assert not branches, "the paper's iteration has no branch for anything the paper does not have"


def test_no_definition_is_longer_than_the_house_allows():
    long = []
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                size = node.end_lineno - node.lineno + 1
                limit = 300 if isinstance(node, ast.ClassDef) else 60
                if size > limit:
                    long.append(f"{path.relative_to(PACKAGE)}:{node.name} {size} lines")
    assert not long, long


def test_colorize_and_loading_a_generator_load_neither_the_engine_nor_the_lab():
    code = ("import sys; from colorlib.inference.colorize import load_model, colorize; load_model(); "
            "print(sorted(m for m in sys.modules if m.startswith('colorlib.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = eval(out)
    assert "colorlib.inference.checkpoints" in loaded
    assert not [m for m in loaded if m.startswith(("colorlib.engine", "colorlib.lab"))], loaded


def test_the_trainer_loads_no_evaluation_code():
    code = ("import sys; import colorlib.engine.trainer; "
            "print(sorted(m for m in sys.modules if m.startswith('colorlib.')))")
    loaded = eval(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert not [m for m in loaded if m.startswith(("colorlib.lab", "colorlib.inference"))], loaded
