# Two commands set up and run everything on a fresh machine:
#   make fit    create .venv if missing, then train configs/circles.yaml
#   make test   create .venv if missing, then run the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= configs/circles.yaml

.PHONY: fit test install clean

$(BIN)/clftrain: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch is pinned to the release the project is tested with (pyproject keeps a range).
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/clftrain

fit: install
	$(BIN)/clftrain fit $(CONFIG)

test: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) *.egg-info
