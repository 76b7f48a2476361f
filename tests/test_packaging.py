"""Packaging: pyproject.toml, environment.yml and the Makefile describe the same environment, the
Makefile never runs a value as a command, every third-party module colorlib imports is declared, and
the committed test images stay small."""
from __future__ import annotations

import ast
import importlib
import importlib.metadata
import re
import shutil
import subprocess
import sys
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

yaml = pytest.importorskip("yaml", reason="reading environment.yml needs PyYAML (installed with the notebooks extra)")

PINNED = {"torch": "2.14.1", "torchvision": "0.29.1"}  # the versions the tutorial was run with


@pytest.fixture(scope="module")
def pyproject(repo_root) -> dict:
    return tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]


@pytest.fixture(scope="module")
def core(pyproject) -> dict[str, Requirement]:
    return {canonicalize_name(r.name): r for r in map(Requirement, pyproject["dependencies"])}


def test_environment_yml_and_makefile_pin_what_pyproject_allows(repo_root, pyproject, core):
    environment = yaml.safe_load((repo_root / "environment.yml").read_text())
    [pip] = [d["pip"] for d in environment["dependencies"] if isinstance(d, dict) and "pip" in d]
    pins = {canonicalize_name(r.name): r for r in map(Requirement, (e for e in pip if not e.startswith("-")))}
    assert {n: str(pins[n].specifier) for n in PINNED} == {n: f"=={v}" for n, v in PINNED.items()}
    for name, req in pins.items():  # every pin is a core dependency and within its range
        assert Version(next(iter(req.specifier)).version) in core[name].specifier, name
    [editable] = [e for e in pip if e.startswith("-e")]
    extras = set(re.fullmatch(r"-e\s+\.\[([\w,\s-]+)\]", editable).group(1).replace(" ", "").split(","))
    assert {"notebooks", "test"} <= extras <= set(pyproject["optional-dependencies"])
    [python] = [d.split("=", 1)[1] for d in environment["dependencies"] if str(d).startswith("python")]
    assert Version(python) in Requirement(f"python{pyproject['requires-python']}").specifier
    for name, version in PINNED.items():  # the package itself keeps a loose requirement
        assert Version(version) in core[name].specifier and not any(s.operator in ("==", "<", "<=", "~=")
                                                                    for s in core[name].specifier)
    makefile = (repo_root / "Makefile").read_text()
    assert all(re.search(rf"\b{n}=={re.escape(v)}\b", makefile) for n, v in PINNED.items())
    assert re.search(r"pip install .*-e \"?\.\[notebooks,test\]", makefile)


def test_the_makefile_passes_values_quoted_never_as_commands(repo_root):
    make = shutil.which("make") or pytest.skip("make is missing")
    names = ("PRESET", "DATA", "RUN_DIR", "FIG_DIR", "TORCH_INDEX", "SOAK_KILLS", "STUDY_PRESET", "STUDY_RUNS",
             "STUDY_FIGURES", "STUDY_EPOCHS", "STUDY_ARGS")
    targets = ("setup", "train", "figures", "figures-from-run", "nbval", "soak", "bench", "baselines", "gpu-study")
    result = subprocess.run([make, "-n", "-B", *targets, *(f"{n}=x'; touch HACKED" for n in names)], cwd=repo_root,
                            capture_output=True, text=True, timeout=60)  # -n: the recipes are printed, not run
    assert result.returncode == 0 and "HACKED" not in result.stdout, result.stdout + result.stderr
    assert "tests/test_interruptions.py" in result.stdout and '--index-url "$TORCH_INDEX"' in result.stdout


def test_console_script_points_at_a_callable(pyproject):
    for name, target in pyproject["scripts"].items():
        module, attribute = target.split(":")
        assert callable(getattr(importlib.import_module(module), attribute)), name


def third_party_imports(repo_root) -> tuple[dict[str, set], dict[str, set]]:
    """({top-level module: files} imported while colorlib loads, {...} imported anywhere in colorlib/)."""
    at_load, anywhere = {}, {}

    def walk(node, in_function, path):
        for child in ast.iter_child_nodes(node):
            names = [a.name for a in child.names] if isinstance(child, ast.Import) else \
                [child.module] if isinstance(child, ast.ImportFrom) and child.level == 0 and child.module else []
            for top in {n.split(".")[0] for n in names} - set(sys.stdlib_module_names) - {"colorlib", "__future__"}:
                anywhere.setdefault(top, set()).add(path.name)
                if not in_function:
                    at_load.setdefault(top, set()).add(path.name)
            walk(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)), path)

    for path in sorted((repo_root / "colorlib").rglob("*.py")):
        walk(ast.parse(path.read_text()), False, path)
    return at_load, anywhere


def test_every_imported_module_is_declared(repo_root, pyproject, core):
    distributions = importlib.metadata.packages_distributions()
    declared = set(core) | {canonicalize_name(Requirement(r).name)
                            for group in pyproject["optional-dependencies"].values() for r in group}
    at_load, anywhere = third_party_imports(repo_root)

    def dist(module):
        return canonicalize_name(distributions.get(module, [module])[0])

    assert {m: f for m, f in at_load.items() if dist(m) not in core} == {}  # needed to import colorlib at all
    assert {m: f for m, f in anywhere.items() if dist(m) not in declared} == {}


def test_the_committed_test_images_are_a_small_cifar10_subset(repo_root):
    folder = repo_root / "tests" / "data" / "cifar-mini"
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 1_100_000 and "Krizhevsky" in (folder / "README.md").read_text()
    assert {p.parent.name for p in folder.glob("test/*/*.jpg")} == {p.parent.name for p in folder.glob("train/*/*.jpg")}
