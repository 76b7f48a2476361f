# Two commands for a fresh machine (each makes .venv first if there is none):
#   make reproduce PRESET=quick   train, then regenerate the figures into figures/$(PRESET)
#   make test                     the test suite
# Point DATA (or $COLORLIB_DATA) at a train/<class>/*.jpg folder; unset, CIFAR-10 is downloaded.

PRESET ?= quick
DATA ?= $(COLORLIB_DATA)
RUN_DIR ?= runs/$(PRESET)
FIG_DIR ?= figures/$(PRESET)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DATA_ARG := $(if $(DATA),--data $(DATA),)

.PHONY: setup reproduce train figures-from-run test clean-run

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e ".[notebooks,test]"
	touch $@

setup: $(VENV)/.installed

train: setup
	$(PY) -m colorlib train --preset $(PRESET) $(DATA_ARG) --run-dir $(RUN_DIR)

# figures of an existing run directory, without retraining (e.g. one brought back from a GPU)
figures-from-run: setup
	$(PY) -m colorlib figures --run-dir $(RUN_DIR) --out $(FIG_DIR)

reproduce: setup
	$(PY) -m colorlib train --preset $(PRESET) $(DATA_ARG) --run-dir $(RUN_DIR)
	$(PY) -m colorlib figures --run-dir $(RUN_DIR) --out $(FIG_DIR)

test: setup
	$(PY) -m pytest tests

clean-run:
	@echo "run directories are never deleted by make; remove $(RUN_DIR) yourself if you mean it"
