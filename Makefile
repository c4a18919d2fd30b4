# Set-up and the two everyday commands. `make demo` runs the whole chain on the embedded
# sample dataset; `make test` runs the test suite. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SAMPLE_DIR := data/sample
DEMO_OUT := outputs/demo

.PHONY: install demo test clean-demo

install: $(VENV)/.installed

$(VENV)/.installed: setup.py requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

$(SAMPLE_DIR)/HAM10000_metadata.csv: | $(VENV)/.installed
	$(PY) scripts/00_make_sample_data.py --out-dir $(SAMPLE_DIR)

demo: install $(SAMPLE_DIR)/HAM10000_metadata.csv
	$(PY) scripts/02_prepare_split.py --data-dir $(SAMPLE_DIR) --out-dir $(DEMO_OUT)/split

test: install
	$(PY) -m pytest

clean-demo:
	rm -rf $(SAMPLE_DIR) $(DEMO_OUT)
