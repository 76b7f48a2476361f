"""The tutorial notebooks driven by papermill, as the batch pipeline runs them.

Parameters passed with papermill must take effect (the run directory and epochs asked for), the
figures must come out, and a wrong parameter must stop a notebook at the cell right after its
parameters, with a message a reader understands. (The notebooks' own cells are checked by
nbval: `make test`.)
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import nbformat
import papermill
import pytest

from colorlib.runs import rundir

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
TUTORIAL = ("01_data", "02_architecture", "03_losses", "04_training", "05_results")


def _pipeline():
    spec = importlib.util.spec_from_file_location("pipeline", NOTEBOOKS / "pipeline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PIPELINE = _pipeline()


def run_notebook(name: str, out_dir: Path, **parameters) -> Path:
    """As the pipeline runs a notebook: its kernel settings too (encrypted, so no kernel warns)."""
    out = out_dir / f"{name}.ipynb"
    papermill.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(out), parameters=parameters,
                               kernel_name="python3", cwd=str(NOTEBOOKS), progress_bar=False,
                               config=PIPELINE.KERNEL_CONFIG)
    return out


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    """04_training and 05_results run with parameters that differ from every default."""
    tmp = tmp_path_factory.mktemp("papermill")
    run_dir, figures_dir = tmp / "my_run", tmp / "my_figures"
    common = dict(preset="smoke", data=str(data_dir), run_dir=str(run_dir), device="cpu", seed=3, interactive=False)
    run_notebook("04_training", tmp, epochs=1, **common)
    run_notebook("05_results", tmp, figures_dir=str(figures_dir), **common)
    return tmp, run_dir, figures_dir


def test_every_notebook_takes_the_common_parameters():
    for name in TUTORIAL:
        declared = papermill.inspect_notebook(str(NOTEBOOKS / f"{name}.ipynb"))
        assert {"preset", "data", "run_dir", "device", "seed"} <= set(declared), name


@pytest.mark.slow
def test_training_notebook_writes_the_run_it_was_asked_for(trained):
    _, run_dir, _ = trained
    cfg, info = rundir.read_config(run_dir), rundir.read_run_info(run_dir)
    assert (cfg.preset, cfg.epochs, cfg.seed, cfg.device) == ("smoke", 1, 3, "cpu")
    assert info["status"] == "finished" and info["epochs_done"] == 1
    assert rundir.sample_epochs(run_dir) == [1]
    assert (run_dir / "checkpoints" / "generator.pt").exists()


@pytest.mark.slow
def test_results_notebook_saves_every_figure_with_provenance(trained):
    tmp, run_dir, figures_dir = trained
    names = {p.name for p in figures_dir.iterdir()}
    assert {"loss_curves.png", "across_epochs.png", "samples_epoch_0001.png", "provenance.json"} <= names
    provenance = json.loads((figures_dir / "provenance.json").read_text())
    assert provenance["preset"] == "smoke" and provenance["config"]["epochs"] == 1
    executed = nbformat.read(tmp / "05_results.ipynb", as_version=4)
    images = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if {"image/png", "image/jpeg"} & set(o.get("data", {}))]  # photo grids are JPEG
    assert len(images) >= 3  # Fig. 3, at least one of Figs. 4-7, Fig. 8


def expect_parameter_error(name: str, tmp_path: Path, **parameters) -> papermill.PapermillExecutionError:
    with pytest.raises(papermill.PapermillExecutionError) as caught:
        run_notebook(name, tmp_path, **parameters)
    # it must stop in the first code cell after the parameters cell, the one that validates them
    source = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    code = [c for c in source.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", [])
    assert caught.value.source == code[1].source
    return caught.value


@pytest.mark.slow
def test_unknown_preset_stops_at_the_parameters(tmp_path):
    err = expect_parameter_error("04_training", tmp_path, preset="huge", run_dir=str(tmp_path / "run"))
    assert err.ename == "ConfigError"
    assert "unknown preset 'huge'" in err.evalue and "smoke" in err.evalue


@pytest.mark.slow
def test_negative_epochs_stop_at_the_parameters(tmp_path):
    err = expect_parameter_error("04_training", tmp_path, preset="smoke", epochs=-1, run_dir=str(tmp_path / "run"))
    assert err.ename == "ConfigError" and "epochs must be 0 or more, got -1" in err.evalue


@pytest.mark.slow
def test_missing_data_folder_stops_at_the_parameters(tmp_path):
    missing = tmp_path / "no-such-folder"
    run_dir = tmp_path / "run"
    err = expect_parameter_error("04_training", tmp_path, preset="smoke", data=str(missing), run_dir=str(run_dir))
    assert err.ename == "DataError"
    assert str(missing) in err.evalue and "does not exist" in err.evalue
    assert not run_dir.exists()  # stopped before the run directory was made


@pytest.mark.slow
@pytest.mark.parametrize("name", ["01_data", "02_architecture", "03_losses", "05_results"])
def test_every_notebook_checks_its_parameters(name, tmp_path):
    err = expect_parameter_error(name, tmp_path, preset="huge", run_dir=str(tmp_path / "run"))
    assert err.ename == "ConfigError" and "unknown preset 'huge'" in err.evalue
