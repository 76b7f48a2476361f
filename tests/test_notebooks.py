"""The tutorial notebooks driven by papermill, as the batch pipeline (notebooks/pipeline.py, `make figures`)
runs them: parameters take effect, the figures come out, a wrong parameter stops a notebook at the cell after
its parameters, and the pipeline ends on bad input, Ctrl-C and SIGTERM with one line. (The notebooks' own
cells are checked by nbval: `make test`.)"""
from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import papermill
import pytest

from colorlib.runs import rundir
from conftest import one_line, without_root

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
TUTORIAL = ("01_data", "02_architecture", "03_losses", "04_training", "05_results")
spec = importlib.util.spec_from_file_location("pipeline", NOTEBOOKS / "pipeline.py")
pipeline = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pipeline)


def run_notebook(name: str, out_dir: Path, **parameters) -> Path:
    out = out_dir / f"{name}.ipynb"
    pipeline.execute(NOTEBOOKS / f"{name}.ipynb", out, parameters)
    return out


@pytest.mark.slow
def test_pipeline_kernels_are_encrypted_and_say_nothing_about_it(tmp_path):
    """A kernel of the pipeline gets CurveZMQ keys and prints no warning (no "without encryption")."""
    probe = tmp_path / "probe.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "from ipykernel.kernelapp import IPKernelApp\nprint('curve keys:', IPKernelApp.instance().curve_secretkey "
        "is not None)")]), probe)
    script = ("import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); import pipeline; "
              "pipeline.execute(Path(sys.argv[2]), Path(sys.argv[3]), {})")
    result = subprocess.run([sys.executable, "-c", script, str(NOTEBOOKS), str(probe), str(tmp_path / "out.ipynb")],
                            capture_output=True, text=True, timeout=180)
    said = [line for line in (result.stdout + result.stderr).splitlines()
            if any(text in line for text in ("without encryption", "WARNING", "not recognized"))]
    printed = "".join(o.get("text", "") for o in nbformat.read(tmp_path / "out.ipynb", as_version=4).cells[0].outputs)
    assert result.returncode == 0 and not said and "curve keys: True" in printed, (result.stderr[-3000:], printed)


def test_every_notebook_takes_the_common_parameters():
    for name in TUTORIAL:  # 02 shows no run
        common = {"preset", "data", "device", "seed"} | ({"run_dir"} if name != "02_architecture" else set())
        assert common <= set(papermill.inspect_notebook(str(NOTEBOOKS / f"{name}.ipynb"))), name


@pytest.mark.slow
def test_training_and_results_notebooks_write_the_run_and_figures_asked_for(data_dir, tmp_path):
    run_dir, figures_dir = tmp_path / "my_run", tmp_path / "my_figures"
    common = dict(preset="smoke", data=str(data_dir), run_dir=str(run_dir), device="cpu", seed=3, interactive=False)
    run_notebook("04_training", tmp_path, epochs=1, **common)
    cfg, info = rundir.read_config(run_dir), rundir.read_run_info(run_dir)
    assert (cfg.preset, cfg.epochs, cfg.seed, cfg.device, info["status"]) == ("smoke", 1, 3, "cpu", "finished")
    assert rundir.sample_epochs(run_dir) == [1] and (run_dir / "checkpoints" / "generator.pt").exists()
    executed = run_notebook("05_results", tmp_path, figures_dir=str(figures_dir), **common)
    assert {"loss_curves.png", "across_epochs.png", "samples_epoch_0001.png", "provenance.json"} <= {
        p.name for p in figures_dir.iterdir()}
    assert json.loads((figures_dir / "provenance.json").read_text())["config"]["epochs"] == 1
    images = [o for c in nbformat.read(executed, as_version=4).cells if c.cell_type == "code"
              for o in c.get("outputs", []) if {"image/png", "image/jpeg"} & set(o.get("data", {}))]
    assert len(images) >= 3  # Fig. 3, at least one of Figs. 4-7, Fig. 8


@pytest.mark.slow
@pytest.mark.parametrize("name, parameters, error", [
    *((name, {"preset": "huge"}, "ConfigError: unknown preset 'huge'") for name in TUTORIAL),
    ("04_training", {"preset": "smoke", "epochs": -1}, "ConfigError: epochs must be 0 or more, got -1"),
    ("04_training", {"preset": "smoke", "data": "/no-such-folder"}, "DataError: data source '/no-such-folder'"),
    ("01_data", {"preset": "smoke", "n_images": -5}, "ConfigError: n_images must be a positive whole number"),
    ("01_data", {"preset": "smoke", "n_images": "abc"}, "ConfigError: n_images must be a positive whole number"),
    ("06_colorize_your_photos", {"render_size": "abc"}, "ConfigError: render_size must be a positive whole number"),
])
def test_a_wrong_parameter_stops_at_the_cell_after_the_parameters(tmp_path, name, parameters, error):
    with pytest.raises(papermill.PapermillExecutionError) as caught:
        run_notebook(name, tmp_path, run_dir=str(tmp_path / "run"), **parameters)
    code = [c for c in nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4).cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", []) and caught.value.source == code[1].source
    assert f"{caught.value.ename}: {caught.value.evalue}".startswith(error)
    assert not (tmp_path / "run").exists()  # stopped before the run directory was made


@pytest.mark.parametrize("argv, message", [
    (["--preset", "smoke; touch X"], "error: unknown preset 'smoke; touch X'"),
    (["-p", "nope", "1"], "error: no notebook declares a parameter 'nope'"),
    (["-p", "seed", "abc"], "error: parameter seed must be a whole number, not 'abc'"),
])
def test_the_pipeline_refuses_bad_input_in_one_line_before_any_notebook(capsys, argv, message):
    assert pipeline.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and one_line(captured.err).startswith(message)


@pytest.mark.slow
def test_make_passes_its_variables_quoted_and_never_runs_them(tmp_path):
    make = shutil.which("make") or pytest.skip("make is missing")
    result = subprocess.run([make, "-s", "-o", "setup", "figures", f"PRESET=smoke; touch {tmp_path / 'X'}",
                             f"PY={sys.executable}"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and not (tmp_path / "X").exists()
    said = [line for line in result.stderr.splitlines() if not line.startswith("make")]  # make's own line aside
    assert len(said) == 1 and said[0].startswith("error: unknown preset 'smoke; touch ")
    result = subprocess.run([make, "-s", "-o", "setup", "train", f"DATA={tmp_path / 'my data'}", "PRESET=smoke",
                             f"RUN_DIR={tmp_path / 'run'}", f"PY={sys.executable}"], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert f"data source '{tmp_path / 'my data'}' does not exist" in result.stderr  # the path with its space


def test_the_pipeline_on_a_read_only_run_is_one_line(smoke_run, capsys):
    folder = Path(tempfile.mkdtemp())
    try:
        shutil.copytree(smoke_run.run_dir, folder / "run")
        for path in [folder, *folder.rglob("*")]:
            path.chmod(0o555 if path.is_dir() else 0o444)
        with without_root():
            assert pipeline.main(["--from-run", str(folder / "run")]) == 2
        assert "Permission denied (EACCES)" in one_line(capsys.readouterr().err)
    finally:
        for path in [folder, *folder.rglob("*")]:
            path.chmod(0o755)
        shutil.rmtree(folder)


@pytest.mark.slow
@pytest.mark.parametrize("signum, line", [(signal.SIGINT, "interrupted (Ctrl-C)"),
                                          (signal.SIGTERM, "interrupted (SIGTERM)")])
def test_a_stop_signal_saves_the_run_in_the_kernel_and_leaves_nothing_behind(data_dir, tmp_path, signum, line):
    """`make figures` stopped by Ctrl-C or SIGTERM while 04 trains: one line, 128 + the signal, the run marked
    interrupted and unlocked, no kernel left running and no kernel connection file (it holds the kernel's key)."""
    runtime, run = tmp_path / "runtime", tmp_path / "run"
    proc = subprocess.Popen([sys.executable, str(NOTEBOOKS / "pipeline.py"), "--preset", "smoke", "--data",
                             str(data_dir), "--run-dir", str(run), "--figures-dir", str(tmp_path / "figures"),
                             "--device", "cpu", "--epochs", "200"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime)})
    deadline = time.monotonic() + 300
    while not ((run / "run.json").exists() and rundir.read_run_info(run).get("epochs_done")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.2)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    assert (proc.returncode, one_line(stderr)) == (128 + signum, line)
    assert rundir.read_run_info(run)["status"] == "interrupted" and not list(runtime.glob("kernel-*.json"))
    if (run / "train.lock").exists():  # released: a new training may take it
        with open(run / "train.lock") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
