"""The tutorial as a reader meets it: JupyterLab in headless Chromium, driven by Selenium (`make test-browser`).

JupyterLab serves copies of the notebooks on a free localhost port with a token; the kernels see
COLORLIB_PRESET=smoke, COLORLIB_DATA and a temporary COLORLIB_RUN_DIR, so 04 trains the smoke preset and
05 and 07 show that run (run them in order: alone, 05 and 07 find no run). Every notebook is opened (which
must not mark it modified), cleared and run with Run > Run All Cells: every code cell must run once, in
order, with no error or traceback and no browser console error. Then 05's epoch slider is moved (the picture
changes) and a photo goes through 06's upload box (a colorized picture comes back). JupyterLab's log and the
pipeline's kernels must never say that a kernel runs over TCP without encryption or a notebook is untrusted.
Without Chromium, chromedriver or selenium the browser tests skip, saying what is missing.
"""
from __future__ import annotations

import base64
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = tuple(sorted(p.stem for p in (REPO / "notebooks").glob("0*.ipynb")))
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1400,1000")
NOISE = ("without encryption", "is not trusted")
RUN_TIMEOUT = 480  # seconds for one notebook's Run All under smoke on 2 CPU cores
STDERR = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'


@pytest.fixture(scope="module")
def browser_tools():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
    chromium = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("Chromium or chromedriver is missing: `make test-browser` installs them with apt-get as root "
                    "(apt-get install chromium chromium-driver)")
    return webdriver, chromium, driver


@pytest.fixture(scope="module")
def jupyter_data(tmp_path_factory) -> Path:
    """A Jupyter data folder as `make setup` leaves it (the notebooks trusted), packages taken as installed."""
    make = shutil.which("make")
    if not make:
        pytest.skip("make is missing: the browser tests start JupyterLab as `make setup` leaves it")
    data = tmp_path_factory.mktemp("jupyter-data")
    result = subprocess.run([make, "-s", "--no-print-directory", "-o", ".venv/.installed", "setup",
                             f"PY={sys.executable}"], cwd=REPO, env=dict(os.environ, JUPYTER_DATA_DIR=str(data)),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"make setup failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
    return data


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, jupyter_data) -> Path:
    """Copies of the notebooks, JupyterLab's own settings (every cell in the page, no news), a photo to upload."""
    root = tmp_path_factory.mktemp("browser")
    (root / "notebooks").mkdir()
    for name in NOTEBOOKS:
        shutil.copyfile(REPO / "notebooks" / f"{name}.ipynb", root / "notebooks" / f"{name}.ipynb")
    for name, value in (("notebook-extension/tracker", {"windowingMode": "none"}),
                        ("apputils-extension/notification", {"fetchNews": "false", "checkForUpdates": False})):
        path = root / "settings" / "@jupyterlab" / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    from matplotlib import cbook
    shutil.copyfile(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), root / "photo.jpg")
    shutil.copyfile(REPO / "pyproject.toml", root / "pyproject.toml")  # the notebooks take root for the repository:
    for name in ("colorlib", "figures"):  # a run directory they name themselves lands here
        (root / name).symlink_to(REPO / name)
    return root


@dataclass
class Lab:
    url: str
    token: str
    log: Path

    def api(self, path: str, method: str = "GET"):
        request = urllib.request.Request(f"{self.url}/api/{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def noise(self) -> list[str]:
        return [line for line in self.log.read_text(errors="replace").splitlines()
                if any(text in line for text in NOISE)]


@pytest.fixture(scope="module")
def lab(workdir, jupyter_data, browser_tools, data_dir):
    """A JupyterLab server on a free localhost port with the kernels' environment of the module docstring."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port, token = s.getsockname()[1], "colorlib-browser-test"
    # no COLORLIB_* or MPLBACKEND from outside (CI sets MPLBACKEND=Agg: no inline figures then)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLORLIB_") and k != "MPLBACKEND"}
    env.update(COLORLIB_PRESET="smoke", COLORLIB_DATA=str(data_dir), COLORLIB_RUN_DIR=str(workdir / "run"),
               JUPYTER_DATA_DIR=str(jupyter_data), JUPYTER_CONFIG_DIR=str(workdir / "config"),
               JUPYTER_RUNTIME_DIR=str(workdir / "runtime"), JUPYTERLAB_SETTINGS_DIR=str(workdir / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(workdir / "workspaces"), PYTHONPATH=str(REPO))
    log_path = workdir / "jupyterlab.log"
    log = open(log_path, "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={workdir}",
         "--LabApp.news_url=None", "--LabApp.extension_manager=readonly",
         *(["--allow-root"] if os.geteuid() == 0 else [])],
        cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    lab = Lab(f"http://127.0.0.1:{port}", token, log_path)

    def started():
        assert server.poll() is None, f"JupyterLab did not start:\n{log_path.read_text()[-3000:]}"
        try:
            return lab.api("status") is not None
        except OSError:
            return False

    try:
        _wait(started, 60, "JupyterLab to start")
        yield lab
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def browser(workdir, browser_tools):
    webdriver, chromium, driver_path = browser_tools
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={workdir / 'chromium-profile'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _wait(predicate, timeout: float, what: str, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def _session(lab: Lab, name: str) -> dict | None:
    return next((s for s in lab.api("sessions") if s["path"].endswith(f"{name}.ipynb")), None)


def _kernel_state(lab: Lab, name: str) -> str | None:
    session = _session(lab, name)
    return session["kernel"]["execution_state"] if session else None


def _console_errors(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def _find(element, css: str):
    from selenium.webdriver.common.by import By
    return element.find_elements(By.CSS_SELECTOR, css)


def _panel(driver):
    return _find(driver, ".jp-NotebookPanel:not(.lm-mod-hidden)")[0]


def _dirty(driver) -> bool:
    tab = _find(driver, ".lm-DockPanel-tabBar .lm-TabBar-tab.jp-mod-current")[0]
    return "jp-mod-dirty" in tab.get_attribute("class")


def _open(driver, lab: Lab, name: str) -> None:
    """Open a notebook, wait for its kernel, and check that opening it left it unmodified."""
    driver.get(f"{lab.url}/lab/tree/notebooks/{name}.ipynb?token={lab.token}&reset")
    _wait(lambda: _find(driver, ".jp-NotebookPanel .jp-Cell"), 60, f"{name} to show its cells")
    _wait(lambda: _kernel_state(lab, name) == "idle", 120, f"the kernel of {name} to start")
    time.sleep(1.0)  # the kernel's info reply (language_info) reaches the notebook model
    assert not _dirty(driver), f"{name}: opening it marks it modified (its metadata differs from the kernel's)"


def _menu(driver, menu: str, command: str) -> None:
    """Click a menu of the menu bar, then its item for `command` (a JupyterLab command id)."""
    [item] = [i for i in _find(driver, ".lm-MenuBar-item") if i.text.strip() == menu]
    item.click()
    _wait(lambda: _find(driver, f".lm-Menu-item[data-command='{command}']"), 10, f"{command} in {menu}")[0].click()


def _prompts(driver) -> list[str]:
    return [p.text.strip() for p in _find(_panel(driver), ".jp-CodeCell .jp-InputArea-prompt")]


def _run_all(driver, lab: Lab, name: str) -> None:
    """Edit > Clear Outputs of All Cells, then Run > Run All Cells; waits until the kernel is idle
    with no cell queued (all ran, or one failed and the rest were not run)."""
    _menu(driver, "Edit", "editmenu:clear-all")
    _wait(lambda: not any(p.startswith("[") and p[1:-2].isdigit() for p in _prompts(driver)), 20,
          f"the outputs of {name} to be cleared")
    before = _prompts(driver)
    _menu(driver, "Run", "runmenu:run-all")
    started, calm = [], []

    def settled():
        prompts, state = _prompts(driver), _kernel_state(lab, name)
        busy = any("*" in p for p in prompts) or state != "idle"
        if busy or prompts != before:
            started.append(True)
        calm.append(bool(started) and not busy)
        return calm[-3:] == [True] * 3  # three polls in a row: not a gap between two cells

    _wait(settled, RUN_TIMEOUT, f"the cells of {name} to run", interval=0.5)


def _tracebacks(element) -> list[str]:
    """Tracebacks shown in `element`: error outputs and stderr outputs (widget outputs included)."""
    return [e.text[-1500:] for e in _find(element, STDERR) if "Traceback" in e.text]


def _save(driver, workdir: Path, name: str) -> dict:
    """File > Save (the temporary copy); returns the notebook as saved."""
    path = workdir / "notebooks" / f"{name}.ipynb"
    before = path.stat().st_mtime_ns
    _menu(driver, "File", "docmanager:save")
    _wait(lambda: path.stat().st_mtime_ns != before, 30, f"{name} to be saved")
    _wait(lambda: not _dirty(driver), 10, f"{name} to be clean")
    time.sleep(0.3)
    return json.loads(path.read_text())


def _check_ran(name: str, nb: dict, driver) -> None:
    """Every code cell ran once, in order, in the fresh kernel; no error output anywhere."""
    errors = [f"cell {i}: {o.get('ename')}: {o.get('evalue')}" for i, cell in enumerate(nb["cells"])
              for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    shown = _tracebacks(_panel(driver))
    assert not errors and not shown, f"{name}: errors {errors}; tracebacks shown:\n" + "\n\n".join(shown)
    code = [(i, c.get("execution_count")) for i, c in enumerate(nb["cells"])
            if c["cell_type"] == "code" and "".join(c["source"]).strip()]
    counts = [count for _, count in code]
    assert counts == list(range(1, len(code) + 1)), f"{name}: not every code cell ran once, in order: {code}"


def _close(driver, lab: Lab, name: str, workdir: Path) -> None:
    """Save if need be (no leave-page dialog), and shut the notebook's kernel down."""
    try:
        if _dirty(driver):
            _save(driver, workdir, name)
    finally:
        session = _session(lab, name)
        if session:
            lab.api(f"sessions/{session['id']}", method="DELETE")


def _image_in(element) -> str | None:
    images = _find(element, "img")
    return images[-1].get_attribute("src") if images else None


def _colourful_fraction(src: str) -> float:
    """Share of the pixels of a data-URL image that are clearly not gray."""
    import numpy as np
    from PIL import Image

    assert src.startswith("data:image/"), f"not an inline image: {src[:60]}"
    image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB")
    rgb = np.asarray(image, dtype=np.int16)
    return float(((rgb.max(axis=2) - rgb.min(axis=2)) > 16).mean())


def _widget_output(widget):
    """The output widget that sits in the same box as `widget` (a slider, an upload button)."""
    from selenium.webdriver.common.by import By

    box = widget.find_element(By.XPATH, "./ancestor::div[contains(concat(' ', @class, ' '), ' widget-vbox ')][1]")
    return _find(box, ".widget-output")[0]


def _move_the_epoch_slider(driver, workdir: Path) -> str:
    from selenium.webdriver.common.keys import Keys

    panel = _panel(driver)
    slider = _wait(lambda: _find(panel, ".widget-slider"), 30, "the epoch slider")[0]
    width = slider.size["width"]
    assert width > 600, f"05: the epoch slider is {width} px wide; one step per epoch needs a wide one"
    output = _widget_output(slider)
    shown_before = _wait(lambda: _image_in(output), 30, "the slider's image")
    handle = _find(slider, ".noUi-handle")[0]
    handle.click()
    handle.send_keys(Keys.HOME)  # the first epoch
    try:
        _wait(lambda: (_image_in(output) or shown_before) != shown_before, 20, "a new image")
    except pytest.fail.Exception:  # keyboard steps not taken: drag the handle to the far left instead
        from selenium.webdriver import ActionChains
        ActionChains(driver).drag_and_drop_by_offset(handle, -width, 0).perform()
        _wait(lambda: (_image_in(output) or shown_before) != shown_before, 20, "a new image after dragging")
    assert not _tracebacks(output), "05: the slider's output shows a traceback:\n" + "\n".join(_tracebacks(output))
    return f"slider moved to epoch {_find(slider, '.widget-readout')[0].text}, the picture changed"


def _upload_a_photo(driver, workdir: Path) -> str:
    from selenium.webdriver.common.by import By

    panel = _panel(driver)
    button = _wait(lambda: _find(panel, "button.widget-upload"), 30, "the upload box")[0]
    output = _widget_output(button)
    # the button clicks a file input outside the page (a file dialog): put it into the page to type a path into
    driver.execute_script("""
        const click = HTMLInputElement.prototype.click;
        HTMLInputElement.prototype.click = function () {
            if (this.type !== "file") { return click.call(this); }
            this.id = "colorlib-test-upload";
            document.body.appendChild(this);
        };""")
    button.click()
    upload = _wait(lambda: driver.find_elements(By.ID, "colorlib-test-upload"), 10, "the file input")[0]
    upload.send_keys(str(workdir / "photo.jpg"))
    src = _wait(lambda: _image_in(output) or _tracebacks(output), 120, "a picture (or an error) after the upload")
    assert not _tracebacks(output), "06: the upload's output shows a traceback:\n" + "\n".join(_tracebacks(output))
    colourful = _colourful_fraction(src)
    assert colourful > 0.01, f"06: the picture after the upload is gray ({colourful:.1%} of its pixels coloured)"
    return f"uploaded photo colorized ({colourful:.0%} of the picture's pixels coloured)"


AFTER_RUN_ALL = {"05_results": _move_the_epoch_slider, "06_colorize_your_photos": _upload_a_photo}


def test_make_setup_leaves_jupyter_quiet(jupyter_data, workdir):
    """`make setup` installed the server settings into this Python's Jupyter and trusted the notebooks."""
    from nbformat import read
    from nbformat.sign import NotebookNotary

    installed = Path(sys.prefix) / "etc" / "jupyter" / "jupyter_config.json"
    assert installed.is_file() and json.loads(installed.read_text()) == \
        json.loads((REPO / "jupyter_config.json").read_text()), f"make setup did not install {installed}"
    notary = NotebookNotary(data_dir=str(jupyter_data))
    untrusted = [name for name in NOTEBOOKS
                 if not notary.check_signature(read(workdir / "notebooks" / f"{name}.ipynb", as_version=4))]
    assert not untrusted, f"make setup left these notebooks untrusted: {untrusted}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_in_jupyterlab(browser, lab, workdir, name):
    started = time.monotonic()
    _open(browser, lab, name)
    try:
        on_opening = _console_errors(browser)  # e.g. a committed widget view whose model is gone
        _run_all(browser, lab, name)
        ran = time.monotonic() - started
        _check_ran(name, _save(browser, workdir, name), browser)
        done = AFTER_RUN_ALL[name](browser, workdir) if name in AFTER_RUN_ALL else ""
        errors = _console_errors(browser)
        assert not on_opening and not errors, f"{name}: browser console errors: {on_opening + errors}"
    finally:
        _close(browser, lab, name, workdir)
    noise = lab.noise()
    assert not noise, "JupyterLab's log says:\n" + "\n".join(noise)
    print(f"{name}: ran in {ran:.1f} s ({time.monotonic() - started:.1f} s in all)" + (f"; {done}" if done else ""))


def _variant_of_04(workdir: Path, jupyter_data: Path, name: str, parameters: str) -> str:
    """A copy of 04 whose parameters cell ends with `parameters`, trusted as `make setup` trusts the others."""
    from nbformat import read, write
    from nbformat.sign import NotebookNotary

    nb = read(REPO / "notebooks" / "04_training.ipynb", as_version=4)
    nb.cells[[i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])][0]].source += parameters
    NotebookNotary(data_dir=str(jupyter_data)).sign(nb)
    write(nb, workdir / "notebooks" / f"{name}.ipynb")
    return name


def _code_cell(driver, containing: str):
    return next(c for c in _find(_panel(driver), ".jp-CodeCell") if containing in c.text)


def test_04_stop_ends_run_all_and_running_the_cell_again_continues(browser, lab, workdir, jupyter_data):
    """The stop button during training: one line, Run All ends there; the cell run again finishes the run."""
    run_dir = workdir / "run-stopped"
    name = _variant_of_04(workdir, jupyter_data, "04_stop", f"\nepochs = 40\nrun_dir = {str(run_dir)!r}\n")
    _open(browser, lab, name)
    try:
        _menu(browser, "Run", "runmenu:run-all")
        epochs = run_dir / "epochs.csv"
        _wait(lambda: epochs.is_file() and len(epochs.read_text().splitlines()) > 2, RUN_TIMEOUT, "training to start")
        _menu(browser, "Kernel", "kernelmenu:interrupt")  # the stop button's command
        status = lambda: json.loads((run_dir / "run.json").read_text())["status"]  # noqa: E731
        _wait(lambda: status() == "interrupted", 60, "the run to be saved where it stopped")
        training = _code_cell(browser, "trainer.fit()")
        shown = lambda: [o.text for o in _find(training, ".jp-OutputArea-output") if "saved in" in o.text]  # noqa: E731
        _wait(shown, 30, "the stop's one line")
        _wait(lambda: _kernel_state(lab, name) == "idle", 60, "the kernel to stop")
        assert "run this cell again to continue" in shown()[0] and len(shown()[0].splitlines()) == 1, shown()
        assert not _tracebacks(training) and "Traceback" not in training.text, training.text[-1500:]
        prompts = _prompts(browser)
        stopped_at = [c.text for c in _find(_panel(browser), ".jp-CodeCell")].index(training.text)
        assert all(not p.strip("[]: ") for p in prompts[stopped_at + 1:]), f"Run All went on: {prompts}"
        _find(training, ".jp-InputPrompt")[0].click()  # select the cell, then Run > Run Selected Cell
        _menu(browser, "Run", "notebook:run-cell")
        _wait(lambda: json.loads((run_dir / "run.json").read_text())["status"] == "finished", RUN_TIMEOUT,
              "the run to finish")
        assert json.loads((run_dir / "run.json").read_text())["epochs_done"] == 40
        assert not _console_errors(browser)
    finally:
        _close(browser, lab, name, workdir)


def test_04_a_changed_parameter_trains_into_its_own_folder(browser, lab, workdir, jupyter_data):
    """overrides = {"lam": 10.0}, as the parameters cell suggests: its own run directory, no traceback."""
    name = _variant_of_04(workdir, jupyter_data, "04_lam", "\nrun_dir = None\noverrides = {\"lam\": 10.0}\n")
    _open(browser, lab, name)
    try:
        _run_all(browser, lab, name)
        _check_ran(name, _save(browser, workdir, name), browser)
    finally:
        _close(browser, lab, name, workdir)
    run_dir = workdir / "runs" / "smoke-lam10.0"
    assert json.loads((run_dir / "config.json").read_text())["lam"] == 10.0
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"
