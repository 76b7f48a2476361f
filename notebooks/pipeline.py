"""The tutorial as a batch job: every notebook in order, executed with papermill for one preset.

    python notebooks/pipeline.py --preset quick                 # train, then every figure
    python notebooks/pipeline.py --from-run runs/paper          # an existing run's figures, no training
    python notebooks/pipeline.py --preset quick --refresh-notebooks
    python notebooks/pipeline.py --refresh-shipped              # 05-08 on what ships, no training

Executed notebooks go to <run dir>/notebooks/, the figures (PNG + provenance.json) to figures/<preset>/.
`--from-run` skips 04_training and reads the run's preset from its config.json. `--refresh-notebooks`
also copies the executed notebooks 01-04 over those in notebooks/, with their outputs and clean
metadata (how the committed notebooks get the outputs of a real run); `--refresh-shipped` re-executes
05-08 on what ships (figures/paper/run, colorlib/weights, figures/paper/baselines*). A run directory
that holds a run is continued, a finished one reused: delete it to train from scratch.

Any other parameter a notebook declares is given as papermill gives it, `-p NAME VALUE` or `-y YAML`:

    python notebooks/pipeline.py --preset smoke -y 'overrides: {lam: 10.0, train_size: 2000}'

Each is checked against the kind of its default before any notebook runs: a wrong one is one line
(exit 2). Ctrl-C or SIGTERM interrupts the training in the kernel (the run is saved at its iteration
boundary and marked interrupted), shuts the kernel down and ends with one line (exit 130 or 143).
"""
from __future__ import annotations

import argparse
import ast
import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

import nbformat
import papermill
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from traitlets.config import Config

NOTEBOOK_DIR = Path(__file__).resolve().parent
REPO = NOTEBOOK_DIR.parent
TRAINING_NOTEBOOK = "04_training"
# what ipykernel's own kernelspec says: JupyterLab rewrites a notebook whose metadata differs
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
# CurveZMQ keys for every kernel (ipykernel warns at each start over plain TCP); as jupyter_config.json
KERNEL_CONFIG = Config({"KernelManager": {"transport_encryption": "auto"}})
# jupyter_client interrupts a kernel before shutting it down; an idle kernel then logs "KeyboardInterrupt
# caught in kernel" to our stderr, a second line after the stop's one. Cell errors reach us through papermill.
KERNEL_ARGS = ["--IPKernelApp.log_level=CRITICAL"]
TUTORIAL = ("01_data", "02_architecture", "03_losses", "04_training", "05_results")  # 05 writes the figures
REFRESHED = ("01_data", "02_architecture", "03_losses", "04_training")  # committed with a quick run's outputs
SHIPPED = {"05_results": {"preset": "paper", "run_dir": "figures/paper/run", "interactive": False},
           "06_colorize_your_photos": {"interactive": False},
           "07_evaluation": {"preset": "paper", "run_dir": "figures/paper/run"},
           "08_stable_colours": {}}
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


class ParameterError(ValueError):
    """A -p / -y parameter no notebook can use; the message says what is expected."""


class Stopped(KeyboardInterrupt):
    """SIGTERM (or SIGHUP), raised where Ctrl-C would be, so it ends the same way."""

    def __init__(self, signum: int):
        super().__init__(f"interrupted ({signal.Signals(signum).name})")
        self.signum = signum


def stop(signum, frame):
    raise Stopped(signum)


def tutorial_notebooks() -> list[Path]:
    return [NOTEBOOK_DIR / f"{name}.ipynb" for name in TUTORIAL]


def given_parameters(pairs, yaml_texts) -> dict:
    """-p NAME VALUE (VALUE read as papermill's -p reads it) and -y YAML, as {name: value}."""
    import yaml
    from papermill.cli import _resolve_type
    given = {}
    for text in yaml_texts:
        try:
            values = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ParameterError(f"-y {text!r} is not YAML ({str(exc).splitlines()[0]})") from None
        if not isinstance(values, dict):
            raise ParameterError(f"-y {text!r} must be a mapping of names to values, e.g. -y 'overrides: {{lam: 10}}'")
        given.update(values)
    return given | {name: _resolve_type(value) for name, value in pairs}


def check_parameters(given: dict, notebooks: list[Path]) -> None:
    """Each given parameter is declared by a notebook and of the kind of its literal default there
    (`None` or an expression takes anything); `overrides` names config fields. ParameterError otherwise."""
    from colorlib.runs.config import ConfigError, overrides_dict
    declared: dict = {}
    for nb in notebooks:
        declared.update(papermill.inspect_notebook(str(nb)))
    kinds = {dict: "a mapping (as YAML: -y 'NAME: {lam: 10.0}')", bool: "True or False", int: "a whole number",
             float: "a number", str: "text", list: "a list (-y 'NAME: [...]')"}
    for name, value in given.items():
        if name not in declared:
            raise ParameterError(f"no notebook declares a parameter {name!r}; they declare "
                                 f"{', '.join(sorted(declared))}")
        try:
            default = ast.literal_eval(declared[name]["default"])
        except (ValueError, SyntaxError):  # an expression, e.g. os.environ.get(...): anything goes
            continue
        kind, is_bool = type(default), isinstance(value, bool)
        if not (default is None or isinstance(value, kind) and not (kind is int and is_bool)
                or kind is float and isinstance(value, int) and not is_bool):
            raise ParameterError(f"parameter {name} must be {kinds.get(kind, kind.__name__)}, not {value!r}")
        if name == "overrides":
            try:
                overrides_dict(value, "parameter overrides")
            except ConfigError as exc:
                raise ParameterError(str(exc)) from None


async def interrupt(km: AsyncKernelManager, timeout: float = 600) -> None:
    """Ctrl-C in the kernel, and wait until the cell it runs has ended (a training saves its run). The
    execution the stop left in this event loop is ended first: it would report the shutdown as a dead kernel."""
    left = asyncio.all_tasks() - {asyncio.current_task()}
    for task in left:
        task.cancel()
    await asyncio.gather(*left, return_exceptions=True)  # their errors taken here, not printed at exit
    await km.interrupt_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.kernel_info()  # answered once the interrupted cell has ended
        await kc.get_shell_msg(timeout=timeout)
    finally:
        kc.stop_channels()


def execute(path: Path, out: Path, parameters: dict) -> float:
    """Run one notebook with the parameters its parameters cell declares; returns seconds. Its kernel is
    ours: on Ctrl-C or SIGTERM it is interrupted (a training saves at its iteration boundary), then shut
    down, its connection file removed."""
    declared = set(papermill.inspect_notebook(str(path)))
    km = AsyncKernelManager(kernel_name="python3", config=KERNEL_CONFIG)
    started = time.perf_counter()
    try:
        papermill.execute_notebook(str(path), str(out), {k: v for k, v in parameters.items() if k in declared},
                                   kernel_name="python3", cwd=str(NOTEBOOK_DIR), progress_bar=False, km=km,
                                   extra_arguments=KERNEL_ARGS)
    except KeyboardInterrupt:
        if km.has_kernel:
            run_sync(interrupt)(km)
        raise
    finally:
        if km.has_kernel:
            run_sync(km.shutdown_kernel)()
    nb = nbformat.read(out, as_version=4)
    if nb.metadata.pop("widgets", None) is not None:  # the live view of a kernel that no longer exists
        nbformat.write(nb, out)
    return time.perf_counter() - started


def clean_copy(executed: Path, target: Path, forbidden: list[str]) -> None:
    """`executed` with its outputs but clean metadata, written to `target` (a committed notebook)."""
    nb = nbformat.read(executed, as_version=4)
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    for cell in nb.cells:
        tags = cell.metadata.get("tags")
        cell.metadata = {"tags": tags} if tags else {}
        if cell.cell_type == "code":  # a live widget's view needs the kernel that made it
            cell.outputs = [o for o in cell.outputs if WIDGET_VIEW not in o.get("data", {})]
        for output in cell.get("outputs", []):
            text = json.dumps(output.get("text", "")) + json.dumps(output.get("data", {}).get("text/plain", ""))
            for path in forbidden:
                if path in text:
                    raise SystemExit(f"{executed.name}: an output shows the local path {path!r}; "
                                     f"print it relative to the repository before committing outputs")
    nb.metadata = nbformat.NotebookNode({"kernelspec": KERNELSPEC, **{k: v for k, v in nb.metadata.items()
                                                                     if k == "language_info"}})
    nbformat.write(nb, target)


def portable(value, data: str | None):
    """Provenance values without this machine's paths: repository paths relative, the data folder its name."""
    if isinstance(value, dict):
        return {k: portable(v, data) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v, data) for v in value]
    if isinstance(value, str) and data and value.startswith(data):
        return Path(data).name + value[len(data):]
    if isinstance(value, str) and value.startswith(str(REPO) + os.sep):
        return os.path.relpath(value, REPO)
    return value


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="quick", help="smoke | quick | paper (default quick)")
    p.add_argument("--data", default=os.environ.get("COLORLIB_DATA"),
                   help="data folder (default: $COLORLIB_DATA, else the notebooks download CIFAR-10)")
    p.add_argument("--run-dir", help="run directory (default runs/<preset>)")
    p.add_argument("--figures-dir", help="where the figures go (default figures/<preset>)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, help="override the preset's number of epochs")
    p.add_argument("--from-run", metavar="RUN_DIR", help="the notebooks and figures of this run, without training")
    p.add_argument("--refresh-notebooks", action="store_true",
                   help="copy the executed notebooks 01-04, outputs included, over those in notebooks/")
    p.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="any other parameter a notebook declares, as papermill's -p (repeatable)")
    p.add_argument("-y", "--parameters-yaml", action="append", default=[], metavar="YAML",
                   help="parameters as YAML, as papermill's -y, e.g. -y 'overrides: {lam: 10.0}' (repeatable)")
    p.add_argument("--refresh-shipped", action="store_true",
                   help="only re-execute 05-08 on what ships and copy them over those in notebooks/ (no training)")
    return p.parse_args(argv)


def forbidden_paths(data: str | None) -> list[str]:
    return [p for p in (str(REPO), data if data and os.path.isabs(data) else None, str(Path.home())) if p]


def run_notebooks(notebooks: list[Path], out_dir: Path, parameters: dict) -> dict | None:
    """{notebook: seconds}; None (with one line saying where its traceback is) where one failed."""
    timings = {}
    for nb in notebooks:
        print(f"running {nb.name} ...", flush=True)
        try:
            timings[nb.stem] = round(execute(nb, out_dir / nb.name, parameters), 1)
        except papermill.PapermillExecutionError as exc:
            print(f"{nb.name} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}; the executed notebook, "
                  f"with the traceback, is {out_dir / nb.name}", file=sys.stderr)
            return None
        print(f"  {timings[nb.stem]:.1f} s", flush=True)
    return timings


def refresh_shipped(data: str | None) -> int:
    """05-08 executed on what ships with the repository, copied over the committed ones."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for name, parameters in SHIPPED.items():
            if run_notebooks([NOTEBOOK_DIR / f"{name}.ipynb"], Path(tmp), parameters) is None:
                return 1
            clean_copy(Path(tmp) / f"{name}.ipynb", NOTEBOOK_DIR / f"{name}.ipynb", forbidden_paths(data))
    print(f"refreshed {', '.join(SHIPPED)} with the outputs of what ships")
    return 0


def run_pipeline(args, extra: dict) -> int:
    """The pipeline of the module docstring, with the checked extra parameters `extra`."""
    from colorlib.runs import rundir
    from colorlib.runs.config import make_config

    if args.refresh_shipped:
        return refresh_shipped(args.data)
    if args.from_run:
        run_dir = Path(args.from_run).resolve()
        if not rundir.is_run_dir(run_dir):
            raise ParameterError(f"{args.from_run} holds no run (no config.json); train one first "
                                 f"(`python -m colorlib train --run-dir {args.from_run}`)")
        preset = rundir.read_config(run_dir).preset
    else:
        preset = args.preset
        make_config(preset)  # an unknown preset: one line before any notebook runs
        run_dir = (REPO / (args.run_dir or f"runs/{preset}")).resolve()
        if rundir.is_run_dir(run_dir):
            print(f"{run_dir} already holds a run: 04_training continues it, or reuses it when it is finished. "
                  f"Delete it to train from scratch.")
    figures_dir = (REPO / (args.figures_dir or f"figures/{preset}")).resolve()
    data = str(Path(args.data).resolve()) if args.data and args.data != "cifar10" else args.data
    parameters = {"preset": preset, "data": data, "run_dir": str(run_dir), "device": args.device, "seed": args.seed,
                  "figures_dir": str(figures_dir), "interactive": False,  # no reader for a slider
                  **({"epochs": args.epochs} if args.epochs is not None else {}), **extra}
    out_dir = run_dir / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)  # a read-only run: one line now, before any work
    notebooks = [nb for nb in tutorial_notebooks() if not (args.from_run and nb.stem == TRAINING_NOTEBOOK)]
    started = time.perf_counter()
    timings = run_notebooks(notebooks, out_dir, parameters)
    if timings is None:
        return 1
    wall = time.perf_counter() - started
    provenance = rundir.read_json(figures_dir / "provenance.json") if (figures_dir / "provenance.json").exists() else {}
    provenance["pipeline"] = {"wall_time_s": round(wall, 1), "notebook_wall_times_s": timings,
                              "mode": "figures from an existing run" if args.from_run else "train and figures",
                              "parameters": {k: v for k, v in parameters.items() if k != "interactive"},
                              "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),  # speed only, never the maths
                              "executed_notebooks": str(out_dir)}
    rundir.write_json(figures_dir / "provenance.json", portable(provenance, data))
    if args.refresh_notebooks:
        refreshed = [nb for nb in notebooks if nb.stem in REFRESHED]
        for nb in refreshed:
            clean_copy(out_dir / nb.name, nb, forbidden_paths(data))
        print(f"refreshed {', '.join(nb.name for nb in refreshed)} with the outputs of this run "
              f"(05-08 show what ships: --refresh-shipped)")
    print(f"pipeline: {wall:.0f} s; notebooks in {out_dir}, figures in {figures_dir}")
    return 0


def main(argv=None) -> int:
    """Exit status: 0 done, 1 a notebook failed, 2 bad input or the machine refused, 130/143 interrupted."""
    args = parse_args(argv)
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    for signum, handler in previous.items():
        if handler is signal.SIG_DFL:  # an ignored SIGHUP (`nohup`) stays ignored
            signal.signal(signum, stop)
    try:
        extra = given_parameters(args.parameter, args.parameters_yaml)
        check_parameters(extra, tutorial_notebooks())
        return run_pipeline(args, extra)
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        print(str(exc) or "interrupted (Ctrl-C)", file=sys.stderr)
        return 128 + signum
    except Exception as exc:
        from colorlib.cli import exit_status
        outcome = (2, f"error: {exc}") if isinstance(exc, ParameterError) else exit_status(exc)
        if outcome is None:
            raise
        print(outcome[1], file=sys.stderr)
        return outcome[0]
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


if __name__ == "__main__":
    sys.exit(main())
