"""Packaging: pyproject.toml, environment.yml and the Makefile describe the same environment,
and every third-party module colorlib imports is declared."""
from __future__ import annotations

import ast
import functools
import importlib
import importlib.metadata
import re
import sys

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli", reason="reading pyproject.toml on Python 3.10 needs tomli")

yaml = pytest.importorskip("yaml", reason="reading environment.yml needs PyYAML (installed with the notebooks extra)")

PINNED = {"torch": "2.14.1", "torchvision": "0.29.1"}  # the versions the tutorial was run with


@pytest.fixture(scope="module")
def pyproject(repo_root) -> dict:
    return tomllib.loads((repo_root / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def core_requirements(pyproject) -> dict[str, Requirement]:
    return {canonicalize_name(r.name): r for r in map(Requirement, pyproject["project"]["dependencies"])}


@pytest.fixture(scope="module")
def declared(pyproject, core_requirements) -> set[str]:
    """Every distribution pyproject.toml names, core or in an extra."""
    extras = pyproject["project"].get("optional-dependencies", {})
    return set(core_requirements) | {canonicalize_name(Requirement(r).name) for group in extras.values() for r in group}


@pytest.fixture(scope="module")
def environment(repo_root) -> dict:
    return yaml.safe_load((repo_root / "environment.yml").read_text())


@pytest.fixture(scope="module")
def env_pip(environment) -> list[str]:
    sections = [d["pip"] for d in environment["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(sections) == 1, "environment.yml should have exactly one pip section"
    return sections[0]


def test_environment_pins_the_tested_torch(env_pip):
    pins = {canonicalize_name(r.name): r for r in map(Requirement, (e for e in env_pip if not e.startswith("-")))}
    for name, version in PINNED.items():
        assert name in pins, f"environment.yml does not pin {name}"
        assert str(pins[name].specifier) == f"=={version}"


def test_environment_installs_the_project_itself_with_its_extras(env_pip, pyproject):
    editable = [e for e in env_pip if e.startswith("-e")]
    assert len(editable) == 1, "environment.yml's pip section should install the project with `-e .[...]`"
    match = re.fullmatch(r"-e\s+\.\[([\w,\s-]+)\]", editable[0])
    assert match, f"expected `-e .[extra,...]`, got {editable[0]!r}"
    extras = {e.strip() for e in match.group(1).split(",")}
    assert extras <= set(pyproject["project"]["optional-dependencies"]), "environment.yml names an unknown extra"
    assert {"notebooks", "test"} <= extras


def test_package_keeps_a_loose_torch_requirement(core_requirements):
    for name, pinned in PINNED.items():
        spec = core_requirements[name].specifier
        assert not any(s.operator in ("==", "===", "~=", "<", "<=") for s in spec), f"{name} {spec} is not loose"
        assert Version(pinned) in spec, f"the pinned {name} {pinned} does not satisfy pyproject's {spec}"
    assert Version("2.4") in core_requirements["torch"].specifier
    assert Version("2.3.1") not in core_requirements["torch"].specifier


def test_pinned_versions_agree_with_the_pyproject(env_pip, core_requirements, environment, pyproject):
    for entry in env_pip:
        if entry.startswith("-"):
            continue
        req = Requirement(entry)
        name = canonicalize_name(req.name)
        assert name in core_requirements, f"environment.yml installs {req.name}, which pyproject.toml does not need"
        pinned = next(iter(req.specifier)).version
        assert Version(pinned) in core_requirements[name].specifier
    conda_python = [d for d in environment["dependencies"] if isinstance(d, str) and d.startswith("python")]
    assert len(conda_python) == 1
    python = conda_python[0].split("=", 1)[1]
    assert Version(python) in Requirement(f"python{pyproject['project']['requires-python']}").specifier


def test_makefile_installs_the_same_pins(repo_root):
    makefile = (repo_root / "Makefile").read_text()
    for name, version in PINNED.items():
        assert re.search(rf"\b{name}=={re.escape(version)}\b", makefile), f"Makefile does not install {name}=={version}"
    assert re.search(r"pip install .*-e \"?\.\[notebooks,test\]", makefile)


def test_console_script_points_at_a_callable(pyproject):
    for name, target in pyproject["project"]["scripts"].items():
        module, attribute = target.split(":")
        assert callable(getattr(importlib.import_module(module), attribute)), name


def _imports(node: ast.AST, in_function: bool = False):
    """(module name, imported while the module loads?) for every absolute import under `node`."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import):
            yield from ((alias.name, not in_function) for alias in child.names)
        elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
            yield child.module, not in_function
        yield from _imports(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))


def _third_party_imports(repo_root) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """({top-level module: files} imported when colorlib loads, {...} imported anywhere) in colorlib/."""
    at_load, anywhere = {}, {}
    for path in sorted((repo_root / "colorlib").rglob("*.py")):  # colorlib/cli/ too
        for name, loading in _imports(ast.parse(path.read_text(), filename=str(path))):
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top in ("colorlib", "__future__"):
                continue
            anywhere.setdefault(top, set()).add(path.name)
            if loading:
                at_load.setdefault(top, set()).add(path.name)
    return at_load, anywhere


@functools.lru_cache(maxsize=None)
def _installed_distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def _distribution(module: str) -> str:
    found = _installed_distributions().get(module)
    return canonicalize_name(found[0] if found else module)


def test_modules_imported_at_load_time_are_core_dependencies(repo_root, core_requirements):
    at_load, _ = _third_party_imports(repo_root)
    missing = {m: sorted(files) for m, files in at_load.items() if _distribution(m) not in core_requirements}
    assert not missing, f"imported when colorlib loads but not in [project] dependencies: {missing}"


def test_every_imported_module_is_declared(repo_root, declared):
    _, anywhere = _third_party_imports(repo_root)
    missing = {m: sorted(files) for m, files in anywhere.items() if _distribution(m) not in declared}
    assert not missing, f"imported by colorlib but declared nowhere in pyproject.toml: {missing}"
