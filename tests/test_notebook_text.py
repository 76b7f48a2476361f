"""What the notebooks' Markdown names exists: every `colorlib.x.y` resolves, every repository path is
there, every `python -m colorlib COMMAND` is a command. A renamed function cannot leave a student
looking for it."""
from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def markdown_spans(notebook: Path) -> list[str]:
    cells = json.loads(notebook.read_text())["cells"]
    text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return re.findall(r"`([^`\n]+)`", text)


def resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for name in parts[cut:]:
                obj = getattr(obj, name)
        except AttributeError:
            return False
        return True
    return False


def commands() -> set[str]:
    from colorlib.cli import build_parser
    parser = build_parser()
    return {name for action in parser._subparsers._group_actions for name in action.choices}


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_name_and_path_the_markdown_gives_exists(notebook):
    missing = []
    for span in markdown_spans(notebook):
        for dotted in re.findall(r"\bcolorlib(?:\.\w+)+", span):
            if not re.search(r"/", span) and not resolves(dotted.rstrip(".")):
                missing.append(dotted)
        for path in re.findall(r"(?:colorlib|docs|figures|notebooks|tests)/[\w./-]+", span):
            if "<" not in span and not (REPO / path.rstrip("/.")).exists():
                missing.append(path)
        command = re.search(r"python -m colorlib ([\w-]+)", span)
        if command and command.group(1) not in commands():
            missing.append(command.group(0))
    assert not missing, f"{notebook.name} names what does not exist: {sorted(set(missing))}"
