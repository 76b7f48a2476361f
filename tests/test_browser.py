"""The tutorial as a reader meets it: JupyterLab in headless Chromium, driven by Selenium.

`make test-browser` runs this (it installs Chromium with apt-get where it can). JupyterLab starts on
a free localhost port with a token, serving copies of the notebooks in a temporary folder, so
nothing in the repository changes. In `05_results` every cell runs and moving the epoch slider must
change the image shown; in `06_colorize_your_photos` every cell runs and a photo sent through the
upload box must come back colorized. Any error output of the kernel, any browser console error,
or a notebook that JupyterLab marks modified just by opening it (every notebook is opened) fails.

Without Chromium, chromedriver or selenium the tests skip, saying what is missing.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = tuple(sorted(p.stem for p in (REPO / "notebooks").glob("0*.ipynb")))
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1400,1000")
# console messages that say nothing about the tutorial: none so far; add (substring, why) pairs here
CONSOLE_ALLOWED: tuple[tuple[str, str], ...] = ()


def _which(*names: str) -> str | None:
    return next((path for path in map(shutil.which, names) if path), None)


@pytest.fixture(scope="module")
def browser_tools():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
    chromium = _which("chromium", "chromium-browser", "google-chrome")
    driver = _which("chromedriver")
    if not chromium or not driver:
        pytest.skip("Chromium or chromedriver is missing: `make test-browser` installs them with apt-get as root "
                    "(apt-get install chromium chromium-driver)")
    return webdriver, chromium, driver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """Copies of the notebooks, JupyterLab's own settings, and a photo to upload."""
    root = tmp_path_factory.mktemp("browser")
    (root / "notebooks").mkdir()
    for name in NOTEBOOKS:
        shutil.copyfile(REPO / "notebooks" / f"{name}.ipynb", root / "notebooks" / f"{name}.ipynb")
    # every cell in the page (no virtual scrolling), no news or update checks from the lab
    settings = root / "settings"
    tracker = settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))
    news = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    from matplotlib import cbook
    photo = root / "photo.jpg"
    shutil.copyfile(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), photo)
    return root


@pytest.fixture(scope="module")
def lab(workdir, browser_tools):
    """A JupyterLab server on a free localhost port; yields its URL and token."""
    port, token = _free_port(), "colorlib-browser-test"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLORLIB_")}  # the notebooks' own defaults
    env.update(JUPYTER_CONFIG_DIR=str(workdir / "config"), JUPYTER_RUNTIME_DIR=str(workdir / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(workdir / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(workdir / "workspaces"), PYTHONPATH=str(REPO))
    log = open(workdir / "jupyterlab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={workdir}",
         "--MappingKernelManager.transport_encryption=auto", "--LabApp.news_url=None",
         "--LabApp.extension_manager=readonly", *(["--allow-root"] if os.geteuid() == 0 else [])],
        cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail(f"JupyterLab did not start:\n{(workdir / 'jupyterlab.log').read_text()[-3000:]}")
                time.sleep(0.3)
        yield url, token
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


# ---------------------------------------------------------------- helpers
def _sessions(lab) -> list[dict]:
    url, token = lab
    with urllib.request.urlopen(f"{url}/api/sessions?token={token}", timeout=5) as response:
        return json.load(response)


def _wait(predicate, timeout: float, what: str, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def _kernel_state(lab, name: str) -> str | None:
    for session in _sessions(lab):
        if session["path"].endswith(f"{name}.ipynb"):
            return session["kernel"]["execution_state"]
    return None


def _console_errors(driver) -> list[str]:
    errors = []
    for entry in driver.get_log("browser"):
        if entry["level"] == "SEVERE" and not any(text in entry["message"] for text, _ in CONSOLE_ALLOWED):
            errors.append(entry["message"])
    return errors


def _open(driver, lab, name: str) -> None:
    """Open a notebook, wait for its kernel, and check that opening it left it unmodified."""
    from selenium.webdriver.common.by import By

    url, token = lab
    driver.get(f"{url}/lab/tree/notebooks/{name}.ipynb?token={token}&reset")
    _wait(lambda: driver.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel .jp-Cell"), 60, f"{name} to show its cells")
    _wait(lambda: _kernel_state(lab, name) == "idle", 90, f"the kernel of {name} to start")
    time.sleep(1.0)  # the kernel's info reply (language_info) reaches the notebook model
    tab = driver.find_element(By.CSS_SELECTOR, ".lm-DockPanel-tabBar .lm-TabBar-tab.jp-mod-current")
    assert "jp-mod-dirty" not in tab.get_attribute("class"), \
        f"{name}: JupyterLab marks the notebook modified just by opening it (metadata differs from the kernel's)"


def _menu(driver, menu: str, command: str) -> None:
    """Click a menu of the menu bar, then its item for `command` (a JupyterLab command id)."""
    from selenium.webdriver.common.by import By

    [item] = [i for i in driver.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-item") if i.text.strip() == menu]
    item.click()
    entry = _wait(lambda: driver.find_elements(By.CSS_SELECTOR, f".lm-Menu-item[data-command='{command}']"), 10,
                  f"{command} in the {menu} menu")
    entry[0].click()


def _prompts(driver) -> list[str]:
    from selenium.webdriver.common.by import By

    return [p.text.strip() for p in driver.find_elements(
        By.CSS_SELECTOR, ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputArea-prompt")]


def _run_all(driver, lab, name: str, timeout: float) -> list[str]:
    """Run > Run All Cells; wait until the kernel is idle with no cell queued (all ran, or one
    failed and stopped the rest); returns the prompts ("[3]:" for a cell that ran)."""
    before = _prompts(driver)  # the committed notebook's counts: a fresh run may end with the same ones
    _menu(driver, "Run", "runmenu:run-all")
    started, calm = [], []

    def settled():
        prompts, state = _prompts(driver), _kernel_state(lab, name)
        busy = any("*" in p for p in prompts) or state != "idle"
        if busy or prompts != before:
            started.append(True)
        calm.append(bool(started) and not busy)
        return calm[-3:] == [True] * 3  # three polls in a row: not a gap between two cells

    _wait(settled, timeout, f"the cells of {name} to run", interval=0.5)
    return _prompts(driver)


def _check_ran(name: str, prompts: list[str], nb: dict) -> None:
    errors = [f"cell {i}: {o.get('ename')}: {o.get('evalue')}" for i, cell in enumerate(nb["cells"])
              for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{name}: the kernel reported errors: {errors}"
    not_run = [i for i, p in enumerate(prompts) if not (p.startswith("[") and p[1:-2].isdigit())]
    assert not not_run, f"{name}: code cells {not_run} did not run: {prompts}"


def _save(driver, workdir: Path, name: str) -> dict:
    """Save the notebook (a temporary copy) and return it as saved."""
    path = workdir / "notebooks" / f"{name}.ipynb"
    before = path.stat().st_mtime_ns
    _menu(driver, "File", "docmanager:save")
    _wait(lambda: path.stat().st_mtime_ns != before, 30, f"{name} to be saved")
    time.sleep(0.5)
    return json.loads(path.read_text())


def _image_in(element) -> str | None:
    from selenium.webdriver.common.by import By

    images = element.find_elements(By.CSS_SELECTOR, "img")
    return images[-1].get_attribute("src") if images else None


# ---------------------------------------------------------------- the tests
def test_results_notebook_runs_and_its_slider_changes_the_image(browser, lab, workdir):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    started = time.monotonic()
    _open(browser, lab, "05_results")
    prompts = _run_all(browser, lab, "05_results", timeout=180)
    nb = _save(browser, workdir, "05_results")
    _check_ran("05_results", prompts, nb)
    first = "".join(nb["cells"][3]["outputs"][0].get("text", "")) if nb["cells"][3]["outputs"] else ""
    assert "run " in first, f"05: the checking cell printed no run: {first!r}"

    panel = browser.find_element(By.CSS_SELECTOR, ".jp-NotebookPanel:not(.lm-mod-hidden)")
    slider = _wait(lambda: panel.find_elements(By.CSS_SELECTOR, ".widget-slider"), 30, "the epoch slider")[0]
    width = slider.size["width"]
    assert width > 600, f"05: the epoch slider is {width} px wide; one step per epoch needs a wide one"
    output = panel.find_element(By.CSS_SELECTOR, ".widget-output")
    shown_before = _wait(lambda: _image_in(output), 30, "the slider's image")
    handle = slider.find_element(By.CSS_SELECTOR, ".noUi-handle")
    handle.click()
    handle.send_keys(Keys.HOME)  # the first epoch
    try:
        _wait(lambda: (_image_in(output) or shown_before) != shown_before, 20, "a new image")
    except pytest.fail.Exception:  # keyboard steps not taken: drag the handle to the far left instead
        from selenium.webdriver import ActionChains
        ActionChains(browser).drag_and_drop_by_offset(handle, -width, 0).perform()
        _wait(lambda: (_image_in(output) or shown_before) != shown_before, 20, "a new image after dragging the slider")
    label = panel.find_element(By.CSS_SELECTOR, ".widget-slider .widget-readout").text
    errors = _console_errors(browser)
    assert not errors, f"05: browser console errors: {errors}"
    assert time.monotonic() - started < 150, "05 took too long in the browser"
    print(f"05: slider {width} px, moved to epoch {label}; {time.monotonic() - started:.1f} s")


def test_colorize_notebook_colorizes_an_uploaded_photo(browser, lab, workdir):
    from selenium.webdriver.common.by import By

    started = time.monotonic()
    _open(browser, lab, "06_colorize_your_photos")
    prompts = _run_all(browser, lab, "06_colorize_your_photos", timeout=240)
    _check_ran("06_colorize_your_photos", prompts, _save(browser, workdir, "06_colorize_your_photos"))

    panel = browser.find_element(By.CSS_SELECTOR, ".jp-NotebookPanel:not(.lm-mod-hidden)")
    button = _wait(lambda: panel.find_elements(By.CSS_SELECTOR, "button.widget-upload"), 30, "the upload box")[0]
    # the button clicks a file input that lives outside the page and opens the system's file dialog;
    # a browser without one gets the input put into the page instead, to type the file's path into
    browser.execute_script("""
        const click = HTMLInputElement.prototype.click;
        HTMLInputElement.prototype.click = function () {
            if (this.type !== "file") { return click.call(this); }
            this.id = "colorlib-test-upload";
            document.body.appendChild(this);
        };""")
    button.click()
    upload = _wait(lambda: browser.find_elements(By.ID, "colorlib-test-upload"), 10, "the file input")[0]
    upload.send_keys(str(workdir / "photo.jpg"))
    result = _wait(lambda: [o for o in panel.find_elements(By.CSS_SELECTOR, ".widget-output")
                            if _image_in(o) and "colorized.save" in o.text], 60, "the colorized photo")[0]
    assert "already in colour" in result.text  # the photo was a colour one: the notebook says so
    errors = _console_errors(browser)
    assert not errors, f"06: browser console errors: {errors}"
    print(f"06: uploaded photo colorized; {time.monotonic() - started:.1f} s")


@pytest.mark.parametrize("name", [n for n in NOTEBOOKS if n not in ("05_results", "06_colorize_your_photos")])
def test_opening_a_notebook_leaves_it_unmodified(browser, lab, name):
    _open(browser, lab, name)  # 05 and 06 are checked the same way above
    errors = _console_errors(browser)
    assert not errors, f"{name}: browser console errors: {errors}"
