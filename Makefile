# Two commands for a fresh machine (each makes .venv first if there is none):
#   make figures PRESET=quick     the main job: the tutorial notebooks through papermill, training
#                                 included, and every figure into figures/$(PRESET)
#   make test                     the test suite (ruff, pytest, then nbval over every notebook)
#   make test-fast                the same pytest run without the slow tests (seconds, not minutes)
#   make test-browser             every notebook run in JupyterLab in headless Chromium (installs it if it can)
#   make soak                     training stopped 50 times (SIGKILL, SIGINT, SIGTERM) and by 30 refused writes (a full
#                                 or read-only disk), each time resumed, must end bitwise as if never stopped
# Point DATA (or $COLORLIB_DATA) at a train/<class>/*.jpg folder; unset, CIFAR-10 is downloaded.
# TORCH_INDEX=https://download.pytorch.org/whl/cpu make setup: PyTorch from that index (e.g. the CPU-only build)
# when .venv is made; unset, from PyPI.

PRESET ?= quick
DATA ?= $(COLORLIB_DATA)
RUN_DIR ?= runs/$(PRESET)
FIG_DIR ?= figures/$(PRESET)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# the values reach the shell as environment variables, quoted there: a path with a space works, and
# no value is ever run as a command (PRESET='smoke; touch X' is an unknown preset)
export PRESET DATA RUN_DIR FIG_DIR TORCH_INDEX
DATA_ARG := $(if $(DATA),--data "$$DATA",)

.PHONY: setup train figures figures-from-run notebooks notebooks-shipped nbval lint test test-fast test-browser soak \
	bench baselines

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1 $${TORCH_INDEX:+--index-url "$$TORCH_INDEX"}
	$(PY) -m pip install -q -e ".[notebooks,test]"
	touch $@

# Jupyter as the README starts it is quiet: jupyter_config.json goes where this environment's Jupyter
# reads its settings (JupyterLab and `jupyter nbconvert --execute` then give every kernel CurveZMQ keys,
# so none warns that it runs over TCP without encryption), and the committed notebooks are trusted
# (no "Notebook ... is not trusted")
setup: $(VENV)/.installed
	@config="$$($(PY) -c 'import sys; print(sys.prefix)')/etc/jupyter" && mkdir -p "$$config" && \
	  { cmp -s jupyter_config.json "$$config/jupyter_config.json" || cp jupyter_config.json "$$config/jupyter_config.json"; }
	@$(PY) -m jupyter trust --log-level=WARN notebooks/*.ipynb >/dev/null

train: setup
	$(PY) -m colorlib train --preset "$$PRESET" $(DATA_ARG) --run-dir "$$RUN_DIR"

# the whole tutorial through papermill: notebooks 01-05 run in order (04 trains), the executed
# notebooks land in $(RUN_DIR)/notebooks and the figures, with provenance.json, in $(FIG_DIR)
figures: setup
	$(PY) notebooks/pipeline.py --preset "$$PRESET" $(DATA_ARG) --run-dir "$$RUN_DIR" --figures-dir "$$FIG_DIR"

# the committed notebooks 01-04 get the outputs of a real quick run (clean metadata), figures/quick too
notebooks: setup
	$(PY) notebooks/pipeline.py --preset quick $(DATA_ARG) --run-dir runs/quick --figures-dir figures/quick --refresh-notebooks

# 05-08 committed with the outputs of what ships: the paper run, the generator, the studies (no training);
# run after `make notebooks`: 05 shows the runs/quick it trained beside the paper run, as 04's outputs show it
notebooks-shipped: setup
	$(if $(DATA),COLORLIB_DATA="$$DATA") $(PY) notebooks/pipeline.py --refresh-shipped

# figures of an existing run directory, without retraining (e.g. one brought back from a GPU)
figures-from-run: setup
	$(PY) -m colorlib figures --run-dir "$$RUN_DIR" --out "$$FIG_DIR"

# every notebook under the smoke preset, its run in a temporary folder; the cells marked
# NBVAL_CHECK_OUTPUT must reproduce their committed output, the others must run without error
nbval: setup
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	  $(if $(DATA),COLORLIB_DATA="$$DATA") COLORLIB_PRESET=smoke COLORLIB_RUN_DIR="$$tmp/run" \
	  $(PY) -m pytest --nbval-lax --nbval-current-env --nbval-cell-timeout=600 -p no:cacheprovider notebooks

lint: setup
	$(PY) -m ruff check .

# without DATA, CIFAR-10 is fetched once into data/ (tests/fetch_data.py); where that is not possible
# one line says so, the tests run on the subset in tests/data, and those that need all of it skip
test: setup lint
	@data="$$($(PY) tests/fetch_data.py "$$DATA")" || exit 1; \
	if [ -n "$$data" ]; then export COLORLIB_DATA="$$data"; else unset COLORLIB_DATA; fi; \
	$(PY) -m pytest tests -m "not browser" $$([ -n "$$data" ] || echo -rfE) || exit 1; \
	if [ -n "$$data" ]; then $(MAKE) --no-print-directory nbval DATA="$$data"; fi

# no training, no notebook runs: the edit-test loop, always on the real CIFAR-10 images committed in tests/data
# (the same on every machine; listing CIFAR-10's 50,000 training files takes ~1 s at each of the tests' loads)
test-fast: setup
	env -u COLORLIB_DATA $(PY) -m pytest tests -m "not slow and not browser"

# fault injection at length (tests/test_interruptions.py): a tiny training stopped SOAK_KILLS times (SIGKILL,
# SIGINT or SIGTERM at random moments: start-up, training, inside a checkpoint's writes) and SOAK_FAULTS
# times by a refused write (a full or read-only disk), resumed each time, must end bitwise identical to an
# uninterrupted one (make test runs 6 and 2); then a study stopped while scoring is finished by running it
# again. DATA where given, else the CIFAR-10 subset in tests/data.
SOAK_KILLS ?= 50
SOAK_FAULTS ?= 30
SOAK_SEED ?= 0
export SOAK_KILLS SOAK_FAULTS SOAK_SEED
soak: setup
	$(if $(DATA),COLORLIB_DATA="$$DATA") COLORLIB_FAULT_KILLS="$$SOAK_KILLS" COLORLIB_ENV_FAULTS="$$SOAK_FAULTS" \
	  COLORLIB_FAULT_SEED="$$SOAK_SEED" $(PY) -m pytest tests/test_interruptions.py \
	  tests/test_study.py::test_a_study_stopped_while_scoring_is_finished_by_running_it_again -s -q -p no:cacheprovider

# JupyterLab in headless Chromium: every notebook opened and run with Run > Run All Cells as a reader runs
# it (04 trains the smoke preset), then 05's epoch slider moved and a photo uploaded in 06. Installs
# Chromium with apt-get where it is missing and that is possible; otherwise the tests skip, saying why.
# The data as for `make test`: DATA, else CIFAR-10 fetched once into data/; none, the notebook runs skip.
test-browser: setup
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing chromium and chromium-driver with apt-get ..."; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } \
	      >/tmp/colorlib-apt.log 2>&1 || echo "apt-get could not install chromium (see /tmp/colorlib-apt.log)"; \
	  fi; }
	@data="$$($(PY) tests/fetch_data.py "$$DATA")" || exit 1; \
	if [ -n "$$data" ]; then export COLORLIB_DATA="$$data"; else unset COLORLIB_DATA; fi; \
	$(PY) -m pytest tests/test_browser.py -m browser

# colorlib's trainer against a tutorial-style loop, same networks and data, one run
bench: setup
	$(PY) -m colorlib bench --preset paper $(DATA_ARG) --out "$$FIG_DIR/bench.json"

# every baseline and ablation x 3 seeds at the preset's budget: chosen on the validation split,
# scored on the test split (the study below, on whatever device there is); 08_stable_colours reads it
baselines: setup
	$(PY) -m colorlib study --preset "$$PRESET" --seeds 3 $(DATA_ARG) --out "runs/baselines-$$PRESET" \
	  --figures "$$FIG_DIR/baselines" $$STUDY_ARGS

# The whole comparison on one GPU, no Jupyter needed: every method of the baselines table x 3
# seeds, one after another, at the paper's networks and data, STUDY_EPOCHS epochs each; scored on
# the validation and test splits into figures/paper/baselines
STUDY_EPOCHS ?= 6
STUDY_RUNS ?= runs/study-paper
STUDY_FIGURES ?= figures/paper/baselines
STUDY_PRESET ?= paper
STUDY_ARGS ?=
STUDY_PY := $(if $(wildcard $(PY)),$(PY),$(PYTHON))
# STUDY_ARGS is split into words by the shell, never run as a command
export STUDY_EPOCHS STUDY_RUNS STUDY_FIGURES STUDY_PRESET STUDY_ARGS
.PHONY: gpu-study
gpu-study:
	$(STUDY_PY) -m colorlib study --preset "$$STUDY_PRESET" --seeds 3 $(DATA_ARG) --out "$$STUDY_RUNS" \
	  --figures "$$STUDY_FIGURES" --set "epochs=$$STUDY_EPOCHS" --no-progress $$STUDY_ARGS
