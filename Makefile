# Set-up and the two everyday commands. `make demo` runs the whole chain on the embedded
# sample dataset; `make test` runs the test suite. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SAMPLE_DIR := data/sample
DEMO_OUT := outputs/demo

.PHONY: install lock demo test test-fast app clean-demo

install: $(VENV)/.installed

# The tested versions from the lock file, then this package itself without resolving again.
# Python 3.11 or newer: the locked numpy, pandas, keras and contourpy have no 3.10 builds.
$(VENV)/.installed: setup.py requirements.txt requirements-lock.txt
	@$(PYTHON) -c 'import sys; sys.version_info >= (3, 11) or sys.exit(f"Python 3.11 or newer is needed, but $(PYTHON) is {sys.version.split()[0]}; install one and run: make $(MAKECMDGOALS) PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-lock.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

# Re-resolve requirements.txt (ranges) and record the versions in requirements-lock.txt.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --upgrade pip && .lock-venv/bin/pip install --quiet -e ".[test]"
	{ grep "^#" requirements-lock.txt; .lock-venv/bin/pip freeze --exclude-editable; } > requirements-lock.txt.new
	mv requirements-lock.txt.new requirements-lock.txt && rm -rf .lock-venv

$(SAMPLE_DIR)/HAM10000_metadata.csv: | $(VENV)/.installed
	$(PY) scripts/00_make_sample_data.py --out-dir $(SAMPLE_DIR)

# The whole chain on the sample data with a small CNN trained from scratch (a few minutes on
# a CPU). Each run adds a new folder under outputs/demo/runs/; outputs/demo/latest points to it.
demo: install $(SAMPLE_DIR)/HAM10000_metadata.csv
	$(PY) scripts/02_prepare_split.py --data-dir $(SAMPLE_DIR) --out-dir $(DEMO_OUT)/split
	$(PY) scripts/explore_data.py --data-dir $(SAMPLE_DIR) --split-file $(DEMO_OUT)/split/split.csv \
		--out-dir $(DEMO_OUT)/explore --force
	$(PY) scripts/03_train.py --split-file $(DEMO_OUT)/split/split.csv --outputs-dir $(DEMO_OUT) \
		--architecture simple_cnn --weights none --img-size 96 --skip-phase1 --epochs2 10
	$(PY) scripts/04_tune_threshold.py --outputs-dir $(DEMO_OUT)
	$(PY) scripts/05_evaluate.py --outputs-dir $(DEMO_OUT)
	$(PY) scripts/06_infer.py $(SAMPLE_DIR)/HAM10000_images_part_2 --outputs-dir $(DEMO_OUT)
	$(PY) scripts/07_explain.py --outputs-dir $(DEMO_OUT)
	$(PY) scripts/08_export.py --outputs-dir $(DEMO_OUT) --format all
	@echo "Done. Results: $(DEMO_OUT)/latest/ (model_card.md, test_metrics.json, plots/, explain/, export/)"

# Two processes (pytest-xdist), one test file each at a time: about 11 minutes on 2 CPU cores.
test: install
	$(PY) -m pytest -n 2 --dist loadfile

# The inner loop: everything but the end-to-end training tests (about two minutes).
test-fast: install
	$(PY) -m pytest -m "not slow"

# The web app (app.py) in the browser: choose a run or a model file, upload images.
app: install
	$(PY) -m streamlit run app.py

clean-demo:
	rm -rf $(SAMPLE_DIR) $(DEMO_OUT)
