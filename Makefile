# Two commands for a fresh machine (each makes .venv first if there is none):
#   make figures PRESET=quick     the main job: the tutorial notebooks through papermill, training
#                                 included, and every figure into figures/$(PRESET)
#   make test                     the test suite (pytest, then nbval over every notebook)
# Point DATA (or $COLORLIB_DATA) at a train/<class>/*.jpg folder; unset, CIFAR-10 is downloaded.

PRESET ?= quick
DATA ?= $(COLORLIB_DATA)
RUN_DIR ?= runs/$(PRESET)
FIG_DIR ?= figures/$(PRESET)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DATA_ARG := $(if $(DATA),--data $(DATA),)

.PHONY: setup train figures figures-from-run notebooks nbval test bench baselines

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e ".[notebooks,test]"
	touch $@

setup: $(VENV)/.installed

train: setup
	$(PY) -m colorlib train --preset $(PRESET) $(DATA_ARG) --run-dir $(RUN_DIR)

# the whole tutorial through papermill: notebooks 01-05 run in order (04 trains), the executed
# notebooks land in $(RUN_DIR)/notebooks and the figures, with provenance.json, in $(FIG_DIR)
figures: setup
	$(PY) notebooks/pipeline.py --preset $(PRESET) $(DATA_ARG) --run-dir $(RUN_DIR) --figures-dir $(FIG_DIR)

# the committed notebooks get the outputs of a real quick run (clean metadata), figures/quick too
notebooks: setup
	$(PY) notebooks/pipeline.py --preset quick $(DATA_ARG) --run-dir runs/quick --figures-dir figures/quick --refresh-notebooks

# figures of an existing run directory, without retraining (e.g. one brought back from a GPU)
figures-from-run: setup
	$(PY) -m colorlib figures --run-dir $(RUN_DIR) --out $(FIG_DIR)

# every notebook under the smoke preset, its run in a temporary folder; the cells marked
# NBVAL_CHECK_OUTPUT must reproduce their committed output, the others must run without error
nbval: setup
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	  $(if $(DATA),COLORLIB_DATA=$(DATA)) COLORLIB_PRESET=smoke COLORLIB_RUN_DIR="$$tmp/run" \
	  $(PY) -m pytest --nbval-lax --nbval-current-env --nbval-cell-timeout=600 -p no:cacheprovider notebooks

test: setup
	$(PY) -m pytest tests
	$(MAKE) --no-print-directory nbval

# colorlib's trainer against a tutorial-style loop, same networks and data, one run
bench: setup
	$(PY) -m colorlib bench --preset paper $(DATA_ARG) --out $(FIG_DIR)/bench.json

# every baseline and ablation at the preset's budget, scored side by side
baselines: setup
	$(PY) -m colorlib baselines --preset $(PRESET) $(DATA_ARG) --out runs/baselines-$(PRESET) --figures $(FIG_DIR)/baselines
