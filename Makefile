# Two commands a new machine needs: `make run` and `make test` (Python 3.11 to 3.14).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)

.PHONY: run test lint migrate reconcile bench stop clean

# The first run installs about 150 MB of wheels into .venv (one to three minutes on a
# typical connection); later runs skip this until a requirements file changes.
$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; v = sys.version_info; assert (3, 11) <= v[:2] <= (3, 14), "Python 3.11 to 3.14 is needed (the pinned wheels cover those), found " + sys.version.split()[0]'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing the dependencies into $(VENV) (first run: one to three minutes)..."
	@$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install -r requirements-dev.txt
	@rm -f $(VENV)/.installed-*
	@touch $@
	@echo "Dependencies installed."

run: $(STAMP)
	$(BIN)/python -m app serve

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

migrate: $(STAMP)
	$(BIN)/python -m app migrate

reconcile: $(STAMP)
	$(BIN)/python -m app reconcile

# The benchmark: app (2 workers) and pgbench on the same SQL, one table of ratios.
# `make bench QUICK=1` for a one-minute run.
bench: $(STAMP)
	$(BIN)/python bench/run.py $(if $(QUICK),--quick,)

# Stop the embedded PostgreSQL that `make run` / `make test` leave running under .data/.
stop:
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m app db stop; else echo "nothing to stop (no $(VENV))"; fi

# Stops the embedded database first; keeps its data (.data/): `rm -rf .data` forgets it.
clean: stop
	rm -rf $(VENV) .pytest_cache .ruff_cache
