"""The tutorial as a batch job: every notebook in order, executed with papermill for one preset.

    python notebooks/pipeline.py --preset quick                 # train, then every figure
    python notebooks/pipeline.py --from-run runs/paper          # an existing run's figures, no training
    python notebooks/pipeline.py --preset quick --refresh-notebooks
    python notebooks/pipeline.py --refresh-shipped              # 05-08 on what ships, no training

Executed notebooks go to <run dir>/notebooks/, the figures (PNG + provenance.json) to
figures/<preset>/. `--from-run` skips 04_training and reads the run's preset from its config.json,
e.g. for a run trained with `python -m colorlib train` on a GPU machine without Jupyter.
`--refresh-notebooks` also copies the executed notebooks 01-04 over the ones in notebooks/, with
their outputs and with clean metadata (kernelspec and language_info only: no papermill records, no
widget state, no injected-parameters cell), which is how the committed notebooks get the outputs
of a real run. 05_results, 06, 07 and 08 are committed with the outputs of what ships with the
repository (the full paper run in figures/paper/run, the generator in colorlib/weights, the
GPU studies in figures/paper/baselines*):
`--refresh-shipped` re-executes them on those.

A run directory that already holds a run is continued, and a finished one is reused as it is
(04_training's `resume` parameter): delete it to train from scratch.

Any other parameter a notebook declares is given as papermill gives it, `-p NAME VALUE` (VALUE read
as papermill reads it: True, None, 3, 0.5, else text) or `-y YAML`:

    python notebooks/pipeline.py --preset smoke -y 'overrides: {lam: 10.0, train_size: 2000}'

Each is checked before any notebook runs, against the kind of its default in the notebooks'
parameters cells (`overrides = {}` takes a mapping of config fields), so that a wrong one is one
line (exit status 2), not a traceback in an executed notebook.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import time
from pathlib import Path

import nbformat
import papermill
from traitlets.config import Config

NOTEBOOK_DIR = Path(__file__).resolve().parent
REPO = NOTEBOOK_DIR.parent
TRAINING_NOTEBOOK = "04_training"
# what ipykernel's own kernelspec says: JupyterLab rewrites (and marks modified) a notebook whose
# metadata differs from the kernel it starts, so the committed notebooks carry exactly this
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def kernel_config() -> Config:
    """The kernel and the pipeline talk over local TCP, and ipykernel (7.4, for one) warns at every
    kernel start that does so in plain text ("Kernel is running over TCP without encryption").
    jupyter_client's `KernelManager.transport_encryption = "auto"` hands each kernel CurveZMQ keys
    when its kernelspec declares support (ipykernel's does), which encrypts the traffic and so ends
    the warning at its source. A jupyter_client without the option, or a pyzmq without CurveZMQ,
    gets no setting (it would be refused). JupyterLab gets the same from jupyter_config.json."""
    import zmq
    from jupyter_client.manager import KernelManager

    if "transport_encryption" in KernelManager.class_trait_names() and zmq.has("curve"):
        return Config({"KernelManager": {"transport_encryption": "auto"}})
    return Config()


KERNEL_CONFIG = kernel_config()


# the tutorial, in reading order; 05_results writes the figures
TUTORIAL = ("01_data", "02_architecture", "03_losses", "04_training", "05_results")
# committed with the outputs of the quick run (`--refresh-notebooks`)
REFRESHED = ("01_data", "02_architecture", "03_losses", "04_training")
# committed with the outputs of what ships (`--refresh-shipped`): each with its parameters
SHIPPED = {"05_results": {"preset": "paper", "run_dir": "figures/paper/run", "interactive": False},
           "06_colorize_your_photos": {"interactive": False},
           "07_evaluation": {"preset": "paper", "run_dir": "figures/paper/run",
                             "baselines": "figures/paper/baselines-all-methods-3-epochs"},
           "08_stable_colours": {"interactive": False}}


def tutorial_notebooks() -> list[Path]:
    return [NOTEBOOK_DIR / f"{name}.ipynb" for name in TUTORIAL]


class ParameterError(ValueError):
    """A -p / -y parameter no notebook can use; the message says what is expected."""


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
            raise ParameterError(f"-y {text!r} must be a mapping of parameter names to values, e.g. "
                                 f"-y 'overrides: {{lam: 10.0}}'")
        given.update(values)
    given.update({name: _resolve_type(value) for name, value in pairs})
    return given


def check_parameters(given: dict, notebooks: list[Path]) -> None:
    """Each given parameter is declared by a notebook, of the kind of its default there (a
    literal default: a mapping, a bool, a number, text; `None` or an expression takes anything),
    and `overrides` names config fields; a ParameterError of one line otherwise."""
    from colorlib.runs.config import ConfigError, overrides_dict
    declared: dict = {}
    for nb in notebooks:
        declared.update(papermill.inspect_notebook(str(nb)))
    for name, value in given.items():
        kinds = {dict: f"a mapping (pass it as YAML, e.g. -y '{name}: {{lam: 10.0}}')", bool: "True or False",
                 int: "a whole number", float: "a number", str: "text", list: f"a list (-y '{name}: [...]')"}
        if name not in declared:
            raise ParameterError(f"no notebook declares a parameter {name!r}; they declare "
                                 f"{', '.join(sorted(declared))}")
        try:
            default = ast.literal_eval(declared[name]["default"])
        except (ValueError, SyntaxError):  # an expression, e.g. os.environ.get(...): anything goes
            continue
        kind = type(default)
        fits = (default is None or isinstance(value, kind) and not (kind is int and isinstance(value, bool))
                or kind is float and isinstance(value, int) and not isinstance(value, bool))
        if not fits:
            raise ParameterError(f"parameter {name} must be {kinds.get(kind, kind.__name__)}, not {value!r}")
        if name == "overrides":
            try:
                overrides_dict(value, "parameter overrides")
            except ConfigError as exc:
                raise ParameterError(str(exc)) from None


def declared_parameters(path: Path) -> set[str]:
    return set(papermill.inspect_notebook(str(path)))


def execute(path: Path, out: Path, parameters: dict) -> float:
    """Run one notebook with the parameters its parameters cell declares; returns seconds."""
    declared = declared_parameters(path)
    given = {k: v for k, v in parameters.items() if k in declared}
    started = time.perf_counter()
    papermill.execute_notebook(str(path), str(out), parameters=given, kernel_name="python3",
                               cwd=str(NOTEBOOK_DIR), progress_bar=False, config=KERNEL_CONFIG)
    seconds = time.perf_counter() - started
    strip_widget_state(out)
    return seconds


def strip_widget_state(path: Path) -> None:
    """Widget state is the live view of a kernel that no longer exists; it only bloats the file."""
    nb = nbformat.read(path, as_version=4)
    if nb.metadata.pop("widgets", None) is not None:
        nbformat.write(nb, path)


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def clean_copy(executed: Path, target: Path, forbidden: list[str]) -> None:
    """`executed` with its outputs but clean metadata, written to `target` (a committed notebook)."""
    nb = nbformat.read(executed, as_version=4)
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    for cell in nb.cells:
        tags = cell.metadata.get("tags")
        cell.metadata = {"tags": tags} if tags else {}
        # a live widget's view needs the kernel that made it: in a new kernel it is a "model not
        # found" error, so the committed notebooks keep the outputs that stand on their own
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if WIDGET_VIEW not in o.get("data", {})]
        for output in cell.get("outputs", []):
            text = json.dumps(output.get("text", "")) + json.dumps(output.get("data", {}).get("text/plain", ""))
            for path in forbidden:
                if path in text:
                    raise SystemExit(f"{executed.name}: an output shows the local path {path!r}; "
                                     f"print it relative to the repository before committing outputs")
    metadata = {"kernelspec": KERNELSPEC}
    if "language_info" in nb.metadata:  # as the kernel reported it: the Python version of the run
        metadata["language_info"] = nb.metadata["language_info"]
    nb.metadata = nbformat.NotebookNode(metadata)
    nbformat.write(nb, target)


def portable(value, data: str | None):
    """Provenance values without this machine's paths: repository paths become relative ones,
    the data folder its own name."""
    if isinstance(value, dict):
        return {k: portable(v, data) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v, data) for v in value]
    if isinstance(value, str):
        if data and value.startswith(data):
            return Path(data).name + value[len(data):]
        if value.startswith(str(REPO) + os.sep):
            return os.path.relpath(value, REPO)
    return value


def extend_provenance(figures_dir: Path, record: dict, data: str | None) -> None:
    path = figures_dir / "provenance.json"
    provenance = json.loads(path.read_text()) if path.exists() else {}
    provenance["pipeline"] = record
    path.write_text(json.dumps(portable(provenance, data), indent=2, sort_keys=True, default=str) + "\n")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="quick", help="smoke | quick | paper (default quick)")
    p.add_argument("--data", default=os.environ.get("COLORLIB_DATA"),
                   help="data folder or pack (default: $COLORLIB_DATA, else the notebooks download CIFAR-10)")
    p.add_argument("--run-dir", help="run directory (default runs/<preset>)")
    p.add_argument("--figures-dir", help="where the figures go (default figures/<preset>)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, help="override the preset's number of epochs")
    p.add_argument("--from-run", metavar="RUN_DIR",
                   help="regenerate the notebooks and figures of this existing run, without training")
    p.add_argument("--refresh-notebooks", action="store_true",
                   help="copy the executed notebooks 01-04, outputs included, over those in notebooks/")
    p.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="any other parameter a notebook declares, as papermill's -p (repeatable)")
    p.add_argument("-y", "--parameters-yaml", action="append", default=[], metavar="YAML",
                   help="parameters as YAML, as papermill's -y, e.g. -y 'overrides: {lam: 10.0}' (repeatable)")
    p.add_argument("--refresh-shipped", action="store_true",
                   help="only re-execute 05-08 on what ships (the paper run, the generator, the baselines tables) "
                        "and copy them over those in notebooks/; no training (08 counts the colours of CIFAR-10 "
                        "training images: $COLORLIB_DATA, else downloaded)")
    return p.parse_args(argv)


def refresh_shipped(data: str | None) -> int:
    """05-08 executed on what ships with the repository, copied over the committed ones."""
    import tempfile

    forbidden = [p for p in (str(REPO), data if data and os.path.isabs(data) else None, str(Path.home())) if p]
    with tempfile.TemporaryDirectory() as tmp:
        for name, parameters in SHIPPED.items():
            print(f"running {name}.ipynb ...", flush=True)
            out = Path(tmp) / f"{name}.ipynb"
            try:
                seconds = execute(NOTEBOOK_DIR / f"{name}.ipynb", out, parameters)
            except papermill.PapermillExecutionError as exc:
                print(f"{name}.ipynb failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}", file=sys.stderr)
                return 1
            clean_copy(out, NOTEBOOK_DIR / f"{name}.ipynb", forbidden)
            print(f"  {seconds:.1f} s", flush=True)
    print(f"refreshed {', '.join(SHIPPED)} with the outputs of what ships")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        extra = given_parameters(args.parameter, args.parameters_yaml)
        check_parameters(extra, tutorial_notebooks())
    except ParameterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return run_pipeline(args, extra)


def run_pipeline(args, extra: dict) -> int:
    """The pipeline of the module docstring, with the checked extra parameters `extra`."""
    from colorlib.runs import rundir

    if args.refresh_shipped:
        return refresh_shipped(args.data)
    if args.from_run:
        run_dir = Path(args.from_run).resolve()
        if not rundir.is_run_dir(run_dir):
            raise SystemExit(f"{args.from_run} holds no run (no config.json); train one first "
                             f"(`python -m colorlib train --run-dir {args.from_run}`)")
        preset = rundir.read_config(run_dir).preset
    else:
        preset = args.preset
        run_dir = (REPO / (args.run_dir or f"runs/{preset}")).resolve()
        if rundir.is_run_dir(run_dir):
            print(f"{run_dir} already holds a run: 04_training continues it, or reuses it when it is "
                  f"finished. Delete it to train from scratch.")
    figures_dir = (REPO / (args.figures_dir or f"figures/{preset}")).resolve()
    data = str(Path(args.data).resolve()) if args.data and args.data != "cifar10" else args.data
    parameters = {"preset": preset, "data": data, "run_dir": str(run_dir), "device": args.device,
                  "seed": args.seed, "figures_dir": str(figures_dir),
                  "interactive": False}  # no reader for a slider; widgets can stall nbclient (jupyter/nbclient#312)
    if args.epochs is not None:
        parameters["epochs"] = args.epochs
    parameters.update(extra)

    out_dir = run_dir / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    notebooks = [nb for nb in tutorial_notebooks() if not (args.from_run and nb.stem == TRAINING_NOTEBOOK)]
    timings = {}
    started = time.perf_counter()
    for nb in notebooks:
        print(f"running {nb.name} ...", flush=True)
        try:
            timings[nb.stem] = round(execute(nb, out_dir / nb.name, parameters), 1)
        except papermill.PapermillExecutionError as exc:
            print(f"{nb.name} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}\n"
                  f"the executed notebook, with the traceback, is {out_dir / nb.name}", file=sys.stderr)
            return 1
        print(f"  {timings[nb.stem]:.1f} s", flush=True)
    wall = time.perf_counter() - started

    extend_provenance(figures_dir, {
        "wall_time_s": round(wall, 1), "notebook_wall_times_s": timings,
        "mode": "figures from an existing run" if args.from_run else "train and figures",
        "parameters": {k: v for k, v in parameters.items() if k != "interactive"},
        # CPU thread count changes the speed a lot on a shared machine, never the results' maths
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "executed_notebooks": str(out_dir)}, data)
    if args.refresh_notebooks:
        forbidden = [p for p in (str(REPO), data if data and os.path.isabs(data) else None, str(Path.home())) if p]
        refreshed = [nb for nb in notebooks if nb.stem in REFRESHED]
        for nb in refreshed:
            clean_copy(out_dir / nb.name, nb, forbidden)
        print(f"refreshed {', '.join(nb.name for nb in refreshed)} with the outputs of this run "
              f"(05-08 show what ships: --refresh-shipped)")
    print(f"pipeline: {wall:.0f} s; notebooks in {out_dir}, figures in {figures_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
