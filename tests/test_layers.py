"""The house rules of colorlib's imports and sizes: the folders are the layers, each imports only those
above it (paper <- runs <- variants <- engine <- lab <- cli; inference <- paper, runs, variants), read
from the source at any depth of a function; the paper is torch only; no file, function or class too long."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "colorlib"
ALLOWED = {"paper": {"paper"}, "runs": {"paper", "runs"}, "variants": {"paper", "runs", "variants"},
           "engine": {"paper", "runs", "variants", "engine"}, "inference": {"paper", "runs", "variants", "inference"},
           "lab": {"paper", "runs", "variants", "engine", "inference", "lab"}}
ALLOWED["cli"] = {*ALLOWED["lab"], "cli"}
MODULES = sorted(PACKAGE.rglob("*.py"))


def imported(path: Path) -> list[str]:
    """The absolute dotted name of every import in the file (`from . import x`: x too, it may be a layer)."""
    package = ["colorlib", *path.relative_to(PACKAGE).parts[:-1]]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            name = ".".join(package[:len(package) - node.level + 1] + [node.module or ""]).strip(".") \
                if node.level else node.module
            found += [name, *(f"{name}.{a.name}" for a in node.names if node.module is None or name == "colorlib")]
    return found


def test_every_module_lives_in_a_layer_and_imports_only_the_layers_above():
    wrong = []
    for path in MODULES:
        parts = path.relative_to(PACKAGE).parts
        if len(parts) == 1:
            assert path.name in ("__init__.py", "__main__.py"), f"{path.name} lives outside the layers"
            continue
        for name in imported(path):
            target = [*name.split("."), ""]
            if target[0] == "colorlib" and target[1] in ALLOWED and target[1] not in ALLOWED[parts[0]]:
                wrong.append(f"{'/'.join(parts)}: {name}")
    assert wrong == []


def test_the_paper_is_small_torch_only_and_its_iteration_one_function():
    paper = sorted((PACKAGE / "paper").glob("*.py"))
    others = {n.split(".")[0] for p in paper for n in imported(p)} - set(sys.stdlib_module_names)
    assert others <= {"torch", "colorlib", "__future__"}
    assert all(n.startswith("colorlib.paper") for p in paper for n in imported(p) if n.startswith("colorlib"))
    assert sum(len(p.read_text().splitlines()) for p in paper) <= 600
    step = ast.parse((PACKAGE / "paper" / "step.py").read_text())
    fn = next(n for n in step.body if isinstance(n, ast.FunctionDef) and n.name == "training_iteration")
    assert not [n for n in ast.walk(fn) if isinstance(n, (ast.If, ast.IfExp, ast.Try))]  # nothing the paper lacks


def test_no_file_function_or_class_is_longer_than_the_house_allows():
    long = [f"{p.relative_to(PACKAGE)} {n} lines" for p in MODULES if (n := len(p.read_text().splitlines())) > 400]
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                size, limit = node.end_lineno - node.lineno + 1, 200 if isinstance(node, ast.ClassDef) else 60
                if size > limit:
                    long.append(f"{path.relative_to(PACKAGE)}:{node.name} {size} lines")
    assert long == []


def test_colorize_loads_neither_the_engine_nor_the_lab_and_the_trainer_no_evaluation():
    code = ("import sys; from colorlib.inference.colorize import load_model; load_model(); a = set(sys.modules); "
            "import colorlib.engine.trainer; print([m for m in a if m.startswith(('colorlib.engine', 'colorlib.lab'))],"
            " [m for m in set(sys.modules) - a if m.startswith(('colorlib.lab', 'colorlib.inference'))])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[] []"
