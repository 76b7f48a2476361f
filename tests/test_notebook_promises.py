"""What notebook 04 promises a student, in a real Jupyter kernel as JupyterLab drives it: the stop button
saves, ends Run All there and shows one line; running the cell again continues and finishes the run;
a changed parameter trains into its own folder and leaves the earlier run as it was."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from colorlib.runs import rundir

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def cells(name: str) -> list[str]:
    notebook = json.loads((REPO / "notebooks" / f"{name}.ipynb").read_text())
    return ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]


@pytest.fixture
def kernel(tmp_path):
    """A kernel in a copy of the repository's layout, so that runs/ of the notebook land in tmp_path."""
    jupyter_client = pytest.importorskip("jupyter_client")
    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    shutil.copy(REPO / "pyproject.toml", repo)
    for name in ("colorlib", "figures"):
        (repo / name).symlink_to(REPO / name)
    km, kc = jupyter_client.manager.start_new_kernel(kernel_name="python3", cwd=str(repo / "notebooks"))
    yield kc, km, repo
    kc.stop_channels()
    km.shutdown_kernel(now=True)


def send(kc, code: str) -> str:
    return kc.execute(code, stop_on_error=True)


def reply(kc, msg_id: str, timeout: float = 300) -> tuple[dict, list[str]]:
    """The execute reply to msg_id and the lines its error showed (the traceback, as the reader sees it)."""
    shown = []
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "error":
            shown.extend(content["traceback"])
        elif kind == "status" and content["execution_state"] == "idle":
            break
    while True:
        msg = kc.get_shell_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") == msg_id:
            return msg["content"], shown


def run(kc, code: str) -> tuple[dict, list[str]]:
    return reply(kc, send(kc, code))


def test_stop_ends_run_all_and_running_the_cell_again_finishes_the_run(kernel, data_dir):
    kc, km, repo = kernel
    code = cells("04_training")
    params = f"preset = 'smoke'\ndata = {str(data_dir)!r}\nepochs = 40\ninteractive = False\nthreads = 1\n"
    assert run(kc, code[0] + "\n" + params)[0]["status"] == "ok"
    assert run(kc, code[1])[0]["status"] == "ok"
    train = next(c for c in code if "trainer.fit()" in c)
    after = code[code.index(train) + 1]
    run_dir = repo / "runs" / "smoke"
    training, queued = send(kc, train), send(kc, after)  # Run All: the next cell waits in the queue
    deadline = time.monotonic() + 120
    while not (run_dir / "epochs.csv").is_file() or len((run_dir / "epochs.csv").read_text().splitlines()) < 3:
        assert time.monotonic() < deadline, "training did not start"
        time.sleep(0.05)
    km.interrupt_kernel()  # the stop button
    content, shown = reply(kc, training)
    assert content["status"] == "error" and content["ename"] == "TrainingInterrupted"
    assert len(shown) == 1 and "run this cell again to continue" in shown[0], shown
    assert reply(kc, queued)[0]["status"] == "aborted"  # Run All ended where it stopped
    stopped = rundir.read_run_info(run_dir)
    assert stopped["status"] == "interrupted" and 0 < stopped["epochs_done"] < 40
    content, shown = run(kc, train)
    assert content["status"] == "ok", shown
    finished = rundir.read_run_info(run_dir)
    assert finished["status"] == "finished" and finished["epochs_done"] == 40


def test_a_changed_parameter_trains_into_its_own_folder_and_keeps_the_first_run(kernel, data_dir):
    kc, _, repo = kernel
    code = cells("04_training")
    train = next(c for c in code if "trainer.fit()" in c)
    params = f"preset = 'smoke'\ndata = {str(data_dir)!r}\ninteractive = False\nthreads = 1\n"
    for overrides in ("{}", "{'lam': 10.0}"):
        for cell in (code[0] + "\n" + params + f"overrides = {overrides}\n", code[1], train):
            content, shown = run(kc, cell)
            assert content["status"] == "ok", shown
    first, second = repo / "runs" / "smoke", repo / "runs" / "smoke-lam10.0"
    assert rundir.read_config(first).lam == 100.0 and rundir.read_run_info(first)["status"] == "finished"
    assert rundir.read_config(second).lam == 10.0 and rundir.read_run_info(second)["status"] == "finished"
    # a run directory chosen by hand that holds other settings: one line saying what to do
    content, shown = run(kc, code[0] + "\n" + params + f"overrides = {{'lam': 1.0}}\nrun_dir = {str(first)!r}\n")
    content, shown = run(kc, code[1])
    content, shown = run(kc, train)
    assert content["status"] == "error" and len(shown) == 1 and "start a new run directory" in shown[0], shown
    assert rundir.read_config(first).lam == 100.0
