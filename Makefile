# Quick start: `make run` opens the app on the demo flowers; `make test` runs every test.
# Both create .venv and install what they need first (once; again when pyproject.toml changes).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint install clean

# The window needs a few system libraries (X11/xcb, OpenGL, fonts) that Python packages do not
# bring: the check installs them when run as root with apt-get, else prints the command to type.
run: $(STAMP)
	$(BIN)/python -m ptm_studio.system_libraries --install
	$(BIN)/ptm-studio --demo

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest

# Style, types (core and GUI) and the layer contracts in pyproject.toml ([tool.importlinter]).
lint: $(STAMP)
	$(BIN)/ruff check ptm_studio tests benchmarks packaging
	$(BIN)/ruff format --check ptm_studio tests benchmarks packaging
	$(BIN)/mypy
	$(BIN)/lint-imports

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "PTM Studio needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[gui,test,dev]"
	touch $(STAMP)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
