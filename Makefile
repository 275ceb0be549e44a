# The two commands of the README:
#   make demo   - create the environment if missing, install lensnet, run the main job on built-in defaults
#   make test   - create the environment if missing, install lensnet with its test extras, run the test suite
#   make docs   - build the documentation (Sphinx, warnings are errors) into docs/_build/html
PYTHON ?= python3
VENV ?= .venv
CONSTRAINTS ?= constraints.txt
BIN := $(VENV)/bin
# The demo needs only the runtime dependencies; the tests add lenstronomy (a large install) and pytest.
STAMP := $(VENV)/.lensnet-installed
TEST_STAMP := $(VENV)/.lensnet-test-installed

.PHONY: demo test docs install bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e .
	touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[test]'
	touch $(TEST_STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/lensnet demo

test: $(TEST_STAMP)
	$(BIN)/python -m pytest -q

docs: $(TEST_STAMP)
	$(BIN)/python -m sphinx -b html -W --keep-going -q docs docs/_build/html
	@echo "documentation in docs/_build/html/index.html"

bench: $(TEST_STAMP)
	$(BIN)/python benchmarks/bench_render.py

clean:
	rm -rf $(VENV) build *.egg-info docs/_build docs/api
